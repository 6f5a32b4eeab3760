//! `verify-archive` on classic archives: old-system ones made by GNU tar and gzip, damaged,
//! renamed and hostile ones made with the `tar` crate, and the test restore of an old dump
//! against a real PostgreSQL (skipped, saying why, without it).

use super::archives::{Raw, fake_dump, gnu_archive, raw_archive, sha256_hex};
use super::*;
use masclet_tests::pg::PgCluster;
use sha2::Digest;

/// One old-system night: `masclet_imperi.sql` in its own folder, archived by GNU tar.
fn old_night(env: &Env, seed: u64) -> PathBuf {
    let src = env.path(&format!("src{seed}"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("masclet_imperi.sql"), fake_dump(300_000, seed)).unwrap();
    gnu_archive(
        &src,
        &["masclet_imperi.sql"],
        &env.path("old"),
        "daily",
        "20250311_0745",
    )
}

fn verify(env: &Env, file: &Path, extra: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let mut args = vec!["verify-archive", "--json"];
    args.extend(extra);
    let f = file.to_str().unwrap();
    args.push(f);
    let o = env.run(&args);
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (
        o.status.code(),
        v,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn failed(v: &serde_json::Value) -> Vec<String> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_old_system_archive_passes_every_named_check_in_order() {
    let env = Env::new();
    let f = old_night(&env, 1);
    let (code, v, err) = verify(&env, &f, &["--min-size", "1K"]);
    assert_eq!(code, Some(0), "{v}\n{err}");
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["checks", "duration_secs", "file", "ok"]);
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "checksum", "sidecar", "size", "gzip", "tar", "members", "manifest"
        ]
    );
    assert!(
        v["checks"][6]["detail"]
            .as_str()
            .unwrap()
            .contains("no MANIFEST.json")
    );
    // A sidecar that agrees passes too; the text output says PASSED.
    let sha = sha256_hex(&f);
    let side = format!("{}.sha256", f.display());
    std::fs::write(
        &side,
        format!("{sha}  {}\n", f.file_name().unwrap().to_str().unwrap()),
    )
    .unwrap();
    let out = env.ok(&["verify-archive", "--min-size", "1K", f.to_str().unwrap()]);
    assert!(out.contains("PASSED") && out.contains("agrees"), "{out}");
}

