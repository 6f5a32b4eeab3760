//! The parent snapshot: where a backup finds delta bases for the chunks it has not seen.
//!
//! A nightly dump changes a few rows in many chunks. Each such chunk is new, but last
//! night's version of it sits at about the same place in the same file of the previous
//! snapshot. The backup walks the parent's tree in step with its own (both are in path
//! order) and, inside a file the parent also has, keeps a small window of the parent's
//! upcoming chunk ids and the last few behind it. A chunk found there realigns the position;
//! a chunk not found is new, and gets delta base suggestions from the parent chunks around
//! the position ([`Parent::observe`]). The window is streamed from the parent's tree
//! chunks, so memory stays small for any file size.
//!
//! The parent only ever suggests bases: deduplication still asks the index, and a parent
//! that cannot be read just means no suggestions.

use crate::chunking::resemble;
use crate::disk::format::ObjectType;
use crate::disk::id::ChunkId;
use crate::disk::snapshot::Snapshot;
use crate::disk::tree::{EntryMeta, Record, TreeReader, path_cmp};
use crate::error::Result;
use crate::repository::repo::Repo;
use std::cmp::Ordering;
use std::collections::VecDeque;

/// Parent chunks looked at ahead of the current position.
const WINDOW: usize = 1024;

/// How far ahead a same-sketch parent chunk realigns the position (a same-head one also
/// realigns it from anywhere behind).
const REALIGN: usize = 4;

