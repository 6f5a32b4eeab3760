//! Choosing and applying delta bases when a backup stores a new chunk (format-spec.md,
//! "Delta chunks"). The backup's main thread resolves each candidate base's chain through
//! the index (SQLite stays on one thread); the sealing workers read and open the chains and
//! keep the smallest delta, or store the chunk whole when no delta pays.

use crate::crypto::Keys;
use crate::error::{Error, Result};
use crate::format::{MAX_DELTA_CHAIN, MAX_OBJECT_SIZE, ObjectType};
use crate::id::ChunkId;
use crate::index::ChunkLocation;
use crate::repo::Repo;
use crate::storage::{Kind, Storage};

/// Links a writer lets a delta chain grow to. Each link a restore follows costs one more
/// chunk to read and decode, while a chunk whose chain is full is stored as a delta against
/// the chain's root, which carries every change since that root was written; 4 links keeps
/// that accumulated delta small without making restores follow long chains
/// (docs/benchmarks.md, "Delta chains, base candidates and chunk boundaries").
const WRITE_DELTA_CHAIN: usize = 4;

/// The lowest zstd level for delta frames. Below 3, zstd's fast strategy finds fewer of the
/// long matches against the base that make a delta small (1.5% more bytes a night measured
/// at level 1), while the deltas are a small share of a backup's compression time.
const DELTA_MIN_LEVEL: i32 = 3;

/// The base chains to try for new chunk `id`, one per distinct usable suggestion, in the
/// order suggested (best first).
///
/// # Errors
/// `IndexUnavailable` on SQLite errors.
pub(crate) fn candidate_chains(
    repo: &Repo,
    hints: &[Option<ChunkId>],
    id: &ChunkId,
) -> Result<Vec<BaseChain>> {
    let mut tried: Vec<ChunkId> = Vec::with_capacity(hints.len());
    let mut chains = Vec::with_capacity(hints.len());
    for b in hints.iter().flatten() {
        if !tried.contains(b) {
            tried.push(*b);
            chains.extend(base_chain(repo, b, id, WRITE_DELTA_CHAIN)?);
        }
    }
    Ok(chains)
}

/// The chain (root first, ending with the base to use) of the stored chunk a new chunk `id`
/// should be a delta of, given the parent's suggestion: the suggestion itself while its
/// chain has room for one more link, else the whole chunk at the root of its chain. `None`
/// when the suggestion is unusable (missing, or a chain that is damaged or too long).
fn base_chain(
    repo: &Repo,
    suggested: &ChunkId,
    id: &ChunkId,
    max_links: usize,
) -> Result<Option<BaseChain>> {
    let mut chain = Vec::new();
    let mut next = Some(*suggested);
    while let Some(cur) = next {
        if chain.len() > MAX_DELTA_CHAIN || cur == *id {
            return Ok(None);
        }
        let Some(loc) = repo.index.locate(&cur)? else {
            return Ok(None);
        };
        next = loc.base;
        chain.push((cur, loc));
    }
    chain.reverse();
    if chain.len() > max_links {
        chain.truncate(1);
    }
    Ok(Some(chain))
}

/// A stored chunk and the chain of bases below it, root first.
pub(crate) type BaseChain = Vec<(ChunkId, ChunkLocation)>;

/// Read and open a base chain (root first), returning the plaintext of its last chunk.
fn open_chain(
    keys: &Keys,
    storage: &dyn Storage,
    chain: &[(ChunkId, ChunkLocation)],
) -> Option<Vec<u8>> {
    let mut plain: Option<(ChunkId, Vec<u8>)> = None;
    for (i, (cid, loc)) in chain.iter().enumerate() {
        let sealed = storage
            .get_range(
                Kind::Pack,
                &loc.pack.to_hex(),
                loc.offset,
                u64::from(loc.sealed_len),
            )
            .ok()?;
        let prev = plain.take();
        let resolve = |b: &ChunkId| -> Result<Vec<u8>> {
            match &prev {
                Some((pid, bytes)) if pid == b && loc.base == Some(*b) => Ok(bytes.clone()),
                _ => Err(Error::corrupt("base chain does not match the index")),
            }
        };
        // Links below the last are authenticated, not hashed: a wrong one would make the
        // last fail its own hash (as on restore, engine/src/fetch.rs).
        let opened = if i + 1 == chain.len() {
            keys.open_chunk_with(loc.ty, cid, &sealed, MAX_OBJECT_SIZE, Some(&resolve))
        } else {
            keys.open_unhashed(loc.ty, cid, &sealed, MAX_OBJECT_SIZE, Some(&resolve))
        }
        .ok()?;
        plain = Some((*cid, opened));
    }
    plain.map(|(_, p)| p)
}

/// Seal one new chunk: as a delta against the last chunk of whichever candidate chain gives
/// the smaller one when that pays, else whole. Either way the result is opened again and
/// compared before it may reach a pack (a compressor or memory fault must not reach the
/// repository). A base that cannot be read is skipped, never fatal.
pub(crate) fn seal_chunk(
    keys: &Keys,
    storage: &dyn Storage,
    ty: ObjectType,
    id: &ChunkId,
    plain: &[u8],
    candidates: Vec<BaseChain>,
    level: i32,
) -> Result<(Vec<u8>, Option<ChunkId>)> {
    // The smallest delta so far: (sealed delta, base id, base plaintext).
    let mut best: Option<(Vec<u8>, ChunkId, Vec<u8>)> = None;
    for chain in &candidates {
        let Some(bid) = chain.last().map(|l| l.0) else {
            continue;
        };
        let Some(b) = open_chain(keys, storage, chain) else {
            continue;
        };
        if let Some(d) = keys.seal_delta(ty, id, plain, &bid, &b, level.max(DELTA_MIN_LEVEL))
            && best.as_ref().is_none_or(|(prev, ..)| d.len() < prev.len())
        {
            best = Some((d, bid, b));
        }
        // Candidates come best-first (the parent chunk at the same position); once a delta
        // is this small the others cannot save enough to pay for opening their chains.
        if best
            .as_ref()
            .is_some_and(|(d, ..)| d.len() * 16 <= plain.len())
        {
            break;
        }
    }
    // A delta that saves little is not worth the dependency on its base.
    let whole = match &best {
        Some((d, ..)) if d.len() * 4 <= plain.len() => None,
        _ => Some(keys.seal(ty, &id.0, plain, Some(level))),
    };
    if let (Some(w), Some((d, ..))) = (&whole, &best)
        && d.len() * 5 > w.len() * 4
    {
        best = None;
    }
    let (sealed, base) = match best {
        Some((d, bid, b)) => (d, Some((bid, b))),
        None => (whole.expect("computed when there is no delta"), None),
    };
    let resolve = |b: &ChunkId| -> Result<Vec<u8>> {
        match &base {
            Some((bid, bytes)) if bid == b => Ok(bytes.clone()),
            _ => Err(Error::internal("unexpected base")),
        }
    };
    let back = keys.open_unhashed(ty, id, &sealed, plain.len(), Some(&resolve))?;
    if back != plain {
        return Err(Error::internal(format!(
            "chunk {} did not survive a seal/open round trip",
            id.short()
        )));
    }
    Ok((sealed, base.map(|(bid, _)| bid)))
}
