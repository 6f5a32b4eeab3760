//! The SQLite index: where each chunk lives (format-spec.md, "The index").
//!
//! The index is a cache. Packs carry their own tables of contents and snapshots are objects
//! in the repository, so `repair index` can always rebuild it; losing it costs time, never
//! data. It is trusted only after a check at open (schema version, repository id,
//! `PRAGMA quick_check`); anything else makes commands refuse and point at `repair index`.

use crate::disk::format::ObjectType;
use crate::disk::id::{ChunkId, PackId};
use crate::disk::pack::PackEntry;
use crate::error::{Error, ErrorKind, Result};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::path::Path;

mod gc;
mod open;
pub mod totals;
mod untrust;
pub mod verifications;

/// Schema version stored in `meta`; a mismatch means "rebuild", never "migrate".
pub const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE packs (
    rowid INTEGER PRIMARY KEY,
    id    BLOB NOT NULL UNIQUE,
    size  INTEGER NOT NULL
);
CREATE TABLE chunks (
    id         BLOB PRIMARY KEY,
    type       INTEGER NOT NULL,
    pack       INTEGER NOT NULL REFERENCES packs(rowid),
    offset     INTEGER NOT NULL,
    sealed_len INTEGER NOT NULL,
    raw_len    INTEGER NOT NULL,
    base       BLOB
) WITHOUT ROWID;

";

/// Where a chunk is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLocation {
    /// Data or tree.
    pub ty: ObjectType,
    /// The pack holding it.
    pub pack: PackId,
    /// Offset of its envelope in the pack.
    pub offset: u64,
    /// Envelope length.
    pub sealed_len: u32,
    /// Plaintext length.
    pub raw_len: u32,
    /// The base chunk of a delta.
    pub base: Option<ChunkId>,
}

impl ChunkLocation {
    /// The pack entry this location describes, for chunk `id`.
    pub fn entry(&self, id: ChunkId) -> PackEntry {
        PackEntry {
            ty: self.ty,
            id,
            offset: self.offset,
            sealed_len: self.sealed_len,
            raw_len: self.raw_len,
            base: self.base,
        }
    }
}

/// An open, verified index.
pub struct Index {
    conn: Connection,
    /// Opened for reading only: no checkpoint on drop, no writes.
    read_only: bool,
}

fn int<T: TryFrom<i64>>(v: i64) -> Result<T> {
    T::try_from(v).map_err(|_| {
        Error::new(
            ErrorKind::IndexUnavailable,
            "index holds an out-of-range value; run `masclet repair index`",
        )
    })
}

/// Record a durable pack and its chunks, inside a transaction the caller holds. With
/// `relocate`, chunks already indexed move to this pack (gc's repacking); without it they
/// keep their first location (a chunk stored twice by concurrent backups).
pub(crate) fn record_in(
    conn: &Connection,
    pack: PackId,
    size: u64,
    entries: &[PackEntry],
    relocate: bool,
) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO packs (id, size) VALUES (?1, ?2)",
        params![&pack.0[..], size.cast_signed()],
    )?;
    let rowid: i64 = conn.query_row(
        "SELECT rowid FROM packs WHERE id = ?1",
        [&pack.0[..]],
        |r| r.get(0),
    )?;
    let sql = if relocate {
        "INSERT INTO chunks (id, type, pack, offset, sealed_len, raw_len, base) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(id) DO UPDATE SET type = excluded.type, pack = excluded.pack, offset = excluded.offset,
                 sealed_len = excluded.sealed_len, raw_len = excluded.raw_len, base = excluded.base"
    } else {
        "INSERT OR IGNORE INTO chunks (id, type, pack, offset, sealed_len, raw_len, base) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    };
    let mut ins = conn.prepare_cached(sql)?;
    for e in entries {
        let base = e.base.as_ref().map(|b| &b.0[..]);
        ins.execute(params![
            &e.id.0[..],
            e.ty as u8,
            rowid,
            e.offset.cast_signed(),
            e.sealed_len,
            e.raw_len,
            base
        ])?;
    }
    Ok(())
}

impl Index {
    /// Record a durable pack written by a backup and its chunks, in one transaction.
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors.
    pub fn add_pack(&self, pack: PackId, size: u64, entries: &[PackEntry]) -> Result<()> {
        self.add_pack_if(pack, size, entries, || Ok(()))
    }

    /// [`Index::add_pack`] for a writer that may have lost its repository lock: `held`
    /// runs inside the transaction, after SQLite's write lock is taken, and its error rolls
    /// back (it should not wait on storage: other processes wait on this transaction). A
    /// backup suspended past the stale limit must not index a pack afterwards: gc may have
    /// taken over meanwhile and deleted that pack as an orphan, and a row pointing at a
    /// deleted pack would let later backups deduplicate against nothing.
    ///
    /// # Errors
    /// Whatever `held` returns; `IndexUnavailable` on SQLite errors.
    pub(crate) fn add_pack_if(
        &self,
        pack: PackId,
        size: u64,
        entries: &[PackEntry],
        held: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        self.immediate(|conn| {
            held()?;
            record_in(conn, pack, size, entries, false)
        })
    }

    /// Whether a chunk is indexed.
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors.
    pub fn contains(&self, id: &ChunkId) -> Result<bool> {
        let mut st = self
            .conn
            .prepare_cached("SELECT 1 FROM chunks WHERE id = ?1")?;
        Ok(st.exists([&id.0[..]])?)
    }

