//! The nightly job against a real local repository: what each failure records, which
//! alert it raises and what exit code it ends with.

use super::*;
use crate::disk::config::RepoConfig;
use crate::disk::keys::KdfParams;
use crate::progress::NoProgress;
use crate::repository::repo::{OpenOptions, init};
use crate::repository::storage::LocalStorage;
use std::cell::RefCell;
use std::sync::Arc;

struct Fixture {
    dir: tempfile::TempDir,
    alerts: RefCell<Vec<Alert>>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::create(&dir.path().join("repo")).unwrap();
        init(
            &storage,
            &storage.index_path(),
            b"pw",
            RepoConfig::new_default(),
            KdfParams::FAST_INSECURE,
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/animals.csv"), vec![7u8; 300_000]).unwrap();
        Self {
            dir,
            alerts: RefCell::new(Vec::new()),
        }
    }

    fn repo_dir(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn options(&self) -> RunOptions {
        RunOptions {
            tier: "daily".into(),
            repo_dir: self.repo_dir(),
            source: RunSource::Paths(vec![self.dir.path().join("data")]),
            verify: true,
            min_free: 0,
            min_backup_size: 0,
            alert_percent: 100.0,
            policy: KeepPolicy::ORIGINAL,
            gc_interval_days: 7,
            export_root: None,
            log_dir: Some(self.dir.path().join("logs")),
            metrics_file: None,
            notify_on_success: false,
        }
    }

    /// Run with `before_open` called with each operation's name before the repository
    /// opens, and channels that fail when `notify_fails`.
    fn run_with(
        &self,
        opts: &RunOptions,
        before_open: &dyn Fn(&str),
        notify_fails: bool,
    ) -> RunReport {
        let repo_dir = self.repo_dir();
        let open = |op: &str, lock: LockMode| {
            before_open(op);
            let storage = LocalStorage::open(&repo_dir)?;
            let index = storage.index_path();
            Repo::open(
                Arc::new(storage),
                &index,
                b"pw",
                &OpenOptions::new(op, Some(lock)),
            )
        };
        let notify = |a: &Alert| {
            self.alerts.borrow_mut().push(a.clone());
            Some(if notify_fails {
                vec!["webhook: connection refused".to_owned()]
            } else {
                vec![]
            })
        };
        let cleaned = RefCell::new(0);
        let clean = || {
            *cleaned.borrow_mut() += 1;
            Ok((0, "temporary files and old logs".to_owned()))
        };
        let hooks = RunHooks {
            open: &open,
            notify: &notify,
            clean_files: &clean,
            exit_code: |k| {
                if k == ErrorKind::Corrupt {
                    5
                } else {
                    1 + u8::from(k == ErrorKind::Precheck) * 8
                }
            },
            progress: &NoProgress,
        };
        run(opts, &hooks).unwrap()
    }

    fn keys(&self) -> Vec<AlertKey> {
        self.alerts.borrow().iter().map(|a| a.key).collect()
    }
}

fn step<'r>(r: &'r RunRecord, name: &str) -> &'r StepRecord {
    r.steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no {name} step in {r:?}"))
}

#[test]
fn a_good_run_saves_verifies_records_and_raises_nothing() {
    let f = Fixture::new();
    let r = f.run_with(&f.options(), &|_| {}, false).record;
    assert_eq!(r.outcome, StepOutcome::Ok, "{r:?}");
    assert_eq!(r.exit_code, 0);
    assert_eq!(r.verified, Some(true));
    assert!(r.snapshot.is_some());
    for s in ["precheck", "backup", "verify", "retention", "gc"] {
        assert_eq!(step(&r, s).outcome, StepOutcome::Ok, "{s}");
    }
    assert_eq!(r.metrics.bytes_read, 300_000);
    assert!(r.metrics.tamano_final > 0 && r.metrics.repository_bytes > r.metrics.tamano_final);
    assert!(f.keys().is_empty());
    let runs = History::in_repo(&f.repo_dir()).read().unwrap();
    assert_eq!(runs.records, vec![r]);
    let log = std::fs::read_to_string(f.dir.path().join("logs/backup.log")).unwrap();
    assert!(log.contains("[daily] backup ok"), "{log}");
    // The second night: gc is not due for another week.
    let r2 = f.run_with(&f.options(), &|_| {}, false).record;
    assert_eq!(step(&r2, "gc").outcome, StepOutcome::Skipped);
    assert_eq!(r2.outcome, StepOutcome::Ok, "a skipped gc is no news");
    assert_eq!(r2.metrics.tamano_final, 0, "nothing new the second night");
}

