//! `masclet export`: classic archives checked with the real tools (GNU tar, gzip,
//! sha256sum; psql in export/pg.rs), byte identity whatever the thread count or the tags;
//! the failures that must leave nothing behind are in export/failures.rs, `--mirror`
//! following `forget`'s tier tags in export/mirror.rs.

mod failures;
mod mirror;
mod pg;

use super::*;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

/// `masclet export SNAPSHOT --tier TIER --dir DIR --json`, parsed.
fn export(env: &Env, snapshot: &str, tier: &str, dir: &Path) -> serde_json::Value {
    let out = env.ok(&[
        "export",
        snapshot,
        "--tier",
        tier,
        "--dir",
        dir.to_str().unwrap(),
        "--json",
    ]);
    serde_json::from_str(&out).unwrap()
}

fn sh(cmd: &str, args: &[&str], cwd: &Path) -> Output {
    Command::new(cmd)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn sh_ok(cmd: &str, args: &[&str], cwd: &Path) -> String {
    let o = sh(cmd, args, cwd);
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Names in `dir`, sorted (none when it is missing).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn archives(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with("masclet_") && n.ends_with(".tar.gz"))
        .collect()
}

fn temporaries(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with(".masclet-export-"))
        .collect()
}

#[test]
fn the_name_has_the_local_time_and_the_files_sha256_and_the_sidecar_checks() {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    env.ok(&[
        "backup",
        "--time",
        "2025-03-11T07:45:30Z",
        src.to_str().unwrap(),
    ]);
    let root = env.path("classic");
    // A fixed rule (no tz database needed): UTC+1 in March.
    let v: serde_json::Value = {
        let o = env
            .cmd(&["export", "latest", "--tier", "daily", "--json"])
            .env("BACKUP_ROOT", &root)
            .env("TZ", "CET-1CEST,M3.5.0,M10.5.0/3")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let path = PathBuf::from(v["path"].as_str().unwrap());
    let name = path.file_name().unwrap().to_str().unwrap().to_string();
    let sha = sh_ok("sha256sum", &[path.to_str().unwrap()], &root);
    let sha = sha.split_whitespace().next().unwrap();
    assert_eq!(
        name,
        format!("masclet_daily_20250311_0845_{}.tar.gz", &sha[..8])
    );
    assert_eq!(path.parent().unwrap(), root.join("daily"));
    assert_eq!(v["sha256"], sha);
    assert_eq!(v["tier"], "daily");
    assert_eq!(v["already"], false);
    assert_eq!(v["size"], std::fs::metadata(&path).unwrap().len());
    assert_eq!(v["snapshot"], env.snapshots()[0]["id"]);
    assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    // The sidecar works with the real sha256sum, from inside the tier folder.
    let daily = root.join("daily");
    let check = sh_ok("sha256sum", &["-c", &format!("{name}.sha256")], &daily);
    assert!(check.contains(&format!("{name}: OK")), "{check}");
    sh_ok("gzip", &["-t", &name], &daily);
    let listing = sh_ok("tar", &["-tvzf", &name], &daily);
    assert!(listing.contains("src/sub/data.bin"), "{listing}");
    assert!(listing.trim_end().ends_with("MANIFEST.json"), "{listing}");
    assert!(listing.contains("src/link -> a.txt"), "{listing}");
    // latest.tar.gz: a relative link to it.
    assert_eq!(
        std::fs::read_link(daily.join("latest.tar.gz")).unwrap(),
        PathBuf::from(&name)
    );
    // Neither a folder nor BACKUP_ROOT: an error naming both.
    let o = env
        .cmd(&["export", "latest", "--tier", "daily"])
        .env_remove("BACKUP_ROOT")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--dir") && err.contains("BACKUP_ROOT"),
        "{err}"
    );
}

#[test]
fn exports_are_byte_identical_whatever_the_thread_count_and_a_second_is_already_there() {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    // Several gzip blocks: 3 MB that compress a little.
    std::fs::write(
        src.join("big.bin"),
        masclet_tests::golden_bytes(3_000_000, 9),
    )
    .unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let mut files = Vec::new();
    for threads in ["1", "2", "5"] {
        let root = env.path(&format!("t{threads}"));
        let o = env
            .cmd(&[
                "export",
                "latest",
                "--tier",
                "weekly",
                "--dir",
                root.to_str().unwrap(),
            ])
            .env("RAYON_NUM_THREADS", threads)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let path = PathBuf::from(String::from_utf8(o.stdout).unwrap().trim());
        files.push((
            path.file_name().unwrap().to_owned(),
            std::fs::read(&path).unwrap(),
        ));
    }
    assert!(files.windows(2).all(|w| w[0] == w[1]), "exports differ");
    let root = env.path("t1");
    let before = std::fs::metadata(root.join("weekly").join(&files[0].0)).unwrap();
    let again = export(&env, "latest", "weekly", &root);
    assert_eq!(again["already"], true);
    let after = std::fs::metadata(root.join("weekly").join(&files[0].0)).unwrap();
    assert_eq!(
        (before.ino(), before.mtime_nsec()),
        (after.ino(), after.mtime_nsec())
    );
    assert_eq!(archives(&root.join("weekly")).len(), 1);
}

