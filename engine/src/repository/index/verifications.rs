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

    /// Every recorded test restore, oldest first, with the snapshot each one tested (as
    /// its hex id): the report's verification chart, and `status`'s last verified restore.
    ///
    /// # Errors
    /// `Storage` or `IndexUnavailable` on SQLite errors.
    pub fn verifications(&self) -> Result<Vec<(String, Verification)>> {
        if !self.has_verifications()? {
            return Ok(Vec::new());
        }
        let mut st = self
            .conn
            .prepare("SELECT snapshot, time, ok, report FROM verifications ORDER BY time, rowid")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Verification {
                    time: r.get(1)?,
                    ok: r.get::<_, i64>(2)? != 0,
                    report: r.get(3)?,
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether any verify has made the table yet (reading must work on an index no verify
    /// has written, even a read-only one).
    fn has_verifications(&self) -> Result<bool> {
        let exists: Option<i64> = self
            .conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'verifications'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(exists.is_some())
    }

    /// The last recorded test restore of `snapshot`, if any.
    ///
    /// # Errors
    /// `Storage` or `IndexUnavailable` on SQLite errors.
    pub fn last_verification(&self, snapshot: &SnapshotId) -> Result<Option<Verification>> {
        if !self.has_verifications()? {
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
        assert!(index.verifications().unwrap().is_empty());
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
        index
            .record_verification(&b, "2026-12-01T04:00:00Z", true, "{}")
            .unwrap();
        let all = index.verifications().unwrap();
        let order: Vec<_> = all.iter().map(|(s, v)| (&s[..2], v.ok)).collect();
        assert_eq!(order, [("01", true), ("02", true), ("01", false)]);
    }
}
