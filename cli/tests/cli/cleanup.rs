//! `masclet cleanup`: old temporaries removed, old logs gzipped (checked with the real
//! gzip and zcat), exports of forgotten snapshots removed, damaged exports quarantined,
//! orphaned packs removed, the repository skipped while another process holds its lock,
//! and `--dry-run` changing nothing.

use super::*;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Set `path`'s modification time `age` ago (a link's own, not its target's).
fn age(path: &Path, age: Duration) {
    let d = (SystemTime::now() - age)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let ts = rustix::fs::Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    };
    let times = rustix::fs::Timestamps {
        last_access: ts,
        last_modification: ts,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// An initialised repository, and the temp, log and export folders beside it.
fn setup() -> Env {
    let env = Env::new();
    for d in ["tmp", "logs", "exports"] {
        std::fs::create_dir_all(env.path(d)).unwrap();
    }
    env
}

/// `masclet cleanup ARGS` with the temp, log and export folders inside the test's folder.
fn cleanup(env: &Env, args: &[&str]) -> Output {
    env.cmd(&[&["cleanup"], args].concat())
        .env("TMPDIR", env.path("tmp"))
        .env("LOG_DIR", env.path("logs"))
        .env("BACKUP_ROOT", env.path("exports"))
        .env_remove("QUARANTINE_DIR")
        .output()
        .unwrap()
}

fn cleanup_ok(env: &Env, args: &[&str]) -> String {
    let o = cleanup(env, args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "cleanup {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Every entry under the test's folders with its kind, size and time.
fn listing(env: &Env) -> Vec<(PathBuf, bool, u64, i64)> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = ["tmp", "logs", "exports", "repo/packs", "repo/snapshots"]
        .iter()
        .map(|d| env.path(d))
        .collect();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.push((p, m.is_symlink(), m.len(), m.mtime()));
        }
    }
    out.sort();
    out
}

