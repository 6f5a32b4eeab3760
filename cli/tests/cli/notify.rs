//! `masclet notify` against real receivers on the loopback interface: a webhook, a mail
//! server and a hook script, with their secrets kept out of every output.

use crate::Env;
use crate::servers::{HttpSink, SmtpSink};
use std::process::{Command, Output};

const WEBHOOK_SECRET: &str = "wh-s3cret-k3y";
const SMTP_PASSWORD: &str = "smtp-pa55word";
const TOKEN: &str = "T0K3N-in-path";

/// `masclet ARGS` with no notification setting but those the test gives.
fn notify(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut c: Command = env.cmd(args);
    for k in [
        "NOTIFY_COMMAND",
        "NOTIFY_WEBHOOK_URL",
        "NOTIFY_WEBHOOK_SECRET",
        "SMTP_HOST",
        "SMTP_PORT",
        "SMTP_USER",
        "SMTP_PASSWORD",
        "SMTP_FROM",
        "NOTIFY_EMAIL_TO",
        "NOTIFY_RETRIES",
        "MASCLET_CONFIG",
    ] {
        c.env_remove(k);
    }
    c.current_dir(env.path(""));
    c.envs(vars.iter().copied()).output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn assert_no_secret(o: &Output) {
    let (out, err) = text(o);
    for secret in [WEBHOOK_SECRET, SMTP_PASSWORD, TOKEN] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret} shown: {out}{err}"
        );
    }
}

