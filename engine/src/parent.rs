//! The parent snapshot: where a backup finds delta bases for the chunks it has not seen.
//!
//! A nightly dump changes a few rows in many chunks. Each such chunk is new, but last
//! night's version of it sits at about the same place in the same file of the previous
//! snapshot. The backup walks the parent's tree in step with its own (both are in path
//! order) and, inside a file the parent also has, keeps a small window of the parent's
//! upcoming chunk ids. A new chunk found in the window realigns the window; a chunk not
//! found takes the parent chunk at the current position as its delta base. The window is
//! streamed from the parent's tree chunks, so memory stays small for any file size.
//!
//! The parent only ever suggests bases: deduplication still asks the index, and a parent
//! that cannot be read just means no suggestions.

use crate::error::Result;
use crate::format::ObjectType;
use crate::id::ChunkId;
use crate::repo::Repo;
use crate::snapshot::Snapshot;
use crate::tree::{EntryMeta, Record, TreeReader, path_cmp};
use std::cmp::Ordering;
use std::collections::VecDeque;

/// Parent chunks looked at ahead of the current position.
const WINDOW: usize = 1024;

/// How far ahead a same-sketch parent chunk realigns the position.
const REALIGN: usize = 4;

type Fetch<'r> = Box<dyn FnMut(&ChunkId) -> Result<Vec<u8>> + 'r>;

/// A cursor over the parent snapshot's tree.
pub(crate) struct Parent<'r> {
    reader: TreeReader<Fetch<'r>>,
    peeked: Option<Record>,
    in_file: bool,
    window: VecDeque<(ChunkId, u32, Option<i64>)>,
    sketch: Option<i64>,
    /// The parent chunk last taken by position: when a new cut point splits a chunk in two,
    /// the second half's best base is the chunk the first half already took.
    last: Option<ChunkId>,
    broken: bool,
    /// The parent's tree chunks: the new tree stream follows the same order, so its new
    /// chunks find bases the same way file chunks do.
    /// The parent's tree chunks with the offset each starts at in its tree stream.
    tree: Vec<(ChunkId, u64)>,
    /// Bytes of the new tree stream seen so far.
    tree_pos: u64,
}

/// A file of the parent snapshot, as its tree records it.
pub(crate) struct ParentFile {
    /// Chunk ids, lengths and sketches, in order.
    pub(crate) chunks: Vec<(ChunkId, u32, Option<i64>)>,
    /// Size in bytes.
    pub(crate) size: u64,
    /// BLAKE3 of the content.
    pub(crate) content_hash: [u8; 32],
}

/// The newest snapshot of the same source, paths and host, if any.
pub(crate) fn find(repo: &Repo, source: &str, paths: &[Vec<u8>]) -> Option<Snapshot> {
    // The same host too: files the parent records unchanged are listed from it without
    // being read, and two machines backing up the same path into one repository must not
    // take each other's files.
    let host = crate::lock::hostname();
    let (snaps, _) = repo.snapshots().ok()?;
    snaps
        .into_iter()
        .rev()
        .map(|(_, s)| s)
        .find(|s| s.source == source && s.paths == paths && s.host == host)
}

impl<'r> Parent<'r> {
    /// A cursor at the start of `snap`'s tree.
    pub(crate) fn new(repo: &'r Repo, snap: &Snapshot) -> Self {
        let ids = snap.tree.iter().map(|(id, _)| *id).collect();
        let fetch: Fetch<'r> = Box::new(move |id| repo.load_chunk(id, ObjectType::Tree));
        Self {
            reader: TreeReader::new(ids, fetch),
            peeked: None,
            in_file: false,
            window: VecDeque::new(),
            sketch: None,
            last: None,
            broken: false,
            tree: snap
                .tree
                .iter()
                .scan(0u64, |at, (id, len)| {
                    let start = *at;
                    *at += u64::from(*len);
                    Some((*id, start))
                })
                .collect(),
            tree_pos: 0,
        }
    }

    fn next(&mut self) -> Option<Record> {
        if self.broken {
            return None;
        }
        if let Some(r) = self.peeked.take() {
            return Some(r);
        }
        match self.reader.next_record() {
            Ok(r) => r,
            Err(_) => {
                self.broken = true;
                None
            }
        }
    }

    /// Position the cursor on the parent's file at `path`, if it has one, and return that
    /// file's metadata.
    pub(crate) fn start_file(&mut self, path: &[u8]) -> Option<EntryMeta> {
        self.window.clear();
        self.last = None;
        self.in_file = false;
        while let Some(r) = self.next() {
            let entry_path = match &r {
                Record::Dir(m) | Record::Symlink(m, _) | Record::FileStart(m) => &m.path,
                Record::FileChunk(..) | Record::Sketch(_) | Record::FileEnd { .. } => continue,
            };
            match path_cmp(entry_path, path) {
                Ordering::Less => continue,
                Ordering::Equal => {
                    return match r {
                        Record::FileStart(m) => {
                            self.in_file = true;
                            Some(m)
                        }
                        _ => None,
                    };
                }
                Ordering::Greater => {
                    self.peeked = Some(r);
                    return None;
                }
            }
        }
        None
    }

