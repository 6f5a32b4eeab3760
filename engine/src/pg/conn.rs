//! Connecting to the server (with the original system's retries) and finding the client
//! programs that match it.

use super::target::Target;
use crate::error::{Error, ErrorKind, Result};
use postgres::{Client, NoTls};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Connection attempts before giving up (the original "connection failure" case: 3).
pub const CONNECT_ATTEMPTS: u32 = 3;

/// Connect, trying [`CONNECT_ATTEMPTS`] times with a growing pause (1 s, then 2 s) when
/// the server cannot be reached; a refused login is not retried (a wrong password stays
/// wrong). Ctrl-C stops the waiting.
///
/// # Errors
/// `Database` naming the server (never the password) and the last failure.
pub fn connect(target: &Target) -> Result<Client> {
    connect_with(target, CONNECT_ATTEMPTS, Duration::from_secs(1))
}

pub(crate) fn connect_with(target: &Target, attempts: u32, pause: Duration) -> Result<Client> {
    let mut last = String::new();
    for attempt in 1..=attempts {
        crate::check_interrupt()?;
        match target.config().connect(NoTls) {
            Ok(c) => return Ok(c),
            Err(e) => {
                last = describe(&e);
                if e.as_db_error().is_some() {
                    // The server answered and refused (authentication, no such database).
                    break;
                }
            }
        }
        if attempt < attempts {
            std::thread::sleep(pause * attempt);
        }
    }
    Err(target.error(
        &format!("cannot connect to the database after {attempts} attempt(s); check that the server runs and the URL, PG* variables or pgpass file are right"),
        &last,
    ))
}

/// A client error as one line: the server's own message when it sent one.
pub(crate) fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut s = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                s.push_str(": ");
                s.push_str(&c.to_string());
                cause = c.source();
            }
            s
        }
    }
}

/// A failed query as a `Database` error naming what was being done.
pub(crate) fn query_error(target: &Target, what: &str, e: &postgres::Error) -> Error {
    target.error(what, &describe(e))
}

/// The server's major version (15 for 15.x).
///
/// # Errors
/// `Database` when the query fails.
pub fn server_major(client: &mut Client, target: &Target) -> Result<u32> {
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .map_err(|e| query_error(target, "reading the server version", &e))?;
    let num: i32 = row.get(0);
    Ok(u32::try_from(num).unwrap_or(0) / 10_000)
}

/// The client programs masclet runs: pg_dump, pg_dumpall, psql.
#[derive(Debug, Clone)]
pub struct Tools {
    dir: Option<PathBuf>,
}

impl Tools {
    /// Programs from `dir` (`--pg-bin`), else from `PATH`, else from the newest
    /// `/usr/lib/postgresql/<major>/bin` (Debian installs them there, off `PATH`).
    pub fn find(dir: Option<&Path>) -> Self {
        if let Some(d) = dir {
            return Self {
                dir: Some(d.to_path_buf()),
            };
        }
        if on_path("pg_dump") {
            return Self { dir: None };
        }
        let newest = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let major: u32 = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("pg_dump").exists().then_some((major, bin))
            })
            .max();
        Self {
            dir: newest.map(|(_, b)| b),
        }
    }

    /// The path of program `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir
            .as_ref()
            .map_or_else(|| PathBuf::from(name), |d| d.join(name))
    }

    /// A command for program `name` reaching `target` (see [`Target::apply_to`]).
    ///
    /// # Errors
    /// `Io` when the password cannot be handed over (its private pgpass file).
    pub fn command(&self, name: &str, target: &Target) -> Result<std::process::Command> {
        let mut c = std::process::Command::new(self.path(name));
        target.apply_to(&mut c)?;
        Ok(c)
    }

    /// Check that `name` runs and is not older than the server (an older pg_dump refuses a
    /// newer server; an older psql may not restore a newer dump).
    ///
    /// # Errors
    /// `InvalidInput` saying what to install or to pass `--pg-bin`.
    pub fn check(&self, name: &str, server_major: u32) -> Result<()> {
        let path = self.path(name);
        // Even asking for its version, a client program gets none of our environment.
        let out = std::process::Command::new(&path)
            .env_clear()
            .envs(std::env::var_os("PATH").map(|p| ("PATH", p)))
            .arg("--version")
            .output()
            .map_err(|e| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "cannot run {} ({e}): install PostgreSQL's client programs (Debian: apt-get install postgresql-client-{server_major}) or name their directory with --pg-bin",
                        path.display()
                    ),
                )
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let major = text
            .split_whitespace()
            .last()
            .and_then(|v| v.split('.').next())
            .and_then(|m| m.parse::<u32>().ok())
            .unwrap_or(0);
        if major < server_major {
            return Err(Error::invalid(format!(
                "{} is version {major}, older than the server ({server_major}): install postgresql-client-{server_major} or pass --pg-bin with the directory of a newer one",
                path.display()
            )));
        }
        Ok(())
    }
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}
