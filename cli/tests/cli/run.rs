//! `masclet run -t TIER`, the nightly job, through the binary: from the original system's
//! `.env`, a run leaves a snapshot, a history line, the Prometheus textfile, log lines and
//! the classic exports; failures are recorded with their alert and exit code; one run at a
//! time; a killed run blocks nothing.

use super::*;
use serde_json::Value;

/// The original `.env` with what a site adds for the nightly job.
pub(super) fn env_file(env: &Env, extra: &str) -> PathBuf {
    let root = env.path("backups");
    let text = format!(
        "BACKUP_ROOT=\"{}\"
RETENTION_DAILY=7
RETENTION_WEEKLY=4
RETENTION_MONTHLY=12
RETENTION_YEARLY=5
MIN_BACKUP_SIZE=1048576  # 1MB
MIN_FREE_SPACE=1M
LOG_DIR={}
METRICS_FILE={}
{extra}",
        root.display(),
        env.path("logs").display(),
        env.path("masclet.prom").display(),
    );
    let path = env.path("masclet.env");
    std::fs::write(&path, text).unwrap();
    path
}

/// An Env whose repository is BACKUP_ROOT/store, as the original layout puts it.
fn original_env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("backups/store");
    std::fs::create_dir_all(dir.path().join("backups")).unwrap();
    let env = Env { dir, repo };
    env.ok(&["init"]);
    std::fs::create_dir(env.path("data")).unwrap();
    std::fs::write(
        env.path("data/masclet_imperi.sql"),
        masclet_tests::golden_bytes(2_000_000, 17),
    )
    .unwrap();
    env
}

fn run(env: &Env, config: &Path, tier: &str) -> Output {
    env.cmd(&[
        "--config",
        config.to_str().unwrap(),
        "run",
        "-t",
        tier,
        "--json",
    ])
    .env_remove("MASCLET_REPO")
    .output()
    .unwrap()
}

