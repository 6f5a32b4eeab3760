//! Marking: which chunks some snapshot still needs (the set itself is engine/src/repository/live_set.rs).

use crate::disk::format::MAX_DELTA_CHAIN;
use crate::disk::id::ChunkId;
use crate::error::{Error, ErrorKind, Result};
use crate::progress::{Progress, Unit};
pub(crate) use crate::repository::live_set::LiveSet;
use crate::repository::live_set::prefix;
use crate::repository::repo::Repo;

/// Add the bases of live delta chunks, down every chain: one pass over the index's delta
/// rows, then, per further chain level, lookups of the rows of the bases just added. A
/// chain longer than readers accept (which a damaged index can fake, even as a cycle)
/// stops gc instead of costing a pass per fake link.
fn add_bases(live: &mut LiveSet, repo: &Repo) -> Result<()> {
    // One read transaction for every pass: alone, each lookup took and released the
    // database's file locks.
    repo.index.reading(|| add_bases_in(live, repo))
}

fn add_bases_in(live: &mut LiveSet, repo: &Repo) -> Result<()> {
    // The first pass scans every delta row; later ones only need the rows of the bases
    // the pass before added, which the primary key finds by prefix.
    let mut added: Vec<u64> = Vec::new();
    for pass in 0..=MAX_DELTA_CHAIN {
        let mut found = Vec::new();
        let mut visit = |id: u64, base: u64| {
            if live.contains(id) && !live.contains(base) {
                found.push(base);
            }
        };
        if pass == 0 {
            repo.index.for_each_delta(&mut visit)?;
        } else {
            repo.index.deltas_with_prefixes(&added, &mut visit)?;
        }
        found.sort_unstable();
        found.dedup();
        if found.is_empty() {
            return Ok(());
        }
        live.extend(&found);
        added = found;
    }
    Err(Error::new(
        ErrorKind::Corrupt,
        format!(
            "the index records delta chains longer than {MAX_DELTA_CHAIN} links; refusing to delete anything (run `masclet check`, then `masclet repair index`)"
        ),
    ))
}

/// Mark every chunk a snapshot references (tree chunks, file chunks, and the bases they
/// are deltas of). Returns the set and the number of snapshots.
///
/// # Errors
/// The error of a snapshot or tree that cannot be read, with its kind (`Corrupt` for
/// damage, `Storage` for a failing read): gc cannot know what it references.
pub(crate) fn mark(repo: &Repo, progress: &dyn Progress) -> Result<(LiveSet, u64)> {
    let (snaps, unreadable) = repo.snapshots()?;
    // The error keeps its kind: damage (Corrupt) and a failing disk (Storage) call for
    // different fixes, and either way gc cannot know what the snapshot references.
    if let Some((id, e)) = unreadable.into_iter().next() {
        return Err(e.context(format!(
            "snapshot {} cannot be read; gc cannot know what it references; refusing to delete anything (run `masclet check`)",
            id.short()
        )));
    }
    progress.start("marking", Some(snaps.len() as u64), Unit::Items);
    // Snapshots of one source share most of their chunks: repeats are dropped whenever they
    // have doubled the set since the last time.
    let mut live = LiveSet::default();
    let mut distinct = 0usize;
    let mut add = |live: &mut LiveSet, id: &ChunkId| {
        live.push(prefix(&id.0));
        if live.raw_len() >= 2 * distinct.max(1 << 16) {
            live.normalize();
            distinct = live.raw_len();
        }
    };
    for (sid, snap) in &snaps {
        crate::check_interrupt()?;
        for (id, _) in &snap.tree {
            add(&mut live, id);
        }
        for chunk in repo.file_chunks(snap) {
            let chunk = chunk.map_err(|e| {
                e.context(format!(
                    "the tree of snapshot {} cannot be read; refusing to delete anything (run `masclet check`)",
                    sid.short()
                ))
            })?;
            add(&mut live, &chunk.id);
        }
        progress.inc(1);
    }
    live.normalize();
    add_bases(&mut live, repo)?;
    progress.finish();
    Ok((live, snaps.len() as u64))
}
