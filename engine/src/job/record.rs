//! What each run of the nightly job leaves behind: a [`RunRecord`] (its steps, their
//! outcomes and durations, the original spec's metrics), appended as one JSON line to the
//! repository's run history (`<repo>/ops/runs.jsonl`), and the Prometheus textfile that
//! node_exporter's textfile collector reads.
//!
//! The history is an operations log, not part of the backup format: no reader of snapshots
//! looks at it, and losing it loses no data. A line is written with one `write` on a file
//! opened for appending, then synced, so two runs cannot interleave inside a line; a crash
//! mid-write leaves at most a torn last line, which reading skips and counts.

use super::alert::AlertKey;
use crate::error::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Version of a history line's layout.
pub const RECORD_VERSION: u32 = 1;

/// How a step, or a whole run, ended. Ordered from best to worst: a run's outcome is its
/// worst step's. A skipped step (gc not due) is no news, so it ranks below a done one: a
/// run is `ok` when one of its steps was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// Not needed or not configured (gc not due, no export configured).
    Skipped,
    /// Done.
    Ok,
    /// Done, with something the operator should see (space above the alert threshold).
    Warning,
    /// Not done.
    Failed,
}

impl StepOutcome {
    /// The outcome's name (`ok`, `skipped`, `warning`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Skipped => "skipped",
            Self::Warning => "warning",
            Self::Failed => "failed",
        }
    }
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// `precheck`, `backup`, `verify`, `retention`, `gc`, `export`, `space`...
    pub name: String,
    /// How it ended.
    pub outcome: StepOutcome,
    /// Wall time, seconds.
    pub duration_secs: f64,
    /// What it did or why it failed, in one line.
    pub detail: String,
}

/// The original spec's metrics, under their original names, and masclet's own beside them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Seconds the whole run took.
    pub tiempo_total: f64,
    /// Bytes the night's backup added to the repository: what it costs on disk (the
    /// original system's final archive size).
    #[serde(rename = "tamaño_final")]
    pub tamano_final: u64,
    /// Size of the new data after compression, in percent of its size before (the
    /// original's archive size against the dump's); `None` when nothing was new.
    pub ratio_compresion: Option<f64>,
    /// Bytes gc gave back to the filesystem.
    pub espacio_liberado: u64,
    /// Bytes the backup read from its source.
    pub bytes_read: u64,
    /// Bytes the backup added to the repository (equal to `tamaño_final`).
    pub bytes_added: u64,
    /// Share of the bytes read that were already stored (0 to 1); `None` when nothing
    /// was read.
    pub dedup_ratio: Option<f64>,
    /// Bytes the repository takes on disk after the run.
    pub repository_bytes: u64,
    /// Percent of the repository's disk in use after the run.
    pub disk_used_percent: Option<f64>,
}

/// One run of the nightly job, as its history line holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// [`RECORD_VERSION`].
    pub version: u32,
    /// The tier the run was for (`daily`, `weekly`, `monthly`, `yearly`).
    pub tier: String,
    /// The machine that ran it.
    pub host: String,
    /// Start, UTC, RFC 3339.
    pub started: String,
    /// End, UTC, RFC 3339.
    pub finished: String,
    /// The worst step's outcome.
    pub outcome: StepOutcome,
    /// The exit status the run ended with.
    pub exit_code: u8,
    /// The snapshot the run saved, if it saved one.
    pub snapshot: Option<String>,
    /// Whether the saved snapshot's verification (chunk check, and the test restore for a
    /// database) passed; `None` when it was not verified.
    pub verified: Option<bool>,
    /// Each step, in the order run.
    pub steps: Vec<StepRecord>,
    /// The metrics.
    pub metrics: Metrics,
    /// The alerts the run raised.
    pub alerts: Vec<AlertKey>,
}

impl RunRecord {
    /// Whether the run ended without a failed step.
    pub fn succeeded(&self) -> bool {
        self.outcome != StepOutcome::Failed
    }
}

/// The run history of one repository.
#[derive(Debug, Clone)]
pub struct History {
    path: PathBuf,
}

/// What reading the history found.
#[derive(Debug, Clone, Default)]
pub struct Runs {
    /// The readable records, oldest first.
    pub records: Vec<RunRecord>,
    /// Lines that could not be read (a torn last line after a crash, a hand edit).
    pub unreadable: usize,
}

impl Runs {
    /// The newest run of `tier`.
    pub fn last(&self, tier: &str) -> Option<&RunRecord> {
        self.records.iter().rev().find(|r| r.tier == tier)
    }

    /// The newest run of any tier.
    pub fn newest(&self) -> Option<&RunRecord> {
        self.records.last()
    }