#[test]
fn damaged_renamed_and_small_archives_fail_the_named_check() {
    let env = Env::new();
    let f = old_night(&env, 2);
    let bytes = std::fs::read(&f).unwrap();
    let dir = f.parent().unwrap();
    // A flipped byte in the middle: the checksum and gzip's CRC both catch it.
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x40;
    let same_name = env.path("flip").join(f.file_name().unwrap());
    std::fs::create_dir_all(same_name.parent().unwrap()).unwrap();
    std::fs::write(&same_name, &flipped).unwrap();
    let (code, v, err) = verify(&env, &same_name, &["--min-size", "0"]);
    assert_eq!(code, Some(5), "{v}\n{err}");
    let fl = failed(&v);
    assert!(
        fl.contains(&"checksum".into()) && fl.contains(&"gzip".into()),
        "{fl:?}"
    );
    assert!(
        err.contains("ARCHIVE CHECK FAILED") && err.contains("checksum"),
        "{err}"
    );
    // Cut short.
    let cut = env.path("cut").join(f.file_name().unwrap());
    std::fs::create_dir_all(cut.parent().unwrap()).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let (code, v, _) = verify(&env, &cut, &["--min-size", "0"]);
    assert_eq!(code, Some(5), "{v}");
    assert!(failed(&v).contains(&"gzip".into()), "{v}");
    // Renamed with another checksum: only the checksum fails, exit 8.
    let renamed = dir.join("masclet_daily_20250311_0745_00000000.tar.gz");
    std::fs::copy(&f, &renamed).unwrap();
    let (code, v, _) = verify(&env, &renamed, &["--min-size", "0"]);
    assert_eq!(code, Some(8), "{v}");
    assert_eq!(failed(&v), ["checksum"]);
    assert!(
        v["checks"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("damaged or renamed")
    );
    // Renamed to a name that is not a classic archive's.
    let odd = dir.join("backup.tar.gz");
    std::fs::copy(&f, &odd).unwrap();
    let (code, v, _) = verify(&env, &odd, &["--min-size", "0"]);
    assert_eq!(code, Some(8), "{v}");
    assert_eq!(failed(&v), ["checksum"]);
    assert!(
        v["checks"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("not a classic archive name")
    );
    // A sidecar that disagrees.
    std::fs::write(
        format!("{}.sha256", f.display()),
        format!("{}  x\n", "ab".repeat(32)),
    )
    .unwrap();
    let (code, v, _) = verify(&env, &f, &["--min-size", "0"]);
    assert_eq!(code, Some(8), "{v}");
    assert_eq!(failed(&v), ["sidecar"]);
    std::fs::remove_file(format!("{}.sha256", f.display())).unwrap();
    // Under the minimum size: the default 1 MiB, MIN_BACKUP_SIZE, --min-size.
    let (code, v, _) = verify(&env, &f, &[]);
    assert_eq!(code, Some(8), "{v}");
    assert_eq!(failed(&v), ["size"]);
    let o = env
        .cmd(&["verify-archive", f.to_str().unwrap()])
        .env("MIN_BACKUP_SIZE", "1K")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn hostile_members_fail_the_members_check_and_legitimate_odd_names_pass() {
    let env = Env::new();
    let out = env.path("hostile");
    let data: &[u8] = b"x";
    let cases: Vec<(&str, Vec<Raw<'_>>)> = vec![
        ("absolute path", vec![Raw::File(b"/etc/cron.d/evil", data)]),
        ("`..`", vec![Raw::File(b"a/../../evil", data)]),
        ("points outside", vec![Raw::Symlink(b"link", b"../../etc")]),
        (
            "points outside",
            vec![Raw::Symlink(b"link", b"/etc/passwd")],
        ),
        (
            "hard link",
            vec![Raw::File(b"a", data), Raw::HardLink(b"b", b"a")],
        ),
        ("device file", vec![Raw::Device(b"dev")]),
        (
            "twice",
            vec![Raw::File(b"a", data), Raw::File(b"./a", data)],
        ),
        ("decompression bomb", vec![Raw::Huge(b"big.sql", 1 << 40)]),
    ];
    for (i, (needle, members)) in cases.iter().enumerate() {
        let f = raw_archive(members, &out, "daily", &format!("2025031{}_0100", i % 10));
        let (code, v, _) = verify(&env, &f, &["--min-size", "0"]);
        assert_ne!(code, Some(0), "{needle}: {v}");
        assert!(failed(&v).contains(&"members".into()), "{needle}: {v}");
        let detail = v["checks"][5]["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "{needle}: {detail}");
        std::fs::remove_file(&f).unwrap();
    }
    let long = format!("{}/{}.sql", "d".repeat(80), "n".repeat(120));
    let f = raw_archive(
        &[
            Raw::File(b"caf\xe9.sql", data),
            Raw::File(long.as_bytes(), data),
            Raw::Symlink(b"d/link", b"../caf\xe9.sql"),
        ],
        &out,
        "weekly",
        "20250316_0100",
    );
    let (code, v, _) = verify(&env, &f, &["--min-size", "0"]);
    assert_eq!(code, Some(0), "{v}");
}

/// An archive with MANIFEST.json: `extra` adds a member it does not list, `bad_sha`
/// lists a wrong SHA-256.
fn with_manifest(env: &Env, extra: bool, bad_sha: bool, stamp: &str) -> PathBuf {
    let body: &[u8] = b"SELECT 1;\n";
    let mut sha = sha2::Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    if bad_sha {
        sha = "0".repeat(64);
    }
    let m = format!(
        r#"{{"version":1,"snapshot":"{}","time":"2025-03-11T06:45:00Z","source":"files","paths":["x"],"tags":[],"tool":"masclet test","members":[{{"path":"dump.sql","kind":"file","size":{},"sha256":"{sha}"}}]}}"#,
        "ab".repeat(32),
        body.len()
    );
    let mut members = vec![Raw::File(b"dump.sql", body)];
    if extra {
        members.push(Raw::File(b"extra.txt", body));
    }
    members.push(Raw::File(b"MANIFEST.json", m.as_bytes()));
    raw_archive(&members, &env.path("manifests"), "monthly", stamp)
}

#[test]
fn a_manifest_must_list_every_member_with_its_hash() {
    let env = Env::new();
    let good = with_manifest(&env, false, false, "20250301_0100");
    let (code, v, _) = verify(&env, &good, &["--min-size", "0"]);
    assert_eq!(code, Some(0), "{v}");
    assert!(
        v["checks"][6]["detail"].as_str().unwrap().contains("match"),
        "{v}"
    );
    for (extra, bad, needle) in [
        (true, false, "not in MANIFEST.json"),
        (false, true, "the manifest says"),
    ] {
        let f = with_manifest(
            &env,
            extra,
            bad,
            if extra {
                "20250302_0100"
            } else {
                "20250303_0100"
            },
        );
        let (code, v, _) = verify(&env, &f, &["--min-size", "0"]);
        assert_eq!(code, Some(5), "{v}");
        assert_eq!(failed(&v), ["manifest"]);
        assert!(
            v["checks"][6]["detail"].as_str().unwrap().contains(needle),
            "{v}"
        );
    }
}

fn scratch_dbs(pg: &PgCluster) -> String {
    pg.psql(
        "postgres",
        "SELECT datname FROM pg_database WHERE datname LIKE 'masclet\\_verify\\_%'",
    )
}

fn pg_dump_to(pg: &PgCluster, db: &str, to: &Path, custom: bool) {
    let mut c = Command::new(pg.bin_dir().join("pg_dump"));
    c.envs(pg.env(db)).arg("-f").arg(to);
    if custom {
        c.arg("-Fc");
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn restore_test(env: &Env, pg: &PgCluster, f: &Path) -> (Option<i32>, serde_json::Value, String) {
    let bin = pg.bin_dir().to_str().unwrap();
    verify(
        env,
        f,
        &[
            "--min-size",
            "0",
            "--restore-test",
            "--pg",
            &pg.url("postgres"),
            "--pg-bin",
            bin,
        ],
    )
}

#[test]
fn restore_test_of_old_dumps_passes_and_a_failing_dump_fails_and_the_database_goes() {
    let Some(pg) = PgCluster::start() else { return };
    pg.load_masclet_imperi("masclet_imperi", 200, 3);
    let env = Env::new();
    let src = env.path("dumps");
    std::fs::create_dir_all(src.join("backup")).unwrap();
    pg_dump_to(
        &pg,
        "masclet_imperi",
        &src.join("backup/masclet_imperi.sql"),
        false,
    );
    let plain = gnu_archive(
        &src,
        &["backup"],
        &env.path("old"),
        "daily",
        "20250311_0745",
    );
    let (code, v, err) = restore_test(&env, &pg, &plain);
    assert_eq!(code, Some(0), "{v}\n{err}");
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for want in [
        "restore",
        "original:count(animals)",
        "original:count(parts)",
        "original:users_not_empty",
    ] {
        assert!(names.contains(&want), "{want}: {names:?}");
    }
    assert_eq!(
        scratch_dbs(&pg),
        "",
        "the temporary database was left behind"
    );
    // A renamed archive fails its checksum, and is still test-restored.
    let renamed = env.path("old/backup-copy.tar.gz");
    std::fs::copy(&plain, &renamed).unwrap();
    let (code, v, err) = restore_test(&env, &pg, &renamed);
    assert_eq!(code, Some(8), "{v}\n{err}");
    assert_eq!(failed(&v), ["checksum"], "{v}");
    // pg_dump's custom format goes through pg_restore.
    let custom_src = env.path("custom");
    std::fs::create_dir_all(&custom_src).unwrap();
    pg_dump_to(
        &pg,
        "masclet_imperi",
        &custom_src.join("masclet_imperi.dump"),
        true,
    );
    let custom = gnu_archive(
        &custom_src,
        &["masclet_imperi.dump"],
        &env.path("old"),
        "weekly",
        "20250316_0745",
    );
    let (code, v, err) = restore_test(&env, &pg, &custom);
    assert_eq!(code, Some(0), "{v}\n{err}");
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["detail"].as_str().unwrap().contains("pg_restore"))
    );
    // A dump psql cannot restore: the restore check fails, exit 8, nothing left behind.
    let bad_src = env.path("bad");
    std::fs::create_dir_all(&bad_src).unwrap();
    let mut sql = std::fs::read(src.join("backup/masclet_imperi.sql")).unwrap();
    sql.extend_from_slice(b"\nINSERT INTO no_such_table VALUES (1);\n");
    std::fs::write(bad_src.join("masclet_imperi.sql"), sql).unwrap();
    let bad = gnu_archive(
        &bad_src,
        &["masclet_imperi.sql"],
        &env.path("old"),
        "monthly",
        "20250301_0745",
    );
    let (code, v, err) = restore_test(&env, &pg, &bad);
    assert_eq!(code, Some(8), "{v}\n{err}");
    assert_eq!(failed(&v), ["restore"]);
    assert!(err.contains("restore"), "{err}");
    assert_eq!(
        scratch_dbs(&pg),
        "",
        "the temporary database was left behind"
    );
}
