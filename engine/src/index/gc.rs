//! The index side of garbage collection: marking live chunks in a temporary table (on disk,
//! so memory does not grow with the repository), per-pack usage, moving repacked chunks,
//! and the sweep that drops dead rows before any pack file is deleted.

use super::{Index, int};
use crate::error::Result;
use crate::id::{ChunkId, PackId};
use crate::pack::PackEntry;

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
    /// Start a marking pass: an empty temporary `live` table.
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors.
    pub fn live_begin(&self) -> Result<()> {
        // temp_store=FILE keeps the set out of RAM however many chunks the repository holds.
        self.conn.pragma_update(None, "temp_store", "FILE")?;
        // 6 MiB of page cache each for the index and the marking table (SQLite's default is
        // 2 MiB): enough to spare gc most page reads on indexes of a few MB; more only
        // raises its peak memory.
        self.conn.pragma_update(None, "cache_size", -6144)?;
        self.conn.pragma_update(Some("temp"), "cache_size", -6144)?;
        self.conn.execute_batch("CREATE TEMP TABLE IF NOT EXISTS live (id BLOB PRIMARY KEY) WITHOUT ROWID; DELETE FROM live;")?;
        Ok(())
    }

    /// Mark chunks live.
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors.
    pub fn live_add(&self, mut ids: Vec<ChunkId>) -> Result<()> {
        // Sorted, each insert lands next to the previous one (pages stay in the cache), and
        // repeats inside the batch cost nothing.
        ids.sort_unstable();
        ids.dedup();
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut st = tx.prepare_cached("INSERT OR IGNORE INTO live (id) VALUES (?1)")?;
            for id in &ids {
                st.execute([&id.0[..]])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// How many live chunks are not indexed, and up to `limit` of them.
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors.
    pub fn live_missing(&self, limit: usize) -> Result<(u64, Vec<ChunkId>)> {
        let n: i64 = self.conn.query_row("SELECT count(*) FROM live l WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.id = l.id)", [], |r| r.get(0))?;
        let mut st = self.conn.prepare("SELECT l.id FROM live l WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.id = l.id) LIMIT ?1")?;
        let ids = st
            .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                r.get::<_, Vec<u8>>(0)
            })?
            .map(|r| ChunkId::from_slice(&r?))
            .collect::<Result<_>>()?;
        Ok((int(n)?, ids))
    }

    /// Number of live chunks marked.
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors.
    pub fn live_count(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM live", [], |r| r.get(0))?;
        int(n)
    }

    /// Usage of every indexed pack against the marked set.
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors.
    pub fn pack_usage(&self) -> Result<Vec<PackUsage>> {
        // Aggregated over the chunks in one pass (there is no index by pack), then joined
        // to every pack, so packs without chunks are listed too.
        let mut st = self.conn.prepare(
            "SELECT p.id, p.size, coalesce(a.n, 0), coalesce(a.live, 0), coalesce(a.bytes, 0)
             FROM packs p LEFT JOIN (
                 SELECT c.pack AS pack, count(*) AS n, count(l.id) AS live,
                        sum(CASE WHEN l.id IS NOT NULL THEN c.sealed_len ELSE 0 END) AS bytes
                 FROM chunks c LEFT JOIN live l ON l.id = c.id GROUP BY c.pack) a
             ON a.pack = p.rowid",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        rows.map(|r| {
            let (id, size, chunks, live_chunks, live_bytes) = r?;
            Ok(PackUsage {
                pack: PackId::from_slice(&id)?,
                size: int(size)?,
                chunks: int(chunks)?,
                live_chunks: int(live_chunks)?,
                live_bytes: int(live_bytes)?,
            })
        })
        .collect()
    }

    /// Of `entries` (a pack's trailer), those the index places in `pack` at exactly that
    /// entry and that are marked live.
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors.
    pub fn live_in_pack(&self, pack: &PackId, entries: Vec<PackEntry>) -> Result<Vec<PackEntry>> {
        let mut live = self
            .conn
            .prepare_cached("SELECT 1 FROM live WHERE id = ?1")?;
        let mut out = Vec::new();
        for e in entries {
            // Most entries of a pack worth repacking are dead: ask the live set first.
            if live.exists([&e.id.0[..]])? && self.records(pack, &e)? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Mark the bases of live delta chunks live too, down each whole chain, in one recursive
    /// query (`UNION` drops repeats, so even a cycle faked by a damaged index ends).
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors.
    pub fn live_add_bases(&self) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO live (id)
             WITH RECURSIVE b(id) AS (
                 SELECT c.base FROM chunks c JOIN live l ON l.id = c.id WHERE c.base IS NOT NULL
                 UNION
                 SELECT c.base FROM chunks c JOIN b ON c.id = b.id WHERE c.base IS NOT NULL)
             SELECT id FROM b",
            [],
        )?;
        Ok(())
    }

    /// Record durable new packs and point their chunks (already indexed elsewhere) at them,
    /// in one transaction: the moved rows are spread over the whole table, so one
    /// transaction per pack would rewrite most of its pages once per pack.
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors.
    pub fn move_chunks(&self, packs: &[(PackId, u64, Vec<PackEntry>)]) -> Result<()> {
        self.immediate(|conn| {
            for (pack, size, entries) in packs {
                super::record_in(conn, *pack, *size, entries, true)?;
            }
            Ok(())
        })
    }

    /// In one transaction: forget every chunk not marked live, and the packs `drop` (which
    /// must no longer hold indexed chunks). After this, no backup can deduplicate against
    /// anything gc is about to delete. Returns the number of chunk rows dropped.
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors; `Internal` if a pack to drop still holds chunks.
    pub fn sweep(&self, drop: &[PackId]) -> Result<u64> {
        self.immediate(|conn| {
            // Earlier indexes kept an index by pack (a third of the database; nothing uses it
            // now): the first gc to sweep, under the exclusive lock, drops it.
            conn.execute_batch("DROP INDEX IF EXISTS chunks_by_pack")?;
            let dropped = conn.execute(
                "DELETE FROM chunks WHERE id NOT IN (SELECT id FROM live)",
                [],
            )?;
            let held = self.chunks_per_pack()?;
            let mut del = conn.prepare_cached("DELETE FROM packs WHERE id = ?1")?;
            for p in drop {
                let n = held.get(p).copied().unwrap_or(0);
                if n != 0 {
                    return Err(crate::Error::internal(format!(
                        "pack {p} still holds {n} live chunks; nothing was deleted"
                    )));
                }
                del.execute([&p.0[..]])?;
            }
            Ok(dropped as u64)
        })
    }
}