fn sh_ok(cmd: &str, args: &[&str]) -> Vec<u8> {
    let o = Command::new(cmd).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// Back up a small tree and export it into `exports/daily/`; returns (snapshot, archive).
fn backup_and_export(env: &Env, seed: &str) -> (String, PathBuf) {
    let src = env.path(&format!("src-{seed}"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), format!("datos {seed}\n")).unwrap();
    let id = env
        .ok(&["backup", src.to_str().unwrap()])
        .trim()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&env.ok(&[
        "export",
        &id,
        "--tier",
        "daily",
        "--dir",
        env.path("exports").to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    (id, PathBuf::from(v["path"].as_str().unwrap()))
}

fn sidecar(p: &Path) -> PathBuf {
    PathBuf::from(format!("{}.sha256", p.display()))
}

#[test]
fn cleanup_removes_old_temporaries_and_gzips_logs_older_than_the_age() {
    let env = setup();
    let (tmp, logs) = (env.path("tmp"), env.path("logs"));
    for n in ["masclet_backup_old", "masclet_backup_young", "other_old"] {
        std::fs::write(tmp.join(n), vec![7u8; 12_000]).unwrap();
    }
    age(&tmp.join("masclet_backup_old"), 2 * DAY);
    age(&tmp.join("other_old"), 9 * DAY);
    let target = env.path("precious.sql");
    std::fs::write(&target, b"not ours to remove").unwrap();
    std::os::unix::fs::symlink(&target, tmp.join("masclet_backup_link")).unwrap();
    age(&tmp.join("masclet_backup_link"), 2 * DAY);
    let old_body = b"2025-01-01 03:00 backup daily ok\n".repeat(2000);
    std::fs::write(logs.join("old.log"), &old_body).unwrap();
    std::fs::write(logs.join("ten.log"), b"ten days\n").unwrap();
    std::fs::write(logs.join("backup.log"), b"being written\n").unwrap();
    age(&logs.join("old.log"), 40 * DAY);
    age(&logs.join("ten.log"), 10 * DAY);

    let out = cleanup_ok(&env, &["-a", "30"]);
    assert!(
        out.contains(&format!(
            "removed {}",
            tmp.join("masclet_backup_old").display()
        )),
        "{out}"
    );
    assert!(out.contains("older than 24 h"), "{out}");
    assert!(
        out.contains(&format!("compressed {}", logs.join("old.log").display())),
        "{out}"
    );
    assert!(out.contains("freed "), "{out}");
    assert!(!tmp.join("masclet_backup_old").exists());
    assert!(std::fs::symlink_metadata(tmp.join("masclet_backup_link")).is_err());
    assert_eq!(std::fs::read(&target).unwrap(), b"not ours to remove");
    assert!(tmp.join("masclet_backup_young").exists() && tmp.join("other_old").exists());
    let gz = logs.join("old.log.gz");
    sh_ok("gzip", &["-t", gz.to_str().unwrap()]);
    assert_eq!(sh_ok("zcat", &[gz.to_str().unwrap()]), old_body);
    assert!(!logs.join("old.log").exists());
    assert!(logs.join("ten.log").exists() && logs.join("backup.log").exists());

    // -a 7 reaches the ten-day-old log; the fresh backup.log is still left alone.
    let out = cleanup_ok(&env, &["-a", "7"]);
    assert!(
        out.contains(&format!("compressed {}", logs.join("ten.log").display())),
        "{out}"
    );
    assert_eq!(
        sh_ok("zcat", &[logs.join("ten.log.gz").to_str().unwrap()]),
        b"ten days\n"
    );
    assert!(logs.join("backup.log").exists() && !logs.join("backup.log.gz").exists());
}

#[test]
fn cleanup_dry_run_lists_what_the_real_run_does_and_changes_nothing() {
    let env = setup();
    let (_, kept) = backup_and_export(&env, "kept");
    let (gone_id, gone) = backup_and_export(&env, "gone");
    env.ok(&["forget", &gone_id]);
    std::fs::write(env.path("tmp/masclet_backup_x"), b"x").unwrap();
    age(&env.path("tmp/masclet_backup_x"), 3 * DAY);
    std::fs::write(env.path("logs/a.log"), b"x\n").unwrap();
    age(&env.path("logs/a.log"), 31 * DAY);
    let before = listing(&env);
    let dry: serde_json::Value =
        serde_json::from_str(&cleanup_ok(&env, &["--dry-run", "--json"])).unwrap();
    assert_eq!(listing(&env), before, "--dry-run changed something");
    let text = cleanup_ok(&env, &["--dry-run"]);
    assert!(
        text.contains("would remove") && text.contains("nothing changed"),
        "{text}"
    );
    assert_eq!(listing(&env), before);
    let planned: Vec<String> = dry["plan"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(planned.len(), 3, "{dry}");
    assert!(planned.contains(&gone.display().to_string()), "{dry}");
    let real: serde_json::Value = serde_json::from_str(&cleanup_ok(&env, &["--json"])).unwrap();
    let done: Vec<String> = real["summary"]["done"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["item"]["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(done, planned);
    assert!(kept.exists() && !gone.exists());
}

#[test]
fn cleanup_removes_exports_of_forgotten_snapshots_and_leaves_live_and_foreign_ones() {
    let env = setup();
    let (gone_id, gone) = backup_and_export(&env, "gone");
    let (_, kept) = backup_and_export(&env, "kept");
    let daily = env.path("exports/daily");
    // Foreign files: a classic name whose bytes match it, and any other tarball.
    let foreign_bytes = b"an archive of the old system".to_vec();
    let sha = sha2::Sha256::digest(&foreign_bytes);
    let foreign = daily.join(format!(
        "masclet_daily_20240101_0300_{}.tar.gz",
        sha[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ));
    std::fs::write(&foreign, &foreign_bytes).unwrap();
    std::fs::write(daily.join("other.tar.gz"), b"someone else's").unwrap();
    env.ok(&["forget", &gone_id]);
    let out = cleanup_ok(&env, &[]);
    assert!(
        out.contains(&format!("removed {}", gone.display())),
        "{out}"
    );
    assert!(out.contains("no longer exists"), "{out}");
    assert!(
        out.contains(&format!(
            "left alone {}: not an export of this repository",
            foreign.display()
        )),
        "{out}"
    );
    assert!(!gone.exists() && !sidecar(&gone).exists());
    assert!(kept.exists() && sidecar(&kept).exists());
    assert!(foreign.exists() && daily.join("other.tar.gz").exists());
    assert_eq!(
        std::fs::read_link(daily.join("latest.tar.gz")).unwrap(),
        PathBuf::from(kept.file_name().unwrap())
    );
    env.ok(&["verify-archive", "--min-size", "0", kept.to_str().unwrap()]);
}

use sha2::Digest;

#[test]
fn cleanup_quarantines_a_damaged_export_and_the_others_still_verify() {
    let env = setup();
    let (_, sound) = backup_and_export(&env, "sound");
    let (_, damaged) = backup_and_export(&env, "damaged");
    let mut b = std::fs::read(&damaged).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x01;
    std::fs::write(&damaged, b).unwrap();
    let out = cleanup_ok(&env, &[]);
    let q = env
        .path("exports/quarantine")
        .join(damaged.file_name().unwrap());
    assert!(
        out.contains(&format!(
            "quarantined {} -> {}",
            damaged.display(),
            q.display()
        )),
        "{out}"
    );
    assert!(q.exists() && sidecar(&q).exists() && !damaged.exists());
    assert_eq!(
        std::fs::metadata(env.path("exports/quarantine"))
            .unwrap()
            .mode()
            & 0o777,
        0o700
    );
    let daily = env.path("exports/daily");
    assert_eq!(
        std::fs::read_link(daily.join("latest.tar.gz")).unwrap(),
        PathBuf::from(sound.file_name().unwrap())
    );
    env.ok(&["verify-archive", "--min-size", "0", sound.to_str().unwrap()]);
    env.ok(&["check"]);
}

/// The packs in the repository, as paths.
fn packs(env: &Env) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(env.repo.join("packs"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// A crash's leftover: a copy of a pack under a fresh name no index row knows.
fn orphan_pack(env: &Env) -> PathBuf {
    let name: String = blake3::hash(b"orphan").to_hex().to_string();
    let dir = env.repo.join("packs").join(&name[..2]);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&packs(env)[0], dir.join(&name)).unwrap();
    dir.join(name)
}

#[test]
fn cleanup_removes_an_orphaned_pack_and_check_read_data_passes_after() {
    let env = setup();
    backup_and_export(&env, "one");
    let before = packs(&env);
    let orphan = orphan_pack(&env);
    let out = cleanup_ok(&env, &[]);
    assert!(out.contains("no index row names it"), "{out}");
    assert!(!orphan.exists());
    assert_eq!(packs(&env), before);
    env.ok(&["check", "--read-data"]);
}

#[test]
fn cleanup_skips_the_repository_while_another_process_holds_its_lock() {
    let env = setup();
    backup_and_export(&env, "one");
    let orphan = orphan_pack(&env);
    std::fs::write(env.path("tmp/masclet_backup_old"), b"x").unwrap();
    age(&env.path("tmp/masclet_backup_old"), 2 * DAY);
    // A backup of this host, alive (the test's own process), holding its shared lock.
    let host = String::from_utf8(Command::new("uname").arg("-n").output().unwrap().stdout).unwrap();
    let lock = serde_json::json!({"host": host.trim(), "pid": std::process::id(), "time": chrono::Utc::now().to_rfc3339(), "operation": "backup", "mode": "shared"});
    let name = "cd".repeat(32);
    std::fs::write(env.repo.join("locks").join(&name), lock.to_string()).unwrap();
    let o = cleanup(&env, &["--lock-wait", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("repository part skipped"), "{err}");
    assert!(
        orphan.exists(),
        "a pack was removed without the exclusive lock"
    );
    assert!(
        !env.path("tmp/masclet_backup_old").exists(),
        "the files were not cleaned"
    );
    std::fs::remove_file(env.repo.join("locks").join(&name)).unwrap();
}

#[test]
fn cleanup_reports_an_unreadable_log_and_does_the_rest() {
    if rustix::process::getuid().is_root() {
        eprintln!("skipped: as root a file of mode 000 is still readable");
        return;
    }
    let env = setup();
    for n in ["a.log", "b.log"] {
        std::fs::write(env.path("logs").join(n), b"line\n").unwrap();
        age(&env.path("logs").join(n), 40 * DAY);
    }
    use std::os::unix::fs::PermissionsExt;
    let a = env.path("logs/a.log");
    std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o000)).unwrap();
    let o = cleanup(&env, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&a.display().to_string()), "{err}");
    assert!(env.path("logs/b.log.gz").exists() && a.exists());
}
