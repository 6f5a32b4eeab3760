//! Black-box tests of the `masclet` binary: real processes, real files, exit codes and
//! messages as an operator sees them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Env {
    dir: tempfile::TempDir,
    repo: PathBuf,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let env = Self { dir, repo };
        env.ok(&["init"]);
        env
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_masclet"));
        c.args(args)
            .env("MASCLET_REPO", &self.repo)
            .env("MASCLET_PASSWORD", "s3cret pass")
            .env("MASCLET_INSECURE_FAST_KDF", "1")
            .env_remove("MASCLET_PASSWORD_FILE")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "masclet {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn fails(&self, args: &[&str], code: i32, needle: &str) -> String {
        let o = self.run(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(code), "masclet {args:?}: {err}");
        assert!(
            err.contains(needle),
            "masclet {args:?}: {err:?} lacks {needle:?}"
        );
        err
    }

    fn snapshots(&self) -> Vec<serde_json::Value> {
        serde_json::from_str::<serde_json::Value>(&self.ok(&["snapshots", "--json"]))
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

/// Every file under `root` with its content hash, except the index cache.
fn tree_state(root: &Path) -> Vec<(PathBuf, String)> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.to_string_lossy().contains("/index/") {
                out.push((
                    p.clone(),
                    blake3::hash(&std::fs::read(&p).unwrap())
                        .to_hex()
                        .to_string(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn write_source(root: &Path) {
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("a.txt"), b"hola\n").unwrap();
    std::fs::write(
        root.join("sub/data.bin"),
        masclet_tools::golden_bytes(500_000, 5),
    )
    .unwrap();
    std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
}

fn same_tree(a: &Path, b: &Path) {
    let o = Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "trees differ: {}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn backup_list_ls_dump_restore_check() {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    let id = env.ok(&[
        "backup",
        "--tag",
        "daily",
        "--tag",
        "manual",
        src.to_str().unwrap(),
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64);
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 1);
    let s = &snaps[0];
    assert_eq!(s["id"], id);
    assert_eq!(s["tags"], serde_json::json!(["daily", "manual"]));
    assert!(chrono_like(s["time"].as_str().unwrap()), "{}", s["time"]);
    assert_eq!(s["paths"][0], src.to_str().unwrap());
    let ls = env.ok(&["ls", &id[..8]]);
    assert_eq!(
        ls.lines().collect::<Vec<_>>(),
        vec![
            "src",
            "src/a.txt",
            "src/link",
            "src/sub",
            "src/sub/data.bin"
        ]
    );
    assert_eq!(env.ok(&["dump", "latest", "src/a.txt"]), "hola\n");
    let out = env.path("out");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    same_tree(&src, &out.join("src"));
    assert!(
        env.ok(&["check", "--read-data"])
            .contains("no problems found")
    );
    let check: serde_json::Value = serde_json::from_str(&env.ok(&["check", "--json"])).unwrap();
    assert_eq!(check["ok"], true);
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["backup", "--json", src.to_str().unwrap()])).unwrap();
    assert_eq!(
        json["new_raw_bytes"], 0,
        "unchanged tree adds no data: {json}"
    );
}

fn chrono_like(t: &str) -> bool {
    t.len() == 20 && t.ends_with('Z') && t.as_bytes()[10] == b'T'
}

