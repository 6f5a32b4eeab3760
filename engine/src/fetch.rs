//! Reading many chunks at once: the restore and dump path.
//!
//! Restore is bound by decryption, decompression and re-hashing, so a batch of chunks is
//! located through the index (one thread: SQLite), read, and then opened on all cores.
//! Delta chunks need their bases: those are located and opened first (a level of the chain at
//! a time, each level in parallel) and handed to the deltas from memory.
//!
//! Only the chunks the caller asked for are re-hashed against their ids. A base further down
//! a chain is authenticated (its envelope binds its id) but not hashed: a base that decoded
//! to anything but its plaintext would make the chunk built on it fail its own id check, so
//! hashing every link would cost a BLAKE3 pass per link (most of a chain-heavy restore's
//! hashing) to name a different culprit for the same error.

use crate::error::{Error, Result};
use crate::format::{MAX_DELTA_CHAIN, MAX_OBJECT_SIZE, ObjectType};
use crate::id::ChunkId;
use crate::index::ChunkLocation;
use crate::pack::PackEntry;
use crate::repo::{Repo, check_named_base};
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
        self.load_chain_level(ids, Some(ty), 0, true)
    }

    /// The plaintext of base chunk `id`, of whatever type, following its own chain.
    ///
    /// # Errors
    /// As [`Repo::load_chunks`].
    pub(crate) fn load_base(&self, id: &ChunkId) -> Result<Vec<u8>> {
        let mut one = self.load_chain_level(std::slice::from_ref(id), None, 1, true)?;
        Ok(one.pop().expect("one chunk asked, one returned"))
    }

    /// Open sealed pack entries (at chain level `depth`) in parallel, after loading the
    /// bases of the deltas among them together, one chain level further down. One result
    /// per entry, in order; the outer error when a base cannot be loaded. `hashed`: check
    /// each entry's plaintext against its id.
    fn open_with_bases(
        &self,
        entries: &[(PackEntry, &[u8])],
        depth: usize,
        hashed: bool,
    ) -> Result<Vec<Result<Vec<u8>>>> {
        let mut base_ids: Vec<ChunkId> = entries.iter().filter_map(|(e, _)| e.base).collect();
        base_ids.sort_unstable();
        base_ids.dedup();
        let bases: HashMap<ChunkId, Vec<u8>> = if base_ids.is_empty() {
            HashMap::new()
        } else {
            let plain = self.load_chain_level(&base_ids, None, depth + 1, false)?;
            base_ids.into_iter().zip(plain).collect()
        };
        let keys = &self.keys;
        Ok(entries
            .par_iter()
            .map(|(e, sealed)| {
                let resolve = |b: &ChunkId| -> Result<Vec<u8>> {
                    check_named_base(e, b)?;
                    bases
                        .get(b)
                        .cloned()
                        .ok_or_else(|| Error::internal("base not loaded"))
                };
                let max = (e.raw_len as usize).min(MAX_OBJECT_SIZE);
                if hashed {
                    keys.open_chunk_with(e.ty, &e.id, sealed, max, Some(&resolve))
                } else {
                    keys.open_unhashed(e.ty, &e.id, sealed, max, Some(&resolve))
                }
            })
            .collect())
    }

    /// Load `ids` (of type `ty`, or of any type for bases), resolving delta bases one chain
    /// level per recursion: all bases of a batch are loaded together, so a batch of deltas
    /// costs one round per link, not one per chunk. `hashed` as for `open_with_bases`.
    fn load_chain_level(
        &self,
        ids: &[ChunkId],
        ty: Option<ObjectType>,
        depth: usize,
        hashed: bool,
    ) -> Result<Vec<Vec<u8>>> {
        if depth > MAX_DELTA_CHAIN {
            return Err(Error::corrupt(format!(
                "delta chain longer than {MAX_DELTA_CHAIN} links (at chunk {})",
                ids.first().map(ChunkId::short).unwrap_or_default()
            )));
        }
        let what = if depth == 0 { "chunk" } else { "base chunk" };
        let locs = self.index.reading(|| {
            ids.iter()
                .map(|id| self.locate_or_corrupt(id, ty.map_or(what, ObjectType::name)))
                .collect::<Result<Vec<_>>>()
        })?;
        let mut sealed = Vec::with_capacity(ids.len());
        let mut entries = Vec::with_capacity(ids.len());
        for (id, loc) in ids.iter().zip(locs) {
            if let Some(ty) = ty
                && loc.ty != ty
            {
                return Err(Error::corrupt(format!(
                    "chunk {id} is a {}, expected a {}",
                    loc.ty.name(),
                    ty.name()
                )));
            }
            sealed.push(self.read_loc(&loc)?);
            entries.push(loc.entry(*id));
        }
        let pairs: Vec<(PackEntry, &[u8])> = entries
            .into_iter()
            .zip(sealed.iter().map(Vec::as_slice))
            .collect();
        self.open_with_bases(&pairs, depth, hashed)?
            .into_iter()
            .collect()
    }
}
