//! The steps of a run, each a function of the [`Job`]: what it calls in the engine, what
//! it reports, which alert its failure raises. The checks of the disk around them are in
//! `space.rs`.

use super::space::{human, precheck, recover_space, space_alert};
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
        job.warnings.extend(r.warnings.iter().cloned());
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

pub(super) fn forget_by_policy(job: &Job<'_>, repo: &Repo) -> Result<(u64, String)> {
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

pub(super) fn gc_now(repo: &mut Repo, job: &Job<'_>) -> Result<u64> {
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
