//! The writer's side of a restore: directories, symlinks and files created through
//! directory descriptors (restore.rs states the rules).
//!
//! Nothing that stands in the target is removed before its replacement is complete: a file
//! is written under a temporary name, hashed, and renamed over the old entry once its
//! content checks; a replacing symlink is made under a temporary name and renamed; a
//! directory that replaces a file or symlink (`--overwrite`) is built under a temporary
//! name and exchanged with it once its last entry is written (restore/scratch.rs). Where
//! the target holds another kind of entry than the snapshot, restore refuses unless
//! `--overwrite` is given, and never replaces a directory.

// Beside this file rather than under target/, a name every .gitignore of a Rust tree hides.
#[path = "room.rs"]
mod room;

use super::scratch;
use super::{Op, RestoreOptions, RestoreSummary};
use crate::disk::tree::{EntryMeta, display_path};
use crate::error::{Error, Result};
use crate::progress::Progress;
use room::Room;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::mpsc::Receiver;

/// The last component of a snapshot path.
fn name_of(path: &[u8]) -> &[u8] {
    path.rsplit(|b| *b == b'/').next().unwrap_or(path)
}

fn times(m: &EntryMeta) -> Timestamps {
    let t = Timespec {
        tv_sec: m.mtime,
        tv_nsec: i64::from(m.mtime_nsec.min(999_999_999)),
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn at_err(path: &[u8], what: &str, e: Errno) -> Error {
    Error::io(
        format!("{what} {}", display_path(path)),
        std::io::Error::from(e),
    )
}

/// A directory being restored, open until its last entry is written.
struct OpenDir {
    meta: EntryMeta,
    fd: OwnedFd,
    /// Set when the directory replaces a file or symlink: it is built under this name and
    /// exchanged with the old entry when it is closed.
    tmp_name: Option<Vec<u8>>,
}

/// The file being written: under `tmp_name` in its directory, hashed as it goes.
struct OpenFile {
    meta: EntryMeta,
    file: File,
    tmp_name: Vec<u8>,
    content: super::verify::FileContent,
    /// Whether the file replaces an existing entry: its content then reaches the disk
    /// before the rename, so not even a power loss can trade the old file for an empty one.
    replacing: bool,
}

/// The writer's side of a restore: everything it does to the target.
pub(super) struct Restorer<'a> {
    opts: &'a RestoreOptions,
    /// The target as the operator named it, for messages.
    target: &'a Path,
    root: OwnedFd,
    dirs: Vec<OpenDir>,
    file: Option<OpenFile>,
    summary: RestoreSummary,
    progress: &'a dyn Progress,
}

impl<'a> Restorer<'a> {
    /// A writer restoring into the directory `root`, which is `target`.
    pub(super) fn new(
        opts: &'a RestoreOptions,
        target: &'a Path,
        root: OwnedFd,
        progress: &'a dyn Progress,
    ) -> Self {
        Self {
            opts,
            target,
            root,
            dirs: Vec::new(),
            file: None,
            summary: RestoreSummary::default(),
            progress,
        }
    }

    /// `path` (a snapshot path, empty for the target itself) as it lies on disk.
    fn shown(&self, path: &[u8]) -> String {
        if path.is_empty() {
            self.target.display().to_string()
        } else {
            format!("{}/{}", self.target.display(), display_path(path))
        }
    }

    /// Close directories that are not ancestors of `path`.
    fn pop_to_parent(&mut self, path: &[u8]) -> Result<()> {
        let parent = path_parent(path);
        while let Some(d) = self.dirs.last() {
            if d.meta.path == parent {
                break;
            }
            self.close_dir()?;
        }
        Ok(())
    }

    /// Close the innermost directory: apply its mode and times now that nothing more will
    /// be written inside it, and if it replaces an entry, put it in that entry's place.
    fn close_dir(&mut self) -> Result<()> {
        let d = self.dirs.pop().expect("a directory is open");
        let path = &d.meta.path;
        let result = rustix::fs::fchmod(&d.fd, Mode::from_raw_mode(d.meta.mode))
            .map_err(|e| at_err(path, "setting mode of", e))
            .and_then(|()| {
                rustix::fs::futimens(&d.fd, &times(&d.meta))
                    .map_err(|e| at_err(path, "setting times of", e))
            });
        let Some(tmp) = &d.tmp_name else {
            result?;
            self.summary.dirs += 1;
            return Ok(());
        };
        let parent = self.parent_fd();
        let result = result.and_then(|()| {
            scratch::exchange_in(parent, tmp, name_of(path)).map_err(|e| {
                let what = "putting the restored directory in place of";
                let mut err = at_err(path, what, e);
                if matches!(e, Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) {
                    err = err.context(format!(
                        "this filesystem cannot swap a directory and a file atomically; move {} away and rerun",
                        self.shown(path)
                    ));
                }
                err
            })
        });
        match result {
            Ok(None) => {}
            Ok(Some(e)) => self.left_behind(path_parent(path), tmp, e),
            Err(e) => {
                // Nothing was swapped: the old entry keeps its name; the new tree goes.
                if let Err(rm) = scratch::remove_tree(parent, tmp) {
                    self.left_behind(path_parent(path), tmp, rm);
                }
                return Err(e);
            }
        }
        self.summary.dirs += 1;
        Ok(())
    }

    fn parent_fd(&self) -> BorrowedFd<'_> {
        self.dirs.last().map_or(self.root.as_fd(), |d| d.fd.as_fd())
    }

    fn dir(&mut self, m: EntryMeta) -> Result<()> {
        self.pop_to_parent(&m.path)?;
        let name = name_of(&m.path);
        let mkdir = |at: &[u8]| {
            rustix::fs::mkdirat(self.parent_fd(), at, Mode::from_raw_mode(0o700))
                .map_err(|e| at_err(&m.path, "creating", e))
        };
        let made = rustix::fs::mkdirat(self.parent_fd(), name, Mode::from_raw_mode(0o700));
        let room = match made {
            Ok(()) => Room::Free,
            Err(Errno::EXIST) => self.make_room(&m, FileType::Directory)?,
            Err(e) => return Err(at_err(&m.path, "creating", e)),
        };
        let tmp_name = match room {
            Room::Merge => None,
            Room::Free => {
                // Only when the entry that stood there vanished since: create it after all.
                if matches!(made, Err(Errno::EXIST)) {
                    mkdir(name)?;
                }
                None
            }
            Room::Replace => {
                let tmp = scratch::new_name();
                mkdir(&tmp)?;
                Some(tmp)
            }
        };
        let fd = rustix::fs::openat(
            self.parent_fd(),
            tmp_name.as_deref().unwrap_or(name),
            OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        );
        let fd = match fd {
            Ok(fd) => fd,
            Err(e) => {
                if let Some(tmp) = &tmp_name {
                    let _ = rustix::fs::unlinkat(self.parent_fd(), tmp, AtFlags::REMOVEDIR);
                }
                return Err(at_err(&m.path, "opening directory", e));
            }
        };
        // Only a directory that was there before can hold a killed restore's leftovers.
        if room == Room::Merge {
            let swept = scratch::sweep(fd.as_fd());
            self.report_sweep(&m.path, swept)?;
        }
        self.dirs.push(OpenDir {
            meta: m,
            fd,
            tmp_name,
        });
        Ok(())
    }

    fn symlink(&mut self, m: &EntryMeta, target: &[u8]) -> Result<()> {
        self.pop_to_parent(&m.path)?;
        let name = name_of(&m.path);
        let parent = self.parent_fd();
        let make = |at: &[u8]| {
            rustix::fs::symlinkat(target, parent, at)
                .map_err(|e| at_err(&m.path, "creating symlink", e))?;
            rustix::fs::utimensat(parent, at, &times(m), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| at_err(&m.path, "setting times of", e))
        };
        if self.make_room(m, FileType::Symlink)? == Room::Free {
            make(name)?;
        } else {
            // The new link is made aside and renamed over the old entry.
            let tmp = scratch::new_name();
            let placed = make(&tmp).and_then(|()| {
                rustix::fs::renameat(parent, tmp.as_slice(), parent, name)
                    .map_err(|e| at_err(&m.path, "renaming into place", e))
            });
            if placed.is_err() {
                let _ = rustix::fs::unlinkat(parent, tmp.as_slice(), AtFlags::empty());
            }
            placed?;
        }
        self.summary.symlinks += 1;
        Ok(())
    }

    fn file_start(&mut self, meta: EntryMeta) -> Result<()> {
        self.pop_to_parent(&meta.path)?;
        let replacing = self.make_room(&meta, FileType::RegularFile)? != Room::Free;
        let tmp_name = scratch::new_name();
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(
            self.parent_fd(),
            tmp_name.as_slice(),
            flags,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| at_err(&meta.path, "creating", e))?;
        self.file = Some(OpenFile {
            meta,
            file: File::from(fd),
            tmp_name,
            content: super::verify::FileContent::new(),
            replacing,
        });
        Ok(())
    }

    fn file_chunk(&mut self, id: &crate::disk::id::ChunkId, len: u32, data: &[u8]) -> Result<()> {
        let f = self
            .file
            .as_mut()
            .expect("validator guarantees an open file");
        f.content.chunk(id, len, data)?;
        f.file
            .write_all(data)
            .map_err(|e| Error::io(format!("writing {}", display_path(&f.meta.path)), e))?;
        self.progress.inc(data.len() as u64);
        Ok(())
    }

    fn file_end(&mut self, size: u64, hash: &[u8; 32]) -> Result<()> {
        let f = self.file.take().expect("validator guarantees an open file");
        let path = f.meta.path.clone();
        let result = (|| {
            f.content.end(&path, size, hash)?;
            rustix::fs::fchmod(&f.file, Mode::from_raw_mode(f.meta.mode))
                .map_err(|e| at_err(&path, "setting mode of", e))?;
            rustix::fs::futimens(&f.file, &times(&f.meta))
                .map_err(|e| at_err(&path, "setting times of", e))?;
            if f.replacing {
                f.file
                    .sync_data()
                    .map_err(|e| Error::io(format!("writing {}", display_path(&path)), e))?;
            }
            let parent = self.parent_fd();
            rustix::fs::renameat(parent, f.tmp_name.as_slice(), parent, name_of(&path))
                .map_err(|e| at_err(&path, "renaming into place", e))
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(self.parent_fd(), f.tmp_name.as_slice(), AtFlags::empty());
        }
        result?;
        self.summary.files += 1;
        self.summary.bytes += size;
        Ok(())
    }

    fn apply(&mut self, op: Op) -> Result<()> {
        match op {
            Op::Dir(m) => self.dir(m),
            Op::Symlink(m, target) => self.symlink(&m, &target),
            Op::FileStart(m) => self.file_start(m),
            Op::Chunk(id, len, data) => self.file_chunk(&id, len, &data),
            Op::FileEnd { size, hash } => self.file_end(size, &hash),
        }
    }

    /// The writer thread: remove what a killed restore left in the target, apply batches
    /// until the loader says it is done (`None`), then close the remaining directories. A
    /// loader that hangs up without saying so failed: `Ok(None)` tells the loader to report
    /// its own error. Either way what was being built is removed when `self` drops.
    pub(super) fn run(
        mut self,
        batches: &Receiver<Option<Vec<Op>>>,
    ) -> Result<Option<RestoreSummary>> {
        let swept = scratch::sweep(self.root.as_fd());
        self.report_sweep(b"", swept)?;
        loop {
            match batches.recv() {
                Ok(Some(batch)) => {
                    for op in batch {
                        self.apply(op)?;
                    }
                }
                Ok(None) => {
                    self.pop_to_parent(b"")?;
                    return Ok(Some(self.summary));
                }
                Err(_) => return Ok(None),
            }
        }
    }
}

/// The directory part of a snapshot path (empty at the top).
fn path_parent(path: &[u8]) -> &[u8] {
    path.iter()
        .rposition(|b| *b == b'/')
        .map_or(&[][..], |i| &path[..i])
}

impl Drop for Restorer<'_> {
    /// Whatever ends the writer (an error, a panic, the loader hanging up), nothing it was
    /// building stays behind; after an entry takes its final name there is none to remove.
    fn drop(&mut self) {
        self.abort();
    }
}
