//! The rules a file's content must meet to be restored, in one place: restore, `dump` and
//! `check --read-data` all apply them through [`FileContent`], so check never passes a
//! snapshot restore refuses. (Structural rules of the tree stream live in its validator,
//! which every reader runs.)

use crate::disk::id::ChunkId;
use crate::disk::tree::display_path;
use crate::error::{Error, Result};

/// A chunk's plaintext must be as long as the tree says: the tree's lengths place every
/// later byte of the file.
///
/// # Errors
/// `Corrupt` naming the chunk and both lengths.
pub(crate) fn chunk_len(id: &ChunkId, tree_len: u32, actual: usize) -> Result<()> {
    if actual == tree_len as usize {
        Ok(())
    } else {
        Err(Error::corrupt(format!(
            "chunk {id} has {actual} bytes, the tree says {tree_len}"
        )))
    }
}

/// One file's content as it is read, chunk by chunk.
pub(crate) struct FileContent {
    hasher: blake3::Hasher,
    written: u64,
}

impl FileContent {
    pub(crate) fn new() -> Self {
        Self {
            hasher: blake3::Hasher::new(),
            written: 0,
        }
    }

    /// Take the next chunk, checking its length against the tree's.
    ///
    /// # Errors
    /// `Corrupt` for a length that differs.
    pub(crate) fn chunk(&mut self, id: &ChunkId, tree_len: u32, data: &[u8]) -> Result<()> {
        chunk_len(id, tree_len, data.len())?;
        self.hasher.update(data);
        self.written += data.len() as u64;
        Ok(())
    }

    /// The file ended: its size and content hash must be the ones recorded at backup.
    ///
    /// # Errors
    /// `Corrupt` naming the file.
    pub(crate) fn end(&self, path: &[u8], size: u64, hash: &[u8; 32]) -> Result<()> {
        if self.written != size || self.hasher.finalize().as_bytes() != hash {
            return Err(Error::corrupt(format!(
                "content of {} does not match the hash recorded at backup",
                display_path(path)
            )));
        }
        Ok(())
    }
}
