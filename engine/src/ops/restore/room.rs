//! What a restore may do where the target already holds an entry, and the temporaries it
//! finds or leaves: removing them, and telling the operator where they are.

use super::super::scratch;
use super::{Restorer, name_of};
use crate::disk::tree::{EntryMeta, display_path};
use crate::error::{Error, Result};
use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;
use std::os::fd::AsFd;

fn kind_name(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice | FileType::BlockDevice => "device",
        _ => "special file",
    }
}

/// What the target holds where a snapshot entry goes, once restore may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Room {
    /// Nothing.
    Free,
    /// A directory, where the snapshot has one: restore into it.
    Merge,
    /// An entry the new one replaces once complete.
    Replace,
}

impl Restorer<'_> {
    /// What stands at `name` in the current directory, without following links.
    pub(super) fn existing(&self, name: &[u8]) -> Option<FileType> {
        rustix::fs::statat(self.parent_fd(), name, AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .map(|st| FileType::from_raw_mode(st.st_mode))
    }

    /// Whether the snapshot's entry `m`, of kind `want`, may go where it belongs. An entry
    /// of the same kind is replaced (a directory restored into); another kind only with
    /// `--overwrite`, and a directory never, since that would delete everything in it.
    pub(super) fn make_room(&self, m: &EntryMeta, want: FileType) -> Result<Room> {
        let Some(have) = self.existing(name_of(&m.path)) else {
            return Ok(Room::Free);
        };
        if have == want {
            return Ok(if want == FileType::Directory {
                Room::Merge
            } else {
                Room::Replace
            });
        }
        if have == FileType::Directory {
            return Err(Error::invalid(format!(
                "{} is a directory in the target where the snapshot has a {}; restore never deletes a directory, even with --overwrite: move it away or restore into an empty directory",
                display_path(&m.path),
                kind_name(want)
            )));
        }
        if !self.opts.overwrite {
            return Err(Error::invalid(format!(
                "refusing to replace the {} {} in the target with a {} from the snapshot (left unchanged): rerun with --overwrite to replace it, or restore into an empty directory",
                kind_name(have),
                display_path(&m.path),
                kind_name(want)
            )));
        }
        Ok(Room::Replace)
    }

    /// Report what sweeping the directory `path` for a killed restore's temporaries did.
    pub(super) fn report_sweep(
        &mut self,
        path: &[u8],
        swept: rustix::io::Result<scratch::Swept>,
    ) -> Result<()> {
        let swept = swept.map_err(|e| {
            Error::io(
                format!("listing {}", self.shown(path)),
                std::io::Error::from(e),
            )
        })?;
        if swept.removed > 0 {
            self.progress.warn(&format!(
                "removed {} leftover {} of an interrupted restore ({}*) from {}",
                swept.removed,
                if swept.removed == 1 {
                    "temporary"
                } else {
                    "temporaries"
                },
                scratch::PREFIX,
                self.shown(path)
            ));
            self.summary.leftovers_removed += swept.removed;
        }
        for (name, e) in swept.failed {
            self.left_behind(path, &name, e);
        }
        Ok(())
    }

    /// Tell the operator where a temporary stays that could not be removed.
    pub(super) fn left_behind(&self, dir: &[u8], name: &[u8], e: Errno) {
        self.progress.warn(&format!(
            "could not remove the temporary {}/{} ({}); the next restore into {} removes it",
            self.shown(dir),
            name.escape_ascii(),
            std::io::Error::from(e),
            self.target.display()
        ));
    }

    /// Remove what a stopped restore was building: the file being written and the
    /// outermost directory still under a temporary name (with everything in it). The
    /// entries they were to replace keep their names. What cannot be removed is named.
    pub(super) fn abort(&mut self) {
        let file = self.file.take();
        let Some(i) = self.dirs.iter().position(|d| d.tmp_name.is_some()) else {
            if let Some(f) = file {
                let dir = self.dirs.last().map_or(&[][..], |d| &d.meta.path[..]);
                if let Err(e) =
                    rustix::fs::unlinkat(self.parent_fd(), f.tmp_name.as_slice(), AtFlags::empty())
                {
                    self.left_behind(dir, &f.tmp_name, e);
                }
            }
            return;
        };
        drop(file);
        let (parent, dir) = match i.checked_sub(1).map(|p| &self.dirs[p]) {
            Some(d) => (d.fd.as_fd(), &d.meta.path[..]),
            None => (self.root.as_fd(), &[][..]),
        };
        let tmp = self.dirs[i].tmp_name.as_deref().expect("found above");
        if let Err(e) = scratch::remove_tree(parent, tmp) {
            self.left_behind(dir, tmp, e);
        }
    }
}
