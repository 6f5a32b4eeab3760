//! The health rules: what makes `masclet status` exit non-zero, and which of the original
//! spec's alerts are active. They read only what [`super::status`] gathered, so they can
//! be tested on made-up figures.
//!
//! Unhealthy when:
//! - the newest `daily` snapshot is older than 26 h, or there is none (the snapshot's own
//!   time counts, not the run's: a run that saved nothing did not back anything up);
//! - the last run failed;
//! - the last test restore failed (the newest verified snapshot's, the newest recorded
//!   of any snapshot, or the last run's own verification);
//! - the disk is more used than `SPACE_ALERT_PERCENT`, or has less than `MIN_FREE_SPACE`
//!   available.

use super::{ActiveAlert, Status, StatusOptions, short};
use crate::job::alert::AlertKey;
use crate::job::record::StepOutcome;

/// Fill in `st`'s disk state, active alerts, problems and verdict from what it holds.
pub fn judge(st: &mut Status, opts: &StatusOptions) {
    let mut found: Vec<(AlertKey, String)> = Vec::new();

    let daily = st.tiers.iter().find(|t| t.tier == "daily");
    match daily.and_then(|t| Some((t.time.as_deref()?, t.age_secs?))) {
        None => found.push((AlertKey::BackupFailed, "no daily backup yet".into())),
        Some((time, age)) if age > opts.max_daily_age.num_seconds() => found.push((
            AlertKey::BackupFailed,
            format!(
                "no daily backup in {} h: the newest is from {time}, {} h ago",
                opts.max_daily_age.num_hours(),
                age / 3600
            ),
        )),
        Some(_) => {}
    }

    if let Some(run) = &st.last_run {
        let what = format!("the last run ({}, started {})", run.tier, run.started);
        if !run.succeeded() {
            let failed: Vec<_> = run
                .steps
                .iter()
                .filter(|s| s.outcome == StepOutcome::Failed)
                .collect();
            for s in &failed {
                let key = match s.name.as_str() {
                    "verify" => AlertKey::IntegrityFailed,
                    "retention" | "gc" => AlertKey::RotationFailed,
                    _ => AlertKey::BackupFailed,
                };
                let detail = if s.detail.is_empty() {
                    format!("{what} failed at {}", s.name)
                } else {
                    format!("{what} failed at {}: {}", s.name, s.detail)
                };
                found.push((key, detail));
            }
            if failed.is_empty() {
                found.push((AlertKey::BackupFailed, format!("{what} failed")));
            }
        }
        // The run's own alerts, but for space: the disk as it is now decides that.
        for &key in &run.alerts {
            if key.is_problem() && key != AlertKey::SpaceLow && !found.iter().any(|f| f.0 == key) {
                found.push((key, format!("{what} raised {key}")));
            }
        }
        if run.verified == Some(false) {
            let snap = run.snapshot.as_deref().map_or("its snapshot", short);
            found.push((
                AlertKey::IntegrityFailed,
                format!("{what}: the verification of {snap} failed"),
            ));
        }
    }

    if let Some(v) = st.last_verified_restore.as_ref().filter(|v| !v.ok) {
        found.push((
            AlertKey::IntegrityFailed,
            format!(
                "the last verified restore failed: snapshot {} at {}",
                short(&v.snapshot),
                v.time
            ),
        ));
    }
    // A failed re-test of an older snapshot counts too: its data is damaged. When it is
    // the restore shown above, it was said already.
    let shown = st
        .last_verified_restore
        .as_ref()
        .map(|v| (v.snapshot.as_str(), v.time.as_str()));
    if let Some((id, time)) = &st.newest_verification_failed
        && shown != Some((id.as_str(), time.as_str()))
    {
        found.push((
            AlertKey::IntegrityFailed,
            format!(
                "the newest test restore failed: snapshot {} at {time}",
                short(id)
            ),
        ));
    }

    let disk = &mut st.disk;
    let mut low = false;
    if disk.used_percent > opts.alert_percent {
        low = true;
        found.push((
            AlertKey::SpaceLow,
            format!(
                "disk {:.1}% used, above SPACE_ALERT_PERCENT ({}%)",
                disk.used_percent, opts.alert_percent
            ),
        ));
    }
    if disk.available < opts.min_free {
        low = true;
        found.push((
            AlertKey::SpaceLow,
            format!(
                "{} bytes available, below MIN_FREE_SPACE ({} bytes)",
                disk.available, opts.min_free
            ),
        ));
    }
    disk.state = if low { "low" } else { "ok" }.to_owned();

    // One alert per key, its details in the order found; the same sentence only once.
    st.alerts.clear();
    st.problems.clear();
    for (key, detail) in found {
        if st.problems.contains(&detail) {
            continue;
        }
        st.problems.push(detail.clone());
        match st.alerts.iter_mut().find(|a| a.key == key) {
            Some(a) => {
                a.detail.push_str("; ");
                a.detail.push_str(&detail);
            }
            None => st.alerts.push(ActiveAlert {
                key,
                message: key.message().to_owned(),
                detail,
            }),
        }
    }
    st.healthy = st.problems.is_empty();
}

