//! Index rows that must stop being trusted: chunks of packs storage no longer has, and
//! deltas whose base is no longer indexed.
//!
//! A backup deduplicates against the index alone, so a row pointing at a lost pack would
//! make it reference bytes nobody can read while it reports the data saved. Dropping the
//! rows makes the next backup store those chunks again (healing the repository for the data
//! it still has), and a delta is only as readable as its base chain: a delta row whose base
//! has no row left is dropped too, repeatedly, so every row left decodes.

use super::Index;
use crate::disk::id::{ChunkId, PackId};
use crate::error::Result;
use rusqlite::Connection;

impl Index {
    /// Drop the rows of `packs` and of every chunk in them, then the deltas left without a
    /// base, in one transaction. Returns the chunk ids whose rows were dropped.
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors.
    pub(crate) fn untrust_packs(&self, packs: &[PackId]) -> Result<Vec<ChunkId>> {
        self.immediate(|conn| {
            let mut rowids = Vec::new();
            {
                let mut st = conn.prepare_cached("SELECT rowid FROM packs WHERE id = ?1")?;
                for p in packs {
                    if let Some(r) = rusqlite::OptionalExtension::optional(
                        st.query_row([&p.0[..]], |r| r.get::<_, i64>(0)),
                    )? {
                        rowids.push(r);
                    }
                }
            }
            let mut dropped = Vec::new();
            if !rowids.is_empty() {
                // Integers straight from the database: safe to inline, and one scan of the
                // chunks (there is no index by pack) instead of one per pack.
                let list = rowids
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                dropped = select_ids(
                    conn,
                    &format!("SELECT id FROM chunks WHERE pack IN ({list})"),
                )?;
                conn.execute(&format!("DELETE FROM chunks WHERE pack IN ({list})"), [])?;
                conn.execute(&format!("DELETE FROM packs WHERE rowid IN ({list})"), [])?;
            }
            dropped.extend(drop_baseless(conn)?);
            Ok(dropped)
        })
    }

    /// Drop every delta row whose base chain does not end in indexed whole chunks, in one
    /// transaction; returns how many rows went.
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors.
    pub(crate) fn drop_undecodable(&self) -> Result<u64> {
        self.immediate(|conn| Ok(drop_baseless(conn)?.len() as u64))
    }
}

fn select_ids(conn: &Connection, sql: &str) -> Result<Vec<ChunkId>> {
    let mut st = conn.prepare(sql)?;
    let rows = st.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
    rows.map(|r| ChunkId::from_slice(&r?)).collect()
}

/// Delete delta rows whose base has no row, until none is left (a chain loses one link per
/// pass); returns their ids.
fn drop_baseless(conn: &Connection) -> Result<Vec<ChunkId>> {
    let mut all = Vec::new();
    loop {
        let ids = select_ids(
            conn,
            "SELECT c.id FROM chunks c WHERE c.base IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM chunks b WHERE b.id = c.base)",
        )?;
        if ids.is_empty() {
            return Ok(all);
        }
        let mut del = conn.prepare_cached("DELETE FROM chunks WHERE id = ?1")?;
        for id in &ids {
            del.execute([&id.0[..]])?;
        }
        all.extend(ids);
    }
}
