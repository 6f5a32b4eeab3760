//! Garbage collection: give back the space of chunks no snapshot references.
//!
//! `plan` marks every chunk a snapshot references (tree chunks included) in an in-memory
//! live set (gc/live.rs), refuses if any referenced chunk or pack is missing or any snapshot is
//! unreadable, and decides per pack: delete it (nothing live), repack it (dead share above
//! the threshold), or keep it. `execute` then works in the one order that never loses data
//! (format-spec.md, "Forget and garbage collection"):
//!
//! 1. live chunks of repacked packs are verified and copied, as sealed, into new packs, each
//!    durable and indexed (pointing the chunks at it) before the next step;
//! 2. one index transaction drops every dead chunk row and the rows of packs to delete, so
//!    no later backup can deduplicate against what is about to go (it also moves the last
//!    repacked chunks: their new packs are already durable);
//! 3. only then are pack files deleted (old packs, then orphans left by interrupted work).
//!
//! A gc killed anywhere leaves a repository `check` accepts; the next gc finishes the job.
//! It runs under the exclusive lock, so no backup is in flight.

pub(crate) mod live;
mod repack;

use repack::repack;

use crate::disk::format::{
    ENVELOPE_HEADER_LEN, PACK_FOOTER_LEN, PACK_HEADER_LEN, TAG_LEN, TRAILER_ENTRY_LEN,
};
use crate::disk::id::{PackId, to_hex};
use crate::error::{Error, ErrorKind, Result};
use crate::progress::{Progress, Unit};
use crate::repository::repo::Repo;
use crate::repository::storage::Kind;
use std::collections::{HashMap, HashSet};

/// Bytes of a pack that are no chunk's, besides the trailer entries: header, the trailer's
/// envelope and entry count, footer.
const PACK_OVERHEAD: u64 =
    (PACK_HEADER_LEN + ENVELOPE_HEADER_LEN + TAG_LEN + 4 + PACK_FOOTER_LEN) as u64;

/// The bytes of `p` that gc would reclaim: its dead chunks and their trailer entries. Not
/// the framing its live chunks need in any pack: counted as unused, a pack of small delta
/// chunks (trailer entries of 81 bytes beside ~150-byte chunks) looked a third dead with
/// every chunk live, and every gc repacked it again. (Format-1 packs have shorter entries;
/// their dead bytes are slightly underestimated.)
fn dead_bytes(p: &PackPlan) -> u64 {
    let framing = p.live_chunks * TRAILER_ENTRY_LEN as u64 + PACK_OVERHEAD;
    p.size.saturating_sub(p.live_bytes + framing)
}

/// Options of a gc.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct GcOptions {
    /// Repack a pack once this fraction of its bytes is dead (0.0 ..= 1.0).
    pub repack_threshold: f64,
    /// Dead bytes left in kept packs may add up to this fraction of the packs kept (0.0 ..=
    /// 1.0): packs past the threshold are repacked, most dead first, only until the rest is
    /// below it. Repacking copies every live byte of a pack to free its dead ones; a pack a
    /// little past the threshold frees little for that copy and frees more once later
    /// forgets kill more of it (restic's `--max-unused` has the same purpose).
    pub max_unused: f64,
}

impl Default for GcOptions {
    fn default() -> Self {
        Self {
            repack_threshold: 0.10,
            max_unused: 0.05,
        }
    }
}

impl GcOptions {
    /// Options with this repack threshold (and the default unused share).
    pub fn new(repack_threshold: f64) -> Self {
        Self {
            repack_threshold,
            ..Self::default()
        }
    }

    /// The same options with this unused share (see [`GcOptions::max_unused`]).
    #[must_use]
    pub fn max_unused(mut self, share: f64) -> Self {
        self.max_unused = share;
        self
    }
}

/// One pack's fate.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PackPlan {
    /// The pack.
    pub pack: PackId,
    /// Its size.
    pub size: u64,
    /// Live chunks it holds.
    pub live_chunks: u64,
    /// Sealed bytes of those chunks.
    pub live_bytes: u64,
}

/// What gc will do.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GcPlan {
    /// Snapshots whose references were marked.
    pub snapshots: u64,
    /// Distinct live chunks.
    pub live_chunks: u64,
    /// Packs with nothing live: deleted.
    pub delete: Vec<PackPlan>,
    /// Packs above the dead threshold: live chunks copied out, then deleted.
    pub repack: Vec<PackPlan>,
    /// Packs present in storage but not indexed (left by interrupted work): deleted.
    pub orphans: Vec<(PackId, u64)>,
    /// Packs kept as they are.
    pub keep: u64,
    /// Bytes that will be freed (before counting the new packs written by repacking).
    pub bytes_to_free: u64,
    /// Bytes of live chunks to copy.
    pub bytes_to_copy: u64,
    /// What was marked live: `execute` copies and keeps exactly these. `None` in a plan
    /// not made by [`plan`] (`GcPlan::default()`), which `execute` refuses: it would take
    /// every chunk for dead.
    #[serde(skip)]
    pub(crate) live: Option<live::LiveSet>,
}

