//! The restore a test restore and `restore --to-db` share: a database made for it (and
//! dropped unless kept, whatever stops the work), and the dump streamed out of the
//! repository into the real `psql` in one transaction. Every chunk is authenticated on
//! the way and the file's hash checked at its end; psql is killed before its input closes
//! when that fails, so a damaged or truncated dump commits nothing.

use super::conn::{Tools, connect, query_error};
use super::manifest::{Manifest, quote_ident};
use super::target::Target;
use crate::disk::snapshot::Snapshot;
use crate::error::{Error, ErrorKind, Result};
use crate::ops::restore::dump;
use crate::progress::{Progress, Unit};
use crate::repository::repo::Repo;
use std::io::{Read, Write};
use std::process::Stdio;

/// A database made for a restore, dropped when this guard drops unless [`Self::keep`] was
/// called: after a failed check, a psql failure, an error or Ctrl-C alike.
pub(crate) struct ScratchDb {
    admin: Target,
    name: String,
    armed: bool,
    /// Test-restore databases of killed runs dropped before this one was made.
    pub(crate) stale_dropped: Vec<String>,
}

impl ScratchDb {
    /// `CREATE DATABASE name` through `admin` (a connection to another database of the
    /// same server). From template0: template1 may carry objects the dump creates again.
    ///
    /// First, the test-restore databases a killed run left (a `kill -9` or a power loss
    /// gives the guard no chance to drop its database, and each is a whole copy of the
    /// data on the server's disk) are dropped: see [`stale`].
    pub(crate) fn create(admin: &Target, name: &str) -> Result<Self> {
        let mut c = connect(admin)?;
        let mut stale_dropped = Vec::new();
        let names: Vec<String> = c
            .query(
                "SELECT datname FROM pg_database WHERE datname LIKE 'masclet\\_verify\\_%'",
                &[],
            )
            .map_err(|e| query_error(admin, "listing databases", &e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for old in names.iter().filter(|n| stale(n, chrono::Utc::now())) {
            if drop_database(admin, old).is_ok() {
                stale_dropped.push(old.clone());
            }
        }
        c.batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE template0",
            quote_ident(name)
        ))
        .map_err(|e| query_error(admin, &format!("creating database {name}"), &e))?;
        Ok(Self {
            admin: admin.clone(),
            name: name.to_string(),
            armed: true,
            stale_dropped,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Keep the database (a finished `restore --to-db`).
    pub(crate) fn keep(mut self) {
        self.armed = false;
    }

    /// Drop it now, saying how it went.
    pub(crate) fn drop_now(mut self) -> Result<()> {
        self.armed = false;
        drop_database(&self.admin, &self.name)
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        if self.armed {
            let _ = drop_database(&self.admin, &self.name);
        }
    }
}

/// `DROP DATABASE … WITH (FORCE)`. Connects without [`connect`]'s interrupt check: after
/// Ctrl-C this is exactly the work that must still happen.
pub(crate) fn drop_database(admin: &Target, name: &str) -> Result<()> {
    let mut c = admin
        .config()
        .connect(postgres::NoTls)
        .map_err(|e| query_error(admin, "connecting to drop a database", &e))?;
    c.batch_execute(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(name)
    ))
    .map_err(|e| {
        query_error(
            admin,
            &format!(
                "dropping database {name}; drop it by hand: DROP DATABASE {} WITH (FORCE)",
                quote_ident(name)
            ),
            &e,
        )
    })
}

/// The same server, connected to a database other than `avoid` (one cannot create, drop
/// or rename the database one is connected to).
pub(crate) fn admin_target(target: &Target, avoid: &[&str]) -> Target {
    if avoid.contains(&target.database().as_str()) {
        target.with_database("postgres")
    } else {
        target.clone()
    }
}

/// Restore `snap`'s dump into the existing, empty database `db`: the roles file first when
/// `with_roles` (errors there are expected, for roles that exist, and only warned about),
/// then the dump through `psql --single-transaction` with ON_ERROR_STOP.
///
/// # Errors
/// `Corrupt` for damaged data (psql is killed first, so nothing commits), `VerifyFailed`
/// when psql fails (its standard error's end, without the password), `Interrupted`, `Io`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn restore_into(
    repo: &Repo,
    snap: &Snapshot,
    manifest: &Manifest,
    globals: &[u8],
    db: &Target,
    tools: &Tools,
    with_roles: bool,
    progress: &dyn Progress,
) -> Result<()> {
    restore_from(
        &mut |w| dump(repo, snap, manifest.dump.as_bytes(), w).map(|_| ()),
        with_roles.then_some(globals),
        db,
        tools,
        progress,
    )
}

/// Restore a dump, whatever holds it, into the existing, empty database `db`: the roles
/// file `globals` first when given (failures there are only warned about), then what
/// `feed` writes through `psql --single-transaction` with ON_ERROR_STOP. `feed` must fail
/// when its source is damaged or ends early: psql is then killed before its input closes,
/// so nothing commits.
///
/// # Errors
/// As [`restore_into`]; `feed`'s own error when it fails.
pub(crate) fn restore_from(
    feed: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
    globals: Option<&[u8]>,
    db: &Target,
    tools: &Tools,
    progress: &dyn Progress,
) -> Result<()> {
    if let Some(globals) = globals {
        let globals = without_own_role(globals, &db.user());
        let args = ["-X", "-q", "-w", "-f", "-"];
        if let Err(e) = run_psql(tools, db, &args, &mut |w| {
            w.write_all(&globals)
                .map_err(|e| Error::io("writing the roles file to psql", e))
        }) {
            progress.warn(&format!("applying the roles file failed: {}", e.message()));
        }
    }
    progress.start("restoring the dump", None, Unit::Bytes);
    let args = [
        "-X",
        "-q",
        "-w",
        "-v",
        "ON_ERROR_STOP=1",
        "--single-transaction",
        "-f",
        "-",
    ];
    let r = run_psql(tools, db, &args, &mut |w| {
        let mut w = Interruptible { inner: w, progress };
        feed(&mut w)
    });
    progress.finish();
    crate::check_interrupt()?;
    r
}

/// The roles file without the lines that create or alter `user`, the role we are logged
/// in as: its `ALTER ROLE … PASSWORD` would set the snapshot's password (another server's,
/// on a scratch server), and the next connection of this very restore would be refused.
fn without_own_role(globals: &[u8], user: &str) -> Vec<u8> {
    let simple = user
        .bytes()
        .enumerate()
        .all(|(i, b)| b.is_ascii_lowercase() || b == b'_' || (i > 0 && b.is_ascii_digit()));
    let id = if simple && !user.is_empty() {
        user.to_string()
    } else {
        quote_ident(user)
    };
    let (create, alter) = (format!("CREATE ROLE {id};"), format!("ALTER ROLE {id} "));
    let mut out = Vec::with_capacity(globals.len());
    for line in globals.split_inclusive(|&b| b == b'\n') {
        let text = String::from_utf8_lossy(line);
        let t = text.trim_end();
        if t == create || t.starts_with(&alter) {
            continue;
        }
        out.extend_from_slice(line);
    }
    out
}

/// A writer that stops at Ctrl-C and counts progress.
struct Interruptible<'a> {
    inner: &'a mut dyn Write,
    progress: &'a dyn Progress,
}

