//! The one public error type of the engine.
//!
//! Rules every module follows:
//! - every public function returns [`Result<T>`]; the error carries an [`ErrorKind`] that
//!   callers (the CLI above all) branch on, and a message written for an operator: what
//!   failed, on which object or path, and where it helps, what to do next;
//! - damage is never folded into I/O: a MAC failure, a hash mismatch, a truncated pack or an
//!   undecodable structure is [`ErrorKind::Corrupt`], a failing disk or permission problem is
//!   [`ErrorKind::Io`] (source side) or [`ErrorKind::Storage`] (repository side);
//! - an error is enriched on the way up with [`Error::context`], never downgraded to a
//!   different kind, so the kind decided where the failure was seen survives to the exit code.

use std::fmt;

/// What went wrong, coarsely: enough for a caller to choose an exit code or a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading the backup source or writing a restore target failed.
    Io,
    /// The repository's storage failed (including a full disk).
    Storage,
    /// Stored data failed authentication, a hash check or a structural check.
    Corrupt,
    /// No key slot opens with the given passphrase (or the key slot is damaged).
    WrongPassword,
    /// A snapshot, path or object that was asked for does not exist.
    NotFound,
    /// Another process holds a conflicting repository lock.
    Locked,
    /// The request itself is invalid (bad argument, bad name, refused setting).
    InvalidInput,
    /// The repository uses a format version or feature this build does not know.
    Unsupported,
    /// The SQLite index is missing, damaged or from another repository.
    IndexUnavailable,
    /// The operation was cancelled (Ctrl-C) before it committed anything.
    Interrupted,
    /// A bug: an invariant of the engine did not hold.
    Internal,
    /// The database server could not be reached, refused the login, or failed a query
    /// (after the retries, for a connection).
    Database,
    /// A test restore ran, and a check of the restored database failed: the snapshot does
    /// not give back what was recorded when it was taken.
    VerifyFailed,
    /// A check before a backup failed: too little free space where the repository lives,
    /// or no permission to write there. Nothing was started.
    Precheck,
}

