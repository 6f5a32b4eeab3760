//! Opening the index: creating it, checking it before it is trusted (schema version,
//! repository id, `PRAGMA quick_check`), the connection's settings, read-only opening for
//! commands that must not write, and the transactions every query runs in.

use super::{Index, SCHEMA, SCHEMA_VERSION};
use crate::disk::id::RepoId;
use crate::error::{Error, ErrorKind, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

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