fn record(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "run printed no JSON ({e}): {}",
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn history(env: &Env) -> Vec<Value> {
    std::fs::read_to_string(env.repo.join("ops/runs.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_nightly_run_from_the_original_env_leaves_snapshot_history_metrics_log_and_exports() {
    let env = original_env();
    let cfg = env_file(
        &env,
        &format!(
            "BACKUP_PATHS={}\nEXPORT_MIRROR=true\n",
            env.path("data").display()
        ),
    );
    let o = run(&env, &cfg, "daily");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut r = record(&o);
    assert_eq!(r["warnings"], serde_json::json!([]));
    assert_eq!(r["record_errors"], serde_json::json!([]));
    r.as_object_mut().unwrap().remove("warnings");
    r.as_object_mut().unwrap().remove("record_errors");
    let steps: Vec<(&str, &str)> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("precheck", "ok"),
            ("backup", "ok"),
            ("verify", "ok"),
            ("retention", "ok"),
            ("gc", "ok"),
            ("export", "ok")
        ]
    );
    for k in [
        "tiempo_total",
        "tamaño_final",
        "ratio_compresion",
        "espacio_liberado",
    ] {
        assert!(r["metrics"].get(k).is_some(), "{k} missing: {r}");
    }
    assert_eq!(r["metrics"]["bytes_read"], 2_000_000);
    // The snapshot, tagged with its tier.
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["id"], r["snapshot"]);
    assert!(
        snaps[0]["tags"]
            .as_array()
            .unwrap()
            .contains(&"daily".into())
    );
    // The history holds the same record.
    assert_eq!(history(&env), vec![r.clone()]);
    // The Prometheus textfile.
    let prom = std::fs::read_to_string(env.path("masclet.prom")).unwrap();
    assert!(
        prom.contains("masclet_last_run_success{tier=\"daily\"} 1"),
        "{prom}"
    );
    assert!(prom.contains("masclet_tamano_final_bytes{tier=\"daily\"}"));
    // One log line per step, readable as text.
    let log = std::fs::read_to_string(env.path("logs/backup.log")).unwrap();
    for s in [
        "precheck ok",
        "backup ok",
        "verify ok",
        "export ok",
        "run ok (exit 0)",
    ] {
        assert!(log.contains(s), "{s} missing from the log:\n{log}");
    }
    // The classic export, where the original system put it, checked by real tools.
    let daily = env.path("backups/daily");
    let tarball = std::fs::read_dir(&daily)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .find(|n| n.starts_with("masclet_daily_") && n.ends_with(".tar.gz"))
        .expect("an export in backups/daily");
    let sum = Command::new("sha256sum")
        .arg("-c")
        .arg(format!("{tarball}.sha256"))
        .current_dir(&daily)
        .output()
        .unwrap();
    assert!(
        sum.status.success(),
        "{}",
        String::from_utf8_lossy(&sum.stdout)
    );
    // The second night stores nothing new and does not collect garbage again.
    let r2 = record(&run(&env, &cfg, "daily"));
    assert_eq!(r2["metrics"]["tamaño_final"], 0);
    let gc = r2["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "gc")
        .unwrap();
    assert_eq!(gc["outcome"], "skipped");
    assert_eq!(r2["outcome"], "ok");
    assert_eq!(history(&env).len(), 2);
}

#[test]
fn a_source_below_min_backup_size_records_backup_failed_and_commits_nothing() {
    let env = original_env();
    std::fs::create_dir(env.path("small")).unwrap();
    std::fs::write(env.path("small/x.sql"), b"-- 10 bytes").unwrap();
    let cfg = env_file(
        &env,
        &format!("BACKUP_PATHS={}\n", env.path("small").display()),
    );
    let o = run(&env, &cfg, "daily");
    assert_eq!(o.status.code(), Some(1));
    let r = record(&o);
    assert_eq!(r["outcome"], "failed");
    assert_eq!(r["alerts"], serde_json::json!(["backup_failed"]));
    assert!(r["snapshot"].is_null());
    assert!(env.snapshots().is_empty());
    let log = std::fs::read_to_string(env.path("logs/backup.log")).unwrap();
    assert!(log.contains("ERROR [daily] backup failed"), "{log}");
}

#[test]
fn a_second_run_while_one_is_going_refuses_with_exit_4_and_records_nothing() {
    let env = original_env();
    let cfg = env_file(
        &env,
        &format!("BACKUP_PATHS={}\n", env.path("data").display()),
    );
    // The first run's lock, held by another process exactly as a run holds it.
    std::fs::create_dir_all(env.repo.join("ops")).unwrap();
    let lock = env.repo.join("ops/run.lock");
    // -o: the lock stays with flock itself, so killing it releases the lock.
    let mut holder = Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let o = loop {
        let o = run(&env, &cfg, "daily");
        if o.status.code() == Some(4) || start.elapsed().as_secs() > 10 {
            break o;
        }
        // flock may not hold it yet.
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let _ = holder.kill();
    let _ = holder.wait();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("another masclet run is in progress"), "{err}");
    assert!(env.snapshots().is_empty());
    assert!(history(&env).is_empty());
    // Once the holder is gone the next run goes ahead.
    assert_eq!(run(&env, &cfg, "daily").status.code(), Some(0));
}

#[test]
fn a_run_killed_mid_way_blocks_nothing_and_the_next_run_and_check_pass() {
    let env = original_env();
    std::fs::write(
        env.path("data/big.bin"),
        masclet_tests::golden_bytes(40_000_000, 3),
    )
    .unwrap();
    let cfg = env_file(
        &env,
        &format!("BACKUP_PATHS={}\n", env.path("data").display()),
    );
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..3 {
        let child = env
            .cmd(&["--config", cfg.to_str().unwrap(), "run", "-t", "daily"])
            .env_remove("MASCLET_REPO")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        kill_at_random(child, std::time::Duration::from_secs(3), &mut seed, 1.0);
    }
    let o = run(&env, &cfg, "daily");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    env.ok(&["check", "--read-data"]);
    let out = env.path("restored");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    same_tree(&env.path("data"), &out.join("data"));
}

#[test]
fn nothing_to_back_up_is_an_error_that_names_the_settings() {
    let env = original_env();
    let cfg = env_file(&env, "");
    let o = run(&env, &cfg, "daily");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("DATABASE_URL") && err.contains("BACKUP_PATHS"),
        "{err}"
    );
}

/// A repository on a small tmpfs (where temporary files may go too), if this process may
/// mount one. Fields drop in order: the tmpfs is unmounted before its folder is removed.
struct SmallDisk {
    _mount: super::media::Mount,
    env: Env,
}

