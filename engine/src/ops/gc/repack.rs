//! Step 2 of gc's execution, once the packs with no live chunk are gone: the live chunks
//! of the packs to repack are read, authenticated and copied, as sealed, into new packs
//! through the pack sink; a new pack's chunks are pointed at it only once it is durable.

use super::live::LiveSet;
use super::{GcPlan, GcSummary, PackPlan};
use crate::disk::pack::{PackEntry, read_trailer_with};
use crate::error::{Error, Result};
use crate::progress::{Progress, Unit};
use crate::repository::repo::Repo;
use crate::repository::storage::Kind;
use crate::write::pack_sink::{Durable, PackSink};
use rayon::prelude::*;

/// Chunk entries of new packs gathered before they are moved in one index transaction.
const MOVE_BATCH: usize = 1 << 16;

/// New packs made durable, and those whose chunks still point at the old packs.
#[derive(Default)]
pub(super) struct Moves {
    /// Durable new packs not moved yet: moved in batches of [`MOVE_BATCH`] entries, the
    /// last batch by the sweep's transaction.
    pub(super) waiting: Vec<Durable>,
    pub(super) bytes_written: u64,
    packs_written: u64,
}

impl Moves {
    /// Count packs the sink reports durable and queue them to be moved.
    fn record(&mut self, durable: Vec<Durable>) {
        self.packs_written += durable.len() as u64;
        self.bytes_written += durable.iter().map(|d| d.1).sum::<u64>();
        self.waiting.extend(durable);
    }

    /// Take packs the sink reports durable; move the waiting ones once they are a batch.
    fn take(&mut self, repo: &Repo, durable: Vec<Durable>) -> Result<()> {
        self.record(durable);
        if self.waiting.iter().map(|d| d.2.len()).sum::<usize>() >= MOVE_BATCH {
            // Their chunks are pointed at them now that they are durable, never before.
            repo.ensure_lock()?;
            repo.index
                .move_chunks(&self.waiting, || repo.ensure_lock_fresh())?;
            self.waiting.clear();
        }
        Ok(())
    }
}

/// Step 2: copy the live chunks of the packs to repack into new packs, written on the pack
/// sink's thread (reading and authenticating the next pack meanwhile). Returns the new
/// packs whose chunks are not moved yet.
pub(super) fn repack(
    repo: &Repo,
    plan: &GcPlan,
    live: &LiveSet,
    progress: &dyn Progress,
    summary: &mut GcSummary,
) -> Result<Moves> {
    let mut sink = PackSink::for_repo(repo);
    let mut moves = Moves::default();
    progress.start("repacking", Some(plan.bytes_to_copy), Unit::Bytes);
    for p in &plan.repack {
        crate::check_interrupt()?;
        for (e, sealed) in read_live(repo, p, live)? {
            progress.inc(u64::from(e.sealed_len));
            sink.add(e.ty, e.id, sealed, e.raw_len, e.base)?;
        }
        moves.take(repo, sink.durable()?)?;
        summary.packs_repacked += 1;
    }
    // The last packs are moved by the sweep's transaction.
    moves.record(sink.finish()?);
    progress.finish();
    summary.packs_written = moves.packs_written;
    Ok(moves)
}

/// The live chunks of pack `p`, read and authenticated: gc must not launder damage into a
/// fresh pack.
fn read_live(repo: &Repo, p: &PackPlan, live: &LiveSet) -> Result<Vec<(PackEntry, Vec<u8>)>> {
    let bytes = repo.storage.get(Kind::Pack, &p.pack.to_hex())?;
    // The live chunks are found through the pack's own trailer (the index has no index
    // by pack), and must be all the live rows the plan counted for it.
    let read = |off: u64, len: u64| -> Result<Vec<u8>> {
        let range = usize::try_from(off)
            .ok()
            .zip(usize::try_from(off + len).ok());
        range
            .and_then(|(a, b)| bytes.get(a..b))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Error::corrupt("pack shorter than its trailer says"))
    };
    let stopped_at = |err: Error| {
        err.context(format!(
            "pack {} (gc stopped; only packs without a live chunk were deleted; run `masclet check`)",
            p.pack.short()
        ))
    };
    let trailer =
        read_trailer_with(&repo.keys, p.pack, bytes.len() as u64, &read).map_err(stopped_at)?;
    let entries = repo.index.live_in_pack(&p.pack, trailer, live)?;
    if entries.len() as u64 != p.live_chunks {
        return Err(stopped_at(Error::corrupt(format!(
            "the index places {} live chunks in it, its trailer lists {} of them (run `masclet repair index`)",
            p.live_chunks,
            entries.len()
        ))));
    }
    let mut chunks = Vec::with_capacity(entries.len());
    for e in entries {
        let start = usize::try_from(e.offset).map_err(|_| Error::corrupt("offset out of range"))?;
        let sealed = bytes
            .get(start..start + e.sealed_len as usize)
            .ok_or_else(|| {
                Error::corrupt(format!(
                    "pack {} is shorter than its index says",
                    p.pack.short()
                ))
            })?
            .to_vec();
        chunks.push((e, sealed));
    }
    let stopped = |err: Error| {
        err.context(format!(
            "live chunk in pack {} (gc stopped; only packs without a live chunk were deleted; run `masclet check`)",
            p.pack.short()
        ))
    };
    // Authentication proves the bytes are the ones their writer sealed (and opened again
    // before writing); decoding them, down every delta chain, would cost more than the
    // copy and prove nothing more about what storage did to them.
    let keys = &repo.keys;
    chunks
        .par_iter()
        .try_for_each(|(e, sealed)| keys.authenticate_chunk(e.ty, &e.id, sealed, e.base.as_ref()))
        .map_err(stopped)?;
    Ok(chunks)
}
