//! Backups killed (`kill -9`), interrupted (Ctrl-C) or suspended until they lose their lock
//! commit nothing half-done and lose no earlier snapshot.

use super::*;

#[test]
fn kill_9_during_backup_loses_nothing() {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    let mut baseline = vec![];
    for i in 0..3u64 {
        std::fs::write(
            src.join("night.bin"),
            masclet_tests::golden_bytes(400_000, i),
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
    let big = big_dir(&env, 4, 100);
    let started = std::time::Instant::now();
    env.ok(&["backup", "--quiet", big.to_str().unwrap()]);
    let full = started.elapsed();
    let mut completed = 1;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..8u64 {
        std::fs::write(
            big.join("f0"),
            masclet_tests::golden_bytes(8_000_000, 1000 + round),
        )
        .unwrap();
        let child = env
            .cmd(&["backup", "--quiet", big.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if kill_at_random(child, full, &mut seed, 1.2) {
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
    // The killed processes' locks do not block even an exclusive locker.
    env.ok(&["--lock-wait", "0", "gc"]);
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
fn ctrl_c_stops_cleanly_and_commits_nothing() {
    let env = Env::new();
    let big = big_dir(&env, 12, 500);
    let child = env
        .cmd(&["backup", big.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Mid-backup: the 96 MB take seconds in a debug build, under half a second optimized.
    let ms = if cfg!(debug_assertions) { 400 } else { 100 };
    std::thread::sleep(std::time::Duration::from_millis(ms));
    let pid = child.id().to_string();
    signal(&pid, "INT");
    let o = child.wait_with_output().unwrap();
    assert_interrupted(&o);
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

#[test]
fn ctrl_c_stops_a_stdin_backup_whose_producer_went_silent() {
    // The producer writes 3 MB and then hangs, as a stuck pg_dump would: Ctrl-C must not
    // wait for it to write again.
    let env = Env::new();
    let mut producer = Command::new("sh")
        .args(["-c", "head -c 3000000 /dev/urandom; exec sleep 60"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let child = env
        .cmd(&["backup", "--stdin", "--stdin-name", "dump.sql"])
        .stdin(Stdio::from(producer.stdout.take().unwrap()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let pid = child.id().to_string();
    let sent = std::time::Instant::now();
    signal(&pid, "INT");
    let o = child.wait_with_output().unwrap();
    let waited = sent.elapsed();
    let _ = producer.kill();
    let _ = producer.wait();
    assert_interrupted(&o);
    // Not a timing assertion on speed: the producer sleeps 60 s, so a backup that waited
    // for it would take that long.
    assert!(
        waited < std::time::Duration::from_secs(30),
        "waited {waited:?}"
    );
    assert!(env.snapshots().is_empty());
    assert!(env.ok(&["check"]).contains("no problems found"));
}

#[test]
fn a_suspended_backup_that_lost_its_lock_commits_nothing() {
    let env = Env::new();
    let big = big_dir(&env, 12, 900);
    let child = env
        .cmd(&["backup", big.to_str().unwrap()])
        .env("MASCLET_LOCK_STALE_SECS", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    std::thread::sleep(std::time::Duration::from_millis(300));
    signal(&pid, "STOP");
    std::thread::sleep(std::time::Duration::from_secs(3));
    // Another process presumes the frozen backup's lock abandoned and takes over. If the
    // backup froze inside an index commit, SQLite's write lock is still its own: gc then
    // fails, saying so, after taking the repository lock all the same.
    let o = env
        .cmd(&["--lock-wait", "5", "gc"])
        .env("MASCLET_LOCK_STALE_SECS", "2")
        .env("MASCLET_INDEX_BUSY_SECS", "2")
        .output()
        .unwrap();
    let gc_err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(gc_err.contains("removed a stale lock"), "{gc_err}");
    assert!(
        o.status.success() || gc_err.contains("stayed locked by another process"),
        "{gc_err}"
    );
    signal(&pid, "CONT");
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("lost its repository lock"), "{err}");
    assert!(
        env.snapshots().is_empty(),
        "the resumed backup committed a snapshot"
    );
    assert!(env.ok(&["check"]).contains("no problems found"));
}

/// A directory of `files` incompressible 8 MB files: a backup that takes a while.
fn big_dir(env: &Env, files: u64, seed: u64) -> PathBuf {
    let big = env.path("big");
    std::fs::create_dir_all(&big).unwrap();
    for i in 0..files {
        std::fs::write(
            big.join(format!("f{i}")),
            masclet_tests::golden_bytes(8_000_000, seed + i),
        )
        .unwrap();
    }
    big
}

/// Send signal `sig` (`INT`, `STOP`, `CONT`) to process `pid`.
fn signal(pid: &str, sig: &str) {
    assert!(
        Command::new("kill")
            .args([format!("-{sig}").as_str(), pid])
            .status()
            .unwrap()
            .success()
    );
}

/// The process stopped on Ctrl-C, saying so.
fn assert_interrupted(o: &std::process::Output) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
}
