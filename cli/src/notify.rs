//! `masclet notify`: an alert, or a test message, through every configured channel; one
//! line per channel, or the deliveries as JSON.
//!
//! Exit status: 0 every channel took it, 1 a channel failed after its attempts, 2 nothing
//! to send through or nothing valid to send (no channel configured, an unknown key, a
//! malformed setting).

use crate::args::{Cli, NotifyArgs};
use crate::exit;
use crate::output::{escape, print_json};
use anyhow::Result;
use masclet_engine::job::notify::Channels;
use masclet_engine::job::{Alert, AlertKey};

pub fn notify(cli: &Cli, a: &NotifyArgs) -> Result<u8> {
    let detail = a.detail.join(" ");
    let key = match (&a.key, a.test) {
        (Some(k), _) => match AlertKey::parse(k) {
            Some(key) => key,
            None => {
                let keys: Vec<&str> = AlertKey::ALL.iter().map(|k| k.as_str()).collect();
                eprintln!(
                    "masclet: error: unknown alert {:?}: use one of {}",
                    escape(k),
                    keys.join(", ")
                );
                return Ok(exit::USAGE);
            }
        },
        (None, _) => AlertKey::Test,
    };
    let detail = if detail.is_empty() && key == AlertKey::Test {
        "masclet notify --test".to_string()
    } else {
        detail
    };
    let channels = match Channels::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("masclet: error: {e}");
            return Ok(exit::USAGE);
        }
    };
    if channels.is_empty() {
        eprintln!(
            "masclet: error: no notification channel is configured: set NOTIFY_COMMAND, NOTIFY_WEBHOOK_URL or SMTP_HOST with NOTIFY_EMAIL_TO"
        );
        return Ok(exit::USAGE);
    }
    let alert = Alert::new(key, detail).urgent(a.urgent);
    let deliveries = channels.send(&alert);
    if cli.global.json {
        print_json(&serde_json::to_value(&deliveries)?);
    } else {
        for d in &deliveries {
            let n = d.attempts;
            let plural = if n == 1 { "" } else { "s" };
            match &d.error {
                None => println!("ok   {} ({n} attempt{plural})", d.channel),
                Some(e) => println!(
                    "FAIL {} after {n} attempt{plural}: {}",
                    d.channel,
                    escape(e)
                ),
            }
        }
    }
    Ok(if deliveries.iter().all(|d| d.ok) {
        0
    } else {
        exit::FAILURE
    })
}