#[test]
fn stdin_backup_with_time_and_dump() {
    let env = Env::new();
    let data = masclet_tools::golden_bytes(2_000_000, 9);
    let mut child = env
        .cmd(&[
            "backup",
            "--stdin",
            "--stdin-name",
            "masclet_imperi.sql",
            "--time",
            "2025-03-11T07:45:00Z",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &data).unwrap();
    drop(child.stdin.take());
    assert!(child.wait_with_output().unwrap().status.success());
    let snaps = env.snapshots();
    assert_eq!(snaps[0]["time"], "2025-03-11T07:45:00Z");
    assert_eq!(snaps[0]["source"], "stdin");
    let out = env.run(&["dump", "latest", "masclet_imperi.sql"]);
    assert!(out.status.success());
    assert_eq!(out.stdout, data);
    env.fails(&["dump", "latest", "nope.sql"], 1, "no file nope.sql");
    env.fails(
        &["restore", "ffff", "--target", "/tmp/x"],
        1,
        "no snapshot matches",
    );
    env.fails(&["backup", "--time", "yesterday", "--stdin"], 1, "RFC 3339");
}

#[test]
fn wrong_passphrase_writes_nothing_and_has_its_own_exit_code() {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    let before = tree_state(&env.repo);
    for cmd in [
        &["snapshots"][..],
        &["backup", src.to_str().unwrap()],
        &["check"],
        &["repair", "index"],
    ] {
        let o = env
            .cmd(cmd)
            .env("MASCLET_PASSWORD", "wrong")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(3), "{cmd:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("wrong passphrase"));
    }
    assert_eq!(
        tree_state(&env.repo),
        before,
        "a wrong passphrase wrote to the repository"
    );
    assert!(
        std::fs::read_dir(env.repo.join("locks"))
            .unwrap()
            .next()
            .is_none(),
        "lock left behind"
    );
}

#[test]
fn passphrase_file_rules() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let pwfile = dir.path().join("pw");
    std::fs::write(&pwfile, b"file pass\n").unwrap();
    std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = |args: &[&str], pw: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_masclet"));
        c.args(args)
            .env("MASCLET_REPO", &repo)
            .env("MASCLET_INSECURE_FAST_KDF", "1")
            .env_remove("MASCLET_PASSWORD")
            .stdin(Stdio::null());
        match pw {
            Some(p) => c
                .env("MASCLET_PASSWORD", p)
                .env_remove("MASCLET_PASSWORD_FILE"),
            None => c.env("MASCLET_PASSWORD_FILE", &pwfile),
        };
        c.output().unwrap()
    };
    let o = run(&["init"], None);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("insecure permissions"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!repo.exists());
    std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(run(&["init"], None).status.success());
    // One trailing newline is not part of the passphrase.
    assert!(run(&["snapshots"], Some("file pass")).status.success());
    assert_eq!(
        run(&["snapshots"], Some("file pass\n")).status.code(),
        Some(3)
    );
    // Without any source of passphrase and no terminal, say what to do.
    let o = Command::new(env!("CARGO_BIN_EXE_masclet"))
        .args(["snapshots"])
        .env("MASCLET_REPO", &repo)
        .env_remove("MASCLET_PASSWORD")
        .env_remove("MASCLET_PASSWORD_FILE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("MASCLET_PASSWORD_FILE"), "{err}");
    let empty = dir.path().join("repo2");
    let o = Command::new(env!("CARGO_BIN_EXE_masclet"))
        .args(["init"])
        .env("MASCLET_REPO", &empty)
        .env("MASCLET_PASSWORD", "")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("empty passphrase"));
}