/// The engine's error: a kind, a message for people, and an optional cause.
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// Result alias used by every public function of the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with an operator-facing message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Shorthand for [`ErrorKind::Corrupt`].
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Corrupt, message)
    }

    /// Shorthand for [`ErrorKind::InvalidInput`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// Shorthand for [`ErrorKind::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Attach the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Wrap an I/O error on the source or target side, naming what was being done.
    ///
    /// A source of our own behind `Read` (an archive member checked against its hash)
    /// reports damage as one of our errors inside the `io::Error` ([`Error::into_io`]): it
    /// comes back out with its kind, so damage is never folded into I/O on the way.
    pub fn io(what: impl fmt::Display, err: std::io::Error) -> Self {
        if err.get_ref().is_some_and(|e| e.is::<Error>()) {
            return match err.into_inner().map(|e| e.downcast::<Error>()) {
                Some(Ok(inner)) => Self {
                    message: format!("{what}: {}", inner.message),
                    ..*inner
                },
                // Checked above; kept total rather than panicking.
                _ => Self::new(ErrorKind::Io, what.to_string()),
            };
        }
        Self::new(ErrorKind::Io, format!("{what}: {err}")).with_source(err)
    }

    /// This error inside an `io::Error`, for a `Read` implementation of ours whose caller
    /// wraps what it reads with [`Error::io`].
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::other(self)
    }

    /// Wrap an I/O error on the repository side. A full disk gets its own wording because
    /// the operator's fix (free space, then rerun; nothing was committed) differs.
    pub fn storage(what: impl fmt::Display, err: std::io::Error) -> Self {
        let message = if err.kind() == std::io::ErrorKind::StorageFull {
            format!(
                "repository storage full while {what}: it is on a full disk; free space and rerun (nothing was committed)"
            )
        } else {
            format!("{what}: {err}")
        };
        Self::new(ErrorKind::Storage, message).with_source(err)
    }

    /// An SQLite error on the index database at `path`, classified by its code: the
    /// disk under the index (cannot open, read-only, full, I/O error, permission) is
    /// [`ErrorKind::Storage`] and `repair index` would not help; a damaged database is
    /// [`ErrorKind::IndexUnavailable`]; a writer holding it is [`ErrorKind::Locked`].
    pub fn sqlite(path: &std::path::Path, err: rusqlite::Error) -> Self {
        sqlite_error(Some(path), err)
    }

    /// The I/O error kind behind this error, if an I/O error caused it: for callers that
    /// must tell a read-only or full filesystem from other failures without reading text.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = self
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static));
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<std::io::Error>() {
                return Some(io.kind());
            }
            if let Some(e) = c.downcast_ref::<Error>() {
                return e.io_kind();
            }
            cause = c.source();
        }
        None
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message without the cause chain.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefix the message with what the caller was doing; the kind is kept.
    #[must_use]
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({:?}, {:?}", self.kind, self.message)?;
        if let Some(src) = &self.source {
            write!(f, ", source: {src:?}")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<rusqlite::Error> for Error {
    /// SQLite trouble, classified by code (see [`Error::sqlite`]).
    fn from(err: rusqlite::Error) -> Self {
        sqlite_error(None, err)
    }
}

fn sqlite_error(path: Option<&std::path::Path>, err: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode as C;
    let db = path.map_or_else(
        || "the index database".to_string(),
        |p| format!("index database {}", p.display()),
    );
    match err.sqlite_error_code() {
        // The index is sound, another process holds its write lock (a masclet process that
        // is stopped, hung, or stuck on slow storage).
        Some(C::DatabaseBusy) => {
            let message = format!(
                "{db} stayed locked by another process ({err}); a masclet process may be suspended or hung: find it with `ps` and let it finish or stop it"
            );
            Error::new(ErrorKind::Locked, message).with_source(err)
        }
        Some(C::DiskFull) => {
            let message = format!(
                "the disk holding {db} is full ({err}): free space and rerun (nothing was committed)"
            );
            Error::new(ErrorKind::Storage, message).with_source(err)
        }
        // The disk or its permissions failed, not the database: rebuilding the index
        // would fail the same way.
        Some(C::CannotOpen | C::ReadOnly | C::SystemIoFailure | C::PermissionDenied) => {
            let message =
                format!("storage failure on {db} ({err}): check the disk and its permissions");
            Error::new(ErrorKind::Storage, message).with_source(err)
        }
        _ => {
            let message = format!(
                "{db} is damaged or unreadable ({err}); if it persists run `masclet repair index`"
            );
            Error::new(ErrorKind::IndexUnavailable, message).with_source(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_kind() {
        let e = Error::corrupt("bad tag").context("chunk 1234");
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert_eq!(e.to_string(), "chunk 1234: bad tag");
    }

    #[test]
    fn our_error_inside_an_io_error_keeps_its_kind_and_a_plain_one_is_io() {
        let e = Error::io("reading member a", Error::corrupt("hash differs").into_io());
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert_eq!(e.to_string(), "reading member a: hash differs");
        let plain = Error::io("reading a", std::io::Error::other("boom"));
        assert_eq!(plain.kind(), ErrorKind::Io);
    }

    #[test]
    fn enospc_is_named() {
        let io = std::io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
        let e = Error::storage("writing pack", io);
        assert_eq!(e.kind(), ErrorKind::Storage);
        assert!(e.to_string().contains("storage full"), "{e}");
        assert_eq!(e.io_kind(), Some(std::io::ErrorKind::StorageFull));
    }

    /// SQLite errors keep their true kind: the disk under the index is Storage (repairing
    /// the index cannot help), damage is IndexUnavailable, a held write lock is Locked.
    #[test]
    fn sqlite_errors_map_by_code() {
        use rusqlite::ffi;
        let kind = |code: i32| {
            let err = rusqlite::Error::SqliteFailure(ffi::Error::new(code), None);
            Error::sqlite(std::path::Path::new("/r/index/index.sqlite"), err)
        };
        for code in [
            ffi::SQLITE_CANTOPEN,
            ffi::SQLITE_READONLY,
            ffi::SQLITE_FULL,
            ffi::SQLITE_IOERR,
            ffi::SQLITE_PERM,
        ] {
            let e = kind(code);
            assert_eq!(e.kind(), ErrorKind::Storage, "code {code}: {e}");
            assert!(e.to_string().contains("/r/index/index.sqlite"), "{e}");
            assert!(!e.to_string().contains("repair index"), "{e}");
        }
        assert!(kind(ffi::SQLITE_FULL).to_string().contains("is full"));
        for code in [ffi::SQLITE_CORRUPT, ffi::SQLITE_NOTADB] {
            let e = kind(code);
            assert_eq!(e.kind(), ErrorKind::IndexUnavailable, "code {code}: {e}");
            assert!(e.to_string().contains("repair index"), "{e}");
        }
        assert_eq!(kind(ffi::SQLITE_BUSY).kind(), ErrorKind::Locked);
        let plain: Error =
            rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_FULL), None).into();
        assert_eq!(plain.kind(), ErrorKind::Storage);
    }
}
