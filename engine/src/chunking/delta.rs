//! Choosing and applying delta bases when a backup stores a new chunk (format-spec.md,
//! "Delta chunks"). The backup's main thread resolves each candidate base's chain through
//! the index (SQLite stays on one thread); the sealing workers read and open the chains and
//! keep the smallest delta, or store the chunk whole when no delta pays.

use crate::disk::crypto::Keys;
use crate::disk::format::{MAX_DELTA_CHAIN, ObjectType};
use crate::disk::id::ChunkId;
use crate::error::{Error, Result};
use crate::repository::fetch::open_located_chain;
use crate::repository::index::ChunkLocation;
use crate::repository::repo::Repo;
use crate::repository::storage::Storage;

/// Whether an ordinary delta of `delta` bytes for a chunk of `plain` bytes is kept without
/// sealing the chunk whole to compare: at most 1/16 of the chunk, below what even a dump's
/// text compresses to (about a fifth; a quarter let deltas larger than the chunk compressed
/// alone through unexamined). Deltas against a full chain's root are always compared.
fn cheap_delta(delta: usize, plain: usize) -> bool {
    delta * 16 <= plain
}

/// Whether a delta of `delta` bytes is worth its dependency on a base, against `whole`
/// bytes for the chunk sealed alone: at most 80% of it; at most a third of it when the base
/// is the root of a full chain (`rebased`). Such a delta carries every change since the root
/// was written, and so does every later one taken against that root; stored whole, the chunk
/// becomes the root of new chains, and the following nights' deltas carry one night each.
/// On 300 nights of a dump-like history this stored 24% less (51 MB against 67 MB, 22.5
/// against 26 MB after the 7/4/12/5 retention), at no cost over the first eight nights.
fn delta_pays(delta: usize, whole: usize, rebased: bool) -> bool {
    if rebased {
        delta * 3 <= whole
    } else {
        delta * 5 <= whole * 4
    }
}

/// Which delta to store, given the sizes of the smallest ordinary one, the smallest one
/// against a full chain's root, and the chunk sealed whole: the smaller of those that pay
/// by their own rule ([`delta_pays`]), or none (store the chunk whole).
#[derive(Debug, PartialEq, Eq)]
enum Pick {
    Ordinary,
    Rebased,
}

fn pick(ordinary: Option<usize>, rebased: Option<usize>, whole: usize) -> Option<Pick> {
    let o = ordinary.filter(|&d| delta_pays(d, whole, false));
    let r = rebased.filter(|&d| delta_pays(d, whole, true));
    match (o, r) {
        (Some(o), Some(r)) if r < o => Some(Pick::Rebased),
        (Some(_), _) => Some(Pick::Ordinary),
        (None, Some(_)) => Some(Pick::Rebased),
        (None, None) => None,
    }
}

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
    let rebased = chain.len() > max_links;
    if rebased {
        chain.truncate(1);
    }
    Ok(Some(BaseChain {
        links: chain,
        rebased,
    }))
}

/// A stored chunk to delta against and the chain of bases below it, root first.
pub(crate) struct BaseChain {
    pub(crate) links: Vec<(ChunkId, ChunkLocation)>,
    /// The suggestion's own chain was full, so this is its root: a delta against it carries
    /// every change since the root was written.
    pub(crate) rebased: bool,
}

/// A sealed delta with its base's id and plaintext.
type Sealed = (Vec<u8>, ChunkId, Vec<u8>);

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
    // The smallest delta so far against an ordinary base ([0]) and against the root of a
    // full chain ([1]), which answer to different rules: (sealed delta, base id, plaintext).
    let mut best: [Option<Sealed>; 2] = [None, None];
    for chain in &candidates {
        let Some(bid) = chain.links.last().map(|l| l.0) else {
            continue;
        };
        // A base that cannot be read is skipped: the chunk is then stored another way.
        let Ok(b) = open_located_chain(keys, storage, &chain.links) else {
            continue;
        };
        let slot = &mut best[usize::from(chain.rebased)];
        if let Some(d) = keys.seal_delta(ty, id, plain, &bid, &b, level.max(DELTA_MIN_LEVEL))
            && slot.as_ref().is_none_or(|(prev, ..)| d.len() < prev.len())
        {
            *slot = Some((d, bid, b));
        }
        // Candidates come best-first (the parent chunk at the same position); once a delta
        // is this small the others cannot save enough to pay for opening their chains.
        if best
            .iter()
            .flatten()
            .any(|(d, ..)| cheap_delta(d.len(), plain.len()))
        {
            break;
        }
    }
    let [ordinary, rebased] = best;
    // A cheap ordinary delta is kept without sealing the chunk whole to compare; every other
    // delta must pay against the whole chunk, by its own rule, and the smaller one that
    // does wins.
    let whole = match &ordinary {
        Some((d, ..)) if cheap_delta(d.len(), plain.len()) => None,
        _ => Some(keys.seal(ty, &id.0, plain, Some(level))),
    };
    let chosen = match &whole {
        None => ordinary,
        Some(w) => {
            let len = |c: &Option<Sealed>| c.as_ref().map(|(d, ..)| d.len());
            match pick(len(&ordinary), len(&rebased), w.len()) {
                Some(Pick::Ordinary) => ordinary,
                Some(Pick::Rebased) => rebased,
                None => None,
            }
        }
    };
    let (sealed, base) = match chosen {
        Some((d, bid, b)) => (d, Some((bid, b))),
        None => (whole.expect("computed when there is no cheap delta"), None),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_against_a_full_chains_root_must_be_much_smaller_than_the_chunk() {
        // A 16 KiB chunk of text compresses to ~3.4 KiB alone.
        let (plain, whole) = (16_384, 3_400);
        // Small deltas skip the comparison; larger ones are compared.
        assert!(cheap_delta(1_024, plain));
        assert!(!cheap_delta(1_100, plain));
        // An ordinary delta is kept up to 80% of the chunk sealed alone...
        assert!(delta_pays(2_700, whole, false));
        assert!(!delta_pays(2_800, whole, false));
        // ...one against the root of a full chain only up to a third: beyond, the chunk is
        // stored whole and starts new chains.
        assert!(delta_pays(1_130, whole, true));
        assert!(!delta_pays(1_200, whole, true));
        assert!(!delta_pays(2_700, whole, true));
    }

    #[test]
    fn a_rebased_delta_that_does_not_pay_leaves_the_ordinary_one() {
        let whole = 3_400;
        // The smaller delta is against a root and fails its third; the ordinary one pays.
        assert_eq!(pick(Some(1_250), Some(1_200), whole), Some(Pick::Ordinary));
        assert_eq!(pick(Some(1_250), Some(900), whole), Some(Pick::Rebased));
        assert_eq!(pick(None, Some(1_200), whole), None);
        assert_eq!(pick(Some(3_000), None, whole), None);
        assert_eq!(pick(Some(2_000), None, whole), Some(Pick::Ordinary));
    }
}
