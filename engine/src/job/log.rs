//! The operation log, `LOG_DIR/backup.log` (the original spec's `tail -f /logs/backup.log`):
//! one line per step, written as the step ends, so a reader following the file sees the
//! job advance.
//!
//! A line is `TIME LEVEL [tier] step outcome (seconds) detail`, for example
//! `2026-12-03T02:00:14Z INFO  [daily] backup ok (12.3 s) snapshot 1a2b3c4d: ...`. Each line
//! is one `write` to a file opened for appending, so lines of two processes never mix.
//! Nothing secret is written: details come from errors that are written without secrets,
//! and [`redact`] removes any known secret value that slipped into one all the same.

use super::record::StepRecord;
use crate::error::{Error, ErrorKind, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The log's file name inside `LOG_DIR`.
pub const LOG_NAME: &str = "backup.log";

/// Environment variables whose values never appear in a log, record or notification.
const SECRET_VARS: [&str; 5] = [
    "MASCLET_PASSWORD",
    "SMTP_PASSWORD",
    "NOTIFY_WEBHOOK_SECRET",
    "PGPASSWORD",
    "AWS_SECRET_ACCESS_KEY",
];

/// The operation log of one `LOG_DIR`.
#[derive(Debug, Clone)]
pub struct OpLog {
    path: PathBuf,
}

impl OpLog {
    /// The log in `dir`, which is created (mode 0700 under masclet's umask) when missing.
    ///
    /// # Errors
    /// `Io` naming the folder when it cannot be made or written.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!(
                    "cannot create the log folder {} ({e}): set LOG_DIR to a folder masclet may write",
                    dir.display()
                ),
            )
        })?;
        let log = Self {
            path: dir.join(LOG_NAME),
        };
        log.append_raw("")?;
        Ok(log)
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write one step's line.
    ///
    /// # Errors
    /// `Io` when the line cannot be written (a full disk included).
    pub fn step(&self, tier: &str, step: &StepRecord) -> Result<()> {
        let level = match step.outcome {
            super::StepOutcome::Failed => "ERROR",
            super::StepOutcome::Warning => "WARN ",
            _ => "INFO ",
        };
        self.line(
            level,
            tier,
            &format!(
                "{} {} ({:.1} s) {}",
                step.name,
                step.outcome.as_str(),
                step.duration_secs,
                step.detail
            ),
        )
    }

    /// Write a free line (the run's start and end).
    ///
    /// # Errors
    /// `Io` when the line cannot be written.
    pub fn line(&self, level: &str, tier: &str, text: &str) -> Result<()> {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        // One line per record, whatever the detail holds: a newline in an error message
        // must not forge a second log line.
        let text = redact(text).replace(['\n', '\r'], " ");
        self.append_raw(&format!("{now} {level} [{tier}] {text}\n"))
    }

    fn append_raw(&self, text: &str) -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(|e| Error::io(self.path.display(), e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| Error::io(self.path.display(), e))
    }
}

/// `text` with every known secret replaced by `********`: the values of [`SECRET_VARS`]
/// and the password inside `DATABASE_URL` / `VERIFY_DATABASE_URL`, as this process's
/// environment holds them.
pub fn redact(text: &str) -> String {
    let mut out = text.to_owned();
    let mut secrets: Vec<String> = SECRET_VARS
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .collect();
    for v in ["DATABASE_URL", "VERIFY_DATABASE_URL"] {
        if let Ok(url) = std::env::var(v)
            && let Some(p) = url_password(&url)
        {
            secrets.push(p);
        }
    }
    // Short values would redact ordinary words; a 3-character secret is not protected by
    // hiding it anyway.
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s.as_str(), "********");
    }
    out
}

/// The password of a `postgresql://user:password@host/db` URL.
fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.rsplit_once('@')?.0;
    let pw = userinfo.split_once(':')?.1;
    (!pw.is_empty()).then(|| pw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::StepOutcome;

    #[test]
    fn a_step_is_one_line_even_when_its_detail_has_newlines() {
        let dir = tempfile::tempdir().unwrap();
        let log = OpLog::open(&dir.path().join("logs")).unwrap();
        let step = StepRecord {
            name: "backup".into(),
            outcome: StepOutcome::Failed,
            duration_secs: 1.25,
            detail: "pg_dump said\nFATAL: forged line".into(),
        };
        log.step("daily", &step).unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("ERROR [daily] backup failed (1.2 s) pg_dump said FATAL"));
    }

    #[test]
    fn url_passwords_are_found() {
        assert_eq!(
            url_password("postgresql://masclet:s3cr3t@db/masclet").as_deref(),
            Some("s3cr3t")
        );
        assert_eq!(url_password("postgresql://masclet@db/masclet"), None);
        assert_eq!(url_password("host=db user=masclet"), None);
    }
}