/// What gc did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GcSummary {
    /// Packs deleted (including repacked and orphan packs).
    pub packs_deleted: u64,
    /// Packs rewritten.
    pub packs_repacked: u64,
    /// New packs written.
    pub packs_written: u64,
    /// Index rows of dead chunks dropped.
    pub chunks_dropped: u64,
    /// Net bytes given back to the filesystem (the seed's `espacio_liberado`).
    pub bytes_freed: u64,
    /// Temporary files of writes killed long ago, removed.
    pub leftovers_removed: u64,
}

/// Mark live chunks and decide what to delete and repack. Writes nothing to the repository.
///
/// # Errors
/// `Corrupt` when a referenced chunk or pack is missing or a snapshot cannot be read: gc
/// refuses rather than guess. `InvalidInput` for a threshold outside 0..=1.
pub fn plan(repo: &Repo, opts: &GcOptions, progress: &dyn Progress) -> Result<GcPlan> {
    if !(0.0..=1.0).contains(&opts.repack_threshold) || !(0.0..=1.0).contains(&opts.max_unused) {
        return Err(Error::invalid(
            "the repack threshold and the unused share are fractions between 0 and 1",
        ));
    }
    repo.index.gc_cache()?;
    let (live, snapshots) = live::mark(repo, progress)?;
    let (usage, found) = repo.index.pack_usage(&live)?;
    refuse_missing_chunks(&live, &found)?;
    let stored: HashMap<String, u64> = repo.storage.list(Kind::Pack)?.into_iter().collect();
    let mut plan = GcPlan {
        snapshots,
        live_chunks: live.len() as u64,
        ..GcPlan::default()
    };
    let mut sorter = Sorter::default();
    for u in usage {
        let p = PackPlan {
            pack: u.pack,
            size: u.size,
            live_chunks: u.live_chunks,
            live_bytes: u.live_bytes,
        };
        sorter.sort(p, stored.get(&u.pack.to_hex()).copied(), opts, &mut plan)?;
    }
    sorter.choose_repacks(opts, &mut plan);
    for (name, size) in stored {
        if !sorter.indexed.contains(&name) {
            plan.bytes_to_free += size;
            plan.orphans.push((PackId::from_hex(&name)?, size));
        }
    }
    plan.orphans.sort();
    plan.live = Some(live);
    Ok(plan)
}

/// Refuse when a chunk some snapshot references is not indexed (`found` holds one flag per
/// live chunk).
fn refuse_missing_chunks(live: &live::LiveSet, found: &[bool]) -> Result<()> {
    let missing = found.iter().filter(|f| !**f).count();
    if missing == 0 {
        return Ok(());
    }
    let ids: Vec<String> = (0..found.len())
        .filter(|&i| !found[i])
        .take(5)
        .map(|i| to_hex(&live.get(i).to_le_bytes()[..4]))
        .collect();
    Err(Error::new(
        ErrorKind::Corrupt,
        format!(
            "{missing} referenced chunks missing (e.g. {}); refusing to delete anything (run `masclet check`)",
            ids.join(", ")
        ),
    ))
}

/// Packs sorted so far: the indexed ones seen, those past the repack threshold, and the
/// dead bytes of every pack that stays.
#[derive(Default)]
struct Sorter {
    indexed: HashSet<String>,
    candidates: Vec<(f64, PackPlan)>,
    kept_size: u64,
    unused: u64,
}

