//! The nightly job, `masclet run -t TIER`: the original spec's whole process, in its order.
//!
//! 1. **precheck**: free space against `MIN_FREE_SPACE` (below it, space is recovered once
//!    and checked again), write permission on the repository, the database's connection;
//!    `space`: disk use against `SPACE_ALERT_PERCENT`.
//! 2. **backup**: the database, or the configured paths, tagged with the tier. A full disk
//!    mid-backup recovers space once and retries once.
//! 3. **verify**: the new snapshot's every chunk read back and checked; a database snapshot
//!    is also test-restored and checked against its manifest.
//! 4. **retention** and 5. **gc** (when due, or when space is short).
//! 6. **export**: the classic tier folders mirrored, when configured.
//! 7. the record: metrics, the history line, the Prometheus textfile, the log's closing
//!    line, and the alerts through every channel.
//!
//! Every step is timed and recorded; a failed step raises its alert and the run goes on
//! where that is safe (a failed export does not undo a verified backup), and the exit
//! status is the first failure's. One run at a time: the run lock is a `flock` on
//! `<repo>/ops/run.lock`, which the kernel drops when the process dies, so a killed run
//! never blocks the next night's.

mod runlock;
mod space;
mod steps;

use super::alert::{Alert, AlertKey};
use super::log::{OpLog, redact};
use super::record::{History, Metrics, RECORD_VERSION, RunRecord, StepOutcome, StepRecord};
use crate::error::{ErrorKind, Result};
use crate::ops::retention::KeepPolicy;
use crate::pg::{DumpShape, Target, Tools};
use crate::progress::Progress;
use crate::repository::lock::LockMode;
use crate::repository::repo::Repo;
use chrono::{SecondsFormat, Utc};
use std::path::PathBuf;
use std::time::Instant;

pub use runlock::RunLock;

/// zstd level new data is sealed at when the disk is past
/// [`super::space::COMPRESS_HARDER_PERCENT`] (the repository's default is 3).
pub const HARDER_ZSTD_LEVEL: u8 = 12;

/// What the job backs up.
#[derive(Debug, Clone)]
pub enum RunSource {
    /// A PostgreSQL database (`DATABASE_URL`).
    Database(Box<DatabaseSource>),
    /// Files and folders (`BACKUP_PATHS`).
    Paths(Vec<PathBuf>),
}

/// A database to back up, and where its test restores go.
#[derive(Debug, Clone)]
pub struct DatabaseSource {
    /// The server and database.
    pub target: Target,
    /// The client programs.
    pub tools: Tools,
    /// The dump's shape.
    pub shape: DumpShape,
    /// Where test restores go (`VERIFY_DATABASE_URL`; default the snapshot's server).
    pub verify_target: Option<Target>,
}

/// Everything a run needs to know; the CLI fills it from flags, environment and the
/// configuration file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// `daily`, `weekly`, `monthly` or `yearly`.
    pub tier: String,
    /// The repository's directory.
    pub repo_dir: PathBuf,
    /// What to back up.
    pub source: RunSource,
    /// Whether to verify the new snapshot.
    pub verify: bool,
    /// Free bytes the repository's disk must have to start (`MIN_FREE_SPACE`).
    pub min_free: u64,
    /// Smallest acceptable backup (`MIN_BACKUP_SIZE`).
    pub min_backup_size: u64,
    /// Disk use, percent, above which `space_low` is raised (`SPACE_ALERT_PERCENT`).
    pub alert_percent: f64,
    /// Retention (`RETENTION_*`).
    pub policy: KeepPolicy,
    /// Days between gc runs (`GC_INTERVAL_DAYS`); gc also runs when space is short.
    pub gc_interval_days: u32,
    /// Folder of the classic exports to mirror (`BACKUP_ROOT` when `EXPORT_MIRROR`).
    pub export_root: Option<PathBuf>,
    /// Folder of the operation log (`LOG_DIR`).
    pub log_dir: Option<PathBuf>,
    /// The Prometheus textfile (`METRICS_FILE`).
    pub metrics_file: Option<PathBuf>,
    /// Whether a run that ends well sends `backup_ok` (`NOTIFY_ON_SUCCESS`).
    pub notify_on_success: bool,
}

/// What the job needs from its caller: opening the repository (the passphrase stays
/// with the caller), sending alerts, the exit code of an error kind, progress.
pub struct RunHooks<'a> {
    /// Open the repository for `operation` with `lock`.
    pub open: &'a dyn Fn(&str, LockMode) -> Result<Repo>,
    /// Send an alert through every channel; returns one line per channel that failed, or
    /// `None` when no channel is configured.
    pub notify: &'a dyn Fn(&Alert) -> Option<Vec<String>>,
    /// Free space beyond gc (old temporary files, old logs); returns bytes freed and a
    /// line saying what was done.
    pub clean_files: &'a dyn Fn() -> Result<(u64, String)>,
    /// The documented exit code for an error of this kind.
    pub exit_code: fn(ErrorKind) -> u8,
    /// Progress of the long steps.
    pub progress: &'a dyn Progress,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The record written to the history.
    pub record: RunRecord,
    /// Problems met on the way that changed no step's outcome (a test restore's note).
    pub warnings: Vec<String>,
    /// Parts of the run's own record that could not be written (history, textfile, log
    /// lines: a full or read-only disk): the steps' outcome stands, but the run must not
    /// end as a quiet success, since what monitoring reads is missing.
    pub record_errors: Vec<String>,
}