    /// The rest of the parent's current file (after [`Parent::start_file`] found it): its
    /// chunks with their sketches, size and content hash; `None` when it has more than
    /// `limit` chunks (the caller then reads the file, without base suggestions for it).
    pub(crate) fn take_file(&mut self, limit: usize) -> Option<ParentFile> {
        let mut chunks = Vec::new();
        let mut sketch = None;
        while self.in_file {
            match self.next() {
                Some(Record::Sketch(sk)) => sketch = Some(sk),
                Some(Record::FileChunk(id, len)) if chunks.len() < limit => {
                    chunks.push((id, len, sketch.take()));
                }
                Some(Record::FileEnd { size, content_hash }) => {
                    self.in_file = false;
                    return Some(ParentFile {
                        chunks,
                        size,
                        content_hash,
                    });
                }
                Some(Record::FileChunk(..)) | None => break,
                Some(other) => {
                    self.peeked = Some(other);
                    break;
                }
            }
        }
        self.in_file = false;
        None
    }

    fn fill(&mut self) {
        while self.in_file && self.window.len() < WINDOW {
            match self.next() {
                Some(Record::Sketch(sf)) => self.sketch = Some(sf),
                Some(Record::FileChunk(id, len)) => {
                    self.window.push_back((id, len, self.sketch.take()));
                }
                Some(Record::FileEnd { .. }) | None => self.in_file = false,
                Some(other) => {
                    self.peeked = Some(other);
                    self.in_file = false;
                }
            }
        }
    }

    /// Follow the new file chunk by chunk. A chunk the parent holds realigns the window and
    /// hands back the parent's sketch of it. A `new` chunk gets up to three suggested bases:
    /// the parent chunk at the current position (right whenever the change stayed inside the
    /// chunk), the one with the same sketch further on in the window (right when rows moved),
    /// and the one the previous new chunk took by position (right when a new cut point split
    /// a parent chunk in two). Sketches of similar rows also match chunks that are merely
    /// alike, so none wins blindly: the writer tries each and keeps the smallest delta.
    pub(crate) fn observe(
        &mut self,
        id: &ChunkId,
        new: bool,
        sketch: Option<i64>,
    ) -> ([Option<ChunkId>; 3], Option<i64>) {
        self.fill();
        if let Some(k) = self.window.iter().position(|(w, ..)| w == id) {
            let known = self.window[k].2;
            self.last = None;
            self.window.drain(..=k);
            return ([None, None, None], known);
        }
        if !new {
            return ([None, None, None], None);
        }
        let previous = self.last;
        // A chunk with the same sketch a few places ahead means the new stream has moved
        // past the parent chunks before it (a cut point vanished, so one new chunk covers
        // two of the parent's): realign on it, keeping the old position as a candidate.
        let near = sketch.and_then(|s| {
            self.window
                .iter()
                .take(REALIGN)
                .position(|(.., ws)| *ws == Some(s))
        });
        let skipped = match near {
            Some(k) if k > 0 => {
                let first = self.window.front().map(|(b, ..)| *b);
                self.window.drain(..k);
                first
            }
            _ => None,
        };
        let positional = self.window.pop_front().map(|(b, ..)| b);
        self.last = positional;
        let similar = skipped.or_else(|| {
            sketch
                .and_then(|s| self.window.iter().find(|(.., ws)| *ws == Some(s)))
                .map(|(b, ..)| *b)
        });
        ([positional, similar, previous], None)
    }

    /// The parent chunk after the one at the current position, with its length. When a
    /// change erases a cut point, the new chunk is the changed parent chunk and this one
    /// glued together; the writer cuts it off again so it deduplicates.
    pub(crate) fn following(&mut self) -> Option<(ChunkId, u32)> {
        self.fill();
        self.window.get(1).map(|(id, len, _)| (*id, *len))
    }

    /// The same for the chunks of the new tree stream, against the parent's tree chunks.
    /// Tree chunks carry no sketches, and on a nightly dump every tree chunk is new (a fifth
    /// of the chunk ids change), so no match realigns anything; but both tree streams list
    /// the same file in the same order with records of the same sizes, so a byte offset in
    /// one is the same place in the other. A new tree chunk of `len` bytes gets the parent
    /// tree chunks under its middle, its start and its end.
    pub(crate) fn observe_tree(&mut self, new: bool, len: u32) -> [Option<ChunkId>; 3] {
        let start = self.tree_pos;
        self.tree_pos += u64::from(len);
        if !new {
            return [None; 3];
        }
        let under = |pos: u64| {
            // The last parent chunk starting at or before `pos`.
            let i = self.tree.partition_point(|(_, s)| *s <= pos);
            i.checked_sub(1).map(|i| self.tree[i].0)
        };
        let end = start + u64::from(len.max(1)) - 1;
        let mut out = [under(start + u64::from(len / 2)), under(start), under(end)];
        if out[1] == out[0] {
            out[1] = None;
        }
        if out[2] == out[0] || out[2] == out[1] {
            out[2] = None;
        }
        out
    }
}
