//! Telling someone: an [`Alert`] sent through every configured channel, each retried with
//! backoff, each outcome reported as a [`Delivery`] so that a failure is never dropped.
//!
//! Channels, all configured through the environment (which the CLI fills from the `.env`
//! file):
//! - **command hook** (`NOTIFY_COMMAND`): the program is run directly, never through a
//!   shell, with the alert key and the message as its two arguments (the interface of the
//!   original system's `notify.sh "tipo" "mensaje"`), the alert's JSON on standard input,
//!   and an environment reduced to an allow-list (see [`command`]);
//! - **webhook** (`NOTIFY_WEBHOOK_URL`): the alert's JSON posted, signed when
//!   `NOTIFY_WEBHOOK_SECRET` is set (the scheme is in [`webhook`]);
//! - **mail** (`SMTP_HOST` with `NOTIFY_EMAIL_TO`; `SMTP_PORT`, `SMTP_USER`,
//!   `SMTP_PASSWORD`, `SMTP_FROM`): one plain-text mail to every recipient. Port 465 is
//!   TLS from the first byte; any other port requires STARTTLS, except on a loopback host
//!   (`localhost`, `127.0.0.0/8`, `::1`), a local relay, where plain SMTP is used
//!   (see [`smtp`]). Credentials are sent only when `SMTP_USER` is set.
//!
//! Every channel gets `NOTIFY_RETRIES` attempts (default 3), waiting 1 s, 2 s, 4 s...
//! (at most a minute) between them; an answer that cannot change on a retry (a webhook's
//! 404, a mail server's permanent refusal) ends the attempts early. Channels are tried side
//! by side, so one that hangs until its 30 s timeout does not hold the others back.
//!
//! No message leaves a secret behind: errors name a webhook by scheme, host and port only
//! (its path is often a token), and never quote `SMTP_PASSWORD` or the signing key.

pub mod command;
pub mod smtp;
pub mod webhook;

use super::alert::Alert;
use crate::config::check_value;
use crate::error::{Error, Result};
use serde::Serialize;
use std::time::Duration;

/// How long one attempt of any channel may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The first wait between attempts; each next one doubles.
pub const BACKOFF: Duration = Duration::from_secs(1);

/// The longest wait between two attempts, however many are configured.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// What became of one alert on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// `command`, `webhook` or `smtp`.
    pub channel: &'static str,
    /// Whether the channel accepted the alert.
    pub ok: bool,
    /// Attempts made (1 when the first one worked or failed for good).
    pub attempts: u32,
    /// Why the last attempt failed; `None` when `ok`.
    pub error: Option<String>,
}

/// Why one attempt failed, and whether another could do better.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What happened, for the operator; never holds a secret.
    pub message: String,
    /// Whether a later attempt may succeed (a timeout, a 503) or not (a 404, a refusal).
    pub retry: bool,
}

impl Failure {
    /// A failure worth another attempt.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry: true,
        }
    }

    /// A failure that another attempt would repeat.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry: false,
        }
    }
}

/// The configured channels.
pub struct Channels {
    command: Option<command::CommandHook>,
    webhook: Option<webhook::Webhook>,
    smtp: Option<smtp::Smtp>,
    attempts: u32,
    backoff: Duration,
}

impl std::fmt::Debug for Channels {
    // Hand-written so that a debug print cannot show a password or a webhook's token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels")
            .field("channels", &self.names())
            .field("attempts", &self.attempts)
            .field("backoff", &self.backoff)
            .finish()
    }
}

