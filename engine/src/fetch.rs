//! Reading many chunks at once: the restore and dump path.
//!
//! Restore is bound by decryption, decompression and re-hashing, so a batch of chunks is
//! located through the index (one thread: SQLite), read, and then opened on all cores.
//! Delta chunks need their bases: those are located and opened first, in parallel, and
//! handed to the deltas from memory.

use crate::error::{Error, Result};
use crate::format::{MAX_OBJECT_SIZE, ObjectType};
use crate::id::ChunkId;
use crate::index::ChunkLocation;
use crate::repo::Repo;
use rayon::prelude::*;
use std::collections::HashMap;

impl Repo {
    fn locate_or_corrupt(&self, id: &ChunkId, what: &str) -> Result<ChunkLocation> {
        self.index
            .locate(id)?
            .ok_or_else(|| Error::corrupt(format!("{what} {id} is missing from the index")))
    }

    fn read_loc(&self, loc: &ChunkLocation) -> Result<Vec<u8>> {
        self.read_sealed(&loc.pack, loc.offset, loc.sealed_len)
    }

    /// Load, authenticate and check chunks `ids` of type `ty`, in order.
    ///
    /// # Errors
    /// `Corrupt` for anything missing or damaged (naming the chunk), `Storage` errors.
    pub fn load_chunks(&self, ids: &[ChunkId], ty: ObjectType) -> Result<Vec<Vec<u8>>> {
        let mut entries = Vec::with_capacity(ids.len());
        let mut sealed = Vec::with_capacity(ids.len());
        let mut base_ids = Vec::new();
        for id in ids {
            let loc = self.locate_or_corrupt(id, ty.name())?;
            if loc.ty != ty {
                return Err(Error::corrupt(format!(
                    "chunk {id} is a {}, expected a {}",
                    loc.ty.name(),
                    ty.name()
                )));
            }
            sealed.push(self.read_loc(&loc)?);
            base_ids.extend(loc.base);
            entries.push(loc.entry(*id));
        }
        base_ids.sort_unstable();
        base_ids.dedup();
        let mut base_sealed = Vec::with_capacity(base_ids.len());
        for b in &base_ids {
            let loc = self.locate_or_corrupt(b, "base chunk")?;
            if loc.base.is_some() {
                return Err(Error::corrupt(format!("base chunk {b} is itself a delta")));
            }
            base_sealed.push((loc.ty, self.read_loc(&loc)?));
        }
        let keys = &self.keys;
        let bases: HashMap<ChunkId, Vec<u8>> = base_ids
            .par_iter()
            .zip(base_sealed)
            .map(|(b, (bty, s))| {
                keys.open_chunk(bty, b, &s, MAX_OBJECT_SIZE)
                    .map(|p| (*b, p))
            })
            .collect::<Result<_>>()?;
        entries
            .par_iter()
            .zip(sealed)
            .map(|(e, s)| {
                let resolve = |b: &ChunkId| -> Result<Vec<u8>> {
                    if e.base != Some(*b) {
                        return Err(Error::corrupt(format!(
                            "chunk {} names base {} but its pack trailer does not",
                            e.id.short(),
                            b.short()
                        )));
                    }
                    bases
                        .get(b)
                        .cloned()
                        .ok_or_else(|| Error::internal("base not loaded"))
                };
                keys.open_chunk_with(
                    ty,
                    &e.id,
                    &s,
                    (e.raw_len as usize).min(MAX_OBJECT_SIZE),
                    Some(&resolve),
                )
            })
            .collect()
    }
}
