//! Empty or failed input is never committed as a good backup: an empty stream, a lone
//! FIFO, a stream under the minimum size, a producer that fails or is killed.

use super::*;
use std::process::Stdio;

/// Run `masclet backup ARGS` through `sh -c` so the shell builds the stdin (a pipe from a
/// failed producer, a closed descriptor).
fn sh_backup(env: &Env, script: &str) -> Output {
    let script = script.replace("MASCLET", env!("CARGO_BIN_EXE_masclet"));
    let mut sh = Command::new("sh");
    sh.arg("-c").arg(script).stdin(Stdio::null());
    // The same environment as every other run of the binary.
    for (k, v) in env.cmd(&[]).get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh.output().unwrap()
}

fn refused(env: &Env, o: &Output, needle: &str, before: &[(PathBuf, String)]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    assert!(
        env.snapshots().is_empty(),
        "a snapshot was committed: {err}"
    );
    assert_eq!(
        tree_state(&env.repo),
        before,
        "the refusal wrote to the repository"
    );
}

/// `(exit 1) | masclet backup --stdin`, a closed stdin, and a lone FIFO argument give no
/// content: refused with exit 1, no snapshot, nothing stored; `--allow-empty` accepts it.
#[test]
fn empty_stream_closed_stdin_and_lone_fifo_are_refused() {
    let env = Env::new();
    let before = tree_state(&env.repo);
    let o = sh_backup(&env, "(exit 1) | MASCLET backup --stdin");
    refused(&env, &o, "gave no content", &before);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--stdin-from-command"));
    let o = sh_backup(&env, "MASCLET backup --stdin <&-");
    refused(&env, &o, "gave no content", &before);
    let fifo = env.path("fifo");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let o = env.run(&["backup", fifo.to_str().unwrap()]);
    refused(&env, &o, "gave no content", &before);
    let empty = env.path("empty");
    std::fs::create_dir_all(empty.join("sub")).unwrap();
    std::fs::write(empty.join("sub/zero"), b"").unwrap();
    let o = env.run(&["backup", empty.to_str().unwrap()]);
    refused(&env, &o, "gave no content", &before);
    let o = sh_backup(&env, "MASCLET backup --stdin --allow-empty </dev/null");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(env.snapshots().len(), 1);
}

/// `--min-size` (and `MIN_BACKUP_SIZE`, with K/M suffixes) refuses a smaller stream and
/// commits nothing; a stream at the minimum is kept.
#[test]
fn min_size_refuses_a_short_stream() {
    let env = Env::new();
    let o = sh_backup(
        &env,
        "head -c 1023 /dev/zero | MASCLET backup --stdin --min-size 1K",
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("gave 1023 bytes, less than the minimum backup size of 1024"),
        "{err}"
    );
    let o = sh_backup(
        &env,
        "head -c 5 /dev/zero | MIN_BACKUP_SIZE=2M MASCLET backup --stdin",
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("of 2097152 bytes"));
    assert!(env.snapshots().is_empty());
    let o = sh_backup(
        &env,
        "head -c 1024 /dev/zero | MASCLET backup --stdin --min-size 1K",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    env.fails(
        &["backup", "--stdin", "--min-size", "1Q"],
        2,
        "unknown size suffix",
    );
}

/// `--stdin-from-command` commits only when the producer exits 0: a failure names its
/// status and the end of its stderr, a killed producer names the signal, and neither
/// leaves a snapshot. The producer does not see the passphrase variables, and its
/// snapshot carries no `unchecked-producer` tag, while a plain `--stdin` one does.
#[test]
fn stdin_from_command_commits_only_a_producer_that_exits_0() {
    let env = Env::new();
    let failing = "echo 'COPY 1'; echo 'pg_dump: error: connection to server lost' >&2; exit 3";
    env.fails(
        &["backup", "--stdin-from-command", "--", "sh", "-c", failing],
        1,
        "`sh` exited with status 3; its output was not committed as a backup; its standard error ends: pg_dump: error: connection to server lost",
    );
    env.fails(
        &[
            "backup",
            "--stdin-from-command",
            "--",
            "sh",
            "-c",
            "echo rows; kill -9 $$",
        ],
        1,
        "was killed by signal 9",
    );
    env.fails(
        &[
            "backup",
            "--stdin-from-command",
            "--",
            "/nonexistent/pg_dump",
        ],
        1,
        "cannot run `/nonexistent/pg_dump`",
    );
    assert!(env.snapshots().is_empty());
    let pw_file = env.path("pw");
    std::fs::write(&pw_file, "s3cret pass\n").unwrap();
    std::fs::set_permissions(&pw_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = env
        .cmd(&[
            "backup",
            "--stdin-from-command",
            "--stdin-name",
            "env.txt",
            "--",
            "env",
        ])
        .env("MASCLET_PASSWORD_FILE", &pw_file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let seen = env.ok(&["dump", "latest", "env.txt"]);
    assert!(seen.contains("MASCLET_REPO="), "{seen}");
    assert!(
        !seen.contains("MASCLET_PASSWORD"),
        "the producer saw a passphrase variable: {seen}"
    );
    let o = sh_backup(&env, "echo rows | MASCLET backup --stdin --tag daily");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 2);
    let tags: Vec<&serde_json::Value> = snaps.iter().map(|s| &s["tags"]).collect();
    assert!(tags.contains(&&serde_json::json!([])), "{tags:?}");
    assert!(
        tags.contains(&&serde_json::json!(["daily", "unchecked-producer"])),
        "{tags:?}"
    );
    assert!(env.ok(&["snapshots"]).contains("daily,unchecked-producer"));
}

/// `latest` is the largest recorded time: a backup stamped far from the clock warns, and so
/// does every later backup while that snapshot stays `latest`.
#[test]
fn far_future_time_warns_that_it_will_stay_latest() {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    let o = env.run(&[
        "backup",
        "--time",
        "2099-01-01T00:00:00Z",
        src.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("ahead of the system clock"), "{err}");
    let future = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let o = env.run(&["backup", src.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!("snapshot {} has a later time", &future[..8]))
            && err.contains("`latest` means the snapshot with the largest recorded time"),
        "{err}"
    );
    assert!(!err.contains("system clock"), "{err}");
}
