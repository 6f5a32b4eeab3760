//! The operated system end to end against a real PostgreSQL: the original scripts with the
//! original arguments (`backup.sh -t daily`, `test-backup.sh .../latest.tar.gz`,
//! `cleanup.sh -a 30`, `status.sh`) from an original-style `.env` holding DATABASE_URL, and
//! the database's password nowhere in what they leave.

use super::*;
use masclet_tests::pg::PgCluster;
use serde_json::Value;

const DB: &str = "masclet_imperi";

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tools")
        .join(name)
}

/// The original `.env`, with DATABASE_URL and what the nightly job adds.
fn env_file(env: &Env, url: &str, extra: &str) -> PathBuf {
    super::run::env_file(
        env,
        &format!("DATABASE_URL={url}\nEXPORT_MIRROR=true\n{extra}"),
    )
}

fn original_env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("backups")).unwrap();
    let env = Env {
        repo: dir.path().join("backups/store"),
        dir,
    };
    env.ok(&["init"]);
    env
}

/// A script run as cron would: the configuration named by MASCLET_CONFIG, masclet found
/// through MASCLET, the PostgreSQL client programs on PATH.
fn sh(env: &Env, pg: Option<&PgCluster>, cfg: &Path, name: &str, args: &[&str]) -> Output {
    let path = match pg {
        Some(pg) => format!(
            "{}:{}",
            pg.bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        ),
        None => std::env::var("PATH").unwrap_or_default(),
    };
    Command::new(script(name))
        .args(args)
        .current_dir(env.dir.path())
        .env("MASCLET", env!("CARGO_BIN_EXE_masclet"))
        .env("MASCLET_CONFIG", cfg)
        .env("MASCLET_PASSWORD", "s3cret pass")
        .env("MASCLET_INSECURE_FAST_KDF", "1")
        .env_remove("MASCLET_REPO")
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_original_scripts_run_a_verified_database_night_then_test_clean_and_report_healthy() {
    let Some(pg) = PgCluster::start() else { return };
    // Enough farm for a compressed archive above the original MIN_BACKUP_SIZE of 1 MB.
    pg.load_masclet_imperi(DB, 40_000, 7);
    let env = original_env();
    let cfg = env_file(&env, &pg.url(DB), "");
    let o = sh(
        &env,
        Some(&pg),
        &cfg,
        "backup.sh",
        &["-t", "daily", "--json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["verified"], true);
    let verify = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "verify")
        .unwrap();
    assert!(
        verify["detail"]
            .as_str()
            .unwrap()
            .contains("test restore passed"),
        "{r}"
    );
    let precheck = &r["steps"][0];
    assert!(
        precheck["detail"]
            .as_str()
            .unwrap()
            .contains("database masclet_imperi reachable"),
        "{r}"
    );
    // The original integrity test on the classic file the night left.
    let latest = env.path("backups/daily/latest.tar.gz");
    let o = sh(
        &env,
        Some(&pg),
        &cfg,
        "test-backup.sh",
        &[latest.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Cleanup with the original's argument, and status: healthy, exit 0.
    let o = sh(&env, None, &cfg, "cleanup.sh", &["-a", "30"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = sh(&env, None, &cfg, "status.sh", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("healthy"));
    let o = sh(&env, None, &cfg, "status.sh", &["--json"]);
    let st: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["healthy"], true, "{st}");
    // A second night after a day of farm work: stored again only what changed.
    pg.night(DB, 8);
    let o = sh(
        &env,
        Some(&pg),
        &cfg,
        "backup.sh",
        &["-t", "daily", "--json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r2: Value = serde_json::from_slice(&o.stdout).unwrap();
    let (first, second) = (
        r["metrics"]["tamaño_final"].as_u64().unwrap(),
        r2["metrics"]["tamaño_final"].as_u64().unwrap(),
    );
    assert!(
        second * 4 < first,
        "night 2 stored {second} B against {first} B"
    );
    // The database's password is in none of what the runs left.
    let pw = pg.password();
    for f in [
        env.path("logs/backup.log"),
        env.repo.join("ops/runs.jsonl"),
        env.path("masclet.prom"),
    ] {
        let body = std::fs::read_to_string(&f).unwrap();
        assert!(!body.contains(pw), "{} holds the password", f.display());
    }
    assert!(!text(&o).contains(pw));
}

#[test]
fn scripts_refuse_their_original_misuse_with_usage() {
    let env = original_env();
    let cfg = env.path("none.env");
    std::fs::write(&cfg, "").unwrap();
    for (name, args) in [
        ("backup.sh", &[][..]),
        ("backup.sh", &["-t"][..]),
        ("notify.sh", &[][..]),
        ("status.sh", &["--bogus"][..]),
    ] {
        let o = sh(&env, None, &cfg, name, args);
        assert_eq!(o.status.code(), Some(2), "{name} {args:?}: {}", text(&o));
        assert!(text(&o).contains("usage"), "{name}: {}", text(&o));
    }
    let o = sh(&env, None, &cfg, "backup.sh", &["-t", "hourly"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn notify_sh_sends_a_test_message_and_an_original_alert_to_the_webhook() {
    let env = original_env();
    let http = super::servers::HttpSink::start(vec![]);
    let cfg = env.path("notify.env");
    std::fs::write(&cfg, format!("NOTIFY_WEBHOOK_URL={}\n", http.url("/h"))).unwrap();
    let o = sh(&env, None, &cfg, "notify.sh", &["--test"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = sh(
        &env,
        None,
        &cfg,
        "notify.sh",
        &["rotation_failed", "gc", "stopped"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let bodies: Vec<Value> = http
        .requests()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0]["alert"], "test");
    assert_eq!(bodies[1]["alert"], "rotation_failed");
    assert_eq!(bodies[1]["message"], "Error en rotación");
    assert_eq!(bodies[1]["detail"], "gc stopped");
}

#[test]
fn a_test_restore_database_a_killed_run_left_is_dropped_by_the_next_night() {
    let Some(pg) = PgCluster::start() else { return };
    pg.load_masclet_imperi(DB, 40_000, 7);
    // What `kill -9` during a test restore leaves: a whole copy of the data, named by a
    // process that is gone, from the night before.
    let then = (chrono::Utc::now() - chrono::Duration::hours(20)).format("%Y%m%d%H%M%S");
    let left = format!("masclet_verify_{then}_2147483646");
    pg.createdb(&left);
    // One that may belong to a run still going on another host: recent, kept.
    let now = chrono::Utc::now().format("%Y%m%d%H%M%S");
    let recent = format!("masclet_verify_{now}_2147483646");
    pg.createdb(&recent);
    let env = original_env();
    let cfg = env_file(&env, &pg.url(DB), "");
    let o = sh(&env, Some(&pg), &cfg, "backup.sh", &["-t", "daily"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains(&left), "{}", text(&o));
    let dbs = pg.psql(
        "postgres",
        "SELECT string_agg(datname, ',') FROM pg_database",
    );
    assert!(!dbs.contains(&left), "{dbs}");
    assert!(dbs.contains(&recent), "{dbs}");
    assert!(!dbs.contains(&format!("masclet_verify_{now}_{}", std::process::id())));
}
