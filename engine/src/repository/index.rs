//! The SQLite index: where each chunk lives (format-spec.md, "The index").
//!
//! The index is a cache. Packs carry their own tables of contents and snapshots are objects
//! in the repository, so `repair index` can always rebuild it; losing it costs time, never
//! data. It is trusted only after a check at open (schema version, repository id,
//! `PRAGMA quick_check`); anything else makes commands refuse and point at `repair index`.

use crate::disk::format::ObjectType;
use crate::disk::id::{ChunkId, PackId, RepoId};
use crate::disk::pack::PackEntry;
use crate::error::{Error, ErrorKind, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

mod gc;
mod untrust;

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

fn unavailable(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::IndexUnavailable,
        format!(
            "index database corrupt or missing ({}: {why}); run `masclet repair index`",
            path.display()
        ),
    )
}

/// Read-write, no create (a missing index is reported, not silently made), and no
/// per-connection mutex: a `Connection` is never shared between threads (it is `!Sync`),
/// and in SQLite's default serialized mode every column read took and released a mutex
/// (12% of a gc's profile).
fn open_flags() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
}

/// Read-only opening for commands that never write the index. On a directory this process
/// cannot write (read-only media, a copy without write permission) SQLite could not create
/// the WAL's shared-memory file, so the database is opened `immutable`: nothing can change
/// it there while we read.
fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let dir = path.parent().unwrap_or(Path::new("."));
    if rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).is_ok() {
        return Connection::open_with_flags(path, flags);
    }
    Connection::open_with_flags(format!("file:{}?immutable=1", uri_path(path)), flags)
}

/// `path` escaped for an SQLite `file:` URI (`%`, `?` and `#` would end or bend it).
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// SQLite reports a full disk under its shared-memory file, or a read-only filesystem, as
/// a plain I/O or open error; the filesystem's state tells the operator the true cause.
fn name_full_disk(path: &Path, e: Error) -> Error {
    let dir = path.parent().unwrap_or(Path::new("."));
    let Ok(st) = rustix::fs::statvfs(dir) else {
        return e;
    };
    let why = if e.kind() != ErrorKind::Storage {
        return e;
    } else if st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
        "is on a read-only filesystem (only snapshots, ls, dump, restore and check work there)"
    } else if st.f_bavail == 0 {
        "is on a full disk: free space and rerun (nothing was committed)"
    } else {
        return e;
    };
    let message = format!("{} {why} ({})", path.display(), e.message());
    Error::new(ErrorKind::Storage, message).with_source(e)
}

fn configure_read_only(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(busy_secs()))
}

