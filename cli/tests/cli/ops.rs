//! Locks, error messages, help, completions and the man page.

use super::*;

#[test]
fn a_held_lock_makes_others_wait_then_fail_naming_the_holder() {
    let env = Env::new();
    let lock = serde_json::json!({"host": "granja-2", "pid": 4242, "time": chrono::Utc::now().to_rfc3339(), "operation": "gc", "mode": "exclusive"});
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
fn an_abandoned_lock_is_removed_with_a_warning() {
    let env = Env::new();
    let lock = serde_json::json!({"host": "granja-2", "pid": 4242, "time": "2020-01-01T00:00:00Z", "operation": "backup", "mode": "exclusive"});
    std::fs::write(
        env.repo.join("locks").join("cd".repeat(32)),
        lock.to_string(),
    )
    .unwrap();
    let o = env
        .cmd(&["--lock-wait", "0", "snapshots"])
        .env("MASCLET_LOCK_STALE_SECS", "60")
        .output()
        .unwrap();
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("removed a stale lock of host granja-2 pid 4242"),
        "{err}"
    );
}

/// A failed init (an empty passphrase, refused before anything is created; or a failure
/// after the directory was made) leaves nothing behind, so the retry works.
#[test]
fn a_failed_init_leaves_nothing_that_blocks_the_retry() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env {
        repo: dir.path().join("repo"),
        dir,
    };
    let o = env
        .cmd(&["init"])
        .env("MASCLET_PASSWORD", "")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("empty passphrase"));
    assert!(!env.repo.exists(), "nothing created");
    // An empty directory given by the operator stays, and stays empty.
    std::fs::create_dir(&env.repo).unwrap();
    let o = env
        .cmd(&["init"])
        .env("MASCLET_PASSWORD", "")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_eq!(std::fs::read_dir(&env.repo).unwrap().count(), 0);
    env.ok(&["init"]);
    env.ok(&["snapshots"]);
}
