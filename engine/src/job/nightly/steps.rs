//! The steps of a run, each a function of the [`Job`]: what it calls in the engine, what
//! it reports, which alert its failure raises.

use super::{Done, HARDER_ZSTD_LEVEL, Job, RunSource};
use crate::archive::{ExportOptions, mirror, plan_mirror};
use crate::error::{Error, ErrorKind, Result};
use crate::job::alert::AlertKey;
use crate::job::record::{History, StepOutcome};
use crate::job::space::{COMPRESS_HARDER_PERCENT, DiskUsage};
use crate::ops::backup::{BackupOptions, BackupSummary, Source};
use crate::ops::check::{CheckOptions, check_snapshot};
use crate::ops::gc::GcOptions;
use crate::pg::{PgBackupOptions, VerifyOptions};
use crate::repository::lock::LockMode;
use crate::repository::repo::Repo;
use std::path::Path;

/// The steps, in the original spec's order.
pub(super) fn all(job: &mut Job<'_>) {
    if job
        .step("precheck", AlertKey::BackupFailed, precheck)
        .is_none()
    {
        return;
    }
    space_alert(job);
    let Some(summary) = job.step("backup", AlertKey::BackupFailed, backup) else {
        return;
    };
    job.snapshot = Some(summary.snapshot.to_hex());
    let st = summary.stats;
    let m = &mut job.metrics;
    m.bytes_read = st.bytes_read;
    m.bytes_added = st.bytes_added;
    m.tamano_final = st.bytes_added;
    m.ratio_compresion =
        (st.new_raw_bytes > 0).then(|| st.bytes_added as f64 * 100.0 / st.new_raw_bytes as f64);
    m.dedup_ratio = (st.bytes_read > 0)
        .then(|| 1.0 - (st.new_raw_bytes.min(st.bytes_read) as f64 / st.bytes_read as f64));
    if job.opts.verify {
        let ok = job.step("verify", AlertKey::IntegrityFailed, |j| verify(j, &summary));
        job.verified = Some(ok.is_some());
    } else {
        job.record("verify", StepOutcome::Skipped, 0.0, "--no-verify");
    }
    if job.verified == Some(false) {
        // The older snapshots may be the last good restore points now: forgetting any, or
        // letting gc rewrite packs of a damaged repository, could lose what is left.
        let why = "skipped: the new snapshot failed its verification; keep every older restore point until `masclet check --read-data` is clean";
        job.record("retention", StepOutcome::Skipped, 0.0, why);
        job.record("gc", StepOutcome::Skipped, 0.0, why);
    } else if job
        .step("retention", AlertKey::RotationFailed, retention)
        .is_some()
    {
        job.step("gc", AlertKey::RotationFailed, |j| gc(j, false));
    }
    if job.opts.export_root.is_some() {
        job.step("export", AlertKey::BackupFailed, export);
    }
}

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
fn precheck(job: &mut Job<'_>) -> Result<((), Done)> {
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
fn space_alert(job: &mut Job<'_>) {
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

/// The backup, tagged with the tier. On a full disk: recover space once, retry once.
fn backup(job: &mut Job<'_>) -> Result<(BackupSummary, Done)> {
    match backup_once(job) {
        Err(e) if e.io_kind() == Some(std::io::ErrorKind::StorageFull) => {
            let recovered = recover_space(job);
            let (s, mut done) = backup_once(job).inspect_err(|e2| {
                let detail =
                    format!("the disk filled during the backup, and again after {recovered}: {e2}");
                job.raise(AlertKey::SpaceLow, detail, true);
            })?;
            done.detail = format!("{} (after a full disk: {recovered})", done.detail);
            done.outcome = StepOutcome::Warning;
            Ok((s, done))
        }
        other => other,
    }
}

fn backup_once(job: &mut Job<'_>) -> Result<(BackupSummary, Done)> {
    let mut repo = job.open("backup", LockMode::Shared)?;
    let opts =
        BackupOptions::new(vec![job.opts.tier.clone()], None).min_size(job.opts.min_backup_size);
    let mut harder = "";
    if DiskUsage::of(&job.opts.repo_dir).is_ok_and(|u| u.above(COMPRESS_HARDER_PERCENT)) {
        repo.compress_at_least(HARDER_ZSTD_LEVEL);
        harder = ", compressed harder (disk above 90%)";
    }
    let progress = job.hooks.progress;
    let s = match &job.opts.source {
        RunSource::Database(db) => {
            let pg = PgBackupOptions {
                target: db.target.clone(),
                tools: db.tools.clone(),
                shape: db.shape,
                repo_dir: Some(job.opts.repo_dir.clone()),
                min_free: 0,
                backup: opts,
            };
            crate::pg::backup_pg(&mut repo, &pg, progress)?.backup
        }
        RunSource::Paths(paths) => {
            crate::ops::backup::backup(&mut repo, Source::Paths(paths.clone()), &opts, progress)?
        }
    };
    let st = &s.stats;
    let detail = format!(
        "snapshot {} saved: read {}, added {} ({} new of {} chunks){harder}",
        s.snapshot.short(),
        human(st.bytes_read),
        human(st.bytes_added),
        st.new_chunks,
        st.chunks
    );
    Ok((s, Done::ok(detail)))
}

/// Read the new snapshot back; a database snapshot is also test-restored.
fn verify(job: &mut Job<'_>, s: &BackupSummary) -> Result<((), Done)> {
    let repo = job.open("verify", LockMode::Shared)?;
    let report = check_snapshot(
        &repo,
        s.snapshot,
        CheckOptions::new(true),
        job.hooks.progress,
    )?;

    if matches!(job.opts.source, RunSource::Paths(_)) {
        // A snapshot of files has no test restore beyond this read-back, which checks every
        // byte as restore would: it is what `status` shows as the last verified restore.
        // (A database snapshot's test restore records itself.)
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let json = serde_json::json!({
            "kind": "read-back",
            "ok": report.ok(),
            "files": s.stats.files,
            "problems": report.problems,
        });
        if let Err(e) =
            repo.index()
                .record_verification(&s.snapshot, &now, report.ok(), &json.to_string())
        {
            job.warnings
                .push(format!("verification not recorded in the index: {e}"));
        }
    }
    if !report.ok() {
        let first = report
            .problems
            .first()
            .map(|p| format!("{}: {}", p.object, p.message))
            .unwrap_or_default();
        return Err(Error::corrupt(format!(
            "snapshot {} does not read back: {} problems, first {first}; run `masclet check --read-data`",
            s.snapshot.short(),
            report.problems.len()
        )));
    }
    let mut detail = format!("{} files' content read back and verified", s.stats.files);
    if let RunSource::Database(db) = &job.opts.source {
        let opts = VerifyOptions {
            target: db.target.clone(),
            verify_target: db.verify_target.clone(),
            tools: db.tools.clone(),
            with_roles: false,
        };
        let r = crate::pg::verify(&repo, s.snapshot, &opts, job.hooks.progress)?;
        let failed: Vec<&str> = r
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect();
        if !r.ok {
            let kind = if r.damaged {
                ErrorKind::Corrupt
            } else {
                ErrorKind::VerifyFailed
            };
            let previous = r
                .previous_good
                .map(|p| format!("; the newest snapshot that restored well is {}", p.short()))
                .unwrap_or_default();
            return Err(Error::new(
                kind,
                format!(
                    "test restore of snapshot {} failed: {}{previous}",
                    s.snapshot.short(),
                    failed.join(", ")
                ),
            ));
        }
        detail.push_str(&format!(
            "; test restore passed {} checks in {:.1} s",
            r.checks.len(),
            r.duration_secs
        ));
    }
    Ok(((), Done::ok(detail)))
}

/// Forget what the retention policy does not keep.
fn retention(job: &mut Job<'_>) -> Result<(u64, Done)> {
    let repo = job.open("forget", LockMode::Exclusive)?;
    let removed = forget_by_policy(job, &repo)?;
    Ok((removed.0, Done::ok(removed.1)))
}

fn forget_by_policy(job: &Job<'_>, repo: &Repo) -> Result<(u64, String)> {
    let (refs, unreadable) = crate::ops::forget::snapshot_refs(repo)?;
    let plan = crate::ops::retention::plan(&refs, &job.opts.policy, &chrono::Local);
    let s = crate::ops::forget::forget(repo, &plan)?;
    let mut detail = format!("kept {}, forgot {}", s.kept, s.removed);
    if !unreadable.is_empty() {
        detail.push_str(&format!(
            ", {} unreadable snapshots left alone (run `masclet check`)",
            unreadable.len()
        ));
    }
    Ok((s.removed, detail))
}

/// gc, when due (`GC_INTERVAL_DAYS` since the last run's gc) or `forced` (space short), or
/// when the disk is past the alert threshold.
fn gc(job: &mut Job<'_>, forced: bool) -> Result<((), Done)> {
    let short = DiskUsage::of(&job.opts.repo_dir).is_ok_and(|u| u.above(job.opts.alert_percent));
    if !forced && !short && !gc_due(job) {
        return Ok((
            (),
            Done::skipped(format!(
                "not due (every {} days, or when the disk passes {:.0}%)",
                job.opts.gc_interval_days, job.opts.alert_percent
            )),
        ));
    }
    let mut repo = job.open("gc", LockMode::Exclusive)?;
    let freed = gc_now(&mut repo, job)?;
    job.metrics.espacio_liberado += freed;
    Ok(((), Done::ok(format!("freed {}", human(freed)))))
}

fn gc_now(repo: &mut Repo, job: &Job<'_>) -> Result<u64> {
    let plan = crate::ops::gc::plan(repo, &GcOptions::default(), job.hooks.progress)?;
    Ok(crate::ops::gc::execute(repo, &plan, job.hooks.progress)?.bytes_freed)
}

/// Whether the last gc that ran (in any tier's run) is older than the interval.
fn gc_due(job: &Job<'_>) -> bool {
    let Ok(runs) = History::in_repo(&job.opts.repo_dir).read() else {
        return true;
    };
    let last = runs.records.iter().rev().find_map(|r| {
        r.steps
            .iter()
            .any(|s| s.name == "gc" && s.outcome == StepOutcome::Ok)
            .then(|| chrono::DateTime::parse_from_rfc3339(&r.finished).ok())
            .flatten()
    });
    let interval = chrono::Duration::days(i64::from(job.opts.gc_interval_days));
    last.is_none_or(|t| chrono::Utc::now() - t.to_utc() >= interval)
}

/// The classic tier folders, mirrored from the snapshots' tier tags.
fn export(job: &mut Job<'_>) -> Result<((), Done)> {
    let root = job.opts.export_root.clone().unwrap_or_default();
    let repo = job.open("export", LockMode::Shared)?;
    let plan = plan_mirror(&repo, &root)?;
    let s = mirror(
        &repo,
        &plan,
        &ExportOptions::with_threads(0),
        job.hooks.progress,
    )?;
    if let Some(e) = s.first_error {
        return Err(Error::new(
            e.kind(),
            format!("{} exports failed, the first: {e}", s.failed.len()),
        ));
    }
    let detail = format!(
        "{} exports in {} ({} removed, {} skipped)",
        s.exported.len(),
        root.display(),
        s.removed.len(),
        s.skipped.len()
    );
    let done = if s.skipped.is_empty() {
        Done::ok(detail)
    } else {
        Done::warning(detail)
    };
    Ok(((), done))
}

/// The original spec's remedy for a full disk: temporary files and old logs, then
/// retention and gc. Returns what it did, for the step's detail; its own failures are
/// reported there, not raised (the caller's check decides).
fn recover_space(job: &mut Job<'_>) -> String {
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