/// Parent chunks kept behind the current position.
const BEHIND: usize = 64;

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
    /// Byte offset in the parent's file of the window's first chunk.
    front_at: u64,
    /// The last parent chunks drained from the window (nearest last): when new content
    /// before a chunk moved the position too far, the chunk's base is behind it.
    behind: VecDeque<(ChunkId, u32, Option<i64>)>,
    /// Byte offset in the new file of the next chunk observed.
    new_at: u64,
    /// Parent offset minus new offset at the last chunk both files hold.
    shift: i64,
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
    let host = crate::repository::lock::hostname();
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
            front_at: 0,
            behind: VecDeque::new(),
            new_at: 0,
            shift: 0,
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
        self.front_at = 0;
        self.behind.clear();
        self.new_at = 0;
        self.shift = 0;
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

    /// Follow the new file chunk by chunk (`len` bytes each). A chunk the parent holds
    /// realigns the position (ahead or behind it) and hands back the parent's sketch of it.
    /// A `new` chunk gets up to five suggested bases, best first: the parent chunk that
    /// starts with the same bytes (right when rows were removed or added before or inside
    /// the chunk: the position may have drifted, a vanished cut point glued two chunks),
    /// the parent chunk at the current position (right whenever the change stayed inside
    /// the chunk), the parent chunk under the new chunk's middle counted in bytes from the
    /// last chunk both files hold, the one with the same super-feature further on in the
    /// window (right when rows moved), and the one the previous new chunk took by position
    /// (right when a new cut point split a parent chunk in two). Similar rows also make
    /// sketches match chunks that are merely alike, so none wins blindly: the writer tries
    /// each and keeps the smallest delta.
    pub(crate) fn observe(
        &mut self,
        id: &ChunkId,
        len: u32,
        new: bool,
        sketch: Option<i64>,
    ) -> ([Option<ChunkId>; 5], Option<i64>) {
        self.fill();
        let at = self.new_at;
        self.new_at += u64::from(len);
        let found = self.find(|(w, ..)| w == id);
        if let Some(k) = found {
            self.seek(k);
            let known = self.window.front().and_then(|w| w.2);
            self.last = None;
            // Both files hold this chunk: from here on, a byte of the new file sits this
            // far from the same byte of the parent.
            self.shift = self.front_at as i64 - at as i64;
            self.advance(1);
            return ([None; 5], known);
        }
        if !new {
            return ([None; 5], None);
        }
        let previous = self.last;
        let by_offset = (at as i64 + self.shift + i64::from(len / 2))
            .try_into()
            .ok()
            .and_then(|p| self.under(p));
        let head = sketch.map(resemble::head);
        let feature = sketch.map(resemble::feature);
        // A parent chunk that starts with the same bytes: content-defined cut points come
        // back wherever the bytes around them did, so the new chunk begins where that one
        // began, whatever rows were removed or added before it. Behind the position too:
        // new rows before this chunk took parent chunks by position that they do not hold.
        let same_head = head.and_then(|h| self.find_head(h));
        // A chunk with the same sketch a few places ahead means the new stream has moved
        // past the parent chunks before it (a cut point vanished, so one new chunk covers
        // two of the parent's): realign on it, keeping the old position as a candidate.
        let near = same_head.filter(|&k| k < REALIGN as isize).or_else(|| {
            feature.and_then(|f| {
                self.window
                    .iter()
                    .take(REALIGN)
                    .position(|(.., ws)| ws.map(resemble::feature) == Some(f))
                    .map(|k| k as isize)
            })
        });
        let by_head = same_head.and_then(|k| self.get(k)).map(|w| w.0);
        let skipped = match near {
            Some(k) if k != 0 => {
                let first = self.window.front().map(|(b, ..)| *b);
                self.seek(k);
                first
            }
            _ => None,
        };
        if near.is_some() && near == same_head {
            // The new chunk starts where the parent chunk now at the position started.
            self.shift = self.front_at as i64 - at as i64;
        }
        let positional = self.window.front().map(|(b, ..)| *b);
        self.advance(1);
        self.last = positional;
        let similar = skipped.or_else(|| {
            feature
                .and_then(|f| {
                    self.window
                        .iter()
                        .find(|(.., ws)| ws.map(resemble::feature) == Some(f))
                })
                .map(|(b, ..)| *b)
        });
        ([by_head, positional, by_offset, similar, previous], None)
    }

    /// The place, relative to the current position, of the nearest parent chunk ahead (0 and
    /// up) or else behind (-1 and down) that satisfies `pred`.
    fn find(&self, pred: impl Fn(&(ChunkId, u32, Option<i64>)) -> bool) -> Option<isize> {
        if let Some(k) = self.window.iter().position(&pred) {
            return Some(k as isize);
        }
        self.behind
            .iter()
            .rev()
            .position(pred)
            .map(|j| -(j as isize) - 1)
    }

    /// The place of the nearest parent chunk (as [`Parent::find`]) that starts with head `h`.
    fn find_head(&self, h: u32) -> Option<isize> {
        self.find(|(.., ws)| ws.map(resemble::head) == Some(h))
    }

    /// The parent chunk (id, length, sketch) at place `k` relative to the current position.
    fn get(&self, k: isize) -> Option<&(ChunkId, u32, Option<i64>)> {
        if k >= 0 {
            self.window.get(k.unsigned_abs())
        } else {
            let j = self.behind.len().checked_sub(k.unsigned_abs())?;
            self.behind.get(j)
        }
    }

    /// Move the current position `k` places (back when negative).
    fn seek(&mut self, k: isize) {
        if k >= 0 {
            self.advance(k.unsigned_abs());
            return;
        }
        for _ in 0..k.unsigned_abs() {
            let Some(w) = self.behind.pop_back() else {
                return;
            };
            self.front_at -= u64::from(w.1);
            self.window.push_front(w);
        }
    }

    /// Move `n` chunks from the window's front behind it.
    fn advance(&mut self, n: usize) {
        for _ in 0..n {
            let Some(w) = self.window.pop_front() else {
                return;
            };
            if self.behind.len() == BEHIND {
                self.behind.pop_front();
            }
            self.front_at += u64::from(w.1);
            self.behind.push_back(w);
        }
    }

    /// The parent chunk holding byte `pos` of the parent's file, if it is still in reach.
    fn under(&self, pos: u64) -> Option<ChunkId> {
        if pos < self.front_at {
            let mut end = self.front_at;
            for (id, len, _) in self.behind.iter().rev() {
                let start = end - u64::from(*len);
                if pos >= start {
                    return Some(*id);
                }
                end = start;
            }
            return None;
        }
        let mut start = self.front_at;
        for (id, len, _) in &self.window {
            let end = start + u64::from(*len);
            if pos < end {
                return Some(*id);
            }
            start = end;
        }
        None
    }

    /// The parent chunk after the one at the current position, with its length. When a
    /// change erases a cut point, the new chunk is the changed parent chunk and this one
    /// glued together; the writer cuts it off again so it deduplicates.
    pub(crate) fn following(&mut self) -> Option<(ChunkId, u32)> {
        self.fill();
        self.window.get(1).map(|(id, len, _)| (*id, *len))
    }

    /// The length of the parent chunk in reach that starts with the same bytes as a new
    /// chunk with `sketch` (the one [`Parent::observe`] will suggest first).
    pub(crate) fn same_head_len(&mut self, sketch: i64) -> Option<u32> {
        self.fill();
        // Only where `observe` then moves the position, so the tail's suggestions are the
        // chunks after this one.
        let k = self
            .find_head(resemble::head(sketch))
            .filter(|&k| k < REALIGN as isize)?;
        self.get(k).map(|w| w.1)
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