#[test]
fn notify_test_posts_the_alert_json_signed_over_timestamp_and_body() {
    let env = Env::new();
    let sink = HttpSink::start(vec![200]);
    let url = sink.url(&format!("/hook/{TOKEN}"));
    let o = notify(
        &env,
        &["notify", "--test"],
        &[
            ("NOTIFY_WEBHOOK_URL", &url),
            ("NOTIFY_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert_eq!(out, "ok   webhook (1 attempt)\n");
    assert_no_secret(&o);

    let reqs = sink.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", &*format!("/hook/{TOKEN}"))
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("user-agent").unwrap().starts_with("masclet/"));
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["alert"], "test");
    assert_eq!(body["message"], "Mensaje de prueba de masclet");
    assert_eq!(body["urgent"], false);
    assert!(body["host"].as_str().is_some_and(|h| !h.is_empty()));
    assert!(body["time"].as_str().unwrap().ends_with('Z'));
    for field in ["detail", "tier", "metrics"] {
        assert!(body.get(field).is_some(), "{field} missing: {body}");
    }

    let ts = r.header("x-masclet-timestamp").expect("timestamp header");
    let age = chrono::Utc::now().timestamp() - ts.parse::<i64>().unwrap();
    assert!((0..300).contains(&age), "timestamp {ts} is {age} s old");
    assert_eq!(
        r.header("x-masclet-signature"),
        r.expected_signature(WEBHOOK_SECRET).as_deref()
    );
    assert_ne!(
        r.header("x-masclet-signature"),
        r.expected_signature("another key").as_deref()
    );
}

#[test]
fn a_webhook_answering_503_twice_is_delivered_on_the_third_attempt() {
    let env = Env::new();
    let sink = HttpSink::start(vec![503, 503, 200]);
    let o = notify(
        &env,
        &[
            "--json",
            "notify",
            "backup_failed",
            "pg_dump",
            "exited",
            "1",
        ],
        &[("NOTIFY_WEBHOOK_URL", &sink.url("/h"))],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        d,
        serde_json::json!([{"channel": "webhook", "ok": true, "attempts": 3, "error": null}])
    );
    let reqs = sink.requests();
    assert_eq!(reqs.len(), 3);
    // Unsigned without a secret; the same alert on every attempt.
    assert!(reqs[0].header("x-masclet-signature").is_none());
    assert!(reqs.iter().all(|r| r.body == reqs[0].body));
    let body: serde_json::Value = serde_json::from_slice(&reqs[2].body).unwrap();
    assert_eq!(body["detail"], "pg_dump exited 1");
}

#[test]
fn a_webhook_that_keeps_failing_exits_1_naming_the_status_but_not_the_token() {
    let env = Env::new();
    let sink = HttpSink::start(vec![500]);
    let url = sink.url(&format!("/hook/{TOKEN}?key={TOKEN}"));
    let o = notify(
        &env,
        &["notify", "space_low", "93%", "used"],
        &[
            ("NOTIFY_WEBHOOK_URL", &url),
            ("NOTIFY_WEBHOOK_SECRET", WEBHOOK_SECRET),
            ("NOTIFY_RETRIES", "2"),
        ],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(out.starts_with("FAIL webhook after 2 attempts: "), "{out}");
    assert!(out.contains("500") && out.contains("127.0.0.1"), "{out}");
    assert_no_secret(&o);
    assert_eq!(sink.requests().len(), 2);
}

#[test]
fn a_webhook_answering_404_is_not_retried() {
    let env = Env::new();
    let sink = HttpSink::start(vec![404]);
    let o = notify(
        &env,
        &["notify", "--test"],
        &[("NOTIFY_WEBHOOK_URL", &sink.url("/missing"))],
    );
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.starts_with("FAIL webhook after 1 attempt: "), "{out}");
    assert!(out.contains("404"), "{out}");
    assert_eq!(sink.requests().len(), 1);
}

#[test]
fn a_mail_reaches_the_server_with_key_message_login_and_urgency() {
    let env = Env::new();
    let smtp = SmtpSink::start();
    let port = smtp.port().to_string();
    let o = notify(
        &env,
        &[
            "notify",
            "backup_failed",
            "pg_dump",
            "exited",
            "1",
            "--urgent",
        ],
        &[
            ("SMTP_HOST", "127.0.0.1"),
            ("SMTP_PORT", &port),
            ("SMTP_USER", "ops"),
            ("SMTP_PASSWORD", SMTP_PASSWORD),
            ("SMTP_FROM", "masclet@farm.example"),
            ("NOTIFY_EMAIL_TO", "a@farm.example, b@farm.example"),
        ],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert_eq!(out, "ok   smtp (1 attempt)\n");
    assert_no_secret(&o);

    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m.from, "masclet@farm.example");
    assert_eq!(m.to, ["a@farm.example", "b@farm.example"]);
    assert_eq!(m.auth, Some(("ops".to_string(), SMTP_PASSWORD.to_string())));
    let subject = m.header("Subject").unwrap();
    assert!(subject.contains("URGENT backup_failed"), "{subject}");
    assert!(subject.contains("Error en proceso de backup"), "{subject}");
    assert_eq!(m.header("X-Priority").as_deref(), Some("1"));
    assert_eq!(m.header("Importance").as_deref(), Some("high"));
    assert!(m.data.contains("pg_dump exited 1"), "{}", m.data);
    assert!(m.data.contains("alert:  backup_failed"), "{}", m.data);
}

#[test]
fn a_mail_subject_carries_the_spanish_message_and_no_login_is_sent_without_a_user() {
    let env = Env::new();
    let smtp = SmtpSink::start();
    let port = smtp.port().to_string();
    let o = notify(
        &env,
        &["notify", "integrity_failed", "restored row count differs"],
        &[
            ("SMTP_HOST", "localhost"),
            ("SMTP_PORT", &port),
            ("NOTIFY_EMAIL_TO", "ops@farm.example"),
        ],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m.auth, None);
    assert!(!smtp.verbs().contains(&"AUTH".to_string()));
    assert!(m.from.starts_with("masclet@"), "{}", m.from);
    let subject = m.header("Subject").unwrap();
    assert!(
        subject.starts_with("[masclet] integrity_failed on ")
            && subject.ends_with(": Error en verificación"),
        "{subject}"
    );
    assert_eq!(m.header("X-Priority"), None, "not urgent");
}

#[test]
fn a_remote_mail_server_without_starttls_is_refused_before_the_login() {
    let env = Env::new();
    let smtp = SmtpSink::start();
    let port = smtp.port().to_string();
    // The sink's own address, written so that it does not read as loopback: the rule
    // allowing plain SMTP goes by the host as written, so this one must get STARTTLS.
    let o = notify(
        &env,
        &["notify", "--test"],
        &[
            ("SMTP_HOST", "::ffff:127.0.0.1"),
            ("SMTP_PORT", &port),
            ("SMTP_USER", "ops"),
            ("SMTP_PASSWORD", SMTP_PASSWORD),
            ("NOTIFY_EMAIL_TO", "a@farm.example"),
        ],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    // Not retried: a server without STARTTLS will not offer it a second later.
    assert!(out.starts_with("FAIL smtp after 1 attempt: "), "{out}");
    assert!(out.contains("STARTTLS"), "{out}");
    assert_no_secret(&o);
    let verbs = smtp.verbs();
    assert!(verbs.contains(&"EHLO".to_string()), "{verbs:?}");
    assert!(
        !verbs.iter().any(|v| v == "AUTH" || v == "MAIL"),
        "{verbs:?}"
    );
    assert!(smtp.messages().is_empty());
}

#[test]
fn the_command_hook_gets_key_message_and_json_but_no_secret() {
    let env = Env::new();
    let web = HttpSink::start(vec![]);
    let smtp = SmtpSink::start();
    let hook = env.path("notify.sh");
    let out_dir = env.path("hook");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$#\" \"$1\" \"$2\" > {d}/args\ncat > {d}/stdin\nenv > {d}/env\n",
            d = out_dir.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The secrets come from a configuration file, as on a real site.
    let config = env.path("masclet.env");
    std::fs::write(
        &config,
        format!(
            "NOTIFY_WEBHOOK_URL={}\nNOTIFY_WEBHOOK_SECRET={WEBHOOK_SECRET}\nSMTP_HOST=127.0.0.1\nSMTP_PORT={}\nSMTP_USER=ops\nSMTP_PASSWORD={SMTP_PASSWORD}\nNOTIFY_EMAIL_TO=a@farm.example\nDATABASE_URL=postgres://app:dbpa55@127.0.0.1/farm\n",
            web.url(&format!("/{TOKEN}")),
            smtp.port()
        ),
    )
    .unwrap();
    let config = config.to_string_lossy().into_owned();
    let o = notify(
        &env,
        &["--config", &config, "notify", "space_low", "93% used"],
        &[("NOTIFY_COMMAND", &hook.to_string_lossy())],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert_eq!(
        out,
        "ok   command (1 attempt)\nok   webhook (1 attempt)\nok   smtp (1 attempt)\n"
    );
    assert_no_secret(&o);

    let args = std::fs::read_to_string(out_dir.join("args")).unwrap();
    assert_eq!(args, "2\nspace_low\nEspacio insuficiente (<10%)\n");
    let stdin: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("stdin")).unwrap()).unwrap();
    assert_eq!(stdin["alert"], "space_low");
    assert_eq!(stdin["detail"], "93% used");
    assert_eq!(
        stdin,
        serde_json::from_slice::<serde_json::Value>(&web.requests()[0].body).unwrap()
    );
    let hook_env = std::fs::read_to_string(out_dir.join("env")).unwrap();
    assert!(hook_env.contains("MASCLET_ALERT=space_low\n"), "{hook_env}");
    assert!(hook_env.contains("MASCLET_DETAIL=93% used\n"), "{hook_env}");
    for name in [
        "MASCLET_PASSWORD",
        "MASCLET_REPO",
        "SMTP_PASSWORD",
        "NOTIFY_WEBHOOK_SECRET",
        "NOTIFY_WEBHOOK_URL",
        "DATABASE_URL",
    ] {
        assert!(
            !hook_env.contains(&format!("{name}=")),
            "{name} reached the hook"
        );
    }
    for secret in [
        WEBHOOK_SECRET,
        SMTP_PASSWORD,
        "dbpa55",
        "s3cret pass",
        TOKEN,
    ] {
        assert!(!hook_env.contains(secret), "{secret} reached the hook");
    }
}

#[test]
fn notify_without_a_channel_says_which_settings_make_one() {
    let env = Env::new();
    let o = notify(&env, &["notify", "--test"], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    assert!(
        err.contains("no notification channel is configured: set NOTIFY_COMMAND, NOTIFY_WEBHOOK_URL or SMTP_HOST with NOTIFY_EMAIL_TO"),
        "{err}"
    );
}

#[test]
fn an_unknown_alert_key_is_refused_listing_the_valid_ones() {
    let env = Env::new();
    let o = notify(
        &env,
        &["notify", "backup_broke"],
        &[("NOTIFY_COMMAND", "/bin/true")],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    assert!(err.contains("unknown alert \"backup_broke\""), "{err}");
    assert!(
        err.contains(
            "backup_failed, space_low, integrity_failed, rotation_failed, backup_ok, test"
        ),
        "{err}"
    );
}

#[test]
fn half_a_mail_setting_is_refused_naming_the_missing_key() {
    let env = Env::new();
    let o = notify(&env, &["notify", "--test"], &[("SMTP_HOST", "127.0.0.1")]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("NOTIFY_EMAIL_TO"), "{err}");
}
