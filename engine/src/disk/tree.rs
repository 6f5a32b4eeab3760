//! The tree stream of a snapshot (format-spec.md, "Tree stream").
//!
//! A snapshot's tree is one byte stream of records, depth first, each path after its
//! parent and siblings in byte order of their names. The stream is chunked and stored like
//! file content, so unchanged parts of a tree deduplicate and no directory, however large,
//! has to fit in memory. A file is three kinds of record: its start, one record per chunk,
//! and its end (size and BLAKE3 of the content), so a file's chunk list streams too.
//!
//! A snapshot is hostile input on restore. [`Validator`] enforces what every reader relies
//! on: valid relative paths, strictly increasing order (so no duplicates), every entry's
//! parent present as a directory, file records well nested and sizes that add up.

use crate::disk::chunker::{Batch, Cutter};
use crate::disk::format::{Dec, Enc};
use crate::disk::id::ChunkId;
use crate::error::{Error, Result};
use std::cmp::Ordering;

/// Record tags.
pub const TAG_DIR: u8 = 1;
/// Symlink record.
pub const TAG_SYMLINK: u8 = 2;
/// Start of a file.
pub const TAG_FILE_START: u8 = 3;
/// One chunk of the current file.
pub const TAG_FILE_CHUNK: u8 = 4;
/// End of the current file.
pub const TAG_FILE_END: u8 = 5;
/// Format 2: the resemblance sketch of the file chunk record that follows.
pub const TAG_SKETCH: u8 = 6;
pub use crate::disk::limits::MAX_PATH_LEN;
/// Longest encoded record: tag, two capped byte fields and fixed fields.
pub const MAX_RECORD_LEN: usize = 1 + 2 * (4 + MAX_PATH_LEN) + 64;

/// Metadata shared by every entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryMeta {
    /// Path relative to the snapshot root, components joined by `/`; any bytes but `/` and NUL.
    pub path: Vec<u8>,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_nsec: u32,
}

/// One record of the tree stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A directory.
    Dir(EntryMeta),
    /// A symbolic link and its target bytes.
    Symlink(EntryMeta, Vec<u8>),
    /// The start of a regular file.
    FileStart(EntryMeta),
    /// The next chunk of the current file and its length.
    FileChunk(ChunkId, u32),
    /// Format 2: the resemblance sketch (a hash of its first bytes and a super-feature, see
    /// `resemble`) of the next file chunk, so a later backup can find a similar chunk in
    /// this snapshot to delta against.
    Sketch(i64),
    /// The end of the current file.
    FileEnd {
        /// Total bytes.
        size: u64,
        /// BLAKE3 of the whole content.
        content_hash: [u8; 32],
    },
}

fn encode_meta(e: &mut Enc, m: &EntryMeta) {
    e.bytes(&m.path).u32(m.mode).i64(m.mtime).u32(m.mtime_nsec);
}

fn decode_meta(d: &mut Dec<'_>) -> Result<EntryMeta> {
    Ok(EntryMeta {
        path: d.bytes(MAX_PATH_LEN)?.to_vec(),
        mode: d.u32()?,
        mtime: d.i64()?,
        mtime_nsec: d.u32()?,
    })
}

impl Record {
    /// Append the encoding of this record.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut e = Enc(std::mem::take(out));
        match self {
            Record::Dir(m) => encode_meta(e.u8(TAG_DIR), m),
            Record::Symlink(m, target) => {
                encode_meta(e.u8(TAG_SYMLINK), m);
                e.bytes(target);
            }
            Record::FileStart(m) => encode_meta(e.u8(TAG_FILE_START), m),
            Record::FileChunk(id, len) => {
                e.u8(TAG_FILE_CHUNK).raw(&id.0).u32(*len);
            }
            Record::Sketch(sf) => {
                e.u8(TAG_SKETCH).i64(*sf);
            }
            Record::FileEnd { size, content_hash } => {
                e.u8(TAG_FILE_END).u64(*size).raw(content_hash);
            }
        }
        *out = e.0;
    }

    /// Decode one record from the front of `d`.
    ///
    /// # Errors
    /// `Corrupt` on an unknown tag, oversize field or truncation.
    pub fn decode(d: &mut Dec<'_>) -> Result<Self> {
        Ok(match d.u8()? {
            TAG_DIR => Record::Dir(decode_meta(d)?),
            TAG_SYMLINK => Record::Symlink(decode_meta(d)?, d.bytes(MAX_PATH_LEN)?.to_vec()),
            TAG_FILE_START => Record::FileStart(decode_meta(d)?),
            TAG_FILE_CHUNK => Record::FileChunk(ChunkId(d.id()?), d.u32()?),
            TAG_SKETCH => Record::Sketch(d.i64()?),
            TAG_FILE_END => Record::FileEnd {
                size: d.u64()?,
                content_hash: d.id()?,
            },
            t => {
                return Err(Error::corrupt(format!(
                    "tree stream: unknown record tag {t}"
                )));
            }
        })
    }
}

