//! Entries handed over one by one (an archive's members being imported): directories,
//! files with a reader, symlinks, each with its metadata, in the tree's order. The writer
//! checks every path and the order itself and refuses what a tree could not hold, so a
//! bad source fails the backup before anything is committed.

use super::{BATCH_BYTES, Writer};
use crate::chunking::parent::{self, Parent};
use crate::disk::limits::Limit;
use crate::disk::tree::{EntryMeta, Record, check_path, path_cmp};
use crate::error::{Error, Result};
use std::cmp::Ordering;
use std::io::Read;

/// One entry of a [`super::Source::Entries`].
pub enum Entry {
    /// A directory.
    Dir(EntryMeta),
    /// A regular file and its content.
    File {
        /// Path, mode and time.
        meta: EntryMeta,
        /// The content's size when known (larger ones are read on a thread of their own).
        size_hint: Option<u64>,
        /// The content; a read error fails the backup.
        reader: Box<dyn Read + Send + 'static>,
    },
    /// A symbolic link and its target.
    Symlink(EntryMeta, Vec<u8>),
}

impl Entry {
    /// The entry's metadata.
    pub fn meta(&self) -> &EntryMeta {
        match self {
            Entry::Dir(m) | Entry::File { meta: m, .. } | Entry::Symlink(m, _) => m,
        }
    }
}

/// The entries of a [`super::Source::Entries`], in tree order.
pub type EntryIter = Box<dyn Iterator<Item = Result<Entry>> + Send>;

/// What the writer has seen so far: the last path and the open directories.
#[derive(Default)]
struct Order {
    last: Option<Vec<u8>>,
    dirs: Vec<Vec<u8>>,
}

impl Order {
    /// Refuse a path a tree cannot hold here: invalid, too long, out of order, duplicated,
    /// or without its parent directory before it.
    fn admit(&mut self, m: &EntryMeta) -> Result<()> {
        let shown = String::from_utf8_lossy(&m.path).into_owned();
        Limit::TreePath.check(m.path.len(), &shown)?;
        if check_path(&m.path).is_err() {
            return Err(Error::invalid(format!(
                "entry {shown:?} has an invalid path (empty, absolute, `.` or `..` components, or NUL)"
            )));
        }
        if m.mode & !0o7777 != 0 {
            return Err(Error::invalid(format!(
                "entry {shown:?} has mode {:o}: only permission bits can be stored",
                m.mode
            )));
        }
        if let Some(last) = &self.last
            && path_cmp(last, &m.path) != Ordering::Less
        {
            return Err(Error::invalid(format!(
                "entry {shown:?} comes after {:?}: entries must be in tree order, each once",
                String::from_utf8_lossy(last)
            )));
        }
        let parent = m
            .path
            .iter()
            .rposition(|b| *b == b'/')
            .map_or(&[][..], |i| &m.path[..i]);
        while self.dirs.last().is_some_and(|d| d.as_slice() != parent) {
            self.dirs.pop();
        }
        if !parent.is_empty() && self.dirs.last().map(Vec::as_slice) != Some(parent) {
            return Err(Error::invalid(format!(
                "entry {shown:?} has no directory entry for its parent before it"
            )));
        }
        self.last = Some(m.path.clone());
        Ok(())
    }
}

impl Writer<'_> {
    /// Store `entries` as the snapshot's tree, walking beside the newest snapshot of the
    /// same `source` and `paths`. Returns how messages name the source.
    pub(super) fn entries(
        &mut self,
        source: &str,
        paths: &[Vec<u8>],
        entries: EntryIter,
    ) -> Result<String> {
        let parent = parent::find(self.repo, source, paths).map(|s| Parent::new(self.repo, &s));
        self.store.planner().set_parent(parent);
        let mut order = Order::default();
        for e in entries {
            crate::check_interrupt()?;
            let e = e?;
            order.admit(e.meta())?;
            match e {
                Entry::Dir(m) => {
                    self.stats.dirs += 1;
                    order.dirs.push(m.path.clone());
                    self.record(&Record::Dir(m))?;
                }
                Entry::Symlink(m, target) => {
                    let shown = String::from_utf8_lossy(&m.path).into_owned();
                    Limit::SymlinkTarget.check(target.len(), &shown)?;
                    if target.is_empty() || target.contains(&0) {
                        return Err(Error::invalid(format!(
                            "symlink {shown:?} has an empty target or one holding NUL"
                        )));
                    }
                    self.stats.symlinks += 1;
                    self.record(&Record::Symlink(m, target))?;
                }
                Entry::File {
                    meta,
                    size_hint,
                    reader,
                } => {
                    let shown = String::from_utf8_lossy(&meta.path).into_owned();
                    if let Some(p) = self.parent() {
                        p.start_file(&meta.path);
                    }
                    self.stats.files += 1;
                    self.record(&Record::FileStart(meta))?;
                    let pipelined = size_hint.is_none_or(|s| s > BATCH_BYTES as u64);
                    let (size, content_hash) =
                        self.store_stream(reader, pipelined, &|| shown.clone())?;
                    self.content_bytes += size;
                    self.record(&Record::FileEnd { size, content_hash })?;
                }
            }
        }
        Ok(format!("the {source} source"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(p: &str) -> EntryMeta {
        EntryMeta {
            path: p.as_bytes().to_vec(),
            mode: 0o644,
            mtime: 0,
            mtime_nsec: 0,
        }
    }

    #[test]
    fn out_of_order_duplicated_orphaned_and_invalid_paths_are_refused() {
        let mut o = Order::default();
        o.admit(&meta("a")).unwrap();
        o.dirs.push(b"a".to_vec());
        o.admit(&meta("a/b")).unwrap();
        assert!(o.admit(&meta("a/b")).is_err());
        let mut o2 = Order::default();
        o2.admit(&meta("b")).unwrap();
        assert!(o2.admit(&meta("a")).is_err());
        let mut o3 = Order::default();
        assert!(o3.admit(&meta("x/y")).is_err());
        for bad in ["", "/abs", "a/../b", "a//b", "."] {
            assert!(Order::default().admit(&meta(bad)).is_err(), "{bad}");
        }
        let mut m = meta("f");
        m.mode = 0o100644;
        assert!(Order::default().admit(&m).is_err());
    }
}