/// The run in progress: what it has recorded so far.
struct Job<'a> {
    opts: &'a RunOptions,
    hooks: &'a RunHooks<'a>,
    log: Option<OpLog>,
    steps: Vec<StepRecord>,
    alerts: Vec<Alert>,
    first_failure: Option<ErrorKind>,
    metrics: Metrics,
    snapshot: Option<String>,
    verified: Option<bool>,
    warnings: Vec<String>,
    record_errors: Vec<String>,
}

/// How a step ended, as its body reports it.
struct Done {
    outcome: StepOutcome,
    detail: String,
}

impl Done {
    fn ok(detail: impl Into<String>) -> Self {
        Self {
            outcome: StepOutcome::Ok,
            detail: detail.into(),
        }
    }

    fn skipped(detail: impl Into<String>) -> Self {
        Self {
            outcome: StepOutcome::Skipped,
            detail: detail.into(),
        }
    }

    fn warning(detail: impl Into<String>) -> Self {
        Self {
            outcome: StepOutcome::Warning,
            detail: detail.into(),
        }
    }
}

/// Run the nightly job for `opts.tier`.
///
/// # Errors
/// `Locked` when another run holds the run lock, `NotFound` when the repository folder
/// does not exist: nothing is recorded then. Every other failure is a failed step in the
/// report's record (and its exit code), with its alert sent.
pub fn run(opts: &RunOptions, hooks: &RunHooks<'_>) -> Result<RunReport> {
    let started = Utc::now();
    let clock = Instant::now();
    let _lock = RunLock::acquire(&opts.repo_dir, &opts.tier)?;
    let mut job = Job::new(opts, hooks);
    job.note(&format!(
        "run started (pid {}, masclet {})",
        std::process::id(),
        env!("CARGO_PKG_VERSION")
    ));
    steps::all(&mut job);
    space::measure(&mut job);
    job.metrics.tiempo_total = clock.elapsed().as_secs_f64();
    Ok(job.finish(started))
}

impl<'a> Job<'a> {
    fn new(opts: &'a RunOptions, hooks: &'a RunHooks<'a>) -> Self {
        let mut warnings = Vec::new();
        let log = opts.log_dir.as_deref().and_then(|d| {
            OpLog::open(d)
                .map_err(|e| warnings.push(format!("no operation log: {e}")))
                .ok()
        });
        Self {
            opts,
            hooks,
            log,
            steps: Vec::new(),
            alerts: Vec::new(),
            first_failure: None,
            metrics: Metrics::default(),
            snapshot: None,
            verified: None,
            warnings: Vec::new(),
            record_errors: warnings,
        }
    }

    /// Run one step: time it, record it, log it. A failure is recorded with its alert
    /// (`alert`, urgent when the error is a database one that outlived its retries) and
    /// `None` is returned.
    fn step<T>(
        &mut self,
        name: &str,
        alert: AlertKey,
        body: impl FnOnce(&mut Self) -> Result<(T, Done)>,
    ) -> Option<T> {
        crate::check_interrupt().ok()?;
        let clock = Instant::now();
        let result = body(self);
        let secs = clock.elapsed().as_secs_f64();
        match result {
            Ok((value, done)) => {
                self.record(name, done.outcome, secs, &done.detail);
                Some(value)
            }
            Err(e) => {
                let detail = redact(&e.to_string());
                self.record(name, StepOutcome::Failed, secs, &detail);
                self.first_failure.get_or_insert(e.kind());
                let urgent = e.kind() == ErrorKind::Database;
                self.raise(alert, format!("{name}: {detail}"), urgent);
                None
            }
        }
    }

    fn record(&mut self, name: &str, outcome: StepOutcome, secs: f64, detail: &str) {
        let step = StepRecord {
            name: name.to_owned(),
            outcome,
            duration_secs: secs,
            detail: redact(detail),
        };
        if let Some(log) = &self.log
            && let Err(e) = log.step(&self.opts.tier, &step)
        {
            self.record_errors.push(format!("operation log: {e}"));
        }
        self.steps.push(step);
    }