fn small_disk(test: &str, size: &str) -> Option<SmallDisk> {
    if !super::media::root_or_skip(test) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let opt = format!("size={size}");
    if !super::media::run_mount(&["-t", "tmpfs", "-o", &opt, "tmpfs", disk.to_str().unwrap()]) {
        eprintln!("skipping {test}: tmpfs mount refused");
        return None;
    }
    let env = Env {
        repo: disk.join("repo"),
        dir,
    };
    let small = SmallDisk {
        _mount: super::media::Mount(disk),
        env,
    };
    small.env.ok(&["init"]);
    Some(small)
}

fn set_old(path: &Path) {
    let two_days = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86400);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(two_days)
        .unwrap();
}

#[test]
fn a_disk_that_fills_mid_backup_is_cleaned_and_the_backup_retried_once() {
    let Some(disk) = small_disk(
        "a_disk_that_fills_mid_backup_is_cleaned_and_the_backup_retried_once",
        "24m",
    ) else {
        return;
    };
    let env = &disk.env;
    let tmp = env.path("disk/tmp");
    std::fs::create_dir(&tmp).unwrap();
    // A temporary file a crashed job left two days ago: 15 MiB of the 24.
    let stale = tmp.join("masclet_backup_20261201_0230");
    std::fs::write(&stale, masclet_tests::golden_bytes(15 << 20, 1)).unwrap();
    set_old(&stale);
    std::fs::create_dir(env.path("data")).unwrap();
    std::fs::write(
        env.path("data/dump.bin"),
        masclet_tests::golden_bytes(9 << 20, 2),
    )
    .unwrap();
    let cfg = env_file(
        env,
        &format!("BACKUP_PATHS={}\n", env.path("data").display()),
    );
    let o = env
        .cmd(&[
            "--config",
            cfg.to_str().unwrap(),
            "run",
            "-t",
            "daily",
            "--json",
        ])
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    let r = record(&o);
    let backup = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "backup")
        .unwrap();
    assert_eq!(backup["outcome"], "warning", "{r}");
    assert!(
        backup["detail"]
            .as_str()
            .unwrap()
            .contains("after a full disk"),
        "{r}"
    );
    assert!(!stale.exists(), "the stale temporary file was not cleaned");
    assert_eq!(o.status.code(), Some(0), "{r}");
    env.ok(&["check", "--read-data"]);
    let out = env.path("restored");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    same_tree(&env.path("data"), &out.join("data"));
}

#[test]
fn a_disk_too_full_even_after_the_remedy_fails_with_space_low_and_keeps_the_old_snapshot() {
    let Some(disk) = small_disk(
        "a_disk_too_full_even_after_the_remedy_fails_with_space_low_and_keeps_the_old_snapshot",
        "12m",
    ) else {
        return;
    };
    let env = &disk.env;
    std::fs::create_dir(env.path("old")).unwrap();
    std::fs::write(
        env.path("old/a.bin"),
        masclet_tests::golden_bytes(2 << 20, 4),
    )
    .unwrap();
    env.ok(&[
        "backup",
        "--tag",
        "daily",
        env.path("old").to_str().unwrap(),
    ]);
    std::fs::create_dir(env.path("data")).unwrap();
    std::fs::write(
        env.path("data/dump.bin"),
        masclet_tests::golden_bytes(16 << 20, 5),
    )
    .unwrap();
    let cfg = env_file(
        env,
        &format!("BACKUP_PATHS={}\n", env.path("data").display()),
    );
    let o = env
        .cmd(&[
            "--config",
            cfg.to_str().unwrap(),
            "run",
            "-t",
            "daily",
            "--json",
        ])
        .env("TMPDIR", env.path("disk"))
        .output()
        .unwrap();
    let r = record(&o);
    assert_eq!(o.status.code(), Some(1), "{r}");
    let alerts = r["alerts"].as_array().unwrap();
    assert!(
        alerts.contains(&"space_low".into()) && alerts.contains(&"backup_failed".into()),
        "{r}"
    );
    let backup = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "backup")
        .unwrap();
    assert!(backup["detail"].as_str().unwrap().contains("full"), "{r}");
    // Nothing half-made was committed, and the old snapshot is whole.
    assert_eq!(env.snapshots().len(), 1);
    env.ok(&["check", "--read-data"]);
}

