//! The `.env` configuration file: the original system's file works as is, flags beat the
//! environment which beats the file, secrets never reach the terminal, and a mistake in the
//! file stops masclet with its line.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The original system's `.env`, byte for byte.
const ORIGINAL: &str = "BACKUP_ROOT=\"/backups\"
RETENTION_DAILY=7
RETENTION_WEEKLY=4
RETENTION_MONTHLY=12
RETENTION_YEARLY=5
MIN_BACKUP_SIZE=1048576  # 1MB
";

/// masclet in `dir` with an environment that holds none of the configuration keys.
fn masclet(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_masclet"));
    c.args(args)
        .current_dir(dir)
        .env_clear()
        .env("MASCLET_PASSWORD", "s3cret pass")
        .env("MASCLET_INSECURE_FAST_KDF", "1")
        .stdin(Stdio::null());
    c
}

fn run(c: &mut Command) -> Output {
    c.output().unwrap()
}

fn ok(c: &mut Command) -> String {
    let o = run(c);
    assert!(
        o.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn config(c: &mut Command) -> Value {
    serde_json::from_str(&ok(c)).unwrap()
}

fn entry(v: &Value, key: &str) -> (Value, String) {
    (
        v[key]["value"].clone(),
        v[key]["source"].as_str().unwrap().to_string(),
    )
}

#[test]
fn the_original_env_file_in_the_working_directory_is_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), ORIGINAL).unwrap();
    let v = config(&mut masclet(dir.path(), &["config", "--json"]));
    let expect = [
        ("BACKUP_ROOT", "/backups", "file:1"),
        ("RETENTION_DAILY", "7", "file:2"),
        ("RETENTION_WEEKLY", "4", "file:3"),
        ("RETENTION_MONTHLY", "12", "file:4"),
        ("RETENTION_YEARLY", "5", "file:5"),
        ("MIN_BACKUP_SIZE", "1048576", "file:6"),
        ("MASCLET_REPO", "/backups/store", "default"),
        ("SPACE_ALERT_PERCENT", "80", "default"),
        ("MIN_FREE_SPACE", "5G", "default"),
    ];
    for (key, value, source) in expect {
        assert_eq!(entry(&v, key), (Value::from(value), source.into()), "{key}");
    }
    assert_eq!(entry(&v, "SMTP_HOST"), (Value::Null, "unset".into()));
    // Without a file everything is a default or unset.
    let empty = tempfile::tempdir().unwrap();
    let v = config(&mut masclet(empty.path(), &["config", "--json"]));
    assert_eq!(
        entry(&v, "RETENTION_DAILY"),
        (Value::from("7"), "default".into())
    );
    assert_eq!(entry(&v, "BACKUP_ROOT"), (Value::Null, "unset".into()));
}

#[test]
fn backup_root_places_the_repository_and_flags_beat_env_beat_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("backups");
    let text = format!(
        "BACKUP_ROOT={}\nRETENTION_DAILY=3\nMIN_BACKUP_SIZE=1M\n",
        root.display()
    );
    std::fs::write(dir.path().join(".env"), text).unwrap();
    ok(&mut masclet(dir.path(), &["init"]));
    assert!(
        root.join("store").is_dir(),
        "init did not use BACKUP_ROOT/store"
    );
    // The file's MIN_BACKUP_SIZE refuses a tiny backup; the flag lets it through.
    std::fs::write(dir.path().join("small.txt"), b"hola\n").unwrap();
    let o = run(&mut masclet(dir.path(), &["backup", "small.txt"]));
    assert!(
        !o.status.success(),
        "a 5-byte backup passed MIN_BACKUP_SIZE=1M"
    );
    ok(&mut masclet(
        dir.path(),
        &["backup", "small.txt", "--min-size", "1"],
    ));
    let snaps: Value = serde_json::from_str(&ok(&mut masclet(
        dir.path(),
        &[
            "--repo",
            &root.join("store").to_string_lossy(),
            "snapshots",
            "--json",
        ],
    )))
    .unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1);

    let daily = |c: &mut Command| -> u64 {
        let v: Value = serde_json::from_str(&ok(c)).unwrap();
        v["policy"]["daily"].as_u64().unwrap()
    };
    let forget = ["forget", "--dry-run", "--json"];
    assert_eq!(daily(&mut masclet(dir.path(), &forget)), 3);
    assert_eq!(
        daily(masclet(dir.path(), &forget).env("RETENTION_DAILY", "5")),
        5
    );
    let mut flag = forget.to_vec();
    flag.extend(["--keep-daily", "9"]);
    assert_eq!(
        daily(masclet(dir.path(), &flag).env("RETENTION_DAILY", "5")),
        9
    );
    let v = config(masclet(dir.path(), &["config", "--json"]).env("RETENTION_DAILY", "5"));
    assert_eq!(
        entry(&v, "RETENTION_DAILY"),
        (Value::from("5"), "env".into())
    );
}

