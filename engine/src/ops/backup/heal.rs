//! Before a backup trusts the index for deduplication: is every indexed pack still in
//! storage? One listing per backup (cheap on a local disk and on object stores alike).
//!
//! The index is read before storage is listed: every pack indexed by then was durable
//! before it was indexed, and only gc (under the exclusive lock, which this backup's shared
//! lock keeps out) deletes packs, so an indexed pack absent from the listing is really
//! gone, not merely written after the listing.

use crate::disk::id::{ChunkId, PackId};
use crate::error::Result;
use crate::repository::repo::Repo;
use crate::repository::storage::Kind;
use std::collections::HashSet;

/// What the backup found lost, for its summary.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Healing {
    /// Indexed packs missing from storage.
    pub missing_packs: u64,
    /// Index rows dropped: chunks of those packs, and deltas whose base went with them.
    pub untrusted_chunks: u64,
    /// Of those chunks, the ones this backup read and stored again.
    pub stored_again: u64,
    /// Time spent listing storage and comparing, in seconds.
    pub listing_secs: f64,
}

/// Drop the index rows of chunks whose pack is gone, so the walk stores them again;
/// return what was found and the chunks dropped.
pub(super) fn untrust_missing_packs(repo: &Repo) -> Result<(Healing, HashSet<ChunkId>)> {
    let started = std::time::Instant::now();
    let indexed = repo.index.packs()?;
    let stored: HashSet<String> = repo
        .storage
        .list(Kind::Pack)?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let missing: Vec<PackId> = indexed
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| !stored.contains(&id.to_hex()))
        .collect();
    let mut healing = Healing::default();
    let mut untrusted = HashSet::new();
    if !missing.is_empty() {
        repo.ensure_lock()?;
        let dropped = repo.index.untrust_packs(&missing)?;
        healing.missing_packs = missing.len() as u64;
        healing.untrusted_chunks = dropped.len() as u64;
        untrusted = dropped.into_iter().collect();
    }
    healing.listing_secs = started.elapsed().as_secs_f64();
    Ok((healing, untrusted))
}
