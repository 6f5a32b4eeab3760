//! `import` of classic archives: round trips against GNU tar's own extraction, the name's
//! time and tier, idempotence, a directory of nights deduplicating, hostile and damaged
//! archives refused with nothing committed, kill -9 mid-import, two imports at once.

use super::archives::{
    Raw, database_archive, fake_dump, gnu_archive, name_it, raw_archive, sha256_hex,
};
use super::*;
use std::os::unix::ffi::OsStrExt;

fn import_json(env: &Env, args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let mut all = vec!["import", "--json"];
    all.extend(args);
    let o = env.run(&all);
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (
        o.status.code(),
        v,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `tar -x` of `archive` into `to`.
fn gnu_extract(archive: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let o = Command::new("tar")
        .arg("-C")
        .arg(to)
        .arg("-xzf")
        .arg(archive)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A tree GNU tar lists in directory order, with odd but legitimate names.
fn odd_tree(root: &Path) {
    std::fs::create_dir_all(root.join("b/deeper")).unwrap();
    std::fs::create_dir_all(root.join("a")).unwrap();
    std::fs::write(root.join("z.sql"), fake_dump(200_000, 1)).unwrap();
    std::fs::write(root.join("a/one.txt"), b"one\n").unwrap();
    std::fs::write(root.join("b/deeper/empty"), b"").unwrap();
    std::fs::write(root.join("b/two.sql"), fake_dump(50_000, 2)).unwrap();
    let long = format!("{}.txt", "l".repeat(150));
    std::fs::write(root.join("b").join(long), b"long name\n").unwrap();
    let non_utf8 = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    std::fs::write(root.join("a").join(non_utf8), b"latin-1 name\n").unwrap();
    std::os::unix::fs::symlink("../z.sql", root.join("a/link")).unwrap();
}

#[test]
fn an_imported_archive_restores_to_what_tar_extracts_with_the_names_time_and_tier() {
    let env = Env::new();
    let src = env.path("src");
    odd_tree(&src);
    // Members out of the tree's order on purpose: z.sql first, then b, then a.
    let f = gnu_archive(
        &src,
        &["z.sql", "b", "a"],
        &env.path("old"),
        "weekly",
        "20250316_0300",
    );
    let (code, v, err) = import_json(&env, &["--dry-run", f.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{v}\n{err}");
    let plan = &v["archives"][0];
    assert_eq!(plan["status"], "would_import", "{v}");
    assert_eq!(plan["in_tree_order"], false, "{v}");
    assert!(plan["spool_bytes"].as_u64().unwrap() > 200_000, "{v}");
    assert!(env.snapshots().is_empty(), "a dry run commits nothing");
    let (code, v, err) = import_json(&env, &[f.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{v}\n{err}");
    assert_eq!(v["archives"][0]["status"], "imported");
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 1);
    let s = &snaps[0];
    let local = chrono::NaiveDate::from_ymd_opt(2025, 3, 16)
        .unwrap()
        .and_hms_opt(3, 0, 0)
        .unwrap();
    let want = chrono::TimeZone::from_local_datetime(&chrono::Local, &local)
        .earliest()
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert_eq!(
        s["time"],
        want.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    assert_eq!(s["source"], "import");
    let tags: Vec<&str> = s["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        tags,
        ["weekly", &format!("archive-sha256:{}", sha256_hex(&f))]
    );
    let restored = env.path("restored");
    env.ok(&["restore", "latest", "--target", restored.to_str().unwrap()]);
    let extracted = env.path("extracted");
    gnu_extract(&f, &extracted);
    same_tree(&extracted, &restored);
    env.ok(&["check", "--read-data"]);
}

#[test]
fn importing_twice_makes_one_snapshot_and_says_which() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("masclet_imperi.sql"), fake_dump(100_000, 3)).unwrap();
    let f = gnu_archive(
        &src,
        &["masclet_imperi.sql"],
        &env.path("old"),
        "daily",
        "20250311_0745",
    );
    env.ok(&["import", f.to_str().unwrap()]);
    let id = env.snapshots()[0]["short_id"].as_str().unwrap().to_string();
    let out = env.ok(&["import", f.to_str().unwrap()]);
    assert!(out.contains(&format!("already imported as {id}")), "{out}");
    assert_eq!(env.snapshots().len(), 1);
}

#[test]
fn a_directory_of_nights_imports_oldest_first_and_later_nights_add_little() {
    let env = Env::new();
    let old = env.path("old");
    let base = fake_dump(2_000_000, 4);
    for (i, (tier, stamp)) in [
        ("daily", "20250310_0745"),
        ("daily", "20250311_0745"),
        ("weekly", "20250312_0745"),
    ]
    .iter()
    .enumerate()
    {
        let src = env.path(&format!("night{i}"));
        std::fs::create_dir_all(&src).unwrap();
        let mut dump = base.clone();
        // A few rows change each night.
        for k in 0..5 {
            let at = (i * 7919 + k * 300_007) % (dump.len() - 100);
            dump[at..at + 20].copy_from_slice(&[b'0' + i as u8; 20]);
        }
        std::fs::write(src.join("masclet_imperi.sql"), dump).unwrap();
        gnu_archive(&src, &["masclet_imperi.sql"], &old, tier, stamp);
    }
    std::os::unix::fs::symlink("daily/whatever.tar.gz", old.join("latest.tar.gz")).unwrap();
    std::fs::write(old.join("daily/notes.txt"), b"x").unwrap();
    let (code, v, err) = import_json(&env, &[old.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{v}\n{err}");
    let a = v["archives"].as_array().unwrap();
    assert_eq!(a.len(), 3, "{v}");
    let added: Vec<u64> = a
        .iter()
        .map(|x| x["bytes_added"].as_u64().unwrap())
        .collect();
    assert!(added[0] > 1_000_000, "{added:?}");
    for later in &added[1..] {
        assert!(
            *later * 10 < added[0],
            "a later night stores little: {added:?}"
        );
    }
    let skipped = v["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{v}");
    assert!(skipped[0]["file"].as_str().unwrap().ends_with("notes.txt"));
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 3);
    assert_eq!(snaps[2]["tags"][0], "weekly");
    // Again: all three already there.
    let (code, v, _) = import_json(&env, &[old.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    assert!(
        v["archives"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["status"] == "already_imported"),
        "{v}"
    );
    // A folder without archives is a failure, not an empty success.
    let empty = env.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    env.fails(
        &["import", empty.to_str().unwrap()],
        1,
        "no classic archives",
    );
}

#[test]
fn hostile_damaged_and_misnamed_archives_are_refused_with_nothing_committed() {
    let env = Env::new();
    let out = env.path("hostile");
    let data: &[u8] = b"data\n";
    let outside = env.path("evil");
    let abs = format!("{}/planted", outside.display());
    let cases: Vec<(i32, &str, Vec<Raw<'_>>)> = vec![
        (1, "absolute path", vec![Raw::File(abs.as_bytes(), data)]),
        (1, "`..`", vec![Raw::File(b"../../evil/planted", data)]),
        (
            1,
            "points outside",
            vec![Raw::Dir(b"d"), Raw::Symlink(b"d/l", b"../../evil")],
        ),
        (
            1,
            "through other symlinks",
            vec![
                Raw::Dir(b"sub"),
                Raw::Symlink(b"sub/d", b".."),
                Raw::Symlink(b"sub/e", b"d/.."),
            ],
        ),
        (
            1,
            "hard link",
            vec![Raw::File(b"a", data), Raw::HardLink(b"b", b"a")],
        ),
        (
            1,
            "device file",
            vec![Raw::Device(b"dev"), Raw::File(b"a", data)],
        ),
        (
            1,
            "twice",
            vec![Raw::File(b"a", data), Raw::File(b"a", data)],
        ),
        (
            1,
            "decompression bomb",
            vec![Raw::Huge(b"big.sql", 1 << 40)],
        ),
        (
            1,
            "not a directory",
            vec![Raw::File(b"a", data), Raw::File(b"a/b", data)],
        ),
        (1, "no content", vec![Raw::Dir(b"empty")]),
    ];
    for (i, (code, needle, members)) in cases.iter().enumerate() {
        let f = raw_archive(members, &out, "daily", &format!("2025031{i}_0100"));
        let o = env.run(&["import", f.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(*code), "{needle}: {err}");
        assert!(err.contains(needle), "{needle}: {err}");
        assert!(
            env.snapshots().is_empty(),
            "{needle}: a snapshot was committed"
        );
        assert!(!outside.exists(), "{needle}: something was written outside");
    }
    // Damaged gzip: exit 5; a wrong checksum in the name: exit 8, before anything inside
    // is read (the archive is not even gzip here).
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("d.sql"), fake_dump(100_000, 5)).unwrap();
    let good = gnu_archive(&src, &["d.sql"], &env.path("old"), "daily", "20250311_0745");
    let mut bytes = std::fs::read(&good).unwrap();
    let n = bytes.len();
    bytes.truncate(n - 100);
    std::fs::write(env.path("cut.tar.gz"), &bytes).unwrap();
    let cut = name_it(
        &env.path("cut.tar.gz"),
        &env.path("old"),
        "daily",
        "20250312_0745",
    );
    env.fails(&["import", cut.to_str().unwrap()], 5, "damaged");
    let junk = env.path("old/daily/masclet_daily_20250313_0745_12345678.tar.gz");
    std::fs::write(&junk, b"not even gzip").unwrap();
    env.fails(&["import", junk.to_str().unwrap()], 8, "nothing was read");
    assert!(env.snapshots().is_empty());
    env.ok(&["check"]);
}

#[test]
fn kill_9_mid_import_leaves_a_consistent_repository_without_the_snapshot() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big.bin"), masclet_tests::noise(96 << 20, 6)).unwrap();
    let f = gnu_archive(
        &src,
        &["big.bin"],
        &env.path("old"),
        "daily",
        "20250311_0745",
    );
    let packs_before = tree_state(&env.repo.join("packs")).len();
    let mut child = env.cmd(&["import", f.to_str().unwrap()]).spawn().unwrap();
    // Killed once the first pack of the import is durable: past both reads, mid-write.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while tree_state(&env.repo.join("packs")).len() == packs_before {
        assert!(
            std::time::Instant::now() < deadline,
            "no pack was ever written"
        );
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the import finished before the kill: make the archive larger"
    );
    assert!(env.snapshots().is_empty());
    env.ok(&["check"]);
    env.ok(&["import", f.to_str().unwrap()]);
    assert_eq!(env.snapshots().len(), 1);
    env.ok(&["check", "--read-data"]);
}

#[test]
fn two_imports_at_once_of_different_archives_both_land_and_of_one_make_one_snapshot() {
    let env = Env::new();
    let mut files = Vec::new();
    for i in 0..2u64 {
        let src = env.path(&format!("src{i}"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("masclet_imperi.sql"), fake_dump(3_000_000, 10 + i)).unwrap();
        files.push(gnu_archive(
            &src,
            &["masclet_imperi.sql"],
            &env.path("old"),
            "daily",
            &format!("2025031{i}_0745"),
        ));
    }
    let children: Vec<_> = files
        .iter()
        .map(|f| {
            env.cmd(&["import", f.to_str().unwrap()])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(env.snapshots().len(), 2);
    env.ok(&["check", "--read-data"]);
    // The same archive twice at once: the second waits for the first and finds it.
    let fresh = Env::new();
    let children: Vec<_> = (0..2)
        .map(|_| {
            fresh
                .cmd(&["import", files[0].to_str().unwrap()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).into_owned()
        })
        .collect();
    assert_eq!(fresh.snapshots().len(), 1, "{outs:?}");
    assert_eq!(
        outs.iter()
            .filter(|o| o.contains("already imported"))
            .count(),
        1,
        "{outs:?}"
    );
    // One archive under two paths at once: they meet at the lock on its SHA-256.
    let copies = env.path("copies");
    std::fs::create_dir_all(&copies).unwrap();
    let copy = copies.join(files[1].file_name().unwrap());
    std::fs::copy(&files[1], &copy).unwrap();
    let third = Env::new();
    let children: Vec<_> = [&files[1], &copy]
        .iter()
        .map(|f| {
            third
                .cmd(&["import", f.to_str().unwrap()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(
        third.snapshots().len(),
        1,
        "copies of one archive made two snapshots"
    );
}

#[test]
fn a_database_archive_imports_as_a_database_snapshot_that_verify_restores() {
    let Some(pg) = masclet_tests::pg::PgCluster::start() else {
        return;
    };
    pg.load_masclet_imperi("masclet_imperi", 150, 9);
    let source = Env::new();
    let f = database_archive(&source, &pg);
    let bin = pg.bin_dir().to_str().unwrap().to_string();
    // The archive's own test restore runs verify's checks against its manifest.
    let o = source
        .cmd(&[
            "verify-archive",
            "--json",
            "--min-size",
            "0",
            "--restore-test",
            "--pg-bin",
            &bin,
            f.to_str().unwrap(),
        ])
        .env("DATABASE_URL", pg.url("postgres"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(0), "{v}");
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "rows:animals"),
        "{v}"
    );
    let env = Env::new();
    env.ok(&["import", f.to_str().unwrap()]);
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["source"], "postgres");
    assert_eq!(snaps[0]["paths"][0], "masclet_imperi");
    let ls = env.ok(&["ls", "latest"]);
    assert!(!ls.contains("MANIFEST.json"), "{ls}");
    let o = env
        .cmd(&["verify", "--json", "--pg-bin", &bin])
        .env("DATABASE_URL", pg.url("postgres"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{v}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(v["ok"], true);
}

/// The archive is read twice (plan, then import): one replaced in between by another of
/// the same layout fails on its members' SHA-256 and commits nothing.
#[test]
fn an_archive_changed_between_plan_and_import_commits_nothing() {
    use masclet_engine::archive::{self, ImportOptions};
    let env = Env::new();
    let mut made = Vec::new();
    for seed in [1, 2] {
        let src = env.path(&format!("src{seed}"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("d.sql"), fake_dump(200_000, seed)).unwrap();
        made.push(gnu_archive(
            &src,
            &["d.sql"],
            &env.path(&format!("old{seed}")),
            "daily",
            "20250311_0745",
        ));
    }
    let opts = ImportOptions::default();
    let plan = archive::plan_import(&made[0], &opts, &masclet_engine::NoProgress).unwrap();
    std::fs::copy(&made[1], &made[0]).unwrap();
    let storage = masclet_engine::LocalStorage::open(&env.repo).unwrap();
    let index = storage.index_path();
    let o = masclet_engine::OpenOptions::new("test", Some(masclet_engine::LockMode::Shared));
    let mut repo =
        masclet_engine::Repo::open(std::sync::Arc::new(storage), &index, b"s3cret pass", &o)
            .unwrap();
    let e = archive::import(&mut repo, plan, &opts, &masclet_engine::NoProgress).unwrap_err();
    assert!(e.to_string().contains("changed"), "{e}");
    // Damage, not an I/O failure: the reader's own error keeps its kind through the writer.
    assert_eq!(e.kind(), masclet_engine::ErrorKind::Corrupt, "{e}");
    drop(repo);
    assert!(env.snapshots().is_empty());
    env.ok(&["check"]);
}
