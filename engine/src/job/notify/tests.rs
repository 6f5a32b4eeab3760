use super::*;
use crate::error::ErrorKind;
use crate::job::AlertKey;
use std::collections::HashMap;
use std::ffi::OsString;
use std::time::Instant;

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn channels(pairs: &[(&str, &str)]) -> Result<Channels> {
    let map = vars(pairs);
    Channels::from_vars(&|k| map.get(k).cloned())
}

#[test]
fn the_signature_matches_an_independently_computed_hmac_sha256() {
    // Computed with Python's hmac module over b"1700000000." + body.
    assert_eq!(
        webhook::signature(b"whsec_test", 1_700_000_000, r#"{"alert":"test"}"#),
        "sha256=fc12e73d6186f11054ac13e11f6fb8453f1d35726932b7a62bad9e5adcb0159d"
    );
    // The timestamp is signed: a replay with a fresh timestamp does not verify.
    assert_ne!(
        webhook::signature(b"whsec_test", 1_700_000_001, r#"{"alert":"test"}"#),
        webhook::signature(b"whsec_test", 1_700_000_000, r#"{"alert":"test"}"#)
    );
}

#[test]
fn the_hook_environment_is_the_allow_list_and_the_alert() {
    let host_env: HashMap<&str, &str> = [
        ("PATH", "/usr/bin:/bin"),
        ("HOME", "/root"),
        ("LANG", "C.UTF-8"),
        ("MASCLET_PASSWORD", "pass"),
        ("MASCLET_PASSWORD_FILE", "/etc/masclet/pass"),
        ("SMTP_PASSWORD", "smtp"),
        ("NOTIFY_WEBHOOK_SECRET", "key"),
        ("NOTIFY_WEBHOOK_URL", "https://h/tok"),
        ("DATABASE_URL", "postgres://u:p@h/db"),
        ("PGPASSWORD", "pg"),
    ]
    .into_iter()
    .collect();
    let alert = Alert::new(AlertKey::SpaceLow, "93% used")
        .urgent(true)
        .tier("daily");
    let env = command::environment(&alert, &|k| host_env.get(k).map(OsString::from));
    let env: HashMap<String, String> = env
        .into_iter()
        .map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap()))
        .collect();
    let mut names: Vec<&str> = env.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "HOME",
            "LANG",
            "MASCLET_ALERT",
            "MASCLET_DETAIL",
            "MASCLET_HOST",
            "MASCLET_MESSAGE",
            "MASCLET_TIER",
            "MASCLET_TIME",
            "MASCLET_URGENT",
            "PATH"
        ]
    );
    assert_eq!(env["MASCLET_ALERT"], "space_low");
    assert_eq!(env["MASCLET_MESSAGE"], "Espacio insuficiente (<10%)");
    assert_eq!(env["MASCLET_DETAIL"], "93% used");
    assert_eq!(env["MASCLET_URGENT"], "1");
    assert_eq!(env["MASCLET_TIER"], "daily");
}

fn script(dir: &std::path::Path, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("hook.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn the_hook_gets_key_and_message_as_arguments_and_the_json_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let hook = script(
        dir.path(),
        &format!(
            "printf '%s|%s\\n' \"$1\" \"$2\" > {0}; cat >> {0}; env > {0}.env",
            out.display()
        ),
    );
    let alert = Alert::new(AlertKey::BackupFailed, "pg_dump exited 1");
    let body = alert.body_json();
    command::CommandHook::new(hook)
        .attempt(&alert, &body)
        .unwrap();
    let got = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        got,
        format!("backup_failed|Error en proceso de backup\n{body}")
    );
    let env = std::fs::read_to_string(dir.path().join("out.env")).unwrap();
    for line in env.lines() {
        let name = line.split('=').next().unwrap();
        // sh itself adds PWD, SHLVL and _.
        let allowed = command::INHERITED.contains(&name)
            || name.starts_with("MASCLET_") && !name.starts_with("MASCLET_PASSWORD")
            || ["PWD", "SHLVL", "_"].contains(&name);
        assert!(allowed, "the hook saw {name}");
    }
}

#[test]
fn a_failing_hook_reports_its_status_and_the_end_of_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let hook = script(dir.path(), "echo 'relay refused the message' >&2; exit 3");
    let alert = Alert::new(AlertKey::Test, "");
    let f = command::CommandHook::new(hook)
        .attempt(&alert, "{}")
        .unwrap_err();
    assert!(f.retry);
    assert!(f.message.contains("exited with status 3"), "{}", f.message);
    assert!(
        f.message.contains("relay refused the message"),
        "{}",
        f.message
    );
}

#[test]
fn a_hook_past_its_timeout_is_killed_with_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    // The background sleep holds stderr open: only killing the group ends it.
    let hook = script(dir.path(), "sleep 30 & sleep 30");
    let alert = Alert::new(AlertKey::Test, "");
    let started = Instant::now();
    let f = command::CommandHook::new(hook)
        .with_timeout(Duration::from_millis(300))
        .attempt(&alert, "{}")
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(f.message.contains("was killed"), "{}", f.message);
}

