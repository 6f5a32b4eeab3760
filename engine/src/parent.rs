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
use crate::tree::{Record, TreeReader, path_cmp};
use std::cmp::Ordering;
use std::collections::VecDeque;

/// Parent chunks looked at ahead of the current position.
const WINDOW: usize = 1024;

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
    tree: VecDeque<ChunkId>,
    /// The parent tree chunk the previous new tree chunk took by position.
    last_tree: Option<ChunkId>,
}

/// The newest snapshot of the same source and paths, if any.
pub(crate) fn find(repo: &Repo, source: &str, paths: &[Vec<u8>]) -> Option<Snapshot> {
    let (snaps, _) = repo.snapshots().ok()?;
    snaps
        .into_iter()
        .rev()
        .map(|(_, s)| s)
        .find(|s| s.source == source && s.paths == paths)
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
            tree: snap.tree.iter().map(|(id, _)| *id).collect(),
            last_tree: None,
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

    /// Position the cursor on the parent's file at `path`, if it has one.
    pub(crate) fn start_file(&mut self, path: &[u8]) {
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
                    self.in_file = matches!(r, Record::FileStart(_));
                    return;
                }
                Ordering::Greater => {
                    self.peeked = Some(r);
                    return;
                }
            }
        }
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
        let positional = self.window.pop_front().map(|(b, ..)| b);
        self.last = positional;
        let similar = sketch
            .and_then(|s| self.window.iter().find(|(.., ws)| *ws == Some(s)))
            .map(|(b, ..)| *b);
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
    /// of the chunk ids change), so nothing realigns the window: one tree cut point more or
    /// less than the parent had would leave every later chunk one position off its base.
    /// Each new tree chunk therefore gets the parent chunk at its position, the one after
    /// (the parent lost a cut point) and the one before (the parent gained one).
    pub(crate) fn observe_tree(&mut self, id: &ChunkId, new: bool) -> [Option<ChunkId>; 3] {
        if let Some(k) = self.tree.iter().take(WINDOW).position(|w| w == id) {
            self.tree.drain(..=k);
            self.last_tree = None;
            return [None; 3];
        }
        if !new {
            return [None; 3];
        }
        let previous = self.last_tree;
        let positional = self.tree.pop_front();
        self.last_tree = positional;
        [positional, self.tree.front().copied(), previous]
    }
}
