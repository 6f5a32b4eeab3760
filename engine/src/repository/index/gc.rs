//! The index side of garbage collection: delta rows for marking bases, per-pack usage
//! against the live set (live_set.rs), moving repacked chunks, and the sweep that drops dead
//! rows before any pack file is deleted.

use super::{Index, int};
use crate::disk::id::PackId;
use crate::disk::pack::PackEntry;
use crate::error::Result;
use crate::repository::live_set::{LiveSet, prefix};
use rusqlite::params;
use std::collections::HashMap;

fn malformed() -> crate::Error {
    crate::Error::new(
        crate::ErrorKind::IndexUnavailable,
        "index holds a malformed id; run `masclet repair index`",
    )
}

/// Column `i` of `r` as a blob, borrowed.
fn blob<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r [u8]> {
    r.get_ref(i)?.as_blob().map_err(|_| malformed())
}

/// Chunk rows the sweep reads at a time: ~0.6 MiB of ids with their allocations (65 536 at
/// a time held 4.7 MiB at gc's peak, for no measurable gain: a batch costs one seek).
const SWEEP_BATCH: i64 = 1 << 13;

/// How much of one pack is still referenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackUsage {
    /// The pack.
    pub pack: PackId,
    /// Its size in bytes.
    pub size: u64,
    /// Indexed chunks in it.
    pub chunks: u64,
    /// Live chunks in it.
    pub live_chunks: u64,
    /// Sealed bytes of its live chunks.
    pub live_bytes: u64,
}