#[test]
fn a_pack_damaged_before_verification_raises_integrity_failed_and_exits_damaged() {
    let f = Fixture::new();
    let packs = f.repo_dir().join("packs");
    let damage = |op: &str| {
        if op != "verify" {
            return;
        }
        for d in std::fs::read_dir(&packs).unwrap().flatten() {
            for p in std::fs::read_dir(d.path()).unwrap().flatten() {
                let mut bytes = std::fs::read(p.path()).unwrap();
                let mid = bytes.len() / 3;
                bytes[mid] ^= 0x40;
                std::fs::write(p.path(), bytes).unwrap();
            }
        }
    };
    let r = f.run_with(&f.options(), &damage, false).record;
    assert_eq!(step(&r, "verify").outcome, StepOutcome::Failed);
    assert_eq!(r.verified, Some(false));
    assert_eq!(r.exit_code, 5);
    assert_eq!(f.keys(), vec![AlertKey::IntegrityFailed]);
    // The older snapshots may be the last good ones: nothing is forgotten or collected.
    assert_eq!(step(&r, "retention").outcome, StepOutcome::Skipped);
    assert_eq!(step(&r, "gc").outcome, StepOutcome::Skipped);
}

#[test]
fn too_little_free_space_tries_the_remedy_then_fails_with_space_low_and_saves_nothing() {
    let f = Fixture::new();
    let mut opts = f.options();
    opts.min_free = u64::MAX;
    let r = f.run_with(&opts, &|_| {}, false).record;
    assert_eq!(step(&r, "precheck").outcome, StepOutcome::Failed);
    assert!(step(&r, "precheck").detail.contains("MIN_FREE_SPACE"));
    assert!(
        step(&r, "precheck")
            .detail
            .contains("temporary files and old logs")
    );
    assert!(r.snapshot.is_none());
    assert_eq!(r.exit_code, 9);
    assert_eq!(f.keys(), vec![AlertKey::SpaceLow, AlertKey::BackupFailed]);
    // Out of space is urgent: tomorrow's backup will fail the same way.
    assert!(f.alerts.borrow()[0].urgent);
}

#[test]
fn a_missing_source_raises_backup_failed_and_skips_the_rest() {
    let f = Fixture::new();
    let mut opts = f.options();
    opts.source = RunSource::Paths(vec![f.dir.path().join("no-such-folder")]);
    let r = f.run_with(&opts, &|_| {}, false).record;
    assert_eq!(step(&r, "backup").outcome, StepOutcome::Failed);
    assert!(r.steps.iter().all(|s| s.name != "retention"));
    assert_eq!(f.keys(), vec![AlertKey::BackupFailed]);
    assert_ne!(r.exit_code, 0);
}

#[test]
fn an_alert_no_channel_took_fails_the_run_even_when_the_backup_is_fine() {
    let f = Fixture::new();
    let mut opts = f.options();
    opts.alert_percent = 0.0;
    let r = f.run_with(&opts, &|_| {}, true).record;
    assert_eq!(step(&r, "space").outcome, StepOutcome::Warning);
    assert_eq!(step(&r, "backup").outcome, StepOutcome::Ok);
    assert_eq!(step(&r, "notify").outcome, StepOutcome::Failed);
    assert!(step(&r, "notify").detail.contains("connection refused"));
    assert_eq!(r.exit_code, 1);
    assert_eq!(f.keys(), vec![AlertKey::SpaceLow]);
    // The metrics travel with the alert.
    assert!(f.alerts.borrow()[0].metrics.as_ref().unwrap().bytes_read > 0);
}

#[test]
fn success_summaries_are_sent_only_when_asked_for() {
    let f = Fixture::new();
    let mut opts = f.options();
    opts.notify_on_success = true;
    let r = f.run_with(&opts, &|_| {}, false).record;
    assert_eq!(r.alerts, vec![AlertKey::BackupOk]);
    assert_eq!(step(&r, "notify").outcome, StepOutcome::Ok);
}

#[test]
fn retention_forgets_what_the_policy_does_not_keep() {
    let f = Fixture::new();
    let mut opts = f.options();
    opts.policy = KeepPolicy {
        daily: 1,
        ..KeepPolicy::ORIGINAL
    };
    opts.policy.weekly = 0;
    opts.policy.monthly = 0;
    opts.policy.yearly = 0;
    f.run_with(&opts, &|_| {}, false);
    // A second night a moment later: the same day, so only the newest is kept.
    let r = f.run_with(&opts, &|_| {}, false).record;
    assert!(step(&r, "retention").detail.contains("forgot 1"), "{r:?}");
}
