//! `masclet status` and `masclet report --html`: health verdicts and exit codes on real
//! repositories with a run history written as the nightly job writes it, the report's
//! page, and that page in a real browser.

use super::*;
use chrono::{Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

mod browser;

fn ago(hours: i64) -> String {
    (Utc::now() - Duration::hours(hours)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A history line as `masclet run` writes it; `steps` are (name, outcome, detail).
fn record(
    hours_ago: i64,
    outcome: &str,
    verified: Option<bool>,
    steps: &[(&str, &str, &str)],
) -> Value {
    json!({
        "version": 1, "tier": "daily", "host": "granja",
        "started": ago(hours_ago), "finished": ago(hours_ago),
        "outcome": outcome, "exit_code": u8::from(outcome == "failed"),
        "snapshot": null, "verified": verified,
        "steps": steps.iter().map(|(n, o, d)| json!({"name": n, "outcome": o, "duration_secs": 12.5, "detail": d})).collect::<Vec<_>>(),
        "metrics": {"tiempo_total": 61.5, "tamaño_final": 4096, "ratio_compresion": 31.0, "espacio_liberado": 0,
                    "bytes_read": 600000, "bytes_added": 4096 * hours_ago.max(1), "dedup_ratio": 0.9,
                    "repository_bytes": 1_000_000 + 10_000 * (100 - hours_ago), "disk_used_percent": 40.0},
        "alerts": []
    })
}

fn append(env: &Env, line: &str) {
    let dir = env.repo.join("ops");
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.join("runs.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut f, line.as_bytes()).unwrap();
}

fn add_run(env: &Env, r: &Value) {
    append(env, &format!("{r}\n"));
}

/// `masclet --json status` with `vars` set: its exit code and document.
fn status_json(env: &Env, vars: &[(&str, &str)]) -> (i32, Value) {
    let o = env
        .cmd(&["--json", "status"])
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    (o.status.code().unwrap(), doc)
}

fn alert_keys(doc: &Value) -> Vec<String> {
    doc["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap().to_owned())
        .collect()
}

/// A repository with a daily snapshot taken `hours` ago.
fn with_daily(hours: i64) -> Env {
    let env = Env::new();
    write_source(&env.path("src"));
    let src = env.path("src");
    let time = ago(hours);
    env.ok(&[
        "backup",
        "--tag",
        "daily",
        "--time",
        &time,
        src.to_str().unwrap(),
    ]);
    env
}

/// The disk thresholds that any test machine passes.
const ROOMY: [(&str, &str); 2] = [("SPACE_ALERT_PERCENT", "100"), ("MIN_FREE_SPACE", "0")];

#[test]
fn an_empty_repository_is_unhealthy_until_its_first_daily_backup() {
    let env = Env::new();
    let o = env.cmd(&["status"]).envs(ROOMY).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("UNHEALTHY: no daily backup yet"), "{text}");
    let (code, doc) = status_json(&env, &ROOMY);
    assert_eq!((code, doc["healthy"].clone()), (1, json!(false)));
    assert_eq!(alert_keys(&doc), ["backup_failed"]);
    assert_eq!(doc["alerts"][0]["message"], "Error en proceso de backup");
}

#[test]
fn a_fresh_daily_and_a_good_run_are_healthy_with_the_original_metric_names() {
    let env = with_daily(2);
    add_run(
        &env,
        &record(
            2,
            "ok",
            Some(true),
            &[("backup", "ok", "saved"), ("gc", "skipped", "")],
        ),
    );
    let o = env.cmd(&["status"]).envs(ROOMY).output().unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.ends_with("healthy\n") && !text.contains("UNHEALTHY"),
        "{text}"
    );
    assert!(text.contains("2 h ago"), "{text}");
    assert!(
        text.contains("ok       backup         12.5 s  saved"),
        "{text}"
    );
    let (code, doc) = status_json(&env, &ROOMY);
    assert_eq!(code, 0);
    for k in [
        "tiempo_total",
        "tamaño_final",
        "ratio_compresion",
        "espacio_liberado",
    ] {
        assert!(
            doc["metrics"].get(k).is_some(),
            "{k} missing: {}",
            doc["metrics"]
        );
        assert!(doc["last_run"]["metrics"].get(k).is_some());
    }
    assert_eq!(doc["metrics"]["tiempo_total"], 61.5);
    let daily = &doc["tiers"][0];
    assert_eq!(
        (daily["tier"].as_str(), daily["count"].as_u64()),
        (Some("daily"), Some(1))
    );
    assert!((7000..7400).contains(&daily["age_secs"].as_i64().unwrap()));
    assert_eq!(doc["tiers"][1]["snapshot"], Value::Null);
    let repo = &doc["repository"];
    assert_eq!(repo["snapshots"], 1);
    assert!(repo["bytes"].as_u64().unwrap() > 0 && repo["unique_bytes"].as_u64().unwrap() > 0);
    assert!(repo["dedup_ratio"].as_f64().unwrap() > 0.5);
    assert_eq!(doc["run_in_progress"], false);
    assert_eq!(doc["locks"], json!([]), "status lists its own lock");
}

#[test]
fn a_daily_snapshot_older_than_26_hours_is_unhealthy_whatever_the_runs_say() {
    let env = with_daily(27);
    add_run(&env, &record(1, "ok", None, &[("backup", "ok", "")]));
    let (code, doc) = status_json(&env, &ROOMY);
    assert_eq!(code, 1);
    assert_eq!(alert_keys(&doc), ["backup_failed"]);
    assert!(
        doc["problems"][0]
            .as_str()
            .unwrap()
            .contains("no daily backup in 26 h")
    );
}

#[test]
fn a_failed_last_run_or_verification_raises_its_original_alert() {
    let env = with_daily(1);
    add_run(
        &env,
        &record(30, "failed", None, &[("backup", "failed", "old failure")]),
    );
    add_run(
        &env,
        &record(
            1,
            "failed",
            None,
            &[("backup", "failed", "pg_dump exited 1")],
        ),
    );
    let (code, doc) = status_json(&env, &ROOMY);
    assert_eq!(code, 1);
    assert_eq!(alert_keys(&doc), ["backup_failed"]);
    assert!(
        doc["alerts"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("pg_dump exited 1")
    );
    // A good run since: healthy again, the older failure is history.
    add_run(&env, &record(0, "ok", Some(true), &[("backup", "ok", "")]));
    assert_eq!(status_json(&env, &ROOMY).0, 0);

    // A test restore recorded in the index as failed (as `masclet verify` records it).
    let snap = env.snapshots()[0]["id"].as_str().unwrap().to_owned();
    {
        use masclet_engine::{LocalStorage, LockMode, OpenOptions, Repo, SnapshotId};
        let storage = LocalStorage::open(&env.repo).unwrap();
        let index = storage.index_path();
        let o = OpenOptions::new("test", Some(LockMode::Shared));
        let repo = Repo::open(std::sync::Arc::new(storage), &index, b"s3cret pass", &o).unwrap();
        let id = SnapshotId::from_hex(&snap).unwrap();
        repo.index()
            .record_verification(&id, &ago(0), false, "{}")
            .unwrap();
    }
    let (code, doc) = status_json(&env, &ROOMY);
    assert_eq!(code, 1);
    assert_eq!(alert_keys(&doc), ["integrity_failed"]);
    assert_eq!(doc["last_verified_restore"]["snapshot"], snap.as_str());
    assert_eq!(doc["last_verified_restore"]["ok"], false);
    assert_eq!(
        doc["problems"].as_array().unwrap().len(),
        1,
        "{}",
        doc["problems"]
    );
    let text = env.cmd(&["status"]).envs(ROOMY).output().unwrap().stdout;
    assert!(String::from_utf8(text).unwrap().contains(": FAILED"));
}

#[test]
fn a_full_disk_and_a_failed_rotation_are_unhealthy() {
    let env = with_daily(1);
    // Any real disk holding files is more than 0% used; none has a petabyte free.
    for vars in [
        [("SPACE_ALERT_PERCENT", "0"), ("MIN_FREE_SPACE", "0")],
        [("SPACE_ALERT_PERCENT", "100"), ("MIN_FREE_SPACE", "1000T")],
    ] {
        let (code, doc) = status_json(&env, &vars);
        assert_eq!(code, 1, "{vars:?}");
        assert_eq!(alert_keys(&doc), ["space_low"]);
        assert_eq!(doc["disk"]["state"], "low");
        assert_eq!(doc["alerts"][0]["message"], "Espacio insuficiente (<10%)");
    }
    let o = env
        .cmd(&["status"])
        .env("SPACE_ALERT_PERCENT", "lots")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("SPACE_ALERT_PERCENT"));
    add_run(
        &env,
        &record(
            1,
            "failed",
            Some(true),
            &[
                ("backup", "ok", ""),
                ("retention", "failed", "forget: locked"),
            ],
        ),
    );
    let (code, doc) = status_json(&env, &ROOMY);
    assert_eq!(code, 1);
    assert_eq!(alert_keys(&doc), ["rotation_failed"]);
    assert_eq!(doc["alerts"][0]["message"], "Error en rotación");
}

#[test]
fn status_reads_while_a_backup_and_a_run_hold_their_locks_and_past_a_torn_line() {
    let env = with_daily(1);
    add_run(&env, &record(1, "ok", Some(true), &[("backup", "ok", "")]));
    append(&env, "{\"version\":1,\"tier\":\"da");
    let mut child = env
        .cmd(&["backup", "--stdin", "--tag", "daily"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &[7u8; 100_000]).unwrap();
    let locks = env.repo.join("locks");
    let t0 = std::time::Instant::now();
    while std::fs::read_dir(&locks).unwrap().count() == 0 {
        assert!(
            t0.elapsed().as_secs() < 30,
            "the backup never took its lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The nightly job's run lock, held as `masclet run` holds it.
    let run_lock = env.repo.join("ops").join("run.lock");
    std::fs::write(&run_lock, b"").unwrap();
    let f = std::fs::File::open(&run_lock).unwrap();
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();

    let (code, doc) = status_json(&env, &ROOMY);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["run_in_progress"], true);
    assert_eq!(
        doc["locks"].as_array().unwrap().len(),
        1,
        "{}",
        doc["locks"]
    );
    assert_eq!(doc["locks"][0]["info"]["operation"], "backup");
    assert_eq!(doc["history"], json!({"runs": 1, "unreadable": 1}));
    let text =
        String::from_utf8(env.cmd(&["status"]).envs(ROOMY).output().unwrap().stdout).unwrap();
    assert!(text.contains("run in progress: yes"), "{text}");
    assert!(text.contains("1 unreadable lines skipped"), "{text}");
    assert!(text.contains("by backup on host"), "{text}");

    drop(f);
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let (_, doc) = status_json(&env, &ROOMY);
    assert_eq!(
        (doc["run_in_progress"].clone(), doc["locks"].clone()),
        (json!(false), json!([]))
    );
    assert_eq!(doc["tiers"][0]["count"], 2);
}

/// A repository with a few nights of backups and runs, one with a hostile detail.
fn history_env() -> Env {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    for night in (0..4).rev() {
        std::fs::write(
            src.join(format!("night{night}")),
            masclet_tests::golden_bytes(50_000, night),
        )
        .unwrap();
        env.ok(&[
            "backup",
            "--tag",
            "daily",
            "--time",
            &ago(24 * night as i64 + 1),
            src.to_str().unwrap(),
        ]);
        let detail = if night == 2 {
            "<script>alert('x')</script> & more"
        } else {
            "saved"
        };
        let outcome = if night == 2 { "failed" } else { "ok" };
        add_run(
            &env,
            &record(
                24 * night as i64 + 1,
                outcome,
                Some(night != 1),
                &[("backup", outcome, detail)],
            ),
        );
    }
    env
}

#[test]
fn the_report_has_four_charts_no_external_reference_and_escapes_the_records() {
    let env = history_env();
    let out = env.path("report.html");
    let said = env.ok(&["report", "--html", out.to_str().unwrap()]);
    assert!(said.contains("4 runs, 4 snapshots"), "{said}");
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(
        html.contains("<tr><td>daily</td><td>4</td>"),
        "no tier table"
    );
    assert_eq!(html.matches("<svg").count(), 4);
    assert!(
        !html
            .replace("xmlns=\"http://www.w3.org/2000/svg\"", "")
            .contains("http")
    );
    assert!(!html.contains("<script"));
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more"));
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // An empty history still makes a page.
    let empty = Env::new();
    let out = empty.path("r.html");
    empty.ok(&["report", "--html", out.to_str().unwrap()]);
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("No runs recorded yet")
    );
    empty.fails(
        &["report", "--html", "/nonexistent-dir/r.html"],
        1,
        "cannot write",
    );
}

#[test]
fn the_report_renders_in_headless_chromium_without_console_errors() {
    let Some(chromium) = browser::find() else {
        return;
    };
    let env = history_env();
    let out = env.path("report.html");
    env.ok(&["report", "--html", out.to_str().unwrap()]);
    browser::check_page(&chromium, &out, env.path("shots").as_path());
}