impl Index {
    /// Call `f(id prefix, base prefix)` for every delta chunk in the index.
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors.
    pub(crate) fn for_each_delta(&self, mut f: impl FnMut(u64, u64)) -> Result<()> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id, base FROM chunks WHERE base IS NOT NULL")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let id = blob(r, 0)?;
            let base = blob(r, 1)?;
            // Later passes find rows by their first 8 bytes (`deltas_with_prefixes`), which
            // only a full-length id is sure to sort under.
            if id.len() != 32 || base.len() != 32 {
                return Err(malformed());
            }
            f(prefix(id), prefix(base));
        }
        Ok(())
    }

    /// Raise this connection's page cache to 16 MiB for gc. Marking looks up the rows of
    /// bases all over the chunk table, and the sweep moves and deletes rows all over it; with
    /// SQLite's 2 MiB default, a 4-of-8-nights gc at full size read 218 MB of pages through
    /// 53 000 `pread`s from an 8 MB database (and the sweep took a third longer).
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors.
    pub(crate) fn gc_cache(&self) -> Result<()> {
        self.conn.pragma_update(None, "cache_size", -16384)?;
        Ok(())
    }

    /// For each id prefix in `prefixes`, the delta rows whose id begins with it, as
    /// `(id prefix, base prefix)`: a range lookup on the primary key each, for the few
    /// bases a pass of [`Self::for_each_delta`] has just added.
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors.
    pub(crate) fn deltas_with_prefixes(
        &self,
        prefixes: &[u64],
        mut f: impl FnMut(u64, u64),
    ) -> Result<()> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id, base FROM chunks WHERE id >= ?1 ORDER BY id")?;
        for &p in prefixes {
            let mut rows = st.query([&p.to_le_bytes()[..]])?;
            while let Some(r) = rows.next()? {
                let id = prefix(blob(r, 0)?);
                if id != p {
                    break;
                }
                match r.get_ref(1)? {
                    rusqlite::types::ValueRef::Null => {}
                    rusqlite::types::ValueRef::Blob(base) if base.len() == 32 => {
                        f(id, prefix(base));
                    }
                    _ => return Err(malformed()),
                }
            }
        }
        Ok(())
    }

    /// Usage of every indexed pack against the live set, in one pass over the chunks (there
    /// is no index by pack), joined to every pack so that packs without chunks are listed
    /// too. Also returns, per member of `live`, whether the index holds it.
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors.
    pub(crate) fn pack_usage(&self, live: &LiveSet) -> Result<(Vec<PackUsage>, Vec<bool>)> {
        let mut found = vec![false; live.len()];
        // pack rowid -> (chunks, live chunks, live bytes)
        let mut per_pack: HashMap<i64, (u64, u64, u64)> = HashMap::new();
        {
            let mut st = self
                .conn
                .prepare("SELECT id, pack, sealed_len FROM chunks")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let id = prefix(blob(r, 0)?);
                let pack: i64 = r.get(1)?;
                let sealed: i64 = r.get(2)?;
                let u = per_pack.entry(pack).or_default();
                u.0 += 1;
                if let Some(pos) = live.position(id) {
                    found[pos] = true;
                    u.1 += 1;
                    u.2 += int::<u64>(sealed)?;
                }
            }
        }
        let mut st = self.conn.prepare("SELECT rowid, id, size FROM packs")?;
        let mut rows = st.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let (chunks, live_chunks, live_bytes) = per_pack
                .get(&r.get::<_, i64>(0)?)
                .copied()
                .unwrap_or_default();
            out.push(PackUsage {
                pack: PackId::from_slice(blob(r, 1)?)?,
                size: int(r.get(2)?)?,
                chunks,
                live_chunks,
                live_bytes,
            });
        }
        Ok((out, found))
    }

    /// Of `entries` (a pack's trailer), those the index places in `pack` at exactly that
    /// entry and that are live.
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors.
    pub(crate) fn live_in_pack(
        &self,
        pack: &PackId,
        entries: Vec<PackEntry>,
        live: &LiveSet,
    ) -> Result<Vec<PackEntry>> {
        self.reading(|| {
            let mut out = Vec::new();
            for e in entries {
                // Most entries of a pack worth repacking are dead: ask the live set first.
                if live.contains(prefix(&e.id.0)) && self.records(pack, &e)? {
                    out.push(e);
                }
            }
            Ok(out)
        })
    }

    /// Record durable new packs and point their chunks (already indexed elsewhere) at them,
    /// in one transaction: the moved rows are spread over the whole table, so one
    /// transaction per pack would rewrite most of its pages once per pack. `held` (the lock
    /// check) runs inside it, as for [`Index::add_pack_if`].
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors.
    pub(crate) fn move_chunks(
        &self,
        packs: &[(PackId, u64, Vec<PackEntry>)],
        held: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        self.immediate(|conn| {
            held()?;
            for (pack, size, entries) in packs {
                super::record_in(conn, *pack, *size, entries, true)?;
            }
            Ok(())
        })
    }

    /// In one transaction: point the chunks of durable new packs `moved` at them, forget
    /// every chunk not live, and the packs `drop` (which must no longer hold indexed
    /// chunks). After this, no backup can deduplicate against anything gc is about to
    /// delete. Returns the number of chunk rows dropped.
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors; `Internal` if a pack to drop still holds chunks.
    pub(crate) fn sweep(
        &self,
        moved: &[(PackId, u64, Vec<PackEntry>)],
        drop: &[PackId],
        live: &LiveSet,
        held: impl FnOnce() -> Result<()>,
    ) -> Result<u64> {
        self.immediate(|conn| {
            held()?;
            for (pack, size, entries) in moved {
                super::record_in(conn, *pack, *size, entries, true)?;
            }
            // Earlier indexes kept an index by pack (a third of the database; nothing uses it
            // now): the first gc to sweep, under the exclusive lock, drops it.
            conn.execute_batch("DROP INDEX IF EXISTS chunks_by_pack")?;
            // Walked in id order, SWEEP_BATCH ids at a time (the rows of a batch are read
            // before any of them is deleted), so memory stays bounded.
            let mut next =
                conn.prepare_cached("SELECT id FROM chunks WHERE id > ?1 ORDER BY id LIMIT ?2")?;
            let mut delete = conn.prepare_cached("DELETE FROM chunks WHERE id = ?1")?;
            let mut after: Vec<u8> = Vec::new();
            let mut dropped = 0u64;
            loop {
                let ids: Vec<Vec<u8>> = next
                    .query_map(params![after, SWEEP_BATCH], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                let Some(last) = ids.last() else { break };
                after.clone_from(last);
                for id in ids.iter().filter(|id| !live.contains(prefix(id))) {
                    delete.execute([id])?;
                    dropped += 1;
                }
            }
            let held = self.chunks_per_pack()?;
            let mut del = conn.prepare_cached("DELETE FROM packs WHERE id = ?1")?;
            for p in drop {
                let n = held.get(p).copied().unwrap_or(0);
                if n != 0 {
                    return Err(crate::Error::internal(format!(
                        "pack {p} still holds {n} live chunks; no pack was deleted in this step"
                    )));
                }
                del.execute([&p.0[..]])?;
            }
            Ok(dropped)
        })
    }
}