impl Channels {
    /// The channels the environment configures (none at all is not an error: see
    /// [`Channels::is_empty`]).
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidInput`] naming the key, when a setting is malformed or
    /// half of a channel is set (`SMTP_HOST` without `NOTIFY_EMAIL_TO`, `SMTP_USER`
    /// without `SMTP_PASSWORD`, a webhook URL that is not http(s), `NOTIFY_RETRIES=0`).
    pub fn from_env() -> Result<Self> {
        Self::from_vars(&|name| std::env::var(name).ok())
    }

    /// The channels `var` configures; an empty value counts as unset, as in the `.env` file.
    pub(crate) fn from_vars(var: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| -> Result<Option<String>> {
            let Some(value) = var(name).filter(|v| !v.trim().is_empty()) else {
                return Ok(None);
            };
            if let Some(key) = crate::config::find(name) {
                // Set in the real environment, the value skipped the file's checks.
                check_value(key.kind, &value)
                    .map_err(|msg| Error::invalid(format!("{name}'s value {msg}")))?;
            }
            Ok(Some(value))
        };
        let attempts = match get("NOTIFY_RETRIES")? {
            Some(v) => v.trim().parse::<u32>().unwrap_or(0),
            None => 3,
        };
        if attempts == 0 {
            return Err(Error::invalid(
                "NOTIFY_RETRIES is 0: it counts attempts per channel, set it to 1 or more",
            ));
        }
        Ok(Self {
            command: get("NOTIFY_COMMAND")?.map(command::CommandHook::new),
            webhook: webhook::Webhook::from_vars(&get)?,
            smtp: smtp::Smtp::from_vars(&get)?,
            attempts,
            backoff: BACKOFF,
        })
    }

    /// Wait `first` before the second attempt, twice that before the third, and so on
    /// (tests use a few milliseconds).
    #[must_use]
    pub fn with_backoff(mut self, first: Duration) -> Self {
        self.backoff = first;
        self
    }

    /// Whether no channel is configured.
    pub fn is_empty(&self) -> bool {
        self.names().is_empty()
    }

    /// The configured channels' names, in the order [`Channels::send`] reports them.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.command.is_some() {
            names.push(command::NAME);
        }
        if self.webhook.is_some() {
            names.push(webhook::NAME);
        }
        if self.smtp.is_some() {
            names.push(smtp::NAME);
        }
        names
    }

    /// Send `alert` through every channel, retrying each; one [`Delivery`] per channel, in
    /// the order of [`Channels::names`]. Returns when every channel is done.
    pub fn send(&self, alert: &Alert) -> Vec<Delivery> {
        // One body for every channel and attempt: a webhook's signature covers these bytes.
        let body = alert.body_json();
        let (attempts, backoff) = (self.attempts, self.backoff);
        std::thread::scope(|s| {
            let mut running = Vec::new();
            if let Some(c) = &self.command {
                let body = &body;
                let job = s.spawn(move || {
                    retry(command::NAME, attempts, backoff, || c.attempt(alert, body))
                });
                running.push((command::NAME, job));
            }
            if let Some(w) = &self.webhook {
                let body = &body;
                let job =
                    s.spawn(move || retry(webhook::NAME, attempts, backoff, || w.attempt(body)));
                running.push((webhook::NAME, job));
            }
            if let Some(m) = &self.smtp {
                let job =
                    s.spawn(move || retry(smtp::NAME, attempts, backoff, || m.attempt(alert)));
                running.push((smtp::NAME, job));
            }
            running
                .into_iter()
                .map(|(channel, job)| {
                    // A panic is a bug, but it still must not make the alert vanish.
                    job.join().unwrap_or_else(|_| Delivery {
                        channel,
                        ok: false,
                        attempts: 1,
                        error: Some(format!(
                            "sending through {channel} panicked: a bug in masclet, please report it"
                        )),
                    })
                })
                .collect()
        })
    }
}

/// The wait before attempt `next` (2 for the first retry): `first` doubled each time,
/// capped at a minute.
pub fn wait_before(next: u32, first: Duration) -> Duration {
    let doublings = next.saturating_sub(2).min(16);
    first
        .saturating_mul(1 << doublings)
        .min(MAX_WAIT.max(first))
}

/// Run `attempt` until it works, fails for good, or `attempts` are used up.
pub(crate) fn retry(
    channel: &'static str,
    attempts: u32,
    first_wait: Duration,
    mut attempt: impl FnMut() -> std::result::Result<(), Failure>,
) -> Delivery {
    let mut made = 0;
    loop {
        made += 1;
        let failure = match attempt() {
            Ok(()) => {
                return Delivery {
                    channel,
                    ok: true,
                    attempts: made,
                    error: None,
                };
            }
            Err(f) => f,
        };
        if !failure.retry || made >= attempts {
            return Delivery {
                channel,
                ok: false,
                attempts: made,
                error: Some(failure.message),
            };
        }
        std::thread::sleep(wait_before(made + 1, first_wait));
    }
}

#[cfg(test)]
mod tests;
