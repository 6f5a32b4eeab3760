//! The live set: which chunks some snapshot still needs.
//!
//! gc holds it in memory as the sorted first 8 bytes of each live chunk id. Eight bytes is
//! enough because an error can only go one way: a dead chunk whose id begins like a live
//! one's is kept (its space waits for a later gc), never the reverse, and ids are keyed
//! hashes nobody without the key can aim at a prefix. The bound is 8 bytes per distinct live
//! chunk (8 MiB per million), with at most as much again of repeats between deduplications
//! while marking; the earlier marking table in SQLite cost more time than the whole rest of
//! a typical gc.

use crate::error::{Error, ErrorKind, Result};
use crate::format::MAX_DELTA_CHAIN;
use crate::id::ChunkId;
use crate::progress::{Progress, Unit};
use crate::repo::Repo;
use crate::tree::Record;

/// The first 8 bytes of a chunk id, as gc compares them (`to_le_bytes` gives them back).
pub(crate) fn prefix(id: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = id.len().min(8);
    b[..n].copy_from_slice(&id[..n]);
    u64::from_le_bytes(b)
}

/// Sorted, deduplicated id prefixes of live chunks.
#[derive(Debug, Clone, Default)]
pub(crate) struct LiveSet {
    ids: Vec<u64>,
}

impl LiveSet {
    fn normalize(&mut self) {
        self.ids.sort_unstable();
        self.ids.dedup();
    }

    /// Whether chunk `id` (given by its prefix) is live.
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.ids.binary_search(&id).is_ok()
    }

    /// Position of `id` in the set, for per-member flags.
    pub(crate) fn position(&self, id: u64) -> Option<usize> {
        self.ids.binary_search(&id).ok()
    }

    /// Distinct live chunks.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The member at `pos` (for naming missing chunks).
    pub(crate) fn get(&self, pos: usize) -> u64 {
        self.ids[pos]
    }

    /// Add the bases of live delta chunks, down every chain: one pass over the index's delta
    /// rows, then, per further chain level, lookups of the rows of the bases just added. A
    /// chain longer than readers accept (which a damaged index can fake, even as a cycle)
    /// stops gc instead of costing a pass per fake link.
    fn add_bases(&mut self, repo: &Repo) -> Result<()> {
        // One read transaction for every pass: alone, each lookup took and released the
        // database's file locks.
        repo.index.reading(|| self.add_bases_in(repo))
    }

    fn add_bases_in(&mut self, repo: &Repo) -> Result<()> {
        // The first pass scans every delta row; later ones only need the rows of the bases
        // the pass before added, which the primary key finds by prefix.
        let mut added: Vec<u64> = Vec::new();
        for pass in 0..=MAX_DELTA_CHAIN {
            let mut found = Vec::new();
            let mut visit = |id: u64, base: u64| {
                if self.contains(id) && !self.contains(base) {
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
            self.ids.extend_from_slice(&found);
            self.normalize();
            added = found;
        }
        Err(Error::new(
            ErrorKind::Corrupt,
            format!(
                "the index records delta chains longer than {MAX_DELTA_CHAIN} links; refusing to delete anything (run `masclet check`, then `masclet repair index`)"
            ),
        ))
    }
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
        live.ids.push(prefix(&id.0));
        if live.ids.len() >= 2 * distinct.max(1 << 16) {
            live.normalize();
            distinct = live.ids.len();
        }
    };
    for (sid, snap) in &snaps {
        crate::check_interrupt()?;
        for (id, _) in &snap.tree {
            add(&mut live, id);
        }
        let mut reader = repo.tree_reader(snap);
        loop {
            match reader.next_record() {
                Ok(Some(Record::FileChunk(id, _))) => add(&mut live, &id),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    return Err(e.context(format!(
                        "the tree of snapshot {} cannot be read; refusing to delete anything (run `masclet check`)",
                        sid.short()
                    )));
                }
            }
        }
        progress.inc(1);
    }
    live.normalize();
    live.add_bases(repo)?;
    progress.finish();
    Ok((live, snaps.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_of_prefixes() {
        let a = [0u8, 0, 0, 0, 0, 0, 0, 1, 0xff];
        let b = [0u8, 0, 0, 0, 0, 0, 0, 2, 0x00];
        assert_eq!(prefix(&a).to_le_bytes(), a[..8]);
        assert_eq!(prefix(&a), prefix(&[0, 0, 0, 0, 0, 0, 0, 1, 0x00]));
        let mut s = LiveSet {
            ids: vec![prefix(&b), prefix(&a), prefix(&b)],
        };
        s.normalize();
        assert_eq!(s.len(), 2);
        assert!(s.contains(prefix(&a)) && s.contains(prefix(&b)));
        assert!(!s.contains(prefix(&[9; 8])));
        assert!(s.position(prefix(&b)).is_some());
    }
}
