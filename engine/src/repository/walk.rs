//! Walking a snapshot: its entries in tree order, each file with its chunk references.
//!
//! The tree stream's records (engine/src/disk/tree.rs) are grouped into entries: a directory, a
//! symlink, or a file with the chunks that hold its content, its size and its content hash.
//! Every record is decoded and validated by the tree reader first (paths, order, nesting,
//! sizes: the format's rules for hostile input live there, not here).
//!
//! ```no_run
//! # fn show(repo: &masclet_engine::Repo, snap: &masclet_engine::Snapshot) -> masclet_engine::Result<()> {
//! use masclet_engine::repository::walk::Entry;
//! for entry in repo.walk(snap) {
//!     if let Entry::File(part) = entry? {
//!         // `part.end` is `None` while more parts of a very long file follow.
//!         println!("{} chunks", part.chunks.len());
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Memory stays bounded whatever the tree holds: a file of more than [`PART_CHUNKS`] chunks
//! comes in several consecutive parts. The walk stops at the first error, which keeps its
//! kind: `Corrupt` for a damaged or invalid tree, the storage's kind for a failing read.
//! Every chunk reference read before the error is handed out before it (in a part whose
//! `end` is `None`), so a caller that reports damage and goes on sees the same references
//! as one reading record by record.

use crate::disk::format::ObjectType;
use crate::disk::id::ChunkId;
use crate::disk::snapshot::Snapshot;
use crate::disk::tree::{EntryMeta, Record, TreeReader};
use crate::error::{Error, Result};
use crate::repository::repo::Repo;

/// Most chunk references one [`FilePart`] holds (36 bytes each: about 147 KiB, for 512 MiB
/// of content at the default average chunk size).
pub const PART_CHUNKS: usize = 4096;

/// One chunk of a file's content: its id and the length the tree records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRef {
    /// The chunk.
    pub id: ChunkId,
    /// Its plaintext length.
    pub len: u32,
}

/// The end of a file: what its chunks must add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileEnd {
    /// Total bytes.
    pub size: u64,
    /// BLAKE3 of the whole content.
    pub content_hash: [u8; 32],
}

/// A regular file's chunks: all of them, or one of consecutive parts of a long file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePart {
    /// The file's metadata (repeated in every part).
    pub meta: EntryMeta,
    /// Whether this part starts the file.
    pub first: bool,
    /// Chunks of this part, in content order.
    pub chunks: Vec<ChunkRef>,
    /// Set on the file's last part; `None` when another part, or the walk's error, follows.
    pub end: Option<FileEnd>,
}

/// One entry of a snapshot, in tree order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory.
    Dir(EntryMeta),
    /// A symbolic link and its target bytes.
    Symlink(EntryMeta, Vec<u8>),
    /// A regular file, or a part of one.
    File(FilePart),
}

type Fetch<'a> = Box<dyn FnMut(&ChunkId) -> Result<Vec<u8>> + 'a>;

/// An iterator over a snapshot's entries (see the module documentation).
pub struct TreeWalk<'a> {
    reader: TreeReader<Fetch<'a>>,
    part_chunks: usize,
    /// The file being read: its metadata, whether a part was handed out, its chunks since.
    file: Option<(EntryMeta, bool, Vec<ChunkRef>)>,
    /// An error to hand out after the part read before it.
    error: Option<Error>,
    done: bool,
}

impl<'a> TreeWalk<'a> {
    /// A walk over the tree stored in chunks `tree`, each loaded with `fetch`.
    pub fn new(tree: Vec<ChunkId>, fetch: impl FnMut(&ChunkId) -> Result<Vec<u8>> + 'a) -> Self {
        Self::with_part_chunks(tree, fetch, PART_CHUNKS)
    }

    fn with_part_chunks(
        tree: Vec<ChunkId>,
        fetch: impl FnMut(&ChunkId) -> Result<Vec<u8>> + 'a,
        part_chunks: usize,
    ) -> Self {
        let fetch: Fetch<'a> = Box::new(fetch);
        Self {
            reader: TreeReader::new(tree, fetch),
            part_chunks: part_chunks.max(1),
            file: None,
            error: None,
            done: false,
        }
    }

