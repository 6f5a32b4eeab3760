//! The writer's side of a restore: directories, symlinks and files created through
//! directory descriptors, each file written under a temporary name, hashed, and renamed
//! into place once its content checks (restore.rs states the rules).

use super::{Op, RestoreOptions, RestoreSummary};
use crate::error::{Error, ErrorKind, Result};
use crate::progress::Progress;
use crate::tree::{EntryMeta, display_path};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
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

fn at_err(path: &[u8], what: &str, e: rustix::io::Errno) -> Error {
    Error::io(
        format!("{what} {}", display_path(path)),
        std::io::Error::from(e),
    )
}

/// The file being written: under `tmp_name` in its directory, hashed as it goes.
struct OpenFile {
    meta: EntryMeta,
    file: File,
    tmp_name: Vec<u8>,
    content: super::verify::FileContent,
}

/// The writer's side of a restore: everything it does to the target.
pub(super) struct Restorer<'a> {
    opts: &'a RestoreOptions,
    root: OwnedFd,
    dirs: Vec<(EntryMeta, OwnedFd)>,
    file: Option<OpenFile>,
    summary: RestoreSummary,
    progress: &'a dyn Progress,
}

impl<'a> Restorer<'a> {
    /// A writer restoring into the directory `root`.
    pub(super) fn new(opts: &'a RestoreOptions, root: OwnedFd, progress: &'a dyn Progress) -> Self {
        Self {
            opts,
            root,
            dirs: Vec::new(),
            file: None,
            summary: RestoreSummary::default(),
            progress,
        }
    }

    /// Close directories that are not ancestors of `path`, applying their mode and times
    /// now that nothing more will be written inside them.
    fn pop_to_parent(&mut self, path: &[u8]) -> Result<()> {
        let parent = path
            .iter()
            .rposition(|b| *b == b'/')
            .map_or(&[][..], |i| &path[..i]);
        while let Some((m, _)) = self.dirs.last() {
            if m.path == parent {
                break;
            }
            let (m, fd) = self.dirs.pop().expect("checked");
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(m.mode))
                .map_err(|e| at_err(&m.path, "setting mode of", e))?;
            rustix::fs::futimens(&fd, &times(&m))
                .map_err(|e| at_err(&m.path, "setting times of", e))?;
        }
        Ok(())
    }

    fn parent_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.dirs
            .last()
            .map_or(self.root.as_fd(), |(_, fd)| fd.as_fd())
    }

    /// What stands at `name` in the current directory, without following links.
    fn existing(&self, name: &[u8]) -> Option<FileType> {
        rustix::fs::statat(self.parent_fd(), name, AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .map(|st| FileType::from_raw_mode(st.st_mode))
    }

    /// Make room for a new non-directory at `name`, or refuse. An existing symlink is only
    /// replaced (never written through) with `--overwrite`, or by a symlink from the snapshot.
    fn clear_for(&self, m: &EntryMeta, replacing_with_link: bool) -> Result<()> {
        let name = name_of(&m.path);
        match self.existing(name) {
            None => Ok(()),
            Some(FileType::Directory) => Err(Error::new(
                ErrorKind::Io,
                format!(
                    "{} exists in the target as a directory; restore into an empty directory",
                    display_path(&m.path)
                ),
            )),
            Some(FileType::Symlink) if !self.opts.overwrite && !replacing_with_link => {
                Err(Error::new(
                    ErrorKind::Io,
                    format!(
                        "refusing to write through existing symlink {} (use --overwrite to replace it)",
                        display_path(&m.path)
                    ),
                ))
            }
            Some(_) => rustix::fs::unlinkat(self.parent_fd(), name, AtFlags::empty())
                .map_err(|e| at_err(&m.path, "replacing", e)),
        }
    }

    fn dir(&mut self, m: EntryMeta) -> Result<()> {
        self.pop_to_parent(&m.path)?;
        let name = name_of(&m.path);
        match rustix::fs::mkdirat(self.parent_fd(), name, Mode::from_raw_mode(0o700)) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) if self.existing(name) == Some(FileType::Directory) => {}
            Err(rustix::io::Errno::EXIST) => {
                self.clear_for(&m, false)?;
                rustix::fs::mkdirat(self.parent_fd(), name, Mode::from_raw_mode(0o700))
                    .map_err(|e| at_err(&m.path, "creating", e))?;
            }
            Err(e) => return Err(at_err(&m.path, "creating", e)),
        }
        let fd = rustix::fs::openat(
            self.parent_fd(),
            name,
            OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| at_err(&m.path, "opening directory", e))?;
        self.summary.dirs += 1;
        self.dirs.push((m, fd));
        Ok(())
    }

    fn symlink(&mut self, m: &EntryMeta, target: &[u8]) -> Result<()> {
        self.pop_to_parent(&m.path)?;
        self.clear_for(m, true)?;
        let name = name_of(&m.path);
        rustix::fs::symlinkat(target, self.parent_fd(), name)
            .map_err(|e| at_err(&m.path, "creating symlink", e))?;
        rustix::fs::utimensat(self.parent_fd(), name, &times(m), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| at_err(&m.path, "setting times of", e))?;
        self.summary.symlinks += 1;
        Ok(())
    }

    fn file_start(&mut self, meta: EntryMeta) -> Result<()> {
        self.pop_to_parent(&meta.path)?;
        if self.existing(name_of(&meta.path)).is_some() {
            self.clear_for(&meta, false)?;
        }
        let tmp_name = format!(
            ".masclet-restore-{}",
            crate::id::to_hex(&crate::crypto::random_array::<8>())
        )
        .into_bytes();
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
        });
        Ok(())
    }

    fn file_chunk(&mut self, id: &crate::id::ChunkId, len: u32, data: &[u8]) -> Result<()> {
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

    fn abort(&mut self) {
        if let Some(f) = self.file.take() {
            let _ = rustix::fs::unlinkat(self.parent_fd(), f.tmp_name.as_slice(), AtFlags::empty());
        }
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

    /// The writer thread: apply batches until the loader says it is done (`None`), then
    /// close the remaining directories. A loader that hangs up without saying so failed:
    /// `Ok(None)` tells the loader to report its own error. Either way the file being
    /// written, if any, is removed when `self` drops.
    pub(super) fn run(
        mut self,
        batches: &Receiver<Option<Vec<Op>>>,
    ) -> Result<Option<RestoreSummary>> {
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

impl Drop for Restorer<'_> {
    /// Whatever ends the writer (an error, a panic, the loader hanging up), no temporary
    /// file stays behind; after a file is renamed into place there is none to remove.
    fn drop(&mut self) {
        self.abort();
    }
}