impl Write for Interruptible<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if crate::interrupted() {
            // Not ErrorKind::Interrupted: write_all retries on that one.
            return Err(std::io::Error::other("interrupted"));
        }
        let n = self.inner.write(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Run psql on `db` with `args`, feeding its standard input from `feed`. psql is killed
/// before its input closes when `feed` fails: a closed input would end the script, and
/// `--single-transaction` would commit what it had.
fn run_psql(
    tools: &Tools,
    db: &Target,
    args: &[&str],
    feed: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let mut cmd = tools.command("psql", db)?;
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        Error::io(
            format!(
                "running {} (install PostgreSQL's client programs or name their directory with --pg-bin)",
                tools.path("psql").display()
            ),
            e,
        )
    })?;
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let mut stdin = child.stdin.take().expect("piped");
    let fed = feed(&mut stdin);
    if fed.is_err() {
        let _ = child.kill();
    }
    drop(stdin);
    let status = child.wait().map_err(|e| Error::io("waiting for psql", e))?;
    let err = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();
    let tail = tail(&db.redact(&err), 2000);
    match fed {
        // psql went away while we wrote: its own message says why.
        Err(e) if e.io_kind() == Some(std::io::ErrorKind::BrokenPipe) => Err(Error::new(
            ErrorKind::VerifyFailed,
            format!("psql stopped reading the dump ({status}): {tail}"),
        )),
        Err(e) => Err(e),
        Ok(()) if status.success() => Ok(()),
        Ok(()) => Err(Error::new(
            ErrorKind::VerifyFailed,
            format!("psql failed to restore the dump ({status}): {tail}"),
        )),
    }
}