#[test]
fn an_unreachable_database_is_backup_failed_posted_and_mailed_as_urgent_without_any_secret() {
    use super::servers::{HttpSink, SmtpSink};
    const DB_PASSWORD: &str = "Db-S3cret-pw";
    const HOOK_SECRET: &str = "hook-s3cret-key";
    const MAIL_PASSWORD: &str = "mail-pa55word";
    let env = original_env();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let http = HttpSink::start(vec![]);
    let smtp = SmtpSink::start();
    let cfg = env_file(
        &env,
        &format!(
            "DATABASE_URL=postgresql://masclet:{DB_PASSWORD}@127.0.0.1:{port}/masclet_imperi
NOTIFY_WEBHOOK_URL={}
NOTIFY_WEBHOOK_SECRET={HOOK_SECRET}
SMTP_HOST=127.0.0.1
SMTP_PORT={}
SMTP_USER=ops
SMTP_PASSWORD={MAIL_PASSWORD}
NOTIFY_EMAIL_TO=ops@farm.example
",
            http.url("/hooks/T0KEN"),
            smtp.port()
        ),
    );
    let o = run(&env, &cfg, "daily");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(7), "{out}");
    let r = record(&o);
    assert_eq!(r["alerts"], serde_json::json!(["backup_failed"]));
    assert!(r["snapshot"].is_null());
    // The webhook got the alert, urgent, with the original text and the run's metrics.
    let posts = http.requests();
    assert_eq!(posts.len(), 1, "{posts:?}");
    let body: Value = serde_json::from_slice(&posts[0].body).unwrap();
    assert_eq!(body["alert"], "backup_failed");
    assert_eq!(body["message"], "Error en proceso de backup");
    assert_eq!(body["urgent"], true);
    assert_eq!(body["tier"], "daily");
    assert!(body["metrics"]["tiempo_total"].as_f64().unwrap() > 0.0);
    let expected = posts[0].expected_signature(HOOK_SECRET).unwrap();
    assert_eq!(
        posts[0].header("x-masclet-signature"),
        Some(expected.as_str())
    );
    // And the mail.
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    let subject = mails[0].header("subject").unwrap();
    assert!(subject.contains("URGENT backup_failed"), "{subject}");
    assert!(mails[0].data.contains("Error en proceso de backup"));
    // No secret anywhere: output, log, history, textfile, webhook body, mail.
    let log = std::fs::read_to_string(env.path("logs/backup.log")).unwrap();
    let history = std::fs::read_to_string(env.repo.join("ops/runs.jsonl")).unwrap();
    let prom = std::fs::read_to_string(env.path("masclet.prom")).unwrap();
    let post = String::from_utf8_lossy(&posts[0].body).into_owned();
    for (what, text) in [
        ("output", &out),
        ("log", &log),
        ("history", &history),
        ("textfile", &prom),
        ("webhook body", &post),
        ("mail", &mails[0].data),
    ] {
        for secret in [
            DB_PASSWORD,
            HOOK_SECRET,
            MAIL_PASSWORD,
            "T0KEN",
            "s3cret pass",
        ] {
            assert!(!text.contains(secret), "{what} holds {secret}:\n{text}");
        }
    }
    assert!(log.contains("ERROR [daily] precheck failed"), "{log}");
    assert!(log.contains("notify ok"), "{log}");
}