#[test]
fn tampered_kdf_parameters_are_refused_before_the_kdf() {
    let env = Env::new();
    let key = std::fs::read_dir(env.repo.join("keys"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let orig = std::fs::read(&key).unwrap();
    for m_kib in [1u32, 64 * 1024 * 1024] {
        let mut b = orig.clone();
        b[13..17].copy_from_slice(&m_kib.to_le_bytes());
        std::fs::write(&key, &b).unwrap();
        let started = std::time::Instant::now();
        env.fails(&["snapshots"], 5, "KDF parameters out of bounds");
        assert!(started.elapsed().as_secs() < 20);
    }
    std::fs::write(&key, &orig).unwrap();
    env.ok(&["snapshots"]);
}

fn damage_index(env: &Env, how: &str) {
    let idx = env.repo.join("index/index.sqlite");
    match how {
        "delete" => std::fs::remove_file(&idx).unwrap(),
        "truncate" => {
            let len = std::fs::metadata(&idx).unwrap().len();
            std::fs::File::options()
                .write(true)
                .open(&idx)
                .unwrap()
                .set_len(len / 2 + 100)
                .unwrap();
        }
        _ => {
            let mut b = std::fs::read(&idx).unwrap();
            for (i, x) in b.iter_mut().take(4096).enumerate() {
                *x = (i * 7 + 3) as u8;
            }
            std::fs::write(&idx, b).unwrap();
        }
    }
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(env.repo.join(format!("index/index.sqlite{suffix}")));
    }
}

#[test]
fn damaged_index_makes_commands_refuse_until_repair() {
    for how in ["delete", "truncate", "garbage"] {
        let env = Env::new();
        let src = env.path("src");
        write_source(&src);
        env.ok(&["backup", src.to_str().unwrap()]);
        std::fs::write(
            src.join("more.bin"),
            masclet_tools::golden_bytes(300_000, 77),
        )
        .unwrap();
        env.ok(&["backup", src.to_str().unwrap()]);
        damage_index(&env, how);
        let before = tree_state(&env.repo);
        for cmd in [
            &["snapshots"][..],
            &["backup", src.to_str().unwrap()],
            &["check"],
            &["restore", "latest", "--target", "/tmp/never"],
        ] {
            env.fails(cmd, 6, "run `masclet repair index`");
        }
        assert_eq!(
            tree_state(&env.repo),
            before,
            "{how}: a refused command wrote to the repository"
        );
        assert!(env.ok(&["repair", "index"]).contains("index rebuilt: "));
        assert!(
            env.ok(&["check", "--read-data"])
                .contains("no problems found"),
            "{how}"
        );
        let out = env.path("out");
        env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
        same_tree(&src, &out.join("src"));
        assert_eq!(env.snapshots().len(), 2);
    }
}

#[test]
fn kill_9_during_backup_loses_nothing() {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    let mut baseline = vec![];
    for i in 0..3u64 {
        std::fs::write(
            src.join("night.bin"),
            masclet_tools::golden_bytes(400_000, i),
        )
        .unwrap();
        let id = env
            .ok(&["backup", src.to_str().unwrap()])
            .trim()
            .to_string();
        let keep = env.path(&format!("keep{i}"));
        Command::new("cp")
            .arg("-a")
            .arg(&src)
            .arg(&keep)
            .status()
            .unwrap();
        baseline.push((id, keep));
    }
    let big = env.path("big");
    std::fs::create_dir_all(&big).unwrap();
    for i in 0..4u64 {
        std::fs::write(
            big.join(format!("f{i}")),
            masclet_tools::golden_bytes(8_000_000, 100 + i),
        )
        .unwrap();
    }
    let started = std::time::Instant::now();
    env.ok(&["backup", "--quiet", big.to_str().unwrap()]);
    let full = started.elapsed();
    let mut completed = 1;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..8u64 {
        std::fs::write(
            big.join("f0"),
            masclet_tools::golden_bytes(8_000_000, 1000 + round),
        )
        .unwrap();
        let mut child = env
            .cmd(&["backup", "--quiet", big.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = full.mul_f64((seed % 1000) as f64 / 1000.0 * 1.2);
        std::thread::sleep(delay);
        let _ = child.kill();
        if child.wait().unwrap().success() {
            completed += 1;
        }
        let check = env.run(&["check"]);
        assert!(
            check.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&check.stdout)
        );
        assert_eq!(
            env.snapshots().len(),
            3 + completed,
            "round {round}: a killed backup left a snapshot"
        );
    }
    for (id, keep) in &baseline {
        let out = env.path(&format!("restore-{id}"));
        env.ok(&["restore", id, "--target", out.to_str().unwrap()]);
        same_tree(keep, &out.join("src"));
    }
    let id = env
        .ok(&["backup", big.to_str().unwrap()])
        .trim()
        .to_string();
    let out = env.path("final");
    env.ok(&["restore", &id, "--target", out.to_str().unwrap()]);
    same_tree(&big, &out.join("big"));
    assert!(
        env.ok(&["check", "--read-data"])
            .contains("no problems found")
    );
}

#[test]
fn private_permissions_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let src = dir.path().join("src");
    write_source(&src);
    let sh = format!(
        "umask 000; {bin} init && {bin} backup {src} >/dev/null",
        bin = env!("CARGO_BIN_EXE_masclet"),
        src = src.display()
    );
    let o = Command::new("sh")
        .arg("-c")
        .arg(sh)
        .env("MASCLET_REPO", &repo)
        .env("MASCLET_PASSWORD", "pw")
        .env("MASCLET_INSECURE_FAST_KDF", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut stack = vec![repo.clone()];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        assert_eq!(
            std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700,
            "{}",
            d.display()
        );
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files += 1;
                assert_eq!(
                    std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                    0o600,
                    "{}",
                    p.display()
                );
            }
        }
    }
    assert!(files >= 5);
}