    /// The newest run of `tier` that saved a snapshot without a failed step.
    pub fn last_success(&self, tier: &str) -> Option<&RunRecord> {
        self.records
            .iter()
            .rev()
            .find(|r| r.tier == tier && r.succeeded() && r.snapshot.is_some())
    }

    /// The newest run of `tier` whose snapshot's verification passed.
    pub fn last_verified(&self, tier: &str) -> Option<&RunRecord> {
        self.records
            .iter()
            .rev()
            .find(|r| r.tier == tier && r.verified == Some(true))
    }
}

impl History {
    /// The history kept in the repository directory `repo_dir`.
    pub fn in_repo(repo_dir: &Path) -> Self {
        Self {
            path: repo_dir.join("ops").join("runs.jsonl"),
        }
    }

    /// The history file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append `record` as one line, durably.
    ///
    /// # Errors
    /// `Io` when the folder or file cannot be written (a full disk included).
    pub fn append(&self, record: &RunRecord) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, &e))?;
        let mut line = serde_json::to_vec(record)
            .map_err(|e| Error::new(ErrorKind::Io, format!("run record: {e}")))?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(|e| io_err(&self.path, &e))?;
        // One write: O_APPEND places it whole at the end, whoever else appends.
        f.write_all(&line)
            .and_then(|()| f.sync_all())
            .map_err(|e| io_err(&self.path, &e))
    }

    /// Every readable record, oldest first. A missing file is an empty history.
    ///
    /// # Errors
    /// `Io` when the file exists but cannot be read.
    pub fn read(&self) -> Result<Runs> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Runs::default()),
            Err(e) => return Err(io_err(&self.path, &e)),
        };
        let mut runs = Runs::default();
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<RunRecord>(line) {
                Ok(r) if r.version == RECORD_VERSION => runs.records.push(r),
                _ => runs.unreadable += 1,
            }
        }
        Ok(runs)
    }
}

fn io_err(path: &Path, e: &std::io::Error) -> Error {
    Error::new(ErrorKind::Io, format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn record(tier: &str, outcome: StepOutcome, snapshot: Option<&str>) -> RunRecord {
        RunRecord {
            version: RECORD_VERSION,
            tier: tier.into(),
            host: "granja".into(),
            started: "2026-12-03T02:00:00Z".into(),
            finished: "2026-12-03T02:01:00Z".into(),
            outcome,
            exit_code: u8::from(outcome == StepOutcome::Failed),
            snapshot: snapshot.map(Into::into),
            verified: snapshot.map(|_| true),
            steps: vec![StepRecord {
                name: "backup".into(),
                outcome,
                duration_secs: 1.5,
                detail: String::new(),
            }],
            metrics: Metrics {
                tiempo_total: 60.0,
                tamano_final: 1234,
                ..Metrics::default()
            },
            alerts: vec![],
        }
    }

    #[test]
    fn records_append_and_read_back_and_a_torn_line_is_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::in_repo(dir.path());
        assert!(h.read().unwrap().records.is_empty());
        h.append(&record("daily", StepOutcome::Ok, Some("aa")))
            .unwrap();
        h.append(&record("daily", StepOutcome::Failed, None))
            .unwrap();
        h.append(&record("weekly", StepOutcome::Ok, Some("bb")))
            .unwrap();
        // A crash mid-append: half a line at the end.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(h.path())
            .unwrap();
        f.write_all(b"{\"version\":1,\"tier\":\"da").unwrap();
        let runs = h.read().unwrap();
        assert_eq!(runs.records.len(), 3);
        assert_eq!(runs.unreadable, 1);
        assert_eq!(runs.last("daily").unwrap().outcome, StepOutcome::Failed);
        assert_eq!(
            runs.last_success("daily").unwrap().snapshot.as_deref(),
            Some("aa")
        );
        assert_eq!(runs.newest().unwrap().tier, "weekly");
        assert!(runs.last("monthly").is_none());
    }

    #[test]
    fn the_metrics_keep_their_original_names() {
        let v = serde_json::to_value(Metrics::default()).unwrap();
        for k in [
            "tiempo_total",
            "tamaño_final",
            "ratio_compresion",
            "espacio_liberado",
        ] {
            assert!(v.get(k).is_some(), "{k} missing from {v}");
        }
    }

    #[test]
    fn the_worst_outcome_orders_last() {
        let mut v = [
            StepOutcome::Failed,
            StepOutcome::Ok,
            StepOutcome::Warning,
            StepOutcome::Skipped,
        ];
        v.sort();
        assert_eq!(v[3], StepOutcome::Failed);
        assert_eq!(v.iter().max(), Some(&StepOutcome::Failed));
    }
}
