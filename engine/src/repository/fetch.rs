//! Reading chunks and their delta chains: the one reader behind restore, dump, check, the
//! tree walk and the bases a backup deltas against.
//!
//! Restore is bound by decryption, decompression and re-hashing, so a batch of chunks is
//! located, read, and then opened on all cores. Delta chunks need their bases: those are
//! located and opened first (a level of the chain at a time, each level in parallel) and
//! handed to the deltas from memory.
//!
//! Chunks are located through a [`Locate`]: the index for everything but the backup's
//! sealing workers, which get chains the main thread already located (SQLite stays on one
//! thread) and read them with the same code.
//!
//! Only the chunks the caller asked for are re-hashed against their ids. A base further down
//! a chain is authenticated (its envelope binds its id) but not hashed: a base that decoded
//! to anything but its plaintext would make the chunk built on it fail its own id check, so
//! hashing every link would cost a BLAKE3 pass per link (most of a chain-heavy restore's
//! hashing) to name a different culprit for the same error.

use crate::disk::crypto::Keys;
use crate::disk::format::{MAX_DELTA_CHAIN, MAX_OBJECT_SIZE, ObjectType};
use crate::disk::id::{ChunkId, PackId};
use crate::disk::pack::PackEntry;
use crate::error::{Error, ErrorKind, Result};
use crate::repository::index::{ChunkLocation, Index};
use crate::repository::repo::Repo;
use crate::repository::storage::{Kind, Storage};
use rayon::prelude::*;
use std::collections::HashMap;

/// Where the chunks a read needs are stored.
pub(crate) trait Locate {
    /// The locations of `ids`, in order.
    ///
    /// # Errors
    /// `Corrupt` naming `what` for an id that is not stored; the locator's own failures.
    fn locate_all(&self, ids: &[ChunkId], what: &str) -> Result<Vec<ChunkLocation>>;
}

impl Locate for &Index {
    fn locate_all(&self, ids: &[ChunkId], what: &str) -> Result<Vec<ChunkLocation>> {
        self.reading(|| {
            ids.iter()
                .map(|id| {
                    self.locate(id)?.ok_or_else(|| {
                        Error::corrupt(format!("{what} {id} is missing from the index"))
                    })
                })
                .collect()
        })
    }
}

/// A chain located beforehand (root first), for readers without the index.
struct Located<'a>(&'a [(ChunkId, ChunkLocation)]);

impl Locate for Located<'_> {
    fn locate_all(&self, ids: &[ChunkId], _: &str) -> Result<Vec<ChunkLocation>> {
        ids.iter()
            .map(|id| {
                self.0
                    .iter()
                    .find(|(c, _)| c == id)
                    .map(|(_, loc)| *loc)
                    .ok_or_else(|| Error::corrupt("base chain does not match the index"))
            })
            .collect()
    }
}

/// The base a delta names inside its envelope must be the one its pack trailer records:
/// gc keeps bases alive by the trailer's (and index's) record.
pub(crate) fn check_named_base(e: &PackEntry, named: &ChunkId) -> Result<()> {
    if e.base == Some(*named) {
        Ok(())
    } else {
        Err(Error::corrupt(format!(
            "chunk {} names base {} but its pack trailer does not",
            e.id.short(),
            named.short()
        )))
    }
}

/// The sealed bytes at a location. A pack the index names but storage lacks is damage.
fn read_sealed(storage: &dyn Storage, pack: &PackId, offset: u64, len: u32) -> Result<Vec<u8>> {
    storage
        .get_range(Kind::Pack, &pack.to_hex(), offset, u64::from(len))
        .map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                Error::corrupt(format!("pack {pack} is missing"))
            } else {
                e
            }
        })
}

/// Reads chunks, following delta chains, through a locator.
struct ChainReader<'a, L> {
    keys: &'a Keys,
    storage: &'a dyn Storage,
    locate: L,
}

impl<L: Locate> ChainReader<'_, L> {
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
            let plain = self.load_level(&base_ids, None, depth + 1, false)?;
            base_ids.into_iter().zip(plain).collect()
        };
        let keys = self.keys;
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
    fn load_level(
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
        let locs = self
            .locate
            .locate_all(ids, ty.map_or(what, ObjectType::name))?;
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
            sealed.push(read_sealed(
                self.storage,
                &loc.pack,
                loc.offset,
                loc.sealed_len,
            )?);
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

/// The plaintext of the last chunk of `chain` (root first, each link the base of the next),
/// which the caller located: read and opened like any base, the last link hashed.
///
/// # Errors
/// `Corrupt` when a link is damaged or the chain does not match what the links' envelopes
/// name; `Storage` errors.
pub(crate) fn open_located_chain(
    keys: &Keys,
    storage: &dyn Storage,
    chain: &[(ChunkId, ChunkLocation)],
) -> Result<Vec<u8>> {
    let Some((last, _)) = chain.last() else {
        return Err(Error::internal("empty base chain"));
    };
    let reader = ChainReader {
        keys,
        storage,
        locate: Located(chain),
    };
    // Level 1: the chunk is the base of the delta about to be written.
    let mut one = reader.load_level(std::slice::from_ref(last), None, 1, true)?;
    Ok(one.pop().expect("one chunk asked, one returned"))
}

impl Repo {
    fn chains(&self) -> ChainReader<'_, &Index> {
        ChainReader {
            keys: &self.keys,
            storage: self.storage.as_ref(),
            locate: &self.index,
        }
    }

    /// Load, authenticate and check chunks `ids` of type `ty`, in order.
    ///
    /// # Errors
    /// `Corrupt` for anything missing or damaged (naming the chunk), `Storage` errors.
    pub fn load_chunks(&self, ids: &[ChunkId], ty: ObjectType) -> Result<Vec<Vec<u8>>> {
        self.chains().load_level(ids, Some(ty), 0, true)
    }

    /// Load a chunk through the index, authenticate it and check its id (resolving its base
    /// first when it is stored as a delta).
    ///
    /// # Errors
    /// `Corrupt` if it is not indexed, is of the wrong type, or fails a check.
    pub fn load_chunk(&self, id: &ChunkId, ty: ObjectType) -> Result<Vec<u8>> {
        let mut one = self.load_chunks(std::slice::from_ref(id), ty)?;
        Ok(one.pop().expect("one chunk asked, one returned"))
    }

    /// The plaintext of base chunk `id`, of whatever type, following its own chain.
    fn load_base(&self, id: &ChunkId) -> Result<Vec<u8>> {
        let mut one = self
            .chains()
            .load_level(std::slice::from_ref(id), None, 1, true)?;
        Ok(one.pop().expect("one chunk asked, one returned"))
    }

    /// Open the sealed bytes of pack entry `e`, resolving a delta's base through the index.
    /// The base named inside the envelope must be the one the index (and so the pack
    /// trailer) records, or gc could free a base still needed.
    ///
    /// # Errors
    /// `Corrupt` on any mismatch or failed check.
    pub fn open_sealed(&self, e: &PackEntry, sealed: &[u8]) -> Result<Vec<u8>> {
        let resolve = |b: &ChunkId| -> Result<Vec<u8>> {
            check_named_base(e, b)?;
            self.load_base(b)
        };
        self.keys.open_chunk_with(
            e.ty,
            &e.id,
            sealed,
            (e.raw_len as usize).min(MAX_OBJECT_SIZE),
            Some(&resolve),
        )
    }
}