fn busy_secs() -> u64 {
    std::env::var("MASCLET_INDEX_BUSY_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60u64)
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // Commits are short, so a minute of waiting means the holder is stopped or hung. The
    // override exists for tests that freeze a process on purpose.
    conn.busy_timeout(std::time::Duration::from_secs(busy_secs()))?;
    // WAL lets backups read while another commits; FULL because the snapshot written right
    // after an index commit must never reference rows a power loss could take back.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Small disks: the WAL shrinks back after each checkpoint instead of keeping its peak.
    conn.pragma_update(None, "journal_size_limit", 1_048_576)?;
    Ok(())
}

impl Drop for Index {
    fn drop(&mut self) {
        // Fold the WAL into the database so an idle repository carries no WAL at all. Best
        // effort: another process may be reading, and the WAL is valid either way.
        if self.read_only {
            return;
        }
        let _ = self.conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
    }
}

fn int<T: TryFrom<i64>>(v: i64) -> Result<T> {
    T::try_from(v).map_err(|_| {
        Error::new(
            ErrorKind::IndexUnavailable,
            "index holds an out-of-range value; run `masclet repair index`",
        )
    })
}

impl Index {
    /// Create a new, empty index at `path` (which must not exist), files mode 0600.
    ///
    /// # Errors
    /// `Storage` if the file cannot be created, `IndexUnavailable` on SQLite errors.
    pub fn create(path: &Path, repo_id: RepoId) -> Result<Self> {
        // Create the file ourselves so it (and the -wal/-shm SQLite derives from it) is 0600.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::storage(format!("creating {}", path.display()), e))?;
        let conn = Connection::open_with_flags(path, open_flags())?;
        configure(&conn)?;
        conn.execute_batch(SCHEMA)?;
        conn.execute(
            "INSERT INTO meta VALUES ('schema_version', ?1)",
            [SCHEMA_VERSION],
        )?;
        conn.execute("INSERT INTO meta VALUES ('repo_id', ?1)", [&repo_id.0[..]])?;
        Ok(Self {
            conn,
            read_only: false,
        })
    }

    /// Open and verify the index of repository `repo_id`.
    ///
    /// # Errors
    /// [`ErrorKind::IndexUnavailable`] when it is missing, damaged, from another repository
    /// or of another schema version; the message names `masclet repair index`.
    /// [`ErrorKind::Storage`] when the disk under it fails (full, read-only, I/O error).
    pub fn open(path: &Path, repo_id: RepoId) -> Result<Self> {
        Self::open_mode(path, repo_id, false)
    }

    /// [`Index::open`] for commands that only read: works on read-only media.
    ///
    /// # Errors
    /// As [`Index::open`].
    pub fn open_read_only(path: &Path, repo_id: RepoId) -> Result<Self> {
        Self::open_mode(path, repo_id, true)
    }

    /// Record the repository's format version (from the config at `init` or `repair
    /// index`). The config header that states it is plaintext and unauthenticated, so this
    /// copy is what lets `open` tell a damaged header from the truth.
    ///
    /// # Errors
    /// `IndexUnavailable` or `Storage` on SQLite errors.
    pub fn record_format(&self, format: u32) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('format', ?1)",
            [i64::from(format)],
        )?;
        Ok(())
    }

    /// The format version recorded by [`Index::record_format`]; `None` for an index
    /// written before it was recorded (nothing to compare with).
    ///
    /// # Errors
    /// `IndexUnavailable` or `Storage` on SQLite errors.
    pub fn recorded_format(&self) -> Result<Option<u32>> {
        let v: Option<i64> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(v.and_then(|v| u32::try_from(v).ok()))
    }

    /// The repository id an index file records, read without any check; `None` when it
    /// cannot be read. For diagnosing a config whose id was damaged.
    pub(crate) fn recorded_repo_id(path: &Path) -> Option<RepoId> {
        if !path.is_file() {
            return None;
        }
        let conn = open_read_only(path).ok()?;
        let b: Vec<u8> = conn
            .query_row("SELECT value FROM meta WHERE key = 'repo_id'", [], |r| {
                r.get(0)
            })
            .ok()?;
        Some(RepoId(b.try_into().ok()?))
    }

    fn open_mode(path: &Path, repo_id: RepoId, read_only: bool) -> Result<Self> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Err(unavailable(path, "not a file")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(unavailable(path, "missing"));
            }
            Err(e) => return Err(Error::storage(format!("opening {}", path.display()), e)),
        }
        // Damage keeps the wording that names `repair index`; the disk's failures do not.
        let sql = |e: rusqlite::Error| {
            let text = e.to_string();
            match Error::sqlite(path, e) {
                err if err.kind() == ErrorKind::IndexUnavailable => unavailable(path, text),
                err => name_full_disk(path, err),
            }
        };
        let conn = if read_only {
            let conn = open_read_only(path).map_err(sql)?;
            configure_read_only(&conn).map_err(sql)?;
            conn
        } else {
            let conn = Connection::open_with_flags(path, open_flags()).map_err(sql)?;
            configure(&conn).map_err(sql)?;
            conn
        };
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(sql)?;
        if check != "ok" {
            return Err(unavailable(path, format!("integrity check: {check}")));
        }
        let meta = |key: &str| -> rusqlite::Result<Option<rusqlite::types::Value>> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
        };
        let meta = |key: &str| meta(key).map_err(sql);
        match meta("schema_version")? {
            Some(rusqlite::types::Value::Integer(SCHEMA_VERSION)) => {}
            other => {
                return Err(unavailable(
                    path,
                    format!("schema version {other:?}, expected {SCHEMA_VERSION}"),
                ));
            }
        }
        match meta("repo_id")? {
            Some(rusqlite::types::Value::Blob(b)) if b == repo_id.0 => {}
            _ => return Err(unavailable(path, "it belongs to another repository")),
        }
        Ok(Self { conn, read_only })
    }

    /// Run `f` inside `BEGIN IMMEDIATE … COMMIT`: writers take the write lock up front, so
    /// two processes never deadlock upgrading; any error rolls back.
    pub(crate) fn immediate<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        // A read transaction of this connection (`read_tx`) must have ended first.
        debug_assert!(self.conn.is_autocommit(), "write inside a transaction");
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        match f(&self.conn) {
            Ok(v) => {
                self.conn.execute_batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Run `f`'s lookups inside one read transaction: alone, each statement takes and
    /// releases SQLite's file locks (an fcntl pair and the WAL read mark), which costs more
    /// than the lookup. Inside a transaction already, `f` just runs.
    pub(crate) fn reading<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let tx = self.read_tx()?;
        let v = f()?;
        drop(tx);
        Ok(v)
    }

    /// A read transaction held until the guard drops (`None` inside one already). No
    /// write may start on this connection while it lives.
    pub(crate) fn read_tx(&self) -> Result<Option<rusqlite::Transaction<'_>>> {
        if self.conn.is_autocommit() {
            Ok(Some(self.conn.unchecked_transaction()?))
        } else {
            Ok(None)
        }
    }
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
