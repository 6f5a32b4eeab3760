//! Test restores of database snapshots against a real PostgreSQL: `verify`, `restore
//! --to-db`, `promote`, `db maintain`. Snapshots are made through the engine
//! (`masclet_engine::pg::backup_pg`); each test skips, saying why, without PostgreSQL.

use super::*;
use masclet_engine::ops::backup::{StreamContent, StreamEntry};
use masclet_engine::pg::{self, PgBackupOptions, Target, Tools};
use masclet_engine::repository::walk::Entry;
use masclet_engine::{
    BackupOptions, LocalStorage, LockMode, NoProgress, OpenOptions, Repo, Source,
};
use masclet_tests::pg::PgCluster;
use std::sync::Arc;

const DB: &str = "masclet_imperi";

fn setup(animals: usize) -> Option<(Env, PgCluster)> {
    let pg = PgCluster::start()?;
    pg.load_masclet_imperi(DB, animals, 7);
    Some((Env::new(), pg))
}

fn open_repo(env: &Env) -> Repo {
    let storage = LocalStorage::open(&env.repo).unwrap();
    let index = storage.index_path();
    let opts = OpenOptions::new("test", Some(LockMode::Shared));
    Repo::open(Arc::new(storage), &index, b"s3cret pass", &opts).unwrap()
}

/// A database snapshot of `db` recorded at `time` (RFC 3339); its id in hex.
fn backup_db(env: &Env, pg: &PgCluster, db: &str, time: &str) -> String {
    let mut repo = open_repo(env);
    let opts = PgBackupOptions {
        target: Target::resolve(Some(&pg.url(db))).unwrap(),
        tools: Tools::find(Some(pg.bin_dir())),
        shape: pg::DumpShape::default(),
        repo_dir: None,
        min_free: 0,
        backup: BackupOptions::new(vec![], Some(time.parse().unwrap())),
    };
    let s = pg::backup_pg(&mut repo, &opts, &NoProgress).unwrap();
    s.backup.snapshot.to_hex()
}

/// `masclet` reaching the cluster through DATABASE_URL (a password in the environment,
/// never in argv), with the cluster's client programs.
fn pg_cmd(env: &Env, pg: &PgCluster, args: &[&str]) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    let bin = pg.bin_dir().to_str().unwrap().to_string();
    if !matches!(args.first(), Some(&"restore")) {
        all.extend(["--pg-bin", &bin]);
    }
    env.cmd(&all)
        .env("DATABASE_URL", pg.url("postgres"))
        .env("PATH", format!("{bin}:{}", std::env::var("PATH").unwrap()))
        .output()
        .unwrap()
}

fn texts(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn no_secret(pg: &PgCluster, o: &Output) {
    let (out, err) = texts(o);
    assert!(!out.contains(pg.password()), "password in stdout: {out}");
    assert!(!err.contains(pg.password()), "password in stderr: {err}");
}

fn scratch_dbs(pg: &PgCluster) -> String {
    pg.psql(
        "postgres",
        "SELECT datname FROM pg_database WHERE datname LIKE 'masclet\\_verify\\_%'",
    )
}

fn count(pg: &PgCluster, db: &str, table: &str) -> i64 {
    pg.psql(db, &format!("SELECT count(*) FROM {table}"))
        .parse()
        .unwrap()
}

#[test]
fn pg_verify_after_backup_passes_with_exact_counts_in_json_and_is_recorded() {
    let Some((env, pg)) = setup(300) else { return };
    let id = backup_db(&env, &pg, DB, "2026-12-01T03:00:00Z");
    let o = pg_cmd(&env, &pg, &["verify", "--json"]);
    no_secret(&pg, &o);
    let (out, err) = texts(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["checks", "duration_secs", "ok", "snapshot", "tables"]
    );
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["snapshot"], id.as_str());
    for t in ["animals", "parts", "users"] {
        let n = count(&pg, DB, t);
        assert_eq!(v["tables"][t]["expected"], n, "{t}: {v}");
        assert_eq!(v["tables"][t]["restored"], n, "{t}: {v}");
    }
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for want in [
        "restore",
        "original:count(animals)",
        "rows:animals",
        "indexes_valid",
        "roles",
        "grants",
    ] {
        assert!(names.contains(&want), "no check {want}: {names:?}");
    }
    assert!(
        names.iter().any(|n| n.starts_with("foreign_key:")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("max_updated_at:")),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n.starts_with("amcheck")), "{names:?}");
    assert_eq!(
        scratch_dbs(&pg),
        "",
        "the temporary database was left behind"
    );
    let repo = open_repo(&env);
    let rec = repo
        .index()
        .last_verification(&id.parse().unwrap())
        .unwrap()
        .expect("verify records its result");
    assert!(rec.ok);
    assert!(!rec.report.contains(pg.password()));
}