    /// Which of `ids` are indexed, one flag per id: a few queries for a whole batch instead
    /// of one per chunk.
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors.
    pub fn contains_many(&self, ids: &[ChunkId]) -> Result<Vec<bool>> {
        const PER_QUERY: usize = 256;
        let mut present = std::collections::HashSet::new();
        for part in ids.chunks(PER_QUERY) {
            let marks = vec!["?"; part.len()].join(",");
            let mut st = self
                .conn
                .prepare_cached(&format!("SELECT id FROM chunks WHERE id IN ({marks})"))?;
            let rows = st.query_map(
                rusqlite::params_from_iter(part.iter().map(|i| &i.0[..])),
                |r| r.get::<_, Vec<u8>>(0),
            )?;
            for r in rows {
                present.insert(r?);
            }
        }
        Ok(ids.iter().map(|i| present.contains(&i.0[..])).collect())
    }

    /// Whether the index records exactly `entry` (same pack, offset, lengths, type, base)
    /// for its chunk: how check and gc compare a pack's trailer with the index.
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors.
    pub fn records(&self, pack: &PackId, entry: &PackEntry) -> Result<bool> {
        Ok(self
            .locate(&entry.id)?
            .is_some_and(|loc| loc.pack == *pack && loc.entry(entry.id) == *entry))
    }

    /// Where a chunk is, if indexed.
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors or out-of-range values.
    pub fn locate(&self, id: &ChunkId) -> Result<Option<ChunkLocation>> {
        let mut st = self.conn.prepare_cached(&format!("SELECT {ENTRY_COLUMNS}, p.id FROM chunks c JOIN packs p ON p.rowid = c.pack WHERE c.id = ?1"))?;
        let row = st
            .query_row([&id.0[..]], |r| {
                Ok((entry_row(r)?, r.get::<_, Vec<u8>>(6)?))
            })
            .optional()?;
        let Some((raw, pack)) = row else {
            return Ok(None);
        };
        let e = to_entry(raw)?;
        Ok(Some(ChunkLocation {
            ty: e.ty,
            pack: PackId::from_slice(&pack)?,
            offset: e.offset,
            sealed_len: e.sealed_len,
            raw_len: e.raw_len,
            base: e.base,
        }))
    }

    /// Every indexed pack with its recorded size.
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors.
    pub fn packs(&self) -> Result<Vec<(PackId, u64)>> {
        let mut st = self.conn.prepare("SELECT id, size FROM packs")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
        rows.map(|r| {
            let (id, size) = r?;
            Ok((PackId::from_slice(&id)?, int(size)?))
        })
        .collect()
    }

    /// How many chunks the index places in each pack that holds any, in one pass over the
    /// chunks (there is no index by pack: it would cost a third of the index's size, and
    /// only check and gc, which visit every pack anyway, ask by pack).
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors.
    pub fn chunks_per_pack(&self) -> Result<HashMap<PackId, u64>> {
        let mut st = self.conn.prepare(
            "SELECT p.id, a.n FROM (SELECT pack, count(*) AS n FROM chunks GROUP BY pack) a JOIN packs p ON p.rowid = a.pack",
        )?;
        let rows = st.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
        rows.map(|r| {
            let (id, n) = r?;
            Ok((PackId::from_slice(&id)?, int(n)?))
        })
        .collect()
    }
}

/// The columns [`entry_row`] reads, from `chunks c`.
pub(crate) const ENTRY_COLUMNS: &str = "c.id, c.type, c.offset, c.sealed_len, c.raw_len, c.base";

type RawEntry = (Vec<u8>, i64, i64, i64, i64, Option<Vec<u8>>);

pub(crate) fn entry_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawEntry> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

pub(crate) fn to_entry((id, ty, offset, sealed_len, raw_len, base): RawEntry) -> Result<PackEntry> {
    Ok(PackEntry {
        ty: ObjectType::from_u8(int(ty)?)?,
        id: ChunkId::from_slice(&id)?,
        offset: int(offset)?,
        sealed_len: int(sealed_len)?,
        raw_len: int(raw_len)?,
        base: base.map(|b| ChunkId::from_slice(&b)).transpose()?,
    })
}

/// Remove an index database and its WAL and shared-memory files.
pub(crate) fn remove_files(path: &Path) -> std::io::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::id::RepoId;

    #[test]
    fn create_add_locate_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.sqlite");
        let repo = RepoId([4; 32]);
        let idx = Index::create(&path, repo).unwrap();
        let e = PackEntry {
            ty: ObjectType::Data,
            id: ChunkId([1; 32]),
            offset: 12,
            sealed_len: 50,
            raw_len: 8,
            base: None,
        };
        idx.add_pack(PackId([2; 32]), 100, &[e]).unwrap();
        assert_eq!(
            idx.contains_many(&[ChunkId([3; 32]), e.id]).unwrap(),
            vec![false, true]
        );
        assert!(idx.contains(&ChunkId([1; 32])).unwrap());
        assert!(!idx.contains(&ChunkId([3; 32])).unwrap());
        drop(idx);
        let idx = Index::open(&path, repo).unwrap();
        let loc = idx.locate(&ChunkId([1; 32])).unwrap().unwrap();
        assert_eq!(
            (loc.pack, loc.offset, loc.sealed_len),
            (PackId([2; 32]), 12, 50)
        );
        assert_eq!(loc.entry(e.id), e);
        assert_eq!(
            idx.chunks_per_pack().unwrap(),
            HashMap::from([(PackId([2; 32]), 1)])
        );
        drop(idx);
        let err = Index::open(&path, RepoId([5; 32])).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::IndexUnavailable);
        std::fs::write(&path, b"garbage garbage garbage").unwrap();
        remove_files(&path).unwrap();
        assert!(
            Index::open(&path, repo)
                .err()
                .unwrap()
                .to_string()
                .contains("repair index")
        );
    }
}