    /// Raise `key` once per run (a second cause adds nothing to the operator's page).
    fn raise(&mut self, key: AlertKey, detail: String, urgent: bool) {
        if let Some(a) = self.alerts.iter_mut().find(|a| a.key == key) {
            a.urgent |= urgent;
            return;
        }
        self.alerts.push(
            Alert::new(key, redact(&detail))
                .urgent(urgent)
                .tier(&self.opts.tier),
        );
    }

    fn note(&mut self, text: &str) {
        if let Some(log) = &self.log
            && let Err(e) = log.line("INFO ", &self.opts.tier, text)
        {
            self.record_errors.push(format!("operation log: {e}"));
        }
    }

    fn open(&self, operation: &str, lock: LockMode) -> Result<Repo> {
        (self.hooks.open)(operation, lock)
    }

    /// The worst outcome, the exit code, the alerts sent, the record written.
    fn finish(mut self, started: chrono::DateTime<Utc>) -> RunReport {
        let interrupted = crate::interrupted();
        if interrupted {
            self.first_failure.get_or_insert(ErrorKind::Interrupted);
            self.record(
                "interrupted",
                StepOutcome::Failed,
                0.0,
                "stopped by a signal",
            );
        }
        let outcome = self
            .steps
            .iter()
            .map(|s| s.outcome)
            .max()
            .unwrap_or(StepOutcome::Failed);
        if outcome != StepOutcome::Failed && self.opts.notify_on_success {
            let detail = match &self.snapshot {
                Some(s) => format!("snapshot {} saved", &s[..8.min(s.len())]),
                None => "run ended well".to_owned(),
            };
            self.alerts
                .push(Alert::new(AlertKey::BackupOk, detail).tier(&self.opts.tier));
        }
        self.send_alerts();
        let exit_code = self.first_failure.map_or(0, self.hooks.exit_code);
        let record = RunRecord {
            version: RECORD_VERSION,
            tier: self.opts.tier.clone(),
            host: crate::repository::lock::hostname(),
            started: started.to_rfc3339_opts(SecondsFormat::Secs, true),
            finished: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            outcome: self
                .steps
                .iter()
                .map(|s| s.outcome)
                .max()
                .unwrap_or(outcome),
            exit_code,
            snapshot: self.snapshot.clone(),
            verified: self.verified,
            steps: self.steps.clone(),
            metrics: self.metrics.clone(),
            alerts: self.alerts.iter().map(|a| a.key).collect(),
        };
        self.write_record(&record);
        // A log line that failed once is said once.
        self.record_errors.dedup();
        RunReport {
            record,
            warnings: self.warnings,
            record_errors: self.record_errors,
        }
    }

    /// Send every alert; a channel that failed is a failed `notify` step, and when nothing
    /// else failed the exit code says so: an alert nobody received must not look like a
    /// quiet night to cron.
    fn send_alerts(&mut self) {
        if self.alerts.is_empty() {
            return;
        }
        let clock = Instant::now();
        let mut failures = Vec::new();
        let mut configured = false;
        let metrics = self.metrics.clone();
        for a in &mut self.alerts {
            a.metrics = Some(metrics.clone());
            if let Some(f) = (self.hooks.notify)(a) {
                configured = true;
                failures.extend(f);
            }
        }
        let keys: Vec<&str> = self.alerts.iter().map(|a| a.key.as_str()).collect();
        let secs = clock.elapsed().as_secs_f64();
        if !configured {
            let detail = format!(
                "raised {}, but no notification channel is configured (NOTIFY_COMMAND, NOTIFY_WEBHOOK_URL, SMTP_HOST)",
                keys.join(", ")
            );
            self.record("notify", StepOutcome::Skipped, secs, &detail);
        } else if failures.is_empty() {
            self.record(
                "notify",
                StepOutcome::Ok,
                secs,
                &format!("sent {}", keys.join(", ")),
            );
        } else {
            let detail = format!("sending {}: {}", keys.join(", "), failures.join("; "));
            self.record("notify", StepOutcome::Failed, secs, &detail);
            self.first_failure.get_or_insert(ErrorKind::Io);
        }
    }

    fn write_record(&mut self, record: &RunRecord) {
        let history = History::in_repo(&self.opts.repo_dir);
        if let Err(e) = history.append(record) {
            self.record_errors
                .push(format!("run history not written: {e}"));
        }
        if let Some(path) = &self.opts.metrics_file {
            let written = history
                .read()
                .and_then(|runs| super::prom::write(path, &runs));
            if let Err(e) = written {
                self.record_errors
                    .push(format!("METRICS_FILE not written: {e}"));
            }
        }
        let m = &record.metrics;
        self.note(&format!(
            "run {} (exit {}) in {:.1} s: tamaño_final {}, espacio_liberado {}, alerts [{}]",
            record.outcome.as_str(),
            record.exit_code,
            m.tiempo_total,
            space::human(m.tamano_final),
            space::human(m.espacio_liberado),
            record
                .alerts
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
}

#[cfg(test)]
mod tests;
