//! The tree sink: tree records in, tree chunks stored as the stream grows, and at the end
//! the list of tree chunks and the stream's length that a snapshot names.

use super::store::ChunkStore;
use crate::disk::chunker::{Batch, Cutter};
use crate::disk::format::ObjectType;
use crate::disk::id::ChunkId;
use crate::disk::tree::{Record, TreeWriter};
use crate::error::Result;
use crate::repository::repo::Repo;

/// Bytes of tree stream buffered before it is chunked.
const TREE_FLUSH_BYTES: usize = 1 << 20;

/// The tree stream of one snapshot being written.
pub(crate) struct TreeSink {
    tree: TreeWriter,
    /// The tree chunks stored so far, in stream order.
    chunks: Vec<(ChunkId, u32)>,
}

/// A finished tree: its chunks in order and the stream's length in bytes.
pub(crate) struct FinishedTree {
    pub(crate) chunks: Vec<(ChunkId, u32)>,
    pub(crate) len: u64,
}

impl TreeSink {
    /// An empty tree, cut into chunks with `repo`'s chunker.
    pub(crate) fn new(repo: &Repo) -> Self {
        let cutter = Cutter::new(repo.config.chunker, repo.keys.chunker_seed());
        Self {
            tree: TreeWriter::new(cutter, TREE_FLUSH_BYTES),
            chunks: Vec::new(),
        }
    }

    /// Add a record, storing through `store` the tree chunks it completes.
    pub(crate) fn push(&mut self, r: &Record, store: &mut ChunkStore<'_>) -> Result<()> {
        match self.tree.push(r) {
            Some(batch) => self.store(&batch, store),
            None => Ok(()),
        }
    }

    /// Store the last tree chunks; return the tree. Its packs may still be in flight:
    /// flush `store` before a snapshot names it.
    pub(crate) fn finish(mut self, store: &mut ChunkStore<'_>) -> Result<FinishedTree> {
        if let Some(batch) = self.tree.finish() {
            self.store(&batch, store)?;
        }
        Ok(FinishedTree {
            len: self.tree.total(),
            chunks: self.chunks,
        })
    }

    fn store(&mut self, batch: &Batch, store: &mut ChunkStore<'_>) -> Result<()> {
        let ids = store.store(ObjectType::Tree, batch)?;
        self.chunks
            .extend(ids.into_iter().map(|(id, len, _)| (id, len)));
        Ok(())
    }
}