#[test]
fn a_named_file_replaces_the_working_directorys_and_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "RETENTION_WEEKLY=1\n").unwrap();
    let named = dir.path().join("masclet.env");
    std::fs::write(&named, "# nightly\nexport RETENTION_WEEKLY='8'\n").unwrap();
    let named = named.to_str().unwrap();
    for c in [
        &mut masclet(dir.path(), &["--config", named, "config", "--json"]),
        masclet(dir.path(), &["config", "--json"]).env("MASCLET_CONFIG", named),
    ] {
        let v = config(c);
        assert_eq!(
            entry(&v, "RETENTION_WEEKLY"),
            (Value::from("8"), "file:2".into())
        );
    }
    for c in [
        &mut masclet(dir.path(), &["--config", "missing.env", "config"]),
        masclet(dir.path(), &["snapshots"]).env("MASCLET_CONFIG", "missing.env"),
    ] {
        let o = run(c);
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("missing.env does not exist"), "{err}");
    }
}

#[test]
fn secrets_are_masked_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "DATABASE_URL=postgresql://masclet:db-hunter2@db/imperi\n\
         SMTP_PASSWORD='smtp # hunter2'\nNOTIFY_WEBHOOK_SECRET=hook-hunter2\n\
         NOTIFY_WEBHOOK_URL=https://hooks.example/T0/url-hunter2\n",
    )
    .unwrap();
    let mut outputs = vec![];
    for args in [&["config"][..], &["config", "--json"], &["snapshots"]] {
        let o = run(&mut masclet(dir.path(), args));
        outputs.push(String::from_utf8_lossy(&o.stdout).into_owned());
        outputs.push(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    let o = run(masclet(dir.path(), &["config"]).env("SMTP_PASSWORD", "env-hunter2"));
    outputs.push(String::from_utf8_lossy(&o.stdout).into_owned());
    // Nor handed to a producer: it sees no notification secret.
    let root = dir.path().join("backups");
    let mut text = std::fs::read_to_string(dir.path().join(".env")).unwrap();
    text.push_str(&format!("BACKUP_ROOT={}\n", root.display()));
    std::fs::write(dir.path().join(".env"), text).unwrap();
    ok(&mut masclet(dir.path(), &["init"]));
    let producer = [
        "backup",
        "--stdin-from-command",
        "--stdin-name",
        "env.txt",
        "--",
        "/usr/bin/env",
    ];
    ok(&mut masclet(dir.path(), &producer));
    let seen = ok(&mut masclet(dir.path(), &["dump", "latest", "env.txt"]));
    assert!(seen.contains("BACKUP_ROOT="), "{seen}");
    for secret in ["smtp # hunter2", "hook-hunter2"] {
        assert!(!seen.contains(secret), "the producer saw {secret}: {seen}");
    }
    let all = outputs.concat();
    assert!(!all.contains("hunter2"), "a secret was printed: {all}");
    assert!(
        all.contains("postgresql://masclet:********@db/imperi"),
        "{all}"
    );
    assert!(all.contains("https://hooks.example/********"), "{all}");
}

#[test]
fn a_mistake_in_the_file_stops_every_command_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "BACKUP_ROOT=/backups\nRETENTON_DAILY=7\n",
            ".env:2: unknown key RETENTON_DAILY: did you mean RETENTION_DAILY?",
        ),
        ("MASCLET_PASSWORD=pw-hunter2\n", "MASCLET_PASSWORD_FILE"),
        (
            "\n\nRETENTION_DAILY=siete\n",
            ".env:3: RETENTION_DAILY's value is not a whole number",
        ),
        (
            "RETENTION_DAILY=7\nRETENTION_DAILY=8\n",
            "set twice, on lines 1 and 2",
        ),
    ];
    for (text, needle) in cases {
        std::fs::write(dir.path().join(".env"), text).unwrap();
        for args in [&["config"][..], &["snapshots"]] {
            let o = run(&mut masclet(dir.path(), args));
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{text:?}: {err}");
            assert!(err.contains(needle), "{text:?}: {err:?} lacks {needle:?}");
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("--config /dev/null"), "{err}");
        }
    }
    // An unrelated .env in the working directory is stepped around so.
    ok(&mut masclet(
        dir.path(),
        &["--config", "/dev/null", "config"],
    ));
}