/// Render a byte path for messages: UTF-8 as is, other bytes escaped.
pub fn display_path(p: &[u8]) -> String {
    p.escape_ascii().to_string()
}

/// Check that `path` is a relative path of valid components.
///
/// # Errors
/// `Corrupt` ("invalid path component") for empty, `.`, `..` components, NUL bytes, or an
/// absolute or oversize path.
pub fn check_path(path: &[u8]) -> Result<()> {
    let bad = path.is_empty()
        || path.len() > MAX_PATH_LEN
        || path.contains(&0)
        || path
            .split(|b| *b == b'/')
            .any(|c| c.is_empty() || c == b"." || c == b"..");
    if bad {
        return Err(Error::corrupt(format!(
            "invalid path component in snapshot tree: {:?}",
            display_path(path)
        )));
    }
    Ok(())
}

/// Order paths component by component (a directory sorts right before its contents).
pub fn path_cmp(a: &[u8], b: &[u8]) -> Ordering {
    a.split(|c| *c == b'/').cmp(b.split(|c| *c == b'/'))
}

fn parent_of(path: &[u8]) -> &[u8] {
    path.iter()
        .rposition(|b| *b == b'/')
        .map_or(&[][..], |i| &path[..i])
}

/// Checks the structural rules of a tree stream, record by record.
#[derive(Debug, Default)]
pub struct Validator {
    last: Option<Vec<u8>>,
    dirs: Vec<Vec<u8>>,
    file: Option<(u64, u32)>,
    sketch: bool,
}

impl Validator {
    /// A validator at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(&mut self, m: &EntryMeta) -> Result<()> {
        if self.file.is_some() {
            return Err(Error::corrupt(
                "tree stream: entry inside an unfinished file",
            ));
        }
        check_path(&m.path)?;
        // Permission bits only (backup writes `st_mode & 0o7777`): anything above is not a
        // mode restore could apply.
        if m.mode & !0o7777 != 0 {
            return Err(Error::corrupt(format!(
                "tree stream: invalid mode {:o} for {:?}",
                m.mode,
                display_path(&m.path)
            )));
        }
        if let Some(last) = &self.last
            && path_cmp(last, &m.path) != Ordering::Less
        {
            return Err(Error::corrupt(format!(
                "tree stream: {:?} out of order or duplicated",
                display_path(&m.path)
            )));
        }
        let parent = parent_of(&m.path);
        while self.dirs.last().is_some_and(|d| d.as_slice() != parent) {
            self.dirs.pop();
        }
        if !parent.is_empty() && self.dirs.last().map(Vec::as_slice) != Some(parent) {
            return Err(Error::corrupt(format!(
                "tree stream: {:?} has no parent directory entry",
                display_path(&m.path)
            )));
        }
        self.last = Some(m.path.clone());
        Ok(())
    }

    /// Check the next record.
    ///
    /// # Errors
    /// `Corrupt` describing the broken rule.
    pub fn check(&mut self, r: &Record) -> Result<()> {
        match r {
            Record::Dir(m) => {
                self.entry(m)?;
                self.dirs.push(m.path.clone());
            }
            Record::Symlink(m, target) => {
                self.entry(m)?;
                if target.is_empty() || target.contains(&0) {
                    return Err(Error::corrupt(format!(
                        "tree stream: bad symlink target for {:?}",
                        display_path(&m.path)
                    )));
                }
            }
            Record::FileStart(m) => {
                self.entry(m)?;
                self.file = Some((0, 0));
            }
            Record::Sketch(_) => {
                if self.file.is_none() || self.sketch {
                    return Err(Error::corrupt(
                        "tree stream: sketch not followed by a chunk",
                    ));
                }
                self.sketch = true;
            }
            Record::FileChunk(_, len) => {
                self.sketch = false;
                let Some((size, n)) = self.file.as_mut() else {
                    return Err(Error::corrupt("tree stream: chunk outside a file"));
                };
                if *len == 0 {
                    return Err(Error::corrupt("tree stream: empty chunk"));
                }
                *size += u64::from(*len);
                *n += 1;
            }
            Record::FileEnd { .. } if self.sketch => {
                return Err(Error::corrupt(
                    "tree stream: sketch not followed by a chunk",
                ));
            }
            Record::FileEnd { size, .. } => match self.file.take() {
                Some((sum, _)) if sum == *size => {}
                Some((sum, _)) => {
                    return Err(Error::corrupt(format!(
                        "tree stream: file size {size} but chunks add up to {sum}"
                    )));
                }
                None => return Err(Error::corrupt("tree stream: file end without start")),
            },
        }
        Ok(())
    }

    /// Check that the stream may end here.
    ///
    /// # Errors
    /// `Corrupt` when a file is unfinished.
    pub fn finish(&self) -> Result<()> {
        if self.file.is_some() {
            Err(Error::corrupt("tree stream ends inside a file"))
        } else {
            Ok(())
        }
    }
}