#[test]
fn a_hook_that_cannot_start_is_not_retried_and_its_path_is_named() {
    let alert = Alert::new(AlertKey::Test, "");
    let f = command::CommandHook::new("/nonexistent/notify.sh --flag".into())
        .attempt(&alert, "{}")
        .unwrap_err();
    assert!(!f.retry);
    assert!(
        f.message.contains("/nonexistent/notify.sh --flag"),
        "{}",
        f.message
    );
}

#[test]
fn retries_stop_at_success_at_a_permanent_failure_or_after_the_last_attempt() {
    let mut calls = 0;
    let d = retry("webhook", 3, Duration::ZERO, || {
        calls += 1;
        if calls < 3 {
            Err(Failure::transient("503"))
        } else {
            Ok(())
        }
    });
    assert_eq!((d.ok, d.attempts, d.error), (true, 3, None));

    let d = retry("webhook", 3, Duration::ZERO, || {
        Err(Failure::permanent("404"))
    });
    assert_eq!((d.ok, d.attempts), (false, 1));
    assert_eq!(d.error.as_deref(), Some("404"));

    let mut n = 0;
    let d = retry("smtp", 4, Duration::ZERO, || {
        n += 1;
        Err(Failure::transient(format!("try {n}")))
    });
    assert_eq!((d.ok, d.attempts), (false, 4));
    assert_eq!(
        d.error.as_deref(),
        Some("try 4"),
        "the last failure is reported"
    );
}

#[test]
fn the_backoff_doubles_from_one_second_and_is_waited() {
    let waits: Vec<u64> = (2..=5).map(|n| wait_before(n, BACKOFF).as_secs()).collect();
    assert_eq!(waits, [1, 2, 4, 8]);
    assert_eq!(wait_before(40, BACKOFF), Duration::from_secs(60));
    let started = Instant::now();
    let d = retry("command", 3, Duration::from_millis(40), || {
        Err(Failure::transient("down"))
    });
    assert_eq!(d.attempts, 3);
    // 40 ms, then 80 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(120),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn half_a_channel_is_refused_naming_the_missing_key() {
    let e = channels(&[("SMTP_HOST", "127.0.0.1")]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("NOTIFY_EMAIL_TO"), "{e}");
    let e = channels(&[
        ("SMTP_HOST", "127.0.0.1"),
        ("NOTIFY_EMAIL_TO", "ops@example.com"),
        ("SMTP_USER", "ops"),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("SMTP_PASSWORD"), "{e}");
    let e = channels(&[("NOTIFY_WEBHOOK_SECRET", "k")]).unwrap_err();
    assert!(e.to_string().contains("NOTIFY_WEBHOOK_URL"), "{e}");
    let e = channels(&[("NOTIFY_RETRIES", "0"), ("NOTIFY_COMMAND", "/bin/true")]).unwrap_err();
    assert!(e.to_string().contains("NOTIFY_RETRIES"), "{e}");
    let e = channels(&[
        ("SMTP_HOST", "127.0.0.1"),
        ("NOTIFY_EMAIL_TO", "ops@example.com"),
        ("SMTP_PORT", "seventy"),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("SMTP_PORT"), "{e}");
}

#[test]
fn a_bad_webhook_url_is_refused_without_quoting_it() {
    let e = channels(&[("NOTIFY_WEBHOOK_URL", "hooks.example.com/T0K3N")]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(!e.to_string().contains("T0K3N"), "{e}");
}

#[test]
fn channels_are_read_in_order_and_their_debug_form_holds_no_secret() {
    assert!(channels(&[]).unwrap().is_empty());
    assert!(channels(&[("NOTIFY_COMMAND", "")]).unwrap().is_empty());
    let c = channels(&[
        ("NOTIFY_COMMAND", "/usr/local/bin/notify.sh"),
        ("NOTIFY_WEBHOOK_URL", "https://h.example/hook/T0K3N"),
        ("NOTIFY_WEBHOOK_SECRET", "wh-s3cret"),
        ("SMTP_HOST", "localhost"),
        ("SMTP_USER", "ops"),
        ("SMTP_PASSWORD", "smtp-s3cret"),
        ("NOTIFY_EMAIL_TO", "a@example.com, b@example.com"),
    ])
    .unwrap();
    assert_eq!(c.names(), ["command", "webhook", "smtp"]);
    let shown = format!("{c:?}");
    for secret in ["T0K3N", "wh-s3cret", "smtp-s3cret"] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

#[test]
fn every_channel_reports_even_when_all_fail() {
    let dir = tempfile::tempdir().unwrap();
    let hook = script(dir.path(), "exit 1");
    // Nothing listens on port 9 of the loopback interface.
    let c = channels(&[
        ("NOTIFY_COMMAND", &hook),
        ("NOTIFY_WEBHOOK_URL", "http://127.0.0.1:9/hook/T0K3N"),
        ("NOTIFY_RETRIES", "2"),
    ])
    .unwrap()
    .with_backoff(Duration::from_millis(1));
    let d = c.send(&Alert::new(AlertKey::BackupFailed, "x"));
    assert_eq!(d.len(), 2);
    assert_eq!(
        (d[0].channel, d[0].ok, d[0].attempts),
        ("command", false, 2)
    );
    assert_eq!(
        (d[1].channel, d[1].ok, d[1].attempts),
        ("webhook", false, 2)
    );
    let e = d[1].error.as_deref().unwrap();
    assert!(
        e.contains("http://127.0.0.1:9") && !e.contains("T0K3N"),
        "{e}"
    );
}