#[test]
fn latest_stays_on_the_newest_snapshot_and_retagging_does_not_change_the_bytes() {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    let older = env.ok(&[
        "backup",
        "--time",
        "2025-03-10T07:45:00Z",
        src.to_str().unwrap(),
    ]);
    let newer = env.ok(&[
        "backup",
        "--time",
        "2025-03-11T07:45:00Z",
        src.to_str().unwrap(),
    ]);
    let root = env.path("classic");
    let n = export(&env, newer.trim(), "daily", &root);
    let o = export(&env, older.trim(), "daily", &root);
    let daily = root.join("daily");
    let link = std::fs::read_link(daily.join("latest.tar.gz")).unwrap();
    let newest = PathBuf::from(n["path"].as_str().unwrap());
    assert_eq!(
        link,
        PathBuf::from(newest.file_name().unwrap()),
        "exporting an older one later"
    );
    // forget rewrites tier tags; the archive of the snapshot stays the same bytes.
    env.ok(&["forget", "--keep-daily", "2", "--keep-weekly", "1"]);
    let again = export(&env, older.trim(), "daily", &env.path("again"));
    assert_eq!(again["sha256"], o["sha256"]);
}

/// Type, mode, mtime (to the nanosecond), size and link target of every entry under
/// `root`.
fn inventory(root: &Path) -> Vec<(Vec<u8>, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            let what = if m.is_symlink() {
                format!("link -> {:?}", std::fs::read_link(&p).unwrap())
            } else if m.is_dir() {
                stack.push(p.clone());
                format!(
                    "dir {:o} {}.{:09}",
                    m.mode() & 0o7777,
                    m.mtime(),
                    m.mtime_nsec()
                )
            } else {
                let hash = blake3::hash(&std::fs::read(&p).unwrap());
                format!(
                    "file {:o} {}.{:09} {} {hash}",
                    m.mode() & 0o7777,
                    m.mtime(),
                    m.mtime_nsec(),
                    m.len()
                )
            };
            out.push((rel, what));
        }
    }
    out.sort();
    out
}

fn touch(path: &Path, date: &str) {
    let o = Command::new("touch")
        .args(["-h", "-d", date])
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn gnu_tar_extracts_what_restore_gives_for_awkward_names_links_and_times() {
    let env = Env::new();
    let src = env.path("src");
    let deep = src
        .join("a".repeat(120))
        .join("b".repeat(90))
        .join("c".repeat(60));
    std::fs::create_dir_all(&deep).unwrap();
    let odd = src.join(std::ffi::OsStr::from_bytes(b"caf\xe9 \xff\xfe"));
    std::fs::create_dir(&odd).unwrap();
    std::fs::write(
        odd.join(std::ffi::OsStr::from_bytes(&[0xe9; 150])),
        b"latin-1\n",
    )
    .unwrap();
    std::fs::write(
        deep.join("z".repeat(200)),
        masclet_tests::golden_bytes(70_000, 3),
    )
    .unwrap();
    std::fs::write(src.join("empty"), b"").unwrap();
    std::fs::write(src.join("old"), b"1950\n").unwrap();
    std::fs::write(src.join("future"), b"2300\n").unwrap();
    std::os::unix::fs::symlink("empty", src.join("short-link")).unwrap();
    std::os::unix::fs::symlink(
        format!("/nowhere/{}", "t".repeat(180)),
        src.join("long-link"),
    )
    .unwrap();
    std::fs::set_permissions(src.join("old"), std::fs::Permissions::from_mode(0o640)).unwrap();
    touch(&src.join("old"), "1950-01-02 03:04:05.25 UTC");
    touch(&src.join("future"), "2300-06-01 00:00:00 UTC");
    touch(&odd, "1969-12-31 23:59:59 UTC");
    env.ok(&["backup", src.to_str().unwrap()]);
    let restored = env.path("restored");
    env.ok(&["restore", "latest", "--target", restored.to_str().unwrap()]);
    let root = env.path("classic");
    let v = export(&env, "latest", "monthly", &root);
    let untar = env.path("untar");
    std::fs::create_dir(&untar).unwrap();
    sh_ok(
        "tar",
        &[
            "-xzf",
            v["path"].as_str().unwrap(),
            "-C",
            untar.to_str().unwrap(),
        ],
        &untar,
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(untar.join("MANIFEST.json")).unwrap()).unwrap();
    std::fs::remove_file(untar.join("MANIFEST.json")).unwrap();
    let (want, got) = (inventory(&restored), inventory(&untar));
    assert_eq!(got, want);
    assert!(want.len() >= 12, "{want:?}");
    assert!(
        want.iter()
            .any(|(_, w)| w.contains(" -631054555.250000000 ")),
        "{want:?}"
    );
    // The manifest lists every member but itself, with the SHA-256 of each file.
    assert_eq!(manifest["version"], 1);
    assert_eq!(manifest["members"].as_array().unwrap().len(), want.len());
    let empty = manifest["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path"] == "src/empty")
        .unwrap();
    assert_eq!(
        empty["sha256"],
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert!(
        manifest["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.get("path_hex").is_some())
    );
}
