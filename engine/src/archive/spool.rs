//! Handing an archive's members to the backup writer in the tree's order, which is not
//! the archive's: GNU tar lists a directory in the order the file system returns it.
//!
//! The plan (a first read) knows every member's offset in the decompressed stream. This
//! second read decompresses the file once, front to back. A member whose turn has come is
//! streamed straight to the writer; a member passed over on the way to it (its turn comes
//! later) is copied to a spool file and read back from there when its turn comes. So
//! memory stays at a few buffers whatever the archive holds, and disk holds at most the
//! members that come early in the archive and late in the tree (none for an archive in
//! tree order, which is what the old system's single dump is; the plan says how many
//! bytes, and import refuses up front when the spool's file system lacks them). The spool
//! is an unlinked temporary file: it disappears with the process, however it ends.
//!
//! Every member's SHA-256 is checked again as it is handed over: a file changed between
//! the two reads fails the backup before it commits.

use crate::disk::tree::EntryMeta;
use crate::error::{Error, Result};
use crate::ops::backup::{Entry, EntryIter};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// One entry of the plan, in tree order.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    /// Path, mode and time.
    pub(crate) meta: EntryMeta,
    /// What it is.
    pub(crate) what: What,
}

/// What a planned entry is.
#[derive(Debug, Clone)]
pub(crate) enum What {
    /// A directory (from the archive, or made up for a member whose parent it lacks).
    Dir,
    /// A symlink and its target.
    Symlink(Vec<u8>),
    /// A file: where its content is in the decompressed stream, and its SHA-256.
    File {
        offset: u64,
        size: u64,
        sha256: [u8; 32],
    },
}

/// Bytes the spool will hold for `planned` (tree order): the files the stream passes
/// before their turn.
pub(crate) fn spool_bytes(planned: &[Planned]) -> u64 {
    let mut pending: BTreeMap<u64, u64> = files(planned).collect();
    let mut pos = 0u64;
    let mut total = 0u64;
    for (offset, size) in files(planned) {
        if pending.remove(&offset).is_none() {
            continue;
        }
        if offset >= pos {
            total += pending.range(pos..offset).map(|(_, s)| s).sum::<u64>();
            let passed: Vec<u64> = pending.range(pos..offset).map(|(o, _)| *o).collect();
            for o in passed {
                pending.remove(&o);
            }
            pos = offset + size;
        }
    }
    total
}

fn files(planned: &[Planned]) -> impl Iterator<Item = (u64, u64)> + '_ {
    planned.iter().filter_map(|p| match p.what {
        What::File { offset, size, .. } if size > 0 => Some((offset, size)),
        _ => None,
    })
}

/// The decompressed stream and the spool, shared by the iterator and its readers.
struct Stream {
    gz: flate2::read::MultiGzDecoder<BufReader<File>>,
    pos: u64,
    /// Files not yet handed over nor spooled: offset → size.
    pending: BTreeMap<u64, u64>,
    spool_dir: PathBuf,
    spool: Option<Arc<File>>,
    spool_len: u64,
    /// Spooled files: offset in the stream → offset in the spool.
    spooled: HashMap<u64, u64>,
}