    /// The current file's chunks so far as a part, `end` given.
    fn part(&mut self, end: Option<FileEnd>) -> FilePart {
        let (meta, handed, chunks) = self.file.as_mut().expect("inside a file");
        let part = FilePart {
            meta: meta.clone(),
            first: !*handed,
            chunks: std::mem::take(chunks),
            end,
        };
        *handed = true;
        part
    }

    /// Stop at `e`, after handing out what was read of the current file before it.
    fn fail(&mut self, e: Error) -> Result<Entry> {
        self.done = true;
        match &self.file {
            Some((_, handed, chunks)) if !*handed || !chunks.is_empty() => {
                self.error = Some(e);
                Ok(Entry::File(self.part(None)))
            }
            _ => Err(e),
        }
    }

    /// Every file chunk reference of the walk, in tree order (see [`FileChunks`]).
    pub fn file_chunks(self) -> FileChunks<'a> {
        FileChunks {
            walk: self,
            part: Vec::new().into_iter(),
        }
    }
}

impl Iterator for TreeWalk<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        if self.done {
            return self.error.take().map(Err);
        }
        loop {
            let record = match self.reader.next_record() {
                Ok(Some(r)) => r,
                Ok(None) => {
                    // The reader validated the end: no file is unfinished.
                    self.done = true;
                    return None;
                }
                Err(e) => return Some(self.fail(e)),
            };
            match record {
                Record::Dir(m) => return Some(Ok(Entry::Dir(m))),
                Record::Symlink(m, target) => return Some(Ok(Entry::Symlink(m, target))),
                Record::FileStart(m) => self.file = Some((m, false, Vec::new())),
                Record::Sketch(_) => {}
                Record::FileChunk(id, len) => {
                    let (_, _, chunks) = self.file.as_mut().expect("validated: inside a file");
                    chunks.push(ChunkRef { id, len });
                    if chunks.len() >= self.part_chunks {
                        return Some(Ok(Entry::File(self.part(None))));
                    }
                }
                Record::FileEnd { size, content_hash } => {
                    let part = self.part(Some(FileEnd { size, content_hash }));
                    self.file = None;
                    return Some(Ok(Entry::File(part)));
                }
            }
        }
    }
}

/// Every file chunk reference of a snapshot, in tree order, for callers that need only
/// which chunks it uses (not the tree chunks: those are the snapshot's `tree` list). Ends
/// at the walk's first error, after the references read before it.
pub struct FileChunks<'a> {
    walk: TreeWalk<'a>,
    part: std::vec::IntoIter<ChunkRef>,
}

impl Iterator for FileChunks<'_> {
    type Item = Result<ChunkRef>;

    fn next(&mut self) -> Option<Result<ChunkRef>> {
        loop {
            if let Some(c) = self.part.next() {
                return Some(Ok(c));
            }
            match self.walk.next()? {
                Ok(Entry::File(part)) => self.part = part.chunks.into_iter(),
                Ok(Entry::Dir(_) | Entry::Symlink(..)) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl Repo {
    /// A validating reader over a snapshot's tree stream, record by record.
    pub fn tree_reader<'a>(
        &'a self,
        snap: &Snapshot,
    ) -> TreeReader<impl FnMut(&ChunkId) -> Result<Vec<u8>> + 'a> {
        TreeReader::new(tree_ids(snap), move |id| {
            self.load_chunk(id, ObjectType::Tree)
        })
    }

    /// Walk the entries of `snap` (see [`TreeWalk`]).
    pub fn walk<'a>(&'a self, snap: &Snapshot) -> TreeWalk<'a> {
        TreeWalk::new(tree_ids(snap), move |id| {
            self.load_chunk(id, ObjectType::Tree)
        })
    }

    /// Every file chunk `snap` references, in tree order (see [`FileChunks`]).
    pub fn file_chunks<'a>(&'a self, snap: &Snapshot) -> FileChunks<'a> {
        self.walk(snap).file_chunks()
    }
}

fn tree_ids(snap: &Snapshot) -> Vec<ChunkId> {
    snap.tree.iter().map(|(id, _)| *id).collect()
}

#[cfg(test)]
mod tests;