/// A snapshot whose manifest records one animal more than its dump holds: the restore
/// works, a check fails, and the temporary database is dropped all the same.
#[test]
fn pg_verify_drops_its_temporary_database_when_a_check_fails() {
    let Some((env, pg)) = setup(50) else { return };
    let good = backup_db(&env, &pg, DB, "2026-12-01T03:00:00Z");
    let o = pg_cmd(&env, &pg, &["verify", &good]);
    assert_eq!(o.status.code(), Some(0), "{:?}", texts(&o));
    // The same files, but the manifest lies about animals.
    let bad = craft(
        &env,
        &good,
        "2026-12-02T03:00:00Z",
        |_| {},
        |m| {
            for t in m["tables"].as_array_mut().unwrap() {
                if t["name"] == "animals" {
                    t["rows"] = (t["rows"].as_i64().unwrap() + 1).into();
                }
            }
        },
    );
    let o = pg_cmd(&env, &pg, &["verify", "--json", &bad]);
    no_secret(&pg, &o);
    let (out, err) = texts(&o);
    assert_eq!(o.status.code(), Some(8), "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    let n = count(&pg, DB, "animals");
    assert_eq!(v["tables"]["animals"]["expected"], n + 1);
    assert_eq!(v["tables"]["animals"]["restored"], n);
    let failed: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["rows:animals"], "{v}");
    assert!(err.contains("VERIFY FAILED"), "{err}");
    assert!(err.contains(&good), "the good snapshot is not named: {err}");
    assert_eq!(
        scratch_dbs(&pg),
        "",
        "the temporary database was left behind"
    );
}

/// A database snapshot made of `from`'s files, edited, recorded at `time`; its id.
fn craft(
    env: &Env,
    from: &str,
    time: &str,
    edit_dump: impl FnOnce(&mut Vec<u8>),
    edit_manifest: impl FnOnce(&mut serde_json::Value),
) -> String {
    let mut repo = open_repo(env);
    let (_, snap) = repo.resolve(from).unwrap();
    let read = |name: &str| {
        let mut v = Vec::new();
        masclet_engine::dump(&repo, &snap, name.as_bytes(), &mut v).unwrap();
        v
    };
    let (mut dump, globals) = (read(&format!("{DB}.sql")), read("pg-globals.sql"));
    let manifest = read("pg-manifest.json");
    edit_dump(&mut dump);
    let original: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let mut m = original.clone();
    edit_manifest(&mut m);
    // Unchanged, the manifest keeps its stored bytes (and chunks).
    let manifest = if m == original {
        manifest
    } else {
        serde_json::to_vec_pretty(&m).unwrap()
    };
    let entries = vec![
        StreamEntry {
            name: format!("{DB}.sql").into_bytes(),
            content: StreamContent::Bytes(dump),
        },
        StreamEntry {
            name: b"pg-globals.sql".to_vec(),
            content: StreamContent::Bytes(globals),
        },
        StreamEntry {
            name: b"pg-manifest.json".to_vec(),
            content: StreamContent::Bytes(manifest),
        },
    ];
    let source = Source::Streams {
        source: "postgres".into(),
        paths: vec![DB.as_bytes().to_vec()],
        entries,
    };
    let opts = BackupOptions::new(vec![], Some(time.parse().unwrap()));
    masclet_engine::backup(&mut repo, source, &opts, &NoProgress)
        .unwrap()
        .snapshot
        .to_hex()
}