impl Stream {
    /// Read forward to `to`, discarding.
    fn skip(&mut self, to: u64) -> io::Result<()> {
        if to < self.pos {
            return Err(io::Error::other("the archive was read past a member"));
        }
        let n = io::copy(&mut (&mut self.gz).take(to - self.pos), &mut io::sink())?;
        self.pos += n;
        if self.pos != to {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// Read forward to `to`, spooling every pending file on the way.
    fn advance_to(&mut self, to: u64) -> io::Result<()> {
        if to < self.pos {
            return Err(io::Error::other("the archive was read past a member"));
        }
        let passed: Vec<(u64, u64)> = self
            .pending
            .range(self.pos..to)
            .map(|(o, s)| (*o, *s))
            .collect();
        for (offset, size) in passed {
            self.skip(offset)?;
            if self.spool.is_none() {
                self.spool = Some(Arc::new(tempfile::tempfile_in(&self.spool_dir)?));
            }
            let spool = self.spool.clone().expect("just made");
            let mut w = io::BufWriter::with_capacity(1 << 20, &*spool);
            let n = io::copy(&mut (&mut self.gz).take(size), &mut w)?;
            w.flush()?;
            if n != size {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.pos += size;
            self.spooled.insert(offset, self.spool_len);
            self.spool_len += size;
            self.pending.remove(&offset);
        }
        self.skip(to)
    }
}

/// The entries of `planned`, reading the archive at `path` again.
///
/// # Errors
/// `Io` when the archive cannot be opened.
pub(crate) fn entries(path: &Path, planned: Vec<Planned>, spool_dir: PathBuf) -> Result<EntryIter> {
    let f = File::open(path).map_err(|e| Error::io(path.display(), e))?;
    let stream = Arc::new(Mutex::new(Stream {
        gz: flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, f)),
        pos: 0,
        pending: files(&planned).collect(),
        spool_dir,
        spool: None,
        spool_len: 0,
        spooled: HashMap::new(),
    }));
    let shown = path.display().to_string();
    let mut it = planned.into_iter();
    Ok(Box::new(std::iter::from_fn(move || {
        let p = it.next()?;
        Some(match p.what {
            What::Dir => Ok(Entry::Dir(p.meta)),
            What::Symlink(t) => Ok(Entry::Symlink(p.meta, t)),
            What::File {
                offset,
                size,
                sha256,
            } => file_entry(&stream, p.meta, offset, size, sha256, &shown),
        })
    })))
}

fn file_entry(
    stream: &Arc<Mutex<Stream>>,
    meta: EntryMeta,
    offset: u64,
    size: u64,
    sha256: [u8; 32],
    archive: &str,
) -> Result<Entry> {
    let changed = |e: io::Error| {
        Error::corrupt(format!(
            "{archive}: reading it again failed ({e}): it changed or was damaged since it was checked; nothing was committed"
        ))
    };
    let from = if size == 0 {
        Origin::Stream
    } else {
        let mut s = stream
            .lock()
            .map_err(|_| Error::internal("archive stream poisoned"))?;
        match s.spooled.get(&offset) {
            Some(at) => Origin::Spool {
                file: s.spool.clone().expect("spooled"),
                at: *at,
            },
            None => {
                s.advance_to(offset).map_err(changed)?;
                s.pending.remove(&offset);
                Origin::Stream
            }
        }
    };
    let reader = Member {
        stream: stream.clone(),
        from,
        left: size,
        sha: Sha256::new(),
        expect: sha256,
        name: String::from_utf8_lossy(&meta.path).into_owned(),
    };
    Ok(Entry::File {
        meta,
        size_hint: Some(size),
        reader: Box::new(reader),
    })
}

enum Origin {
    Stream,
    Spool { file: Arc<File>, at: u64 },
}

/// One member's content, from the stream or the spool, checked at its end.
struct Member {
    stream: Arc<Mutex<Stream>>,
    from: Origin,
    left: u64,
    sha: Sha256,
    expect: [u8; 32],
    name: String,
}

impl Read for Member {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let got: [u8; 32] = self.sha.clone().finalize().into();
            if got != self.expect {
                return Err(crate::Error::corrupt(format!(
                    "member {:?} changed since the archive was checked",
                    self.name
                ))
                .into_io());
            }
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = match &mut self.from {
            Origin::Stream => {
                let mut s = self
                    .stream
                    .lock()
                    .map_err(|_| io::Error::other("archive stream poisoned"))?;
                let n = s.gz.read(&mut buf[..want])?;
                s.pos += n as u64;
                n
            }
            Origin::Spool { file, at } => {
                let n = file.read_at(&mut buf[..want], *at)?;
                *at += n as u64;
                n
            }
        };
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n as u64;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, offset: u64, size: u64) -> Planned {
        Planned {
            meta: EntryMeta {
                path: path.into(),
                mode: 0o644,
                mtime: 0,
                mtime_nsec: 0,
            },
            what: What::File {
                offset,
                size,
                sha256: [0; 32],
            },
        }
    }

    #[test]
    fn the_spool_holds_only_members_passed_before_their_turn() {
        // Archive order c (offset 0), b (100), a (300); tree order a, b, c.
        let tree = [file("a", 300, 7), file("b", 100, 50), file("c", 0, 10)];
        assert_eq!(spool_bytes(&tree), 60);
        let sorted = [file("a", 0, 10), file("b", 100, 50), file("c", 300, 7)];
        assert_eq!(spool_bytes(&sorted), 0);
        let one_late = [file("a", 100, 5), file("b", 200, 5), file("c", 0, 1000)];
        assert_eq!(spool_bytes(&one_late), 1000);
    }
}