impl Sorter {
    /// Decide about one indexed pack, `stored` being its size in storage if it is there:
    /// delete it, keep it, or make it a repack candidate.
    fn sort(
        &mut self,
        p: PackPlan,
        stored: Option<u64>,
        opts: &GcOptions,
        plan: &mut GcPlan,
    ) -> Result<()> {
        self.indexed.insert(p.pack.to_hex());
        match stored {
            Some(size) if size == p.size => {}
            // Already gone: only its index rows remain to drop.
            _ if p.live_chunks == 0 => {
                plan.delete.push(PackPlan { size: 0, ..p });
                return Ok(());
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!(
                        "pack {} holds {} referenced chunks but is missing or has the wrong size; refusing to delete anything (run `masclet check`)",
                        p.pack.short(),
                        p.live_chunks
                    ),
                ));
            }
        }
        let dead = dead_bytes(&p);
        let dead_share = dead as f64 / p.size.max(1) as f64;
        if p.live_chunks == 0 {
            plan.bytes_to_free += p.size;
            plan.delete.push(p);
        } else {
            self.kept_size += p.size;
            self.unused += dead;
            if dead_share > opts.repack_threshold {
                self.candidates.push((dead_share, p));
            } else {
                plan.keep += 1;
            }
        }
        Ok(())
    }

    /// Repack candidates most dead first, until what stays dead is within the allowed
    /// share of what stays (a repacked pack keeps only its live bytes, so the share is
    /// taken of the size after gc: taken of the size before, a second gc right after
    /// would repack again).
    fn choose_repacks(&mut self, opts: &GcOptions, plan: &mut GcPlan) {
        let mut candidates = std::mem::take(&mut self.candidates);
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
        let allowed = |kept: u64| (kept as f64 * opts.max_unused) as u64;
        for (_, p) in candidates {
            if self.unused > allowed(self.kept_size) {
                let dead = dead_bytes(&p);
                self.unused -= dead;
                self.kept_size -= dead;
                plan.bytes_to_free += p.size;
                plan.bytes_to_copy += p.live_bytes;
                plan.repack.push(p);
            } else {
                plan.keep += 1;
            }
        }
    }
}

/// Carry out a plan made under the same lock.
///
/// Packs with no live chunk go first (their rows leave the index, then their files go),
/// before anything is repacked: repacking writes before it frees, so on a nearly full disk
/// it may fail, and it must not keep the dead packs' space from coming back.
///
/// # Errors
/// `InvalidInput` for a plan not made by [`plan`]; `Corrupt` if a live chunk fails
/// verification while being copied (only packs without a live chunk were deleted by
/// then); `Storage` and index errors. After any error, a rerun of gc completes the work.
pub fn execute(repo: &mut Repo, plan: &GcPlan, progress: &dyn Progress) -> Result<GcSummary> {
    repo.ensure_writable()?;
    let live = plan
        .live
        .as_ref()
        .ok_or_else(|| Error::invalid("gc can only carry out a plan made by gc::plan"))?;
    let mut summary = GcSummary::default();
    let dead: Vec<(PackId, u64)> = plan.delete.iter().map(|p| (p.pack, p.size)).collect();
    let mut freed = 0;
    if !dead.is_empty() {
        let ids: Vec<PackId> = dead.iter().map(|(p, _)| *p).collect();
        repo.ensure_lock()?;
        summary.chunks_dropped = repo
            .index
            .sweep(&[], &ids, live, || repo.ensure_lock_fresh())?;
        repo.ensure_lock()?;
        freed += delete_packs(repo, &dead, progress, &mut summary)?;
    }

    let mut moves = repack(repo, plan, live, progress, &mut summary)?;
    let repacked: Vec<(PackId, u64)> = plan.repack.iter().map(|p| (p.pack, p.size)).collect();
    let drop: Vec<PackId> = repacked.iter().map(|(p, _)| *p).collect();
    repo.ensure_lock()?;
    summary.chunks_dropped += repo
        .index
        .sweep(&moves.waiting, &drop, live, || repo.ensure_lock_fresh())?;
    moves.waiting.clear();
    repo.ensure_lock()?;

    let rest: Vec<(PackId, u64)> = repacked
        .into_iter()
        .chain(plan.orphans.iter().copied())
        .collect();
    freed += delete_packs(repo, &rest, progress, &mut summary)?;
    // Under the exclusive lock, a temporary file idle for longer than a lock may go without
    // a refresh cannot belong to a writer that still holds a live lock.
    repo.ensure_lock()?;
    let (n, bytes) = repo
        .storage
        .remove_leftovers(crate::repository::lock::stale_after())?;
    summary.leftovers_removed = n;
    summary.bytes_freed = (freed + bytes).saturating_sub(moves.bytes_written);
    Ok(summary)
}

/// Delete the pack files `doomed` (their rows already left the index); return the bytes
/// freed.
fn delete_packs(
    repo: &Repo,
    doomed: &[(PackId, u64)],
    progress: &dyn Progress,
    summary: &mut GcSummary,
) -> Result<u64> {
    progress.start("deleting packs", Some(doomed.len() as u64), Unit::Items);
    let mut freed = 0u64;
    for slice in doomed.chunks(256) {
        crate::check_interrupt()?;
        let names: Vec<String> = slice.iter().map(|(p, _)| p.to_hex()).collect();
        repo.storage.delete_many(Kind::Pack, &names)?;
        freed += slice.iter().map(|(_, size)| size).sum::<u64>();
        summary.packs_deleted += slice.len() as u64;
        progress.inc(slice.len() as u64);
    }
    progress.finish();
    Ok(freed)
}