fn pack_files(env: &Env) -> Vec<PathBuf> {
    let mut out = vec![];
    for d in std::fs::read_dir(env.repo.join("packs")).unwrap() {
        for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}

#[test]
fn pg_verify_of_a_damaged_snapshot_fails_and_names_the_previous_good_one() {
    let Some((env, pg)) = setup(400) else { return };
    let first = backup_db(&env, &pg, DB, "2026-12-01T03:00:00Z");
    let o = pg_cmd(&env, &pg, &["verify", &first]);
    assert_eq!(o.status.code(), Some(0), "{:?}", texts(&o));
    let before = pack_files(&env);
    pg.night(DB, 1);
    let second = backup_db(&env, &pg, DB, "2026-12-02T03:00:00Z");
    let new: Vec<PathBuf> = pack_files(&env)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert!(!new.is_empty());
    for p in &new {
        let mut b = std::fs::read(p).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0x5a;
        std::fs::write(p, b).unwrap();
    }
    let o = pg_cmd(&env, &pg, &["verify", "--json", &second[..12]]);
    no_secret(&pg, &o);
    let (out, err) = texts(&o);
    assert!(
        matches!(o.status.code(), Some(8 | 5)),
        "exit {:?}\n{out}\n{err}",
        o.status.code()
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let failed: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(failed == ["read_snapshot"] || failed == ["restore"], "{v}");
    assert!(
        err.contains(&first),
        "the good snapshot is not named: {err}"
    );
    assert_eq!(
        scratch_dbs(&pg),
        "",
        "the temporary database was left behind"
    );
    // The first snapshot's data is untouched by the damage and still verifies.
    let o = pg_cmd(&env, &pg, &["verify", &first]);
    assert_eq!(o.status.code(), Some(0), "{:?}", texts(&o));
}

#[test]
fn pg_verify_refuses_a_snapshot_of_files() {
    let Some((env, pg)) = setup(5) else { return };
    let src = env.path("src");
    write_source(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    let o = pg_cmd(&env, &pg, &["verify"]);
    let (_, err) = texts(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("not a database snapshot"), "{err}");
}

#[test]
fn pg_restore_to_db_creates_a_checked_database_and_refuses_an_existing_one_without_force() {
    let Some((env, pg)) = setup(120) else { return };
    backup_db(&env, &pg, DB, "2026-12-01T03:00:00Z");
    let o = pg_cmd(&env, &pg, &["restore", "latest", "--to-db", "farm_copy"]);
    no_secret(&pg, &o);
    let (out, err) = texts(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("PASSED"), "{out}");
    for t in ["animals", "parts", "users"] {
        assert_eq!(count(&pg, "farm_copy", t), count(&pg, DB, t), "{t}");
    }
    pg.psql("farm_copy", "CREATE TABLE marker (x int)");
    let o = pg_cmd(&env, &pg, &["restore", "latest", "--to-db", "farm_copy"]);
    let (_, err) = texts(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(pg.psql("farm_copy", "SELECT count(*) FROM marker"), "0");
    let o = pg_cmd(
        &env,
        &pg,
        &["restore", "latest", "--to-db", "farm_copy", "--force"],
    );
    assert_eq!(o.status.code(), Some(0), "{:?}", texts(&o));
    assert_eq!(
        pg.psql(
            "farm_copy",
            "SELECT count(*) FROM pg_class WHERE relname = 'marker'"
        ),
        "0"
    );
}

#[test]
fn pg_promote_swaps_the_databases_and_its_rollback_sql_swaps_them_back() {
    let Some((env, pg)) = setup(80) else { return };
    backup_db(&env, &pg, DB, "2026-12-01T03:00:00Z");
    let o = pg_cmd(&env, &pg, &["restore", "latest", "--to-db", "farm_new"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", texts(&o));
    // Production moves on after the backup: the marker tells the two apart.
    pg.psql(
        DB,
        "CREATE TABLE after_backup (x int); INSERT INTO after_backup VALUES (1)",
    );
    let animals = count(&pg, DB, "animals");
    let o = pg_cmd(&env, &pg, &["promote", "farm_new", "--to", DB, "--json"]);
    no_secret(&pg, &o);
    let (out, err) = texts(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let p: serde_json::Value = serde_json::from_str(&out).unwrap();
    let previous = p["previous"].as_str().unwrap().to_string();
    assert!(previous.starts_with("masclet_imperi_pre_restore_"), "{p}");
    let has_marker = |db: &str| {
        pg.psql(
            db,
            "SELECT count(*) FROM pg_class WHERE relname = 'after_backup'",
        ) == "1"
    };
    assert!(!has_marker(DB), "the restored database is not in place");
    assert!(has_marker(&previous), "the old database was not kept");
    assert_eq!(count(&pg, DB, "animals"), animals);
    assert_eq!(count(&pg, &previous, "animals"), animals);
    let dbs = pg.psql(
        "postgres",
        "SELECT datname FROM pg_database WHERE datname = 'farm_new'",
    );
    assert_eq!(dbs, "");
    let rollback: Vec<&str> = p["rollback"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for sql in rollback {
        pg.psql("postgres", sql);
    }
    assert!(
        has_marker(DB),
        "the rollback did not bring the old database back"
    );
    assert_eq!(pg.psql(DB, "SELECT x FROM after_backup"), "1");
    assert!(!has_marker("farm_new"));
    // The text form prints the rollback commands too.
    let o = pg_cmd(&env, &pg, &["promote", "farm_new", "--to", DB]);
    let (out, _) = texts(&o);
    assert!(
        out.contains("ALTER DATABASE") && out.contains("_pre_restore_"),
        "{out}"
    );
}

#[test]
fn pg_db_maintain_runs_and_full_warns_about_locks() {
    let Some((env, pg)) = setup(30) else { return };
    let url = format!("postgresql://postgres@127.0.0.1:{}/{DB}", pg.port());
    let run = |full: bool| {
        let mut args = vec!["db", "maintain", "--pg", url.as_str(), "--json"];
        if full {
            args.push("--full");
        }
        let o = env
            .cmd(&args)
            .env("PGPASSWORD", pg.password())
            .output()
            .unwrap();
        no_secret(&pg, &o);
        o
    };
    let o = run(false);
    let (out, err) = texts(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["database"], DB);
    assert!(!err.contains("exclusive lock"), "{err}");
    let o = run(true);
    let (_, err) = texts(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("exclusive lock"), "{err}");
}

/// Only the dump's last chunk is damaged: psql has run most of it when the damage is found,
/// and is killed before its input closes, so nothing commits; the temporary database goes.
#[test]
fn pg_verify_of_a_dump_damaged_mid_stream_exits_5_and_drops_its_database() {
    let Some((env, pg)) = setup(300) else { return };
    let good = backup_db(&env, &pg, DB, "2026-12-01T03:00:00Z");
    let bad = craft(
        &env,
        &good,
        "2026-12-02T03:00:00Z",
        |d| d.extend_from_slice(b"\n-- a new last chunk\n"),
        |_| {},
    );
    // Damage exactly the dump's last chunk (the tree and manifest stay readable).
    let repo = open_repo(&env);
    let (_, snap) = repo.resolve(&bad).unwrap();
    let mut last = None;
    for e in repo.walk(&snap) {
        if let Entry::File(part) = e.unwrap()
            && part.meta.path == format!("{DB}.sql").as_bytes()
        {
            last = part.chunks.last().map(|c| c.id).or(last);
        }
    }
    let loc = repo.index().locate(&last.unwrap()).unwrap().unwrap();
    drop(repo);
    let pack = pack_files(&env)
        .into_iter()
        .find(|p| p.to_string_lossy().contains(&loc.pack.to_hex()))
        .unwrap();
    let mut b = std::fs::read(&pack).unwrap();
    let at = usize::try_from(loc.offset).unwrap() + loc.sealed_len as usize / 2;
    b[at] ^= 0x5a;
    std::fs::write(&pack, b).unwrap();
    let o = pg_cmd(&env, &pg, &["verify", "--json", &bad]);
    let (out, err) = texts(&o);
    assert_eq!(o.status.code(), Some(5), "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let restore = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "restore")
        .unwrap_or_else(|| panic!("the dump was not streamed: {v}"));
    assert_eq!(restore["ok"], false, "{v}");
    assert!(
        err.contains("no older snapshot") || err.contains(&good),
        "{err}"
    );
    assert_eq!(
        scratch_dbs(&pg),
        "",
        "the temporary database was left behind"
    );
}

/// Ctrl-C while the dump streams into psql: exit 130, and the temporary database is gone.
#[test]
fn pg_verify_interrupted_mid_restore_exits_130_and_drops_its_database() {
    let Some((env, pg)) = setup(60_000) else {
        return;
    };
    backup_db(&env, &pg, DB, "2026-12-01T03:00:00Z");
    let bin = pg.bin_dir().to_str().unwrap().to_string();
    let child = env
        .cmd(&["verify", "--pg-bin", &bin])
        .env("DATABASE_URL", pg.url("postgres"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while scratch_dbs(&pg).is_empty() {
        assert!(
            started.elapsed().as_secs() < 60,
            "no temporary database appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let o = child.wait_with_output().unwrap();
    let (out, err) = texts(&o);
    // The restore may have finished in the meantime; then the checks ran to the end.
    if o.status.code() == Some(0) {
        eprintln!("the restore finished before the interrupt arrived: {out}");
    } else {
        assert_eq!(o.status.code(), Some(130), "{out}\n{err}");
    }
    assert_eq!(
        scratch_dbs(&pg),
        "",
        "the temporary database was left behind"
    );
}

/// The operator's path end to end: `backup --pg` then `verify` through the CLI alone.
#[test]
fn pg_cli_backup_then_verify_latest_passes() {
    let Some((env, pg)) = setup(200) else { return };
    let bin = pg.bin_dir().to_str().unwrap().to_string();
    let o = env
        .cmd(&["backup", "--pg", "--pg-bin", &bin, "--min-free", "0"])
        .env("DATABASE_URL", pg.url(DB))
        .output()
        .unwrap();
    no_secret(&pg, &o);
    assert_eq!(o.status.code(), Some(0), "{:?}", texts(&o));
    let o = pg_cmd(&env, &pg, &["verify", "latest"]);
    no_secret(&pg, &o);
    let (out, err) = texts(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("PASSED"), "{out}");
    assert_eq!(scratch_dbs(&pg), "");
}

/// On another server (`VERIFY_DATABASE_URL`) the app's roles are missing: the restore
/// fails and says so; with --with-roles the roles file is applied first and it passes, and
/// that server's own superuser keeps its password.
#[test]
fn pg_verify_on_another_server_needs_with_roles_and_keeps_its_superuser_password() {
    let Some((env, pg)) = setup(40) else { return };
    let Some(other) = PgCluster::start() else {
        return;
    };
    backup_db(&env, &pg, DB, "2026-12-01T03:00:00Z");
    let run = |extra: &[&str]| {
        let mut args = vec!["verify", "--json"];
        args.extend_from_slice(extra);
        let mut c = env.cmd(&args);
        c.env("DATABASE_URL", pg.url("postgres"))
            .env("VERIFY_DATABASE_URL", other.url("postgres"))
            .env("PATH", format!("{}:/usr/bin:/bin", pg.bin_dir().display()));
        let o = c.output().unwrap();
        no_secret(&pg, &o);
        no_secret(&other, &o);
        o
    };
    let o = run(&[]);
    let (out, err) = texts(&o);
    assert_eq!(o.status.code(), Some(8), "{out}\n{err}");
    assert!(
        out.contains("masclet_app"),
        "the missing role is not named: {out}"
    );
    assert_eq!(scratch_dbs(&other), "");
    let o = run(&["--with-roles"]);
    let (out, err) = texts(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert_eq!(scratch_dbs(&other), "");
    assert_eq!(scratch_dbs(&pg), "");
    // psql panics if the other server's superuser password changed.
    other.psql("postgres", "SELECT 1");
}
