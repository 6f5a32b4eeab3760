//! The disk around a run: the pre-checks (space, permission, the database, the run's own
//! log and textfile), the `space_low` warning, the original spec's remedy for a full disk,
//! and the repository's size after the run.

use super::steps::{forget_by_policy, gc_now};
use super::{Done, Job, RunSource};
use crate::error::{Error, ErrorKind, Result};
use crate::job::alert::AlertKey;
use crate::job::record::StepOutcome;
use crate::job::space::DiskUsage;
use crate::repository::lock::LockMode;
use std::path::Path;

/// The repository's size and its disk's use, whatever became of the steps.
pub(super) fn measure(job: &mut Job<'_>) {
    let m = &mut job.metrics;
    m.repository_bytes = dir_bytes(&job.opts.repo_dir);
    m.disk_used_percent = DiskUsage::of(&job.opts.repo_dir)
        .ok()
        .map(|d| d.used_percent());
}

/// Free space, write permission, the database's connection. Below `MIN_FREE_SPACE` the
/// original spec's remedy is tried once (temporary files, old logs, retention and gc)
/// before giving up with `space_low`.
pub(super) fn precheck(job: &mut Job<'_>) -> Result<((), Done)> {
    let dir = job.opts.repo_dir.clone();
    let mut usage = DiskUsage::of(&dir)?;
    let mut recovered = String::new();
    if usage.available < job.opts.min_free {
        recovered = recover_space(job);
        usage = DiskUsage::of(&dir)?;
        if usage.available < job.opts.min_free {
            job.raise(
                AlertKey::SpaceLow,
                format!(
                    "{} free on the repository's disk, below MIN_FREE_SPACE {}",
                    human(usage.available),
                    human(job.opts.min_free)
                ),
                true,
            );
            return Err(Error::new(
                ErrorKind::Precheck,
                format!(
                    "only {} free on the repository's disk ({}), below MIN_FREE_SPACE {}, even after {recovered}: free space and rerun",
                    human(usage.available),
                    dir.display(),
                    human(job.opts.min_free)
                ),
            ));
        }
    }
    // The permission probe (the space check above is ours, with the recovery).
    crate::pg::prechecks(&dir, 0)?;
    let mut detail = format!(
        "{} free ({:.0}% used), repository writable",
        human(usage.available),
        usage.used_percent()
    );
    if let RunSource::Database(db) = &job.opts.source {
        let target = &db.target;
        // Three attempts with backoff, as the original spec asks ("Reintentos (max 3)").
        drop(crate::pg::connect(target)?);
        detail.push_str(&format!(", database {} reachable", target.database()));
    }
    if !recovered.is_empty() {
        detail.push_str(&format!("; {recovered}"));
    }
    // The run's own records: a log or textfile that cannot be written does not stop the
    // backup, but it must not pass unseen either.
    let mut unwritable = Vec::new();
    if let (Some(dir), None) = (&job.opts.log_dir, &job.log) {
        unwritable.push(format!("LOG_DIR {} cannot be written", dir.display()));
    }
    if let Some(file) = &job.opts.metrics_file {
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !writable_dir(dir) {
            unwritable.push(format!(
                "METRICS_FILE's folder {} is not a folder masclet may write",
                dir.display()
            ));
        }
    }
    if unwritable.is_empty() {
        Ok(((), Done::ok(detail)))
    } else {
        Ok((
            (),
            Done::warning(format!("{detail}; but {}", unwritable.join(", "))),
        ))
    }
}

/// Whether a file can be made in `dir` (tried, not guessed from mode bits: root, ACLs and
/// read-only mounts all decide).
fn writable_dir(dir: &Path) -> bool {
    tempfile::Builder::new()
        .prefix(".masclet-probe-")
        .tempfile_in(dir)
        .is_ok()
}

/// `space_low` when the disk is past `SPACE_ALERT_PERCENT` (a warning: the run goes on).
pub(super) fn space_alert(job: &mut Job<'_>) {
    let Ok(usage) = DiskUsage::of(&job.opts.repo_dir) else {
        return;
    };
    if usage.above(job.opts.alert_percent) {
        let detail = format!(
            "disk {:.0}% used, above SPACE_ALERT_PERCENT {:.0}%",
            usage.used_percent(),
            job.opts.alert_percent
        );
        job.record("space", StepOutcome::Warning, 0.0, &detail);
        job.raise(AlertKey::SpaceLow, detail, false);
    }
}

/// The original spec's remedy for a full disk: temporary files and old logs, then
/// retention and gc. Returns what it did, for the step's detail; its own failures are
/// reported there, not raised (the caller's check decides).
pub(super) fn recover_space(job: &mut Job<'_>) -> String {
    let mut done = Vec::new();
    match (job.hooks.clean_files)() {
        Ok((bytes, what)) => done.push(format!("{what} ({})", human(bytes))),
        Err(e) => done.push(format!("cleanup failed: {e}")),
    }
    let freed = job.open("gc", LockMode::Exclusive).and_then(|mut repo| {
        let (forgot, _) = forget_by_policy(job, &repo)?;
        Ok((forgot, gc_now(&mut repo, job)?))
    });
    match freed {
        Ok((forgot, bytes)) => {
            job.metrics.espacio_liberado += bytes;
            done.push(format!(
                "retention forgot {forgot} snapshots, gc freed {}",
                human(bytes)
            ));
        }
        Err(e) => done.push(format!("retention and gc failed: {e}")),
    }
    done.join(", ")
}

/// Bytes as the log shows them: `2.8 MB`.
pub(crate) fn human(b: u64) -> String {
    crate::progress::human_bytes(b)
}

/// Bytes of every file under `dir` (the repository on disk).
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}