#[test]
fn a_held_lock_makes_others_wait_then_fail_naming_the_holder() {
    let env = Env::new();
    let lock = serde_json::json!({"host": "granja-2", "pid": 4242, "time": "2026-11-28T03:00:00Z", "operation": "gc", "mode": "exclusive"});
    let name = "ab".repeat(32);
    std::fs::write(env.repo.join("locks").join(&name), lock.to_string()).unwrap();
    let started = std::time::Instant::now();
    env.fails(
        &["--lock-wait", "1", "snapshots"],
        4,
        "locked by host granja-2 pid 4242",
    );
    assert!(started.elapsed().as_secs_f64() >= 1.0);
    assert!(
        env.ok(&["unlock"]).contains("removed 0 locks"),
        "a foreign lock is never presumed stale"
    );
    assert!(env.ok(&["unlock", "--all"]).contains("removed 1 locks"));
    env.ok(&["snapshots"]);
    // A lock of a dead local process is cleared on sight.
    let host = String::from_utf8(Command::new("uname").arg("-n").output().unwrap().stdout).unwrap();
    let dead = serde_json::json!({"host": host.trim(), "pid": 2_000_000_000u32, "time": "t", "operation": "backup", "mode": "exclusive"});
    std::fs::write(env.repo.join("locks").join(&name), dead.to_string()).unwrap();
    env.ok(&["--lock-wait", "0", "snapshots"]);
}

#[test]
fn check_reports_damage_with_exit_5() {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    let packs = env.repo.join("packs");
    let sub = std::fs::read_dir(&packs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let pack = std::fs::read_dir(sub)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut b = std::fs::read(&pack).unwrap();
    b[100] ^= 0x40;
    std::fs::write(&pack, b).unwrap();
    let o = env.run(&["check", "--read-data"]);
    assert_eq!(o.status.code(), Some(5));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("authentication failed"), "{out}");
    assert!(out.contains("cannot be fully restored"), "{out}");
}

#[test]
fn helpful_errors_help_version_completions_and_man() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_masclet"))
        .args(["snapshots"])
        .env("MASCLET_REPO", dir.path().join("none"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("masclet init"));
    let o = Command::new(env!("CARGO_BIN_EXE_masclet"))
        .args(["snapshots"])
        .env_remove("MASCLET_REPO")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("--repo"));
    let bin = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_masclet"))
            .args(args)
            .output()
            .unwrap()
    };
    let help = String::from_utf8(bin(&["--help"]).stdout).unwrap();
    assert!(help.contains("Exit codes") && help.contains("Examples"));
    assert!(
        String::from_utf8(bin(&["--version"]).stdout)
            .unwrap()
            .starts_with("masclet ")
    );
    assert!(
        String::from_utf8(bin(&["completions", "bash"]).stdout)
            .unwrap()
            .contains("masclet")
    );
    assert!(
        String::from_utf8(bin(&["man"]).stdout)
            .unwrap()
            .contains(".TH masclet")
    );
    assert_eq!(
        bin(&["backup"]).status.code(),
        Some(2),
        "usage errors exit 2"
    );
}

#[test]
fn ctrl_c_stops_cleanly_and_commits_nothing() {
    let env = Env::new();
    let big = env.path("big");
    std::fs::create_dir_all(&big).unwrap();
    for i in 0..12u64 {
        std::fs::write(
            big.join(format!("f{i}")),
            masclet_tools::golden_bytes(8_000_000, 500 + i),
        )
        .unwrap();
    }
    let child = env
        .cmd(&["backup", big.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(
        std::fs::read_dir(env.repo.join("locks"))
            .unwrap()
            .next()
            .is_none(),
        "lock left behind"
    );
    assert!(env.snapshots().is_empty());
    assert!(env.ok(&["check"]).contains("no problems found"));
}