#[test]
fn half_configured_mail_still_backs_up_but_the_run_fails_on_its_alerts() {
    let env = original_env();
    let cfg = env_file(
        &env,
        &format!(
            "BACKUP_PATHS={}\nSMTP_HOST=127.0.0.1\nSPACE_ALERT_PERCENT=0\n",
            env.path("data").display()
        ),
    );
    let o = run(&env, &cfg, "daily");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("NOTIFY_EMAIL_TO"), "{err}");
    let r = record(&o);
    assert!(
        r["snapshot"].is_string(),
        "the backup must not depend on the alerts: {r}"
    );
    let notify = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "notify")
        .unwrap();
    assert_eq!(notify["outcome"], "failed", "{r}");
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn above_90_percent_disk_use_new_data_is_compressed_harder_and_space_low_is_raised() {
    let test = "above_90_percent_disk_use_new_data_is_compressed_harder_and_space_low_is_raised";
    let Some(disk) = small_disk(test, "16m") else {
        return;
    };
    let env = &disk.env;
    // Someone else's file fills the disk to about 94%.
    std::fs::write(env.path("disk/other.bin"), vec![0x5au8; 15 << 20]).unwrap();
    std::fs::create_dir(env.path("data")).unwrap();
    let rows: String = (0..20_000)
        .map(|i| format!("{i}\tvaca {i}\t2026-12-0{}\n", i % 9 + 1))
        .collect();
    std::fs::write(env.path("data/animals.tsv"), rows).unwrap();
    let cfg = env_file(
        env,
        &format!("BACKUP_PATHS={}\n", env.path("data").display()),
    );
    let o = env
        .cmd(&[
            "--config",
            cfg.to_str().unwrap(),
            "run",
            "-t",
            "daily",
            "--json",
        ])
        .env("MIN_FREE_SPACE", "100K")
        .env("MIN_BACKUP_SIZE", "0")
        .output()
        .unwrap();
    let r = record(&o);
    let backup = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "backup");
    let backup = backup.unwrap_or_else(|| panic!("no backup step: {r}"));
    assert!(
        backup["detail"]
            .as_str()
            .unwrap()
            .contains("compressed harder"),
        "{r}"
    );
    assert!(
        r["alerts"]
            .as_array()
            .unwrap()
            .contains(&"space_low".into()),
        "{r}"
    );
    assert_eq!(o.status.code(), Some(0), "{r}");
    let out = env.path("restored");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    same_tree(&env.path("data"), &out.join("data"));
}

#[test]
fn a_reader_that_goes_away_does_not_change_the_runs_exit_status() {
    let env = original_env();
    std::fs::create_dir(env.path("small")).unwrap();
    std::fs::write(env.path("small/x.sql"), b"-- 10 bytes").unwrap();
    let cfg = env_file(
        &env,
        &format!("BACKUP_PATHS={}\n", env.path("small").display()),
    );
    for args in [
        &["run", "-t", "daily"][..],
        &["--json", "run", "-t", "daily"],
        &["status"],
    ] {
        let mut c = env.cmd(&[&["--config", cfg.to_str().unwrap()][..], args].concat());
        let mut child = c
            .env_remove("MASCLET_REPO")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The reader leaves before a word is printed (`| head -0`).
        drop(child.stdout.take());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(1), "masclet {args:?} ended {status:?}");
    }
}

#[test]
fn a_full_disk_under_the_log_and_the_textfile_keeps_the_backup_but_fails_the_run() {
    let Some(disk) = small_disk(
        "a_full_disk_under_the_log_and_the_textfile_keeps_the_backup_but_fails_the_run",
        "1m",
    ) else {
        return;
    };
    let env = &disk.env;
    // The repository elsewhere; its log folder and textfile on the full disk.
    let repo = env.path("repo");
    env.cmd(&["init"])
        .env("MASCLET_REPO", &repo)
        .output()
        .unwrap();
    let logs = env.path("disk/logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(logs.join("backup.log"), b"").unwrap();
    let mut filler = std::fs::File::create(env.path("disk/filler")).unwrap();
    let block = vec![0xa5u8; 4096];
    while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    drop(filler);
    std::fs::create_dir(env.path("data")).unwrap();
    std::fs::write(
        env.path("data/dump.sql"),
        masclet_tests::golden_bytes(200_000, 8),
    )
    .unwrap();
    let o = env
        .cmd(&["run", "-t", "daily", "--json"])
        .env("MASCLET_REPO", &repo)
        .env("BACKUP_PATHS", env.path("data"))
        .env("LOG_DIR", &logs)
        .env("METRICS_FILE", env.path("disk/masclet.prom"))
        .env("MIN_FREE_SPACE", "1M")
        .env("MIN_BACKUP_SIZE", "0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let r = record(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        r["snapshot"].is_string(),
        "the backup itself must stand: {r}"
    );
    assert_eq!(r["outcome"], "ok");
    assert!(
        err.contains("METRICS_FILE not written") && err.contains("operation log"),
        "{err}"
    );
    assert!(
        err.contains("No space left") || err.contains("full"),
        "{err}"
    );
    // The history, on the repository's own disk, has the run.
    assert_eq!(
        std::fs::read_to_string(repo.join("ops/runs.jsonl"))
            .unwrap()
            .lines()
            .count(),
        1
    );
}
