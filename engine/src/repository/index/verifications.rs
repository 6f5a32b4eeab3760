//! Test restores recorded in the index (`verify`, `restore --to-db`), so `status`-like
//! commands can show the last verified restore and a failed verify can name the newest
//! snapshot that restored well.
//!
//! The table is made on first use (an index created before it existed lacks it). It is a
//! record of work done, not derived from the packs: `repair index` rebuilds the index
//! without it, and the next verify starts it again.

use super::Index;
use crate::disk::id::SnapshotId;
use crate::error::Result;
use rusqlite::{OptionalExtension, params};

const TABLE: &str = "CREATE TABLE IF NOT EXISTS verifications (
    snapshot TEXT NOT NULL,
    time     TEXT NOT NULL,
    ok       INTEGER NOT NULL,
    report   TEXT NOT NULL
)";

/// One recorded test restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// When it ran (UTC, RFC 3339).
    pub time: String,
    /// Whether every check passed.
    pub ok: bool,
    /// The report, as JSON.
    pub report: String,
}

impl Index {
    /// Record a test restore of `snapshot`.
    ///
    /// # Errors
    /// `Storage` or `IndexUnavailable` on SQLite errors (a read-only index refuses).
    pub fn record_verification(
        &self,
        snapshot: &SnapshotId,
        time: &str,
        ok: bool,
        report: &str,
    ) -> Result<()> {
        self.immediate(|c| {
            c.execute_batch(TABLE)?;
            c.execute(
                "INSERT INTO verifications VALUES (?1, ?2, ?3, ?4)",
                params![snapshot.to_string(), time, i64::from(ok), report],
            )?;
            Ok(())
        })
    }

    /// The last recorded test restore of `snapshot`, if any.
    ///
    /// # Errors
    /// `Storage` or `IndexUnavailable` on SQLite errors.
    pub fn last_verification(&self, snapshot: &SnapshotId) -> Result<Option<Verification>> {
        // Reading must work on an index no verify has written yet, even a read-only one.
        let exists: Option<i64> = self
            .conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'verifications'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_none() {
            return Ok(None);
        }
        let v = self
            .conn
            .query_row(
                "SELECT time, ok, report FROM verifications WHERE snapshot = ?1 \
                 ORDER BY time DESC, rowid DESC LIMIT 1",
                [snapshot.to_string()],
                |r| {
                    Ok(Verification {
                        time: r.get(0)?,
                        ok: r.get::<_, i64>(1)? != 0,
                        report: r.get(2)?,
                    })
                },
            )
            .optional()?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::id::RepoId;

    #[test]
    fn the_last_recorded_verification_of_a_snapshot_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::create(&dir.path().join("index.db"), RepoId([7; 32])).unwrap();
        let (a, b) = (SnapshotId([1; 32]), SnapshotId([2; 32]));
        assert_eq!(index.last_verification(&a).unwrap(), None);
        index
            .record_verification(&a, "2026-12-01T03:00:00Z", true, "{}")
            .unwrap();
        index
            .record_verification(&a, "2026-12-02T03:00:00Z", false, "{\"ok\":false}")
            .unwrap();
        let last = index.last_verification(&a).unwrap().unwrap();
        assert!(!last.ok);
        assert_eq!(last.time, "2026-12-02T03:00:00Z");
        assert_eq!(index.last_verification(&b).unwrap(), None);
    }
}
