//! Status (`masclet status`): the original spec's `status.sh` as one read-only look at a
//! repository: the newest snapshot of each tier and its age, the last run with its steps
//! and metrics, the last verified restore, the repository's size and ratios, the disk
//! against the thresholds, who holds locks, and the alerts that are active now.
//!
//! Everything here only reads: the snapshots and the index (opened read-only by the
//! caller), the run history, the lock objects and the nightly job's run lock, which is
//! probed with a shared non-blocking `flock` and never created. A monitor may call it as
//! often as it likes, during a backup too.

mod health;

use super::alert::AlertKey;
use super::record::{History, Metrics, RunRecord};
use super::space::DiskUsage;
use crate::config::{find, parse_size};
use crate::error::{Error, ErrorKind, Result};
use crate::repository::index::verifications::Verification;
use crate::repository::lock::{self, LockInfo};
use crate::{Repo, Snapshot, SnapshotId};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

pub use health::judge;

/// The tiers, in the order status lists them: a tier is a snapshot tag.
pub const TIERS: [&str; 4] = ["daily", "weekly", "monthly", "yearly"];

/// What status measures against.
#[derive(Debug, Clone, Copy)]
pub struct StatusOptions {
    /// The time ages are counted to.
    pub now: DateTime<Utc>,
    /// `SPACE_ALERT_PERCENT`: disk use above it is unhealthy.
    pub alert_percent: f64,
    /// `MIN_FREE_SPACE`, bytes: less available space is unhealthy.
    pub min_free: u64,
    /// The oldest the newest daily snapshot may be (the original spec's 26 h: a nightly
    /// run plus two hours of slack).
    pub max_daily_age: Duration,
}

impl StatusOptions {
    /// The thresholds from the environment (where the command line puts the
    /// configuration file's keys), else their documented defaults, measured at `now`.
    ///
    /// # Errors
    /// `InvalidInput` when `SPACE_ALERT_PERCENT` or `MIN_FREE_SPACE` is malformed.
    pub fn from_env(now: DateTime<Utc>) -> Result<Self> {
        let value = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .or_else(|| find(name).and_then(|k| k.default).map(str::to_owned))
                .unwrap_or_default()
        };
        let pct = value("SPACE_ALERT_PERCENT");
        let alert_percent = pct
            .trim()
            .trim_end_matches('%')
            .parse::<f64>()
            .ok()
            .filter(|p| (0.0..=100.0).contains(p))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("SPACE_ALERT_PERCENT={pct:?} is not a percentage from 0 to 100"),
                )
            })?;
        let min_free = parse_size(&value("MIN_FREE_SPACE"))?;
        Ok(Self {
            now,
            alert_percent,
            min_free,
            max_daily_age: Duration::hours(26),
        })
    }
}

/// The newest snapshot of one tier.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TierStatus {
    /// `daily`, `weekly`, `monthly` or `yearly`.
    pub tier: String,
    /// The newest snapshot tagged with the tier, hex id.
    pub snapshot: Option<String>,
    /// Its time, RFC 3339.
    pub time: Option<String>,
    /// Seconds from its time to now.
    pub age_secs: Option<i64>,
    /// How many snapshots carry the tier's tag.
    pub count: usize,
    /// When the tier's newest successful run (one that saved a snapshot) ended.
    pub last_successful_run: Option<String>,
}

/// The last verified restore: the newest snapshot a test restore was recorded for.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifiedRestore {
    /// The snapshot tested, hex id.
    pub snapshot: String,
    /// When its last test restore ran, RFC 3339.
    pub time: String,
    /// Whether that test restore passed.
    pub ok: bool,
}

