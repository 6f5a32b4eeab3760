//! Reading what a backup stores: files and directories walked in path order, streams read
//! on a thread of their own, and files the parent snapshot records unchanged listed from
//! it without reading.

use super::{BATCH_BYTES, REUSE_MAX_CHUNKS, Writer};
use crate::chunking::parent::ParentFile;
use crate::disk::chunker::{Batch, Chunker};
use crate::disk::id::ChunkId;
use crate::disk::limits::Limit;
use crate::disk::tree::{EntryMeta, Record};
use crate::error::{Error, Result};
use crate::write::planner::chunk_ids;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::mpsc::RecvTimeoutError;

/// A batch from the reader thread, with its chunk ids when the reader hashed them.
type ReadBatch = (Batch, Option<Vec<ChunkId>>);

/// Where a regular file's content comes from.
enum Content {
    /// The parent snapshot's record of it.
    Unchanged(ParentFile),
    /// The file, opened for reading.
    Read(File),
}

impl Writer<'_> {
    /// Store one file's content. Reading, cutting and the whole-content hash (and in a
    /// first backup the chunk ids) run on a thread of their own, one batch ahead of
    /// deduplication and sealing: on a nightly dump they are a third of the work and would
    /// otherwise leave a core idle.
    ///
    /// A file that fits in one batch is read on the calling thread: a thread per small file
    /// would cost more than it saves.
    ///
    /// The reader thread is not scoped: when storing fails, the backup returns at once and
    /// the thread ends on its own once its current read returns and it finds nobody
    /// listening. A stream whose producer hangs (a stuck `pg_dump` on stdin) would otherwise
    /// hold a failed or interrupted backup until the producer wrote again.
    pub(super) fn store_stream(
        &mut self,
        reader: impl Read + Send + 'static,
        pipelined: bool,
        what: &dyn Fn() -> String,
    ) -> Result<(u64, [u8; 32])> {
        let params = self.repo.config.chunker;
        let seed = self.repo.keys.chunker_seed();
        if !pipelined {
            let mut chunker = Chunker::new(reader, params, seed, BATCH_BYTES);
            while let Some(batch) = chunker
                .next_batch()
                .map_err(|e| Error::io(format!("reading {}", what()), e))?
            {
                let ids = chunk_ids(&self.repo.keys, &batch, true);
                self.enqueue(batch, &ids)?;
            }
            self.stats.bytes_read += chunker.total();
            return Ok((chunker.total(), chunker.content_hash()));
        }
        // One batch in the channel, one being cut, one being stored: memory stays at three
        // batches whatever the file size.
        let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<ReadBatch>>(1);
        let keys = std::sync::Arc::clone(&self.repo.keys);
        // Without a parent every chunk is new and sealing keeps the pool busy: the reader
        // hashes the chunk ids itself, so that the writer plans each batch the moment it
        // arrives (see `chunk_ids`). With a parent most chunks deduplicate, the pool is idle
        // and the reader is the longest stage: the ids are then hashed on all cores.
        let hash_here = self.parent().is_none();
        let reading = std::thread::Builder::new()
            .name("masclet-reader".into())
            .spawn(move || {
                let mut chunker = Chunker::new(reader, params, seed, BATCH_BYTES);
                loop {
                    let next = chunker.next_batch().transpose().map(|b| {
                        b.map(|b| {
                            let ids = hash_here.then(|| chunk_ids(&keys, &b, false));
                            (b, ids)
                        })
                    });
                    let failed = matches!(next, Some(Err(_)));
                    // A closed channel means the storing side failed: stop reading.
                    if next.is_none_or(|b| tx.send(b).is_err()) || failed {
                        break;
                    }
                }
                (chunker.total(), chunker.content_hash())
            })
            .map_err(|e| Error::io("starting the reader thread", e))?;
        // On an error, `rx` drops here and the reader is left to finish alone. Waiting for a
        // batch wakes up to notice Ctrl-C: the reader may be blocked on a silent producer.
        // Each batch is planned and queued for sealing as it arrives (write/queue.rs).
        loop {
            match rx.recv_timeout(std::time::Duration::from_millis(100)) {
                Ok(batch) => {
                    let (batch, ids) =
                        batch.map_err(|e| Error::io(format!("reading {}", what()), e))?;
                    let ids = ids.unwrap_or_else(|| chunk_ids(&self.repo.keys, &batch, true));
                    self.enqueue(batch, &ids)?;
                }
                Err(RecvTimeoutError::Timeout) => crate::check_interrupt()?,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        // The channel closed: the reader has sent its last batch (or its error, returned
        // above) and is returning.
        let (total, hash) = reading
            .join()
            .map_err(|_| Error::internal(format!("the reader of {} panicked", what())))?;
        self.stats.bytes_read += total;
        Ok((total, hash))
    }

    /// The parent's record of the file at `entry`'s path when the file looks unchanged: same
    /// modification time (to the nanosecond), mode and size, and every chunk still indexed.
    /// The file is then not read (`--force-read` turns that off).
    ///
    /// Trees do not record the inode change time, so two more conditions stand in for
    /// restic's and borg's ctime comparison: the file's ctime equals its mtime (nothing set
    /// the mtime back or touched the inode since the content was written: `touch -r`,
    /// `cp -p`, `rsync -t` and `tar x` all leave a later ctime, and such files are read), and
    /// its mtime has a sub-second part (on file systems with whole-second times a write in the
    /// same second as the last backup's read would go unseen, so every file is read there).
    fn unchanged(
        &mut self,
        entry: &EntryMeta,
        meta: &std::fs::Metadata,
    ) -> Result<Option<ParentFile>> {
        let size = meta.len();
        let untouched = meta.ctime() == meta.mtime()
            && meta.ctime_nsec() == meta.mtime_nsec()
            && meta.mtime_nsec() != 0;
        let force = self.force_read || !untouched;
        let Some(p) = self.parent() else {
            return Ok(None);
        };
        let Some(was) = p.start_file(&entry.path) else {
            return Ok(None);
        };
        if force
            || (was.mtime, was.mtime_nsec, was.mode) != (entry.mtime, entry.mtime_nsec, entry.mode)
        {
            return Ok(None);
        }
        let Some(prev) = p.take_file(REUSE_MAX_CHUNKS) else {
            return Ok(None);
        };
        let ids: Vec<ChunkId> = prev.chunks.iter().map(|c| c.0).collect();
        let indexed = self.repo.index.contains_many(&ids)?;
        Ok((prev.size == size && indexed.iter().all(|x| *x)).then_some(prev))
    }

    /// List an unchanged file's chunks as the parent did, without reading it.
    fn reuse(&mut self, prev: ParentFile) -> Result<(u64, [u8; 32])> {
        self.progress.inc(prev.size);
        self.unchanged_files += 1;
        self.stats.chunks += prev.chunks.len() as u64;
        for (id, len, sk) in prev.chunks {
            if let Some(sk) = sk {
                self.record(&Record::Sketch(sk))?;
            }
            self.record(&Record::FileChunk(id, len))?;
        }
        Ok((prev.size, prev.content_hash))
    }

    /// A path that went away between listing and reading: a live tree, not an error.
    fn vanished(&self, fs_path: &Path) -> Result<()> {
        self.progress.warn(&format!(
            "{} vanished during the backup; skipped",
            fs_path.display()
        ));
        Ok(())
    }

    pub(super) fn walk(&mut self, fs_path: &Path, snap_path: Vec<u8>) -> Result<()> {
        let meta = match std::fs::symlink_metadata(fs_path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return self.vanished(fs_path),
            Err(e) => return Err(Error::io(format!("reading {}", fs_path.display()), e)),
        };
        let entry = EntryMeta {
            path: snap_path,
            mode: meta.mode() & 0o7777,
            mtime: meta.mtime(),
            mtime_nsec: u32::try_from(meta.mtime_nsec()).unwrap_or(0),
        };
        // Paths cannot reach the limit through a real file system (PATH_MAX is smaller), but
        // the writer must never rely on that: a record past it would make the tree unreadable.
        Limit::TreePath.check(entry.path.len(), fs_path.display())?;
        let ft = meta.file_type();
        if ft.is_dir() {
            self.stats.dirs += 1;
            let base = entry.path.clone();
            self.record(&Record::Dir(entry))?;
            let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(fs_path)
                .map_err(|e| Error::io(format!("listing {}", fs_path.display()), e))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<std::io::Result<_>>()
                .map_err(|e| Error::io(format!("listing {}", fs_path.display()), e))?;
            names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            for name in names {
                let mut child = base.clone();
                child.push(b'/');
                child.extend_from_slice(name.as_bytes());
                self.walk(&fs_path.join(&name), child)?;
            }
        } else if ft.is_symlink() {
            let target = std::fs::read_link(fs_path)
                .map_err(|e| Error::io(format!("reading link {}", fs_path.display()), e))?;
            Limit::SymlinkTarget.check(target.as_os_str().len(), fs_path.display())?;
            self.stats.symlinks += 1;
            self.record(&Record::Symlink(
                entry,
                target.as_os_str().as_bytes().to_vec(),
            ))?;
        } else if ft.is_file() {
            // Decided from metadata alone: a file listed from the parent is not even opened.
            let source = match self.unchanged(&entry, &meta)? {
                Some(prev) => Content::Unchanged(prev),
                None => match open_listed(fs_path, &meta) {
                    Ok(Some(f)) => Content::Read(f),
                    Ok(None) => {
                        self.progress.warn(&format!(
                            "{} changed during the backup (it is no longer the regular file listed); skipped",
                            fs_path.display()
                        ));
                        return Ok(());
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return self.vanished(fs_path);
                    }
                    Err(e) => return Err(Error::io(format!("opening {}", fs_path.display()), e)),
                },
            };
            self.stats.files += 1;
            self.record(&Record::FileStart(entry))?;
            let (size, content_hash) = match source {
                Content::Unchanged(prev) => self.reuse(prev)?,
                Content::Read(f) => {
                    self.store_stream(f, meta.len() > BATCH_BYTES as u64, &|| {
                        fs_path.display().to_string()
                    })?
                }
            };
            self.content_bytes += size;
            self.record(&Record::FileEnd { size, content_hash })?;
        } else {
            self.progress.warn(&format!(
                "{} is not a file, directory or symlink; skipped",
                fs_path.display()
            ));
        }
        Ok(())
    }
}

/// Open the regular file `listed` describes, or `None` when something else now stands at
/// `path`. The open never blocks (a FIFO swapped in after the lstat would wait for a writer
/// forever, with the repository lock held) and follows no symlink; the open descriptor
/// must then be the same file (type, device, inode) as the lstat saw.
pub(super) fn open_listed(
    path: &Path,
    listed: &std::fs::Metadata,
) -> std::io::Result<Option<File>> {
    use rustix::fs::OFlags;
    let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK;
    let f = match File::options()
        .read(true)
        .custom_flags(flags.bits().cast_signed())
        .open(path)
    {
        Ok(f) => f,
        // ELOOP: a symlink now stands where the file was.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let now = f.metadata()?;
    if !now.file_type().is_file() || now.dev() != listed.dev() || now.ino() != listed.ino() {
        return Ok(None);
    }
    // Back to blocking reads: a regular file ignores the flag, but say what we mean.
    let fl = rustix::fs::fcntl_getfl(&f)?;
    rustix::fs::fcntl_setfl(&f, fl - OFlags::NONBLOCK)?;
    Ok(Some(f))
}

pub(super) fn top_level_name(path: &Path) -> Result<Vec<u8>> {
    let name = path.file_name().ok_or_else(|| {
        Error::invalid(format!(
            "cannot name {} in a snapshot: give a path that ends in a file or directory name",
            path.display()
        ))
    })?;
    Ok(name.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO standing where the walk listed a regular file (swapped in between lstat and
    /// open), or a FIFO itself, is not opened for reading: the open returns at once with
    /// `None` instead of waiting for a writer forever.
    #[test]
    fn a_fifo_swapped_in_after_the_lstat_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"data").unwrap();
        let listed = std::fs::symlink_metadata(&p).unwrap();
        assert!(open_listed(&p, &listed).unwrap().is_some());
        std::fs::remove_file(&p).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(open_listed(&p, &listed).unwrap().is_none());
        let fifo = std::fs::symlink_metadata(&p).unwrap();
        assert!(open_listed(&p, &fifo).unwrap().is_none());
        // Another regular file (new inode) under the same name is not the one listed.
        std::fs::remove_file(&p).unwrap();
        let keep = dir.path().join("keep");
        std::fs::write(&keep, b"x").unwrap();
        std::fs::write(&p, b"other").unwrap();
        assert!(open_listed(&p, &listed).unwrap().is_none());
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink(&keep, &p).unwrap();
        assert!(open_listed(&p, &listed).unwrap().is_none());
    }
}
