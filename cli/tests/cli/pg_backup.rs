//! `backup --pg` against a real PostgreSQL server the test starts: exact recorded counts, a
//! dump psql restores to the same rows in both shapes, consistency under concurrent writes,
//! and the failures that must commit nothing (pg_dump failing or killed, an unreachable
//! server, a wrong password, a full disk), with the password kept out of every output.

use super::*;
use masclet_tests::pg::PgCluster;

const DB: &str = "masclet_imperi";

fn cluster(animals: usize) -> Option<PgCluster> {
    let pg = PgCluster::start()?;
    pg.load_masclet_imperi(DB, animals, 7);
    Some(pg)
}

/// `masclet ARGS` with DATABASE_URL set to the cluster's database.
fn pg_run(env: &Env, pg: &PgCluster, args: &[&str]) -> Output {
    env.cmd(args)
        .env("DATABASE_URL", pg.url(DB))
        .env("PATH", path_with(pg))
        .output()
        .unwrap()
}

fn path_with(pg: &PgCluster) -> String {
    format!(
        "{}:{}",
        pg.bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A digest of every row of the three tables, to compare two databases.
fn rows_digest(pg: &PgCluster, db: &str) -> String {
    pg.psql(
        db,
        "SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (\
         SELECT 'a' || a::text AS x FROM animals a UNION ALL \
         SELECT 'p' || p::text FROM parts p UNION ALL \
         SELECT 'u' || u::text FROM users u) s",
    )
}

fn count(pg: &PgCluster, db: &str, table: &str) -> i64 {
    pg.psql(db, &format!("SELECT count(*) FROM {table}"))
        .parse()
        .unwrap()
}

/// Restore the snapshot's dump into a new database with the real psql.
fn psql_restore(env: &Env, pg: &PgCluster, snapshot: &str, into: &str) {
    let dump = env.path(&format!("{into}.sql"));
    let o = env
        .cmd(&["dump", snapshot, &format!("{DB}.sql")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(&dump, &o.stdout).unwrap();
    pg.createdb(into);
    let st = Command::new(pg.bin_dir().join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"])
        .args(["-d", into, "-f"])
        .arg(&dump)
        .envs(pg.env(into))
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "psql could not restore the dump: {}",
        String::from_utf8_lossy(&st.stderr)
    );
}

fn manifest_rows(v: &serde_json::Value, table: &str) -> i64 {
    v["database"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == table)
        .unwrap_or_else(|| panic!("{table} missing from {v}"))["rows"]
        .as_i64()
        .unwrap()
}

#[test]
fn pg_backup_records_exact_counts_and_both_shapes_restore_the_same_rows() {
    let Some(pg) = cluster(2000) else { return };
    let env = Env::new();
    let want = rows_digest(&pg, DB);
    for (i, shape) in ["keyed", "pg-dump"].into_iter().enumerate() {
        let o = pg_run(
            &env,
            &pg,
            &["--json", "backup", "--pg", "--dump-shape", shape],
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        for t in ["animals", "parts", "users"] {
            assert_eq!(manifest_rows(&v, t), count(&pg, DB, t), "{shape}: {t}");
        }
        assert_eq!(v["database"]["shape"], shape);
        let id = v["snapshot"].as_str().unwrap().to_string();
        let into = format!("restored_{i}");
        psql_restore(&env, &pg, &id, &into);
        assert_eq!(rows_digest(&pg, &into), want, "{shape} restored other rows");
        // The grants came back with the tables.
        assert_eq!(
            pg.psql(
                &into,
                "SELECT has_table_privilege('masclet_app', 'animals', 'UPDATE')"
            ),
            "t"
        );
        // The sequences continue where they were.
        assert_eq!(
            pg.psql(&into, "SELECT last_value FROM parts_id_seq"),
            pg.psql(DB, "SELECT last_value FROM parts_id_seq"),
        );
        assert!(
            !err.contains(pg.password())
                && !String::from_utf8_lossy(&o.stdout).contains(pg.password())
        );
    }
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 2);
    assert!(snaps.iter().all(|s| s["source"] == "postgres"));
    // The roles file and the manifest are files of the snapshot.
    let ls = env.ok(&["ls", "latest"]);
    for f in ["masclet_imperi.sql", "pg-globals.sql", "pg-manifest.json"] {
        assert!(ls.contains(f), "{ls}");
    }
    let globals = env.ok(&["dump", "latest", "pg-globals.sql"]);
    assert!(globals.contains("CREATE ROLE masclet_app"), "{globals}");
}

#[test]
fn a_nightly_pg_backup_stores_little_and_walks_beside_the_last_one() {
    let Some(pg) = cluster(20_000) else { return };
    let env = Env::new();
    let first = pg_run(&env, &pg, &["--json", "backup", "--pg"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let first: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    pg.night(DB, 1);
    let night = pg_run(&env, &pg, &["--json", "backup", "--pg"]);
    assert!(
        night.status.success(),
        "{}",
        String::from_utf8_lossy(&night.stderr)
    );
    let night: serde_json::Value = serde_json::from_slice(&night.stdout).unwrap();
    let (a, b) = (
        first["bytes_added"].as_u64().unwrap(),
        night["bytes_added"].as_u64().unwrap(),
    );
    assert!(
        b * 5 < a,
        "the night stored {b} bytes against {a} for the first backup"
    );
    assert_eq!(manifest_rows(&night, "parts"), count(&pg, DB, "parts"));
}

#[test]
fn figures_and_dump_agree_while_the_database_is_written_during_the_backup() {
    let Some(pg) = cluster(20_000) else { return };
    let env = Env::new();
    // A writer inserting parts in many small transactions for the whole backup.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = std::sync::Arc::clone(&stop);
        let (bin, envs) = (pg.bin_dir().join("psql"), pg.env(DB));
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let st = Command::new(&bin)
                    .args(["-X", "-q", "-c"])
                    .arg("INSERT INTO parts (animal_id, data, sexe, estat, observacions, updated_at) SELECT id, current_date, 'F', 'viu', 'concurrent', now() FROM animals ORDER BY id LIMIT 50")
                    .envs(envs.clone())
                    .output()
                    .unwrap();
                assert!(
                    st.status.success(),
                    "{}",
                    String::from_utf8_lossy(&st.stderr)
                );
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let o = pg_run(&env, &pg, &["--json", "backup", "--pg"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let batches = writer.join().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(batches > 2, "the writer ran only {batches} times");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = v["snapshot"].as_str().unwrap().to_string();
    psql_restore(&env, &pg, &id, "during");
    // The restored rows are exactly what the manifest counted, though the table grew
    // before, during and after the dump.
    assert_eq!(count(&pg, "during", "parts"), manifest_rows(&v, "parts"));
    assert!(count(&pg, DB, "parts") > manifest_rows(&v, "parts"));
}

/// A directory with a `pg_dump` (or `pg_dumpall`) wrapper that records its argv and
/// environment, then runs `body` (a shell fragment; `$real` is the real program).
fn wrapper(env: &Env, pg: &PgCluster, program: &str, body: &str) -> PathBuf {
    let dir = env.path(&format!("bin-{program}"));
    std::fs::create_dir_all(&dir).unwrap();
    for p in ["pg_dump", "pg_dumpall", "psql"] {
        let real = pg.bin_dir().join(p);
        let script = if p == program {
            format!(
                "#!/bin/sh\nreal={}\n[ \"$1\" = --version ] && exec \"$real\" --version\necho \"$0 $*\" >> {dir}/argv\nenv >> {dir}/env\n{body}\n",
                real.display(),
                dir = dir.display()
            )
        } else {
            format!("#!/bin/sh\nexec {} \"$@\"\n", real.display())
        };
        let path = dir.join(p);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

#[test]
fn pg_dump_failing_or_killed_mid_stream_commits_nothing_and_says_why() {
    let Some(pg) = cluster(5000) else { return };
    let env = Env::new();
    let cases = [
        // Writes part of a dump, then fails.
        (
            "exit",
            "\"$real\" \"$@\" | head -c 20000\necho 'pg_dump: error: connection lost' >&2\nexit 1",
            "exited with status 1",
        ),
        // Killed by a signal half-way.
        (
            "kill",
            "\"$real\" \"$@\" | head -c 20000\nkill -9 $$",
            "killed by signal 9",
        ),
    ];
    for (name, body, needle) in cases {
        for shape in ["keyed", "pg-dump"] {
            let dir = wrapper(&env, &pg, "pg_dump", body);
            let before = tree_state(&env.repo);
            let o = pg_run(
                &env,
                &pg,
                &[
                    "backup",
                    "--pg",
                    "--dump-shape",
                    shape,
                    "--pg-bin",
                    dir.to_str().unwrap(),
                ],
            );
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{name}/{shape}: {err}");
            assert!(err.contains(needle), "{name}/{shape}: {err}");
            assert!(
                env.snapshots().is_empty(),
                "{name}/{shape} committed a snapshot"
            );
            assert!(!err.contains(pg.password()));
            // Packs may have been written (gc reclaims them); no snapshot names them.
            let _ = before;
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
    // pg_dumpall failing fails the backup too.
    let dir = wrapper(
        &env,
        &pg,
        "pg_dumpall",
        "echo 'pg_dumpall: error: nope' >&2\nexit 3",
    );
    let o = pg_run(
        &env,
        &pg,
        &["backup", "--pg", "--pg-bin", dir.to_str().unwrap()],
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("exited with status 3"), "{err}");
    assert!(env.snapshots().is_empty());
}

#[test]
fn credentials_stay_out_of_argv_and_children_get_only_an_allow_listed_environment() {
    let Some(pg) = cluster(500) else { return };
    let env = Env::new();
    let body = format!(
        "stat -c %a \"$PGPASSFILE\" \"$(dirname \"$PGPASSFILE\")\" | tr '\\n' ' ' | sed 's/ $//' > {}\nexec \"$real\" \"$@\"",
        env.path("bin-pg_dump/passfile-mode").display()
    );
    let dir = wrapper(&env, &pg, "pg_dump", &body);
    let o = pg_run(
        &env,
        &pg,
        &["backup", "--pg", "--pg-bin", dir.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let argv = std::fs::read_to_string(dir.join("argv")).unwrap();
    let child_env = std::fs::read_to_string(dir.join("env")).unwrap();
    assert!(!argv.contains(pg.password()), "{argv}");
    // The password reaches pg_dump through a private pgpass file, not its environment
    // (which core dumps, `ps e` and scripts that log `env` leak).
    assert!(!child_env.contains(pg.password()), "{child_env}");
    assert!(!child_env.contains("PGPASSWORD"), "{child_env}");
    let passfile = child_env
        .lines()
        .find_map(|l| l.strip_prefix("PGPASSFILE="))
        .expect("PGPASSFILE set for pg_dump");
    let mode = std::fs::read_to_string(dir.join("passfile-mode")).unwrap();
    assert_eq!(mode.trim(), "600 700", "pgpass file and folder modes");
    assert!(
        !Path::new(passfile).exists(),
        "the pgpass file outlived the backup"
    );
    for secret in ["MASCLET_PASSWORD", "DATABASE_URL", "MASCLET_REPO"] {
        assert!(
            !child_env.contains(secret),
            "{secret} reached pg_dump: {child_env}"
        );
    }
    // psql, in a test restore, alike.
    let dir = wrapper(&env, &pg, "psql", "exec \"$real\" \"$@\"");
    let o = pg_run(
        &env,
        &pg,
        &["verify", "latest", "--pg-bin", dir.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let psql_env = std::fs::read_to_string(dir.join("env")).unwrap();
    let psql_argv = std::fs::read_to_string(dir.join("argv")).unwrap();
    assert!(psql_env.contains("PGPASSFILE="), "{psql_env}");
    for text in [&psql_env, &psql_argv] {
        assert!(!text.contains(pg.password()), "{text}");
        assert!(!text.contains("PGPASSWORD") && !text.contains("MASCLET_PASSWORD"));
    }
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!all.contains(pg.password()));
}

#[test]
fn an_unreachable_server_or_a_wrong_password_fails_with_exit_7_and_no_snapshot() {
    let Some(pg) = cluster(10) else { return };
    let env = Env::new();
    // Nobody listens on this port: three attempts, then a clear error.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("postgresql://postgres:hunter2@127.0.0.1:{port}/{DB}");
    let o = env
        .cmd(&["backup", "--pg"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(7), "{err}");
    assert!(err.contains("after 3 attempt(s)"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    // A wrong password is refused at once, not retried.
    let url = pg.url(DB).replace(pg.password(), "not-the-password");
    let started = std::time::Instant::now();
    let o = env
        .cmd(&["backup", "--pg"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(7), "{err}");
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert!(env.snapshots().is_empty());
}

#[test]
fn too_little_free_space_fails_the_precheck_with_exit_9_before_connecting() {
    let env = Env::new();
    let before = tree_state(&env.repo);
    // No server is needed: the pre-check comes first.
    let o = env
        .cmd(&["backup", "--pg", "--min-free", "1000000T"])
        .env("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(9), "{err}");
    assert!(err.contains("free on the repository's disk"), "{err}");
    assert_eq!(tree_state(&env.repo), before);
}

#[test]
fn the_keyed_shape_restores_awkward_tables_as_pg_dump_does() {
    let Some(pg) = cluster(100) else { return };
    let env = Env::new();
    pg.psql(
        DB,
        "CREATE TABLE \"Odd \"\"Name\"\"\" (\"ç ol\" text, n int);
         INSERT INTO \"Odd \"\"Name\"\"\" VALUES ('Ñandú', 2), (NULL, 1), ('tab\there', 3);
         CREATE TABLE nocols ();
         INSERT INTO nocols SELECT FROM generate_series(1, 3);
         CREATE TABLE gen (id int PRIMARY KEY, a int, b int GENERATED ALWAYS AS (a * 2) STORED);
         INSERT INTO gen (id, a) VALUES (2, 20), (1, 10);
         CREATE TABLE measures (day date, v int) PARTITION BY RANGE (day);
         CREATE TABLE measures_2025 PARTITION OF measures FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         INSERT INTO measures VALUES ('2025-03-11', 7);
         CREATE SCHEMA altres;
         CREATE TABLE altres.notes (id bigint PRIMARY KEY, body text);
         INSERT INTO altres.notes VALUES (5, 'cinc'), (1, 'u');",
    );
    let o = pg_run(&env, &pg, &["--json", "backup", "--pg"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = v["snapshot"].as_str().unwrap().to_string();
    psql_restore(&env, &pg, &id, "awkward");
    for q in [
        "SELECT string_agg(coalesce(\"ç ol\", '-') || n, ',' ORDER BY n) FROM \"Odd \"\"Name\"\"\"",
        "SELECT count(*) FROM nocols",
        "SELECT string_agg(id || ':' || a || ':' || b, ',' ORDER BY id) FROM gen",
        "SELECT string_agg(day || ':' || v, ',') FROM measures",
        "SELECT string_agg(id || body, ',' ORDER BY id) FROM altres.notes",
    ] {
        assert_eq!(pg.psql("awkward", q), pg.psql(DB, q), "{q}");
    }
    assert_eq!(manifest_rows(&v, "nocols"), 3);
}

#[test]
fn backup_pg_with_verify_proves_the_new_snapshot_by_a_test_restore() {
    let Some(pg) = cluster(1000) else { return };
    let env = Env::new();
    let o = pg_run(&env, &pg, &["--json", "backup", "--pg", "--verify"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        v["tables"]["animals"]["restored"],
        count(&pg, DB, "animals")
    );
    assert_eq!(v["snapshot"], env.snapshots()[0]["id"]);
    // The temporary database is gone.
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'masclet_verify%'"
        ),
        "0"
    );
}