/// The repository's size and what deduplication and compression save.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepositoryStatus {
    /// Readable snapshots.
    pub snapshots: usize,
    /// Snapshots that could not be read.
    pub unreadable_snapshots: usize,
    /// Packs in the index.
    pub packs: u64,
    /// Bytes the packs take on disk.
    pub bytes: u64,
    /// Plaintext bytes of the distinct chunks: the data, each piece stored once.
    pub unique_bytes: u64,
    /// File bytes the snapshots read, summed over every snapshot.
    pub logical_bytes: u64,
    /// `logical_bytes / unique_bytes`: how many times over the stored data is used (5.0
    /// means every byte stored stands for five read); `None` for an empty repository.
    pub dedup_ratio: Option<f64>,
    /// Sealed bytes over plaintext bytes of the distinct chunks (0.3 means compression
    /// left 30%); `None` for an empty repository.
    pub compression_ratio: Option<f64>,
}

/// The repository's disk against the thresholds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DiskStatus {
    /// Filesystem size, bytes.
    pub total: u64,
    /// Bytes still available.
    pub available: u64,
    /// Percent in use.
    pub used_percent: f64,
    /// `SPACE_ALERT_PERCENT`.
    pub alert_percent: f64,
    /// `MIN_FREE_SPACE`, bytes.
    pub min_free: u64,
    /// `ok`, or `low` when use is above the alert percent or available below the minimum.
    pub state: String,
}

/// A lock object in the repository.
#[derive(Debug, Clone, Serialize)]
pub struct LockStatus {
    /// The object's name.
    pub name: String,
    /// What it says; `None` when it cannot be read (being written, damaged).
    pub info: Option<LockInfo>,
}

/// An alert that is active now, under the original spec's key and message.
#[derive(Debug, Clone, Serialize)]
pub struct ActiveAlert {
    /// The key (`backup_failed`, `space_low`, `integrity_failed`, `rotation_failed`).
    pub key: AlertKey,
    /// The original spec's message for it.
    pub message: String,
    /// What is wrong, in one line.
    pub detail: String,
}

/// What the run history holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HistoryStatus {
    /// Readable runs.
    pub runs: usize,
    /// Lines that could not be read (a torn last line after a crash).
    pub unreadable: usize,
}

/// Everything `masclet status` reports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// When it was measured, RFC 3339.
    pub time: String,
    /// The newest snapshot of each tier.
    pub tiers: Vec<TierStatus>,
    /// The newest run of any tier.
    pub last_run: Option<RunRecord>,
    /// The last run's metrics, under the original spec's names.
    pub metrics: Option<Metrics>,
    /// The run history's size.
    pub history: HistoryStatus,
    /// The last verified restore.
    pub last_verified_restore: Option<VerifiedRestore>,
    /// Size and ratios.
    pub repository: RepositoryStatus,
    /// The disk.
    pub disk: DiskStatus,
    /// Lock objects held by other processes.
    pub locks: Vec<LockStatus>,
    /// Whether a nightly run holds the run lock now.
    pub run_in_progress: bool,
    /// The alerts active now.
    pub alerts: Vec<ActiveAlert>,
    /// Whether nothing below is wrong.
    pub healthy: bool,
    /// What is wrong, one sentence each.
    pub problems: Vec<String>,
    /// The newest test restore of any snapshot failed (kept for the health rules; the
    /// shown restore is the newest snapshot's).
    #[serde(skip)]
    newest_verification_failed: Option<(String, String)>,
}