fn tail(s: &str, max: usize) -> String {
    let s = s.trim();
    match s.char_indices().rev().nth(max) {
        Some((i, _)) => format!("...{}", &s[i..]),
        None => s.to_string(),
    }
}

/// Whether `name` is the test-restore database of a run that died: named by
/// [`scratch_name`] more than [`STALE_AFTER_HOURS`] hours ago by a process that is no more.
/// Both, because the server may serve several hosts: another host's live run has a pid
/// that means nothing here, but no test restore runs for half a day.
fn stale(name: &str, now: chrono::DateTime<chrono::Utc>) -> bool {
    let Some((time, pid)) = name
        .strip_prefix("masclet_verify_")
        .and_then(|rest| rest.split_once('_'))
    else {
        return false;
    };
    let (Ok(time), Ok(pid)) = (
        chrono::NaiveDateTime::parse_from_str(time, "%Y%m%d%H%M%S"),
        pid.parse::<u32>(),
    ) else {
        return false;
    };
    let old = now - time.and_utc() > chrono::Duration::hours(STALE_AFTER_HOURS);
    old && !crate::repository::lock::process_alive(pid)
}

/// Age past which a test-restore database of a dead process is dropped.
const STALE_AFTER_HOURS: i64 = 12;

/// `masclet_verify_<YYYYMMDDHHMMSS>_<pid>`.
pub(crate) fn scratch_name() -> String {
    format!(
        "masclet_verify_{}_{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S"),
        std::process::id()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_test_restore_databases_of_dead_processes_are_stale() {
        let now = chrono::Utc::now();
        let at = |h: i64| (now - chrono::Duration::hours(h)).format("%Y%m%d%H%M%S");
        // No process has a pid above the kernel's pid_max (4194304 at most).
        assert!(stale(&format!("masclet_verify_{}_2147483646", at(13)), now));
        assert!(!stale(&format!("masclet_verify_{}_2147483646", at(1)), now));
        let me = std::process::id();
        assert!(!stale(&format!("masclet_verify_{}_{me}", at(13)), now));
        for other in [
            "masclet_verify_x_1",
            "masclet_verify_20260101000000",
            "masclet_imperi",
        ] {
            assert!(!stale(other, now), "{other}");
        }
    }

    #[test]
    fn the_roles_file_is_applied_without_the_logged_in_role() {
        let g = b"CREATE ROLE postgres;\nALTER ROLE postgres WITH SUPERUSER PASSWORD 'x';\n\
                  CREATE ROLE masclet_app;\nALTER ROLE masclet_app WITH LOGIN;\n\
                  CREATE ROLE \"Odd\";\nALTER ROLE \"Odd\" WITH LOGIN;\n";
        let out = String::from_utf8(without_own_role(g, "postgres")).unwrap();
        assert!(!out.contains("ROLE postgres"), "{out}");
        assert!(out.contains("CREATE ROLE masclet_app;\nALTER ROLE masclet_app WITH LOGIN;"));
        let out = String::from_utf8(without_own_role(g, "Odd")).unwrap();
        assert!(!out.contains("\"Odd\""), "{out}");
        assert!(out.contains("ALTER ROLE postgres"));
    }
}
