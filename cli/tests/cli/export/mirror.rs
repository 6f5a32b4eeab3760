//! `export --mirror` after `forget`: the tier folders hold exactly the snapshots tagged with
//! their tier, a forget that drops a tier removes exactly those exports (and sidecars), and
//! files masclet did not write stay, even with archive-like names.

use super::*;
use std::collections::BTreeSet;

/// Every command here in UTC, so retention's calendar and the names agree with the test.
fn run_utc(env: &Env, args: &[&str]) -> String {
    let o = env.cmd(args).env("TZ", "UTC0").output().unwrap();
    assert!(
        o.status.success(),
        "masclet {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Per tier, the snapshot ids tagged with it.
fn tagged(env: &Env) -> Vec<BTreeSet<String>> {
    let snaps = env.snapshots();
    ["daily", "weekly", "monthly", "yearly"]
        .iter()
        .map(|t| {
            snaps
                .iter()
                .filter(|s| s["tags"].as_array().unwrap().iter().any(|x| x == t))
                .map(|s| s["id"].as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

/// Per tier, the snapshot ids the archives in its folder hold, read from each archive's
/// MANIFEST.json with GNU tar.
fn exported(root: &Path) -> Vec<BTreeSet<String>> {
    ["daily", "weekly", "monthly", "yearly"]
        .iter()
        .map(|t| {
            let dir = root.join(t);
            archives(&dir)
                .iter()
                .filter(|n| !n.contains("deadbeef"))
                .map(|n| {
                    let m = sh_ok("tar", &["-xzOf", n, "MANIFEST.json"], &dir);
                    let v: serde_json::Value = serde_json::from_str(&m).unwrap();
                    v["snapshot"].as_str().unwrap().to_string()
                })
                .collect()
        })
        .collect()
}

#[test]
fn mirror_follows_forget_and_leaves_files_it_did_not_write_alone() {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    for day in [
        "2025-02-20",
        "2025-02-27",
        "2025-03-04",
        "2025-03-05",
        "2025-03-06",
    ] {
        std::fs::write(src.join("a.txt"), day).unwrap();
        run_utc(
            &env,
            &[
                "backup",
                "--time",
                &format!("{day}T07:45:00Z"),
                src.to_str().unwrap(),
            ],
        );
    }
    run_utc(
        &env,
        &[
            "forget",
            "--keep-daily",
            "3",
            "--keep-weekly",
            "2",
            "--keep-monthly",
            "2",
            "--keep-yearly",
            "1",
        ],
    );
    let root = env.path("classic");
    let r = root.to_str().unwrap();
    run_utc(&env, &["export", "--mirror", "--dir", r]);
    let want = tagged(&env);
    assert_eq!(exported(&root), want);
    assert_eq!(want[0].len(), 3);
    // A kept export without its sidecar (as an export killed right after naming leaves
    // it): the next mirror writes it again.
    let weekly = root.join("weekly");
    let w0 = archives(&weekly)[0].clone();
    std::fs::remove_file(weekly.join(format!("{w0}.sha256"))).unwrap();
    // Files masclet did not write, one with an archive's name.
    std::fs::write(root.join("daily/notes.txt"), b"mine").unwrap();
    std::fs::write(
        root.join("daily/masclet_daily_20200101_0000_deadbeef.tar.gz"),
        b"old",
    )
    .unwrap();
    let mut before = names(&root.join("daily"));
    // Keep one daily: two daily exports go (one of them may stay weekly, in weekly/).
    run_utc(
        &env,
        &[
            "forget",
            "--keep-daily",
            "1",
            "--keep-weekly",
            "2",
            "--keep-monthly",
            "2",
            "--keep-yearly",
            "1",
        ],
    );
    let plan: serde_json::Value = serde_json::from_str(&run_utc(
        &env,
        &["export", "--mirror", "--dry-run", "--dir", r, "--json"],
    ))
    .unwrap();
    assert_eq!(
        names(&root.join("daily")),
        before,
        "a dry run changes nothing"
    );
    let removals = plan["removals"].as_array().unwrap();
    assert_eq!(removals.len(), 2, "{plan}");
    assert!(removals.iter().all(|x| x["tier"] == "daily"));
    assert!(plan["exports"].as_array().unwrap().is_empty(), "{plan}");
    let ignored = plan["ignored"].to_string();
    assert!(
        ignored.contains("notes.txt") && ignored.contains("deadbeef"),
        "{plan}"
    );
    run_utc(&env, &["export", "--mirror", "--dir", r]);
    assert_eq!(exported(&root), tagged(&env));
    for x in removals {
        let p = PathBuf::from(x["path"].as_str().unwrap());
        let n = p.file_name().unwrap().to_str().unwrap().to_string();
        before.retain(|b| *b != n && *b != format!("{n}.sha256"));
    }
    assert_eq!(
        names(&root.join("daily")),
        before,
        "exactly those two and their sidecars"
    );
    // latest.tar.gz: the newest of each tier, relative.
    for t in ["daily", "weekly", "monthly", "yearly"] {
        let link = std::fs::read_link(root.join(t).join("latest.tar.gz")).unwrap();
        assert_eq!(link.components().count(), 1, "{link:?}");
        let newest = archives(&root.join(t))
            .into_iter()
            .filter(|n| !n.contains("deadbeef"))
            .max()
            .unwrap();
        assert_eq!(link, PathBuf::from(newest), "{t}");
    }
    // Every sidecar checks.
    for t in ["daily", "weekly", "monthly", "yearly"] {
        let dir = root.join(t);
        for n in archives(&dir).iter().filter(|n| !n.contains("deadbeef")) {
            sh_ok("sha256sum", &["-c", &format!("{n}.sha256")], &dir);
        }
    }
}

#[test]
fn a_damaged_snapshot_fails_its_own_export_only_and_mirror_exits_5() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for (day, seed) in [("2025-03-04", 1), ("2025-03-05", 2)] {
        std::fs::write(src.join("data"), masclet_tests::golden_bytes(300_000, seed)).unwrap();
        run_utc(
            &env,
            &[
                "backup",
                "--time",
                &format!("{day}T07:45:00Z"),
                src.to_str().unwrap(),
            ],
        );
    }
    run_utc(
        &env,
        &[
            "forget",
            "--keep-daily",
            "2",
            "--keep-weekly",
            "0",
            "--keep-monthly",
            "0",
            "--keep-yearly",
            "0",
        ],
    );
    // The newest pack holds only the second night's data.
    let mut packs: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    for d in std::fs::read_dir(env.repo.join("packs")).unwrap() {
        for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            packs.push((std::fs::metadata(&p).unwrap().modified().unwrap(), p));
        }
    }
    packs.sort();
    let pack = &packs.last().unwrap().1;
    let mut bytes = std::fs::read(pack).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(pack, bytes).unwrap();
    let root = env.path("classic");
    let o = env
        .cmd(&["export", "--mirror", "--dir", root.to_str().unwrap()])
        .env("TZ", "UTC0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(err.contains("1 export(s) failed"), "{err}");
    let daily = root.join("daily");
    assert_eq!(archives(&daily).len(), 1, "{:?}", names(&daily));
    assert!(
        archives(&daily)[0].contains("20250304"),
        "{:?}",
        names(&daily)
    );
    assert!(temporaries(&daily).is_empty(), "{:?}", names(&daily));
}