/// Look at the repository `repo` kept in `repo_dir` and judge its health.
///
/// # Errors
/// `Storage` when the snapshots or locks cannot be listed, `IndexUnavailable` on index
/// errors, `Io` when the history or the disk cannot be read.
pub fn status(repo: &Repo, repo_dir: &Path, opts: &StatusOptions) -> Result<Status> {
    let (snapshots, bad) = repo.snapshots()?;
    let runs = History::in_repo(repo_dir).read()?;
    let verifications = repo.index().verifications()?;
    let totals = repo.index().totals()?;
    let usage = DiskUsage::of(repo_dir)?;

    let mut st = Status {
        time: opts.now.to_rfc3339_opts(SecondsFormat::Secs, true),
        ..Status::default()
    };
    for tier in TIERS {
        let tagged: Vec<_> = snapshots
            .iter()
            .filter(|(_, s)| s.tags.iter().any(|t| t == tier))
            .collect();
        let newest = tagged.last();
        st.tiers.push(TierStatus {
            tier: tier.to_owned(),
            snapshot: newest.map(|(id, _)| id.to_string()),
            time: newest.map(|(_, s)| rfc3339(s.time)),
            age_secs: newest.map(|(_, s)| (opts.now - s.time).num_seconds()),
            count: tagged.len(),
            last_successful_run: runs.last_success(tier).map(|r| r.finished.clone()),
        });
    }
    st.last_run = runs.newest().cloned();
    st.metrics = st.last_run.as_ref().map(|r| r.metrics.clone());
    st.history = HistoryStatus {
        runs: runs.records.len(),
        unreadable: runs.unreadable,
    };
    st.last_verified_restore = last_verified(&snapshots, &verifications);
    st.newest_verification_failed = verifications
        .last()
        .filter(|(_, v)| !v.ok)
        .map(|(id, v)| (id.clone(), v.time.clone()));

    let logical: u64 = snapshots.iter().map(|(_, s)| s.stats.bytes_read).sum();
    let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
    st.repository = RepositoryStatus {
        snapshots: snapshots.len(),
        unreadable_snapshots: bad.len(),
        packs: totals.packs,
        bytes: totals.pack_bytes,
        unique_bytes: totals.raw_bytes,
        logical_bytes: logical,
        dedup_ratio: ratio(logical, totals.raw_bytes),
        compression_ratio: ratio(totals.sealed_bytes, totals.raw_bytes),
    };
    st.disk = DiskStatus {
        total: usage.total,
        available: usage.available,
        used_percent: usage.used_percent(),
        alert_percent: opts.alert_percent,
        min_free: opts.min_free,
        state: String::new(),
    };
    // Status's own shared lock is no news to whoever asks.
    let (host, pid) = (lock::hostname(), std::process::id());
    st.locks = lock::list(repo.storage())?
        .into_iter()
        .filter(|(_, info)| info.as_ref().is_none_or(|i| i.host != host || i.pid != pid))
        .map(|(name, info)| LockStatus { name, info })
        .collect();
    st.run_in_progress = run_lock_held(&repo_dir.join("ops").join("run.lock"))?;
    judge(&mut st, opts);
    Ok(st)
}

/// The last test restore of the newest snapshot that has one; of a snapshot since
/// forgotten when no listed snapshot has one.
fn last_verified(
    snapshots: &[(SnapshotId, Snapshot)],
    verifications: &[(String, Verification)],
) -> Option<VerifiedRestore> {
    let mut last: HashMap<&str, &Verification> = HashMap::new();
    for (id, v) in verifications {
        last.insert(id, v);
    }
    let id = snapshots
        .iter()
        .rev()
        .map(|(id, _)| id.to_string())
        .find(|id| last.contains_key(id.as_str()))
        .or_else(|| verifications.last().map(|(id, _)| id.clone()))?;
    let v = last[id.as_str()];
    Some(VerifiedRestore {
        time: v.time.clone(),
        ok: v.ok,
        snapshot: id,
    })
}

/// Whether a nightly run holds `<repo>/ops/run.lock`: it holds it exclusively for the
/// whole run, so a shared non-blocking attempt fails exactly then. A missing file means no
/// run has ever started here; it is not created.
fn run_lock_held(path: &Path) -> Result<bool> {
    use rustix::fs::{FlockOperation, flock};
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(Error::new(
                ErrorKind::Io,
                format!("{}: {e}", path.display()),
            ));
        }
    };
    match flock(&f, FlockOperation::NonBlockingLockShared) {
        // Closing the file releases the probe's lock.
        Ok(()) => Ok(false),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(true),
        Err(e) => Err(Error::new(
            ErrorKind::Io,
            format!("cannot probe {}: {e}", path.display()),
        )),
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The first 8 hex digits of an id, as the other commands show it.
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}
