//! The command hook: `NOTIFY_COMMAND` run with each alert, for sites that already have a
//! `notify.sh`.
//!
//! The value is one program path, run directly: no shell, and the string is never split
//! on spaces (a split command line is how quoting bugs become command injection). Put any
//! arguments the site needs in a wrapper script.
//!
//! The program gets:
//! - argv: the alert key and the message (`notify.sh backup_failed "Error en proceso de
//!   backup"`), as the original system called its script;
//! - standard input: the alert's JSON, as the webhook posts it;
//! - an environment made of an allow-list only: `PATH`, `HOME`, `LANG`, `TZ` when masclet
//!   has them, and `MASCLET_ALERT`, `MASCLET_MESSAGE`, `MASCLET_DETAIL`, `MASCLET_URGENT`
//!   (`1` or `0`), `MASCLET_HOST`, `MASCLET_TIME`, `MASCLET_TIER` (empty outside a run).
//!   Nothing else: not the passphrase, the database URL, the mail password or the webhook
//!   key, which the process holds after reading `.env`.
//!
//! It has [`super::TIMEOUT`] to finish; then it and everything it started (it runs in a
//! process group of its own) are killed. A non-zero exit is a failed attempt, reported
//! with the end of what it wrote to standard error.

use super::Failure;
use crate::job::alert::Alert;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The channel's name in a [`super::Delivery`].
pub const NAME: &str = "command";

/// The variables of masclet's environment the hook may see.
pub const INHERITED: [&str; 4] = ["PATH", "HOME", "LANG", "TZ"];

/// How much of the hook's standard error is kept for the report.
const STDERR_TAIL: usize = 1024;

/// The configured program.
#[derive(Debug, Clone)]
pub struct CommandHook {
    program: PathBuf,
    timeout: Duration,
}

impl CommandHook {
    /// The hook running `program` (a path, or a name looked up on `PATH`).
    pub fn new(program: String) -> Self {
        Self {
            program: PathBuf::from(program),
            timeout: super::TIMEOUT,
        }
    }

    /// Kill the program after `timeout` instead of [`super::TIMEOUT`].
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Run the program once for `alert`, `body` on its standard input.
    ///
    /// # Errors
    /// A [`Failure`]: the program could not be started (permanent), exited non-zero or was
    /// killed by a signal or the timeout (transient).
    pub fn attempt(&self, alert: &Alert, body: &str) -> Result<(), Failure> {
        let shown = self.program.display();
        let mut child = Command::new(&self.program)
            .arg(alert.key.as_str())
            .arg(&alert.message)
            .env_clear()
            .envs(environment(alert, &|k| std::env::var_os(k)))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own group, so that a timeout also kills what a script started.
            .process_group(0)
            .spawn()
            .map_err(|e| {
                Failure::permanent(format!(
                    "cannot run NOTIFY_COMMAND {shown}: {e}; set it to the path of an executable program (no arguments: wrap them in a script)"
                ))
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            let body = body.as_bytes().to_vec();
            // A hook that ignores its input may exit before reading it: not an error.
            std::thread::spawn(move || {
                let _ = stdin.write_all(&body);
            });
        }
        let tail = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        if let Some(mut stderr) = child.stderr.take() {
            let tail = Arc::clone(&tail);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = stderr.read(&mut buf) {
                    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                    t.extend_from_slice(&buf[..n]);
                    let excess = t.len().saturating_sub(STDERR_TAIL);
                    t.drain(..excess);
                }
                let _ = done_tx.send(());
            });
        }
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if started.elapsed() >= self.timeout => break None,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => {
                    return Err(Failure::transient(format!(
                        "waiting for NOTIFY_COMMAND {shown}: {e}"
                    )));
                }
            }
        };
        let Some(status) = status else {
            let group = rustix::process::Pid::from_child(&child);
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            let _ = child.wait();
            return Err(Failure::transient(format!(
                "NOTIFY_COMMAND {shown} did not finish within {} s and was killed",
                self.timeout.as_secs_f64()
            )));
        };
        if status.success() {
            return Ok(());
        }
        // Something it started may hold standard error open: wait a little, not forever.
        let _ = done_rx.recv_timeout(Duration::from_millis(500));
        let text = String::from_utf8_lossy(&tail.lock().unwrap_or_else(|p| p.into_inner()))
            .trim()
            .to_string();
        let said = if text.is_empty() {
            " (no output on standard error)".to_string()
        } else {
            format!(": {text}")
        };
        Err(Failure::transient(format!(
            "NOTIFY_COMMAND {shown} {}{said}",
            match status.code() {
                Some(code) => format!("exited with status {code}"),
                None => "was killed by a signal".to_string(),
            }
        )))
    }
}

/// The hook's whole environment: the allow-listed variables `var` has, and the alert's.
pub fn environment(
    alert: &Alert,
    var: &dyn Fn(&str) -> Option<OsString>,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = INHERITED
        .iter()
        .filter_map(|k| var(k).map(|v| (OsString::from(k), v)))
        .collect();
    let own = [
        ("MASCLET_ALERT", alert.key.as_str().to_string()),
        ("MASCLET_MESSAGE", alert.message.clone()),
        ("MASCLET_DETAIL", alert.detail.clone()),
        (
            "MASCLET_URGENT",
            if alert.urgent { "1" } else { "0" }.into(),
        ),
        ("MASCLET_HOST", alert.host.clone()),
        ("MASCLET_TIME", alert.time.clone()),
        ("MASCLET_TIER", alert.tier.clone().unwrap_or_default()),
    ];
    env.extend(own.into_iter().map(|(k, v)| (k.into(), v.into())));
    env
}