/// Encodes records and cuts the stream into content-defined chunks as it grows.
pub struct TreeWriter {
    cutter: Cutter,
    buf: Vec<u8>,
    flush_at: usize,
    total: u64,
}

impl TreeWriter {
    /// A writer cutting with `cutter`, handing out batches of about `flush_at` bytes.
    pub fn new(cutter: Cutter, flush_at: usize) -> Self {
        Self {
            cutter,
            buf: Vec::new(),
            flush_at,
            total: 0,
        }
    }

    /// Append a record; returns a batch of finished chunks when enough have accumulated.
    pub fn push(&mut self, r: &Record) -> Option<Batch> {
        r.encode(&mut self.buf);
        if self.buf.len() < self.flush_at + self.cutter.params().max_size as usize {
            return None;
        }
        self.take(false)
    }

    /// Everything left, at the end of the stream.
    pub fn finish(&mut self) -> Option<Batch> {
        self.take(true)
    }

    /// Bytes of tree stream handed out.
    pub fn total(&self) -> u64 {
        self.total
    }

    fn take(&mut self, eof: bool) -> Option<Batch> {
        let chunks = self.cutter.cut(&self.buf, eof, usize::MAX);
        let end = chunks.last()?.end;
        let rest = self.buf.split_off(end);
        let data = std::mem::replace(&mut self.buf, rest);
        self.total += end as u64;
        Some(Batch { data, chunks })
    }
}

/// Decodes records from a sequence of tree chunks fetched on demand.
pub struct TreeReader<F> {
    fetch: F,
    chunks: std::vec::IntoIter<ChunkId>,
    buf: Vec<u8>,
    pos: usize,
    validator: Validator,
}

impl<F: FnMut(&ChunkId) -> Result<Vec<u8>>> TreeReader<F> {
    /// A reader over the tree chunks `chunks`, loading each with `fetch`.
    pub fn new(chunks: Vec<ChunkId>, fetch: F) -> Self {
        Self {
            fetch,
            chunks: chunks.into_iter(),
            buf: Vec::new(),
            pos: 0,
            validator: Validator::new(),
        }
    }