#[cfg(test)]
mod tests {
    use super::super::{TierStatus, VerifiedRestore};
    use super::*;
    use crate::job::record::{Metrics, RECORD_VERSION, RunRecord, StepRecord};
    use chrono::{Duration, Utc};

    fn opts() -> StatusOptions {
        StatusOptions {
            now: Utc::now(),
            alert_percent: 80.0,
            min_free: 1000,
            max_daily_age: Duration::hours(26),
        }
    }

    fn healthy_status() -> Status {
        let mut st = Status::default();
        st.tiers.push(TierStatus {
            tier: "daily".into(),
            snapshot: Some("ab".repeat(32)),
            time: Some("2026-12-03T02:00:00Z".into()),
            age_secs: Some(3 * 3600),
            count: 1,
            last_successful_run: None,
        });
        st.disk.used_percent = 40.0;
        st.disk.available = 1_000_000;
        st
    }

    fn run(steps: &[(&str, StepOutcome)]) -> RunRecord {
        RunRecord {
            version: RECORD_VERSION,
            tier: "daily".into(),
            host: "granja".into(),
            started: "2026-12-03T02:00:00Z".into(),
            finished: "2026-12-03T02:01:00Z".into(),
            outcome: steps.iter().map(|s| s.1).max().unwrap_or(StepOutcome::Ok),
            exit_code: 0,
            snapshot: None,
            verified: None,
            steps: steps
                .iter()
                .map(|&(name, outcome)| StepRecord {
                    name: name.into(),
                    outcome,
                    duration_secs: 1.0,
                    detail: "x".into(),
                })
                .collect(),
            metrics: Metrics::default(),
            alerts: vec![],
        }
    }

    fn keys(st: &Status) -> Vec<&str> {
        st.alerts.iter().map(|a| a.key.as_str()).collect()
    }

    #[test]
    fn a_fresh_daily_and_room_on_disk_is_healthy() {
        let mut st = healthy_status();
        st.last_run = Some(run(&[
            ("backup", StepOutcome::Ok),
            ("gc", StepOutcome::Skipped),
        ]));
        judge(&mut st, &opts());
        assert!(st.healthy, "{:?}", st.problems);
        assert_eq!(st.disk.state, "ok");
    }

    #[test]
    fn an_old_or_missing_daily_is_a_failed_backup() {
        let mut st = healthy_status();
        st.tiers[0].age_secs = Some(27 * 3600);
        judge(&mut st, &opts());
        assert_eq!(keys(&st), ["backup_failed"]);
        assert!(st.problems[0].contains("no daily backup in 26 h"));
        st.tiers[0] = TierStatus {
            tier: "daily".into(),
            ..TierStatus::default()
        };
        judge(&mut st, &opts());
        assert_eq!(st.problems, ["no daily backup yet"]);
    }

    #[test]
    fn failed_steps_map_to_the_original_alerts() {
        let mut st = healthy_status();
        st.last_run = Some(run(&[
            ("backup", StepOutcome::Ok),
            ("verify", StepOutcome::Failed),
            ("retention", StepOutcome::Failed),
        ]));
        judge(&mut st, &opts());
        assert!(!st.healthy);
        assert_eq!(keys(&st), ["integrity_failed", "rotation_failed"]);
        assert_eq!(st.alerts[0].message, "Error en verificación");
    }

    #[test]
    fn a_failed_test_restore_and_a_full_disk_are_unhealthy() {
        let mut st = healthy_status();
        st.last_verified_restore = Some(VerifiedRestore {
            snapshot: "cd".repeat(32),
            time: "2026-12-03T03:00:00Z".into(),
            ok: false,
        });
        st.disk.used_percent = 93.0;
        st.disk.available = 10;
        // The same failure, as the newest of all test restores: said once.
        st.newest_verification_failed = Some(("cd".repeat(32), "2026-12-03T03:00:00Z".into()));
        judge(&mut st, &opts());
        assert_eq!(keys(&st), ["integrity_failed", "space_low"]);
        assert_eq!(st.problems.len(), 3, "{:?}", st.problems);
        assert_eq!(st.disk.state, "low");
        // The alert's details join both space problems.
        assert!(st.alerts[1].detail.contains("MIN_FREE_SPACE"));
        assert!(st.alerts[1].detail.contains("SPACE_ALERT_PERCENT"));
        // An older snapshot's re-test failing, the newest snapshot's passing: unhealthy.
        let mut st = healthy_status();
        st.last_verified_restore = Some(VerifiedRestore {
            snapshot: "cd".repeat(32),
            time: "2026-12-03T03:00:00Z".into(),
            ok: true,
        });
        st.newest_verification_failed = Some(("ef".repeat(32), "2026-12-03T05:00:00Z".into()));
        judge(&mut st, &opts());
        assert_eq!(keys(&st), ["integrity_failed"]);
        assert!(st.problems[0].contains("efefefef"), "{:?}", st.problems);
    }
}