    /// The next validated record, or `None` at a valid end.
    ///
    /// # Errors
    /// `Corrupt` for an undecodable or invalid stream, or the fetch's error.
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        // Keep at least one maximal record buffered so a decode error is real damage,
        // never a record split across chunks.
        while self.buf.len() - self.pos < MAX_RECORD_LEN {
            let Some(id) = self.chunks.next() else { break };
            let data = (self.fetch)(&id)?;
            self.buf.drain(..self.pos);
            self.pos = 0;
            self.buf.extend_from_slice(&data);
        }
        if self.pos == self.buf.len() {
            self.validator.finish()?;
            return Ok(None);
        }
        let mut d = Dec::new(&self.buf[self.pos..], "tree stream");
        let r = Record::decode(&mut d)?;
        self.pos = self.buf.len() - d.remaining();
        self.validator.check(&r)?;
        Ok(Some(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::chunker::ChunkerParams;
    use proptest::prelude::*;

    fn meta(p: &[u8]) -> EntryMeta {
        EntryMeta {
            path: p.to_vec(),
            mode: 0o644,
            mtime: -5,
            mtime_nsec: 7,
        }
    }

    fn run(records: &[Record]) -> Result<()> {
        let mut v = Validator::new();
        for r in records {
            v.check(r)?;
        }
        v.finish()
    }

    #[test]
    fn validator_rules() {
        let file = |p: &[u8]| {
            vec![
                Record::FileStart(meta(p)),
                Record::FileEnd {
                    size: 0,
                    content_hash: [0; 32],
                },
            ]
        };
        assert!(run(&[vec![Record::Dir(meta(b"a"))], file(b"a/x"), file(b"a.b")].concat()).is_ok());
        assert!(run(&file(b"a/x")).is_err(), "missing parent");
        assert!(run(&[file(b"b"), file(b"a")].concat()).is_err(), "order");
        assert!(
            run(&[file(b"a"), file(b"a")].concat()).is_err(),
            "duplicate"
        );
        for bad in [&b""[..], b"/abs", b"..", b"a/../b", b"a//b", b"a\0b", b"."] {
            assert!(run(&file(bad)).is_err(), "{bad:?}");
        }
        assert!(run(&[Record::FileStart(meta(b"f"))]).is_err(), "unfinished");
        let wrong_size = [
            Record::FileStart(meta(b"f")),
            Record::FileChunk(ChunkId([0; 32]), 3),
            Record::FileEnd {
                size: 4,
                content_hash: [0; 32],
            },
        ];
        assert!(run(&wrong_size).is_err());
        let sketch = |r: Vec<Record>| {
            [
                vec![Record::FileStart(meta(b"f"))],
                r,
                vec![Record::FileEnd {
                    size: 3,
                    content_hash: [0; 32],
                }],
            ]
            .concat()
        };
        let chunk = Record::FileChunk(ChunkId([0; 32]), 3);
        assert!(run(&sketch(vec![Record::Sketch(7), chunk.clone()])).is_ok());
        assert!(
            run(&sketch(vec![chunk.clone(), Record::Sketch(7)])).is_err(),
            "sketch before file end"
        );
        assert!(
            run(&sketch(vec![Record::Sketch(7), Record::Sketch(8), chunk])).is_err(),
            "two sketches"
        );
        assert!(run(&[Record::Sketch(1)]).is_err(), "sketch outside a file");
    }

    proptest! {
        #[test]
        fn records_round_trip_through_chunks(names in proptest::collection::btree_set(
            proptest::collection::vec(any::<u8>().prop_filter("no / or NUL", |b| *b != b'/' && *b != 0), 1..300), 1..200)) {
            // Skip names the validator rejects by design.
            let names: Vec<Vec<u8>> = names.into_iter().filter(|n| n != b"." && n != b"..").collect();
            let mut records = vec![];
            for n in &names {
                records.push(Record::Symlink(meta(n), n.clone()));
            }
            let params = ChunkerParams { min_size: 256, avg_size: 1024, max_size: 4096, normalization: 1 };
            let mut w = TreeWriter::new(Cutter::new(params, 1), 2048);
            let mut stored = vec![];
            for r in &records {
                if let Some(b) = w.push(r) { stored.push(b); }
            }
            stored.extend(w.finish());
            let mut chunks: Vec<Vec<u8>> = vec![];
            for b in stored {
                for r in b.chunks { chunks.push(b.data[r].to_vec()); }
            }
            let ids: Vec<ChunkId> = (0..chunks.len()).map(|i| ChunkId([u8::try_from(i % 256).unwrap(); 32])).collect();
            let mut i = 0;
            let mut reader = TreeReader::new(ids, |_| { i += 1; Ok(chunks[i - 1].clone()) });
            let mut back = vec![];
            while let Some(r) = reader.next_record().unwrap() { back.push(r); }
            prop_assert_eq!(back, records);
        }
    }
}
