//! Which PostgreSQL server and database to talk to, and how to hand the same settings to
//! the real client programs (pg_dump, pg_dumpall, psql) without a secret ever reaching a
//! command line, a log or a message.
//!
//! Settings come from a URL or key=value string (`--pg URL`, `DATABASE_URL`), else from the
//! usual `PG*` variables; a password comes from the URL, `PGPASSWORD` or the pgpass file
//! (`PGPASSFILE`, else `~/.pgpass`). The Rust client reads none of the variables or files
//! itself, so they are read here, once, the way libpq reads them.

use super::passfile::PassFile;
use crate::error::{Error, ErrorKind, Result};
use postgres::config::{Config, Host};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// How long one connection attempt may take (the original system's 30 s).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Variables a client program may inherit from our environment: what it needs to run and
/// to find its own settings files. Everything else (our passphrase variables above all) is
/// left out; the connection settings are then set explicitly.
const CHILD_ENV_ALLOW: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TMPDIR",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGSSLCRL",
    "PGAPPNAME",
    "PGOPTIONS",
    "PGTZ",
    "PGCLIENTENCODING",
];

/// A database server and database, resolved from a URL or the environment.
#[derive(Clone)]
pub struct Target {
    config: Config,
    /// Where the settings came from, for messages.
    origin: String,
    /// The private pgpass file the client programs read the password from, made on first
    /// use and shared by the copies of this target (see `passfile.rs`).
    passfile: std::sync::Arc<std::sync::OnceLock<std::result::Result<PassFile, String>>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({})", self.display())
    }
}

impl Target {
    /// Resolve the settings: `url` when given, else `DATABASE_URL`, else the `PG*`
    /// variables (with libpq's defaults: the local socket, the user's name as user and
    /// database). A password missing from both is looked up in the pgpass file.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed URL (the message never repeats it: it may hold a
    /// password).
    pub fn resolve(url: Option<&str>) -> Result<Self> {
        let from_env = std::env::var("DATABASE_URL").ok().filter(|s| !s.is_empty());
        let (mut config, origin) = match url.map(str::to_string).or(from_env.clone()) {
            Some(u) => {
                let origin = if url.is_some() {
                    "--pg"
                } else {
                    "DATABASE_URL"
                };
                let c = Config::from_str(&u).map_err(|e| {
                    Error::invalid(format!(
                        "the connection string from {origin} is not a valid PostgreSQL URL or key=value list ({})",
                        redact_text(&e.to_string(), &u)
                    ))
                })?;
                (c, origin.to_string())
            }
            None => (Config::new(), "the PG* variables".to_string()),
        };
        fill_from_env(&mut config);
        if config.get_password().is_none()
            && let Some(pw) = pgpass_lookup(&config)
        {
            config.password(pw);
        }
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("masclet");
        Ok(Self {
            config,
            origin,
            passfile: std::sync::Arc::default(),
        })
    }

    /// The same server with another database (the temporary one of a test restore).
    pub fn with_database(&self, db: &str) -> Self {
        let mut t = self.clone();
        t.config.dbname(db);
        t
    }

    /// The database name.
    pub fn database(&self) -> String {
        self.config
            .get_dbname()
            .map_or_else(user_name, str::to_string)
    }

    /// The user name.
    pub fn user(&self) -> String {
        self.config
            .get_user()
            .map_or_else(user_name, str::to_string)
    }

    /// `user@host:port/db` without the password, for messages.
    pub fn display(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.user(),
            self.host_text(),
            self.port(),
            self.database()
        )
    }

    /// Where the settings came from (`--pg`, `DATABASE_URL`, the PG* variables).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn host_text(&self) -> String {
        match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "/var/run/postgresql".to_string(),
        }
    }

    fn port(&self) -> u16 {
        self.config.get_ports().first().copied().unwrap_or(5432)
    }

    /// The client configuration (connect with [`super::conn::connect`]).
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The password, if one was found (to remove it from anything shown).
    pub(crate) fn secret(&self) -> Option<String> {
        self.config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    }

    /// Remove the password from `text` (a child's stderr, a server message).
    pub fn redact(&self, text: &str) -> String {
        match self.secret() {
            Some(s) if !s.is_empty() => redact_text(text, &s),
            _ => text.to_string(),
        }
    }

    /// Prepare `cmd` (a libpq client program) to reach this database: an environment
    /// cleared to the allow-list, then the connection settings as `PG*` variables. The
    /// password is in neither argv (any user of the machine reads it) nor the environment:
    /// it is in a private pgpass file `PGPASSFILE` names.
    ///
    /// # Errors
    /// `Io` when the private pgpass file cannot be written.
    pub fn apply_to(&self, cmd: &mut std::process::Command) -> Result<()> {
        cmd.env_clear();
        for k in CHILD_ENV_ALLOW {
            if let Some(v) = std::env::var_os(k) {
                cmd.env(k, v);
            }
        }
        match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => {
                cmd.env("PGHOST", h);
            }
            Some(Host::Unix(p)) => {
                cmd.env("PGHOST", p);
            }
            None => {}
        }
        if let Some(p) = self.config.get_ports().first() {
            cmd.env("PGPORT", p.to_string());
        }
        cmd.env("PGUSER", self.user());
        cmd.env("PGDATABASE", self.database());
        cmd.env("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT.as_secs().to_string());
        if let Some(pw) = self.secret() {
            let file = self
                .passfile
                .get_or_init(|| PassFile::create(&pw).map_err(|e| e.to_string()));
            match file {
                Ok(f) => {
                    cmd.env("PGPASSFILE", f.path());
                }
                Err(e) => {
                    return Err(Error::new(
                        ErrorKind::Io,
                        format!("cannot hand the password to {:?}: {e}", cmd.get_program()),
                    ));
                }
            }
        }
        Ok(())
    }

    /// An error of kind `Database` about this target, with `text` redacted.
    pub(crate) fn error(&self, what: &str, text: &str) -> Error {
        Error::new(
            ErrorKind::Database,
            format!("{what} ({}): {}", self.display(), self.redact(text)),
        )
    }
}

/// Whether a URL given on the command line carries a password (which `ps` shows to every
/// user of the machine): the CLI warns and names the safer places.
pub fn url_has_password(url: &str) -> bool {
    Config::from_str(url).is_ok_and(|c| c.get_password().is_some())
}

/// Fill what the URL left unset from the `PG*` variables, as libpq does.
fn fill_from_env(c: &mut Config) {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if c.get_hosts().is_empty() {
        match var("PGHOST") {
            Some(h) if h.starts_with('/') => {
                c.host_path(PathBuf::from(h));
            }
            Some(h) => {
                c.host(&h);
            }
            None => {
                c.host_path("/var/run/postgresql");
            }
        }
    }
    if c.get_ports().is_empty()
        && let Some(p) = var("PGPORT").and_then(|p| p.parse().ok())
    {
        c.port(p);
    }
    if c.get_user().is_none() {
        c.user(&var("PGUSER").unwrap_or_else(user_name));
    }
    if c.get_dbname().is_none() {
        let db = var("PGDATABASE").unwrap_or_else(|| c.get_user().unwrap_or("").to_string());
        c.dbname(&db);
    }
    if c.get_password().is_none()
        && let Some(pw) = var("PGPASSWORD")
    {
        c.password(&pw);
    }
}

fn user_name() -> String {
    std::env::var("USER").unwrap_or_else(|_| "postgres".to_string())
}

/// The password for this connection from the pgpass file, as libpq finds it: the first
/// line whose host, port, database and user match (`*` matches anything; `\:` and `\\`
/// are escapes). A file others can read is ignored, as libpq ignores it.
fn pgpass_lookup(c: &Config) -> Option<String> {
    let path = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass")))?;
    let meta = std::fs::metadata(&path).ok()?;
    if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077 != 0 {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let host = match c.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        _ => "localhost".to_string(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432).to_string();
    let want = [
        host,
        port,
        c.get_dbname().unwrap_or_default().to_string(),
        c.get_user().unwrap_or_default().to_string(),
    ];
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(split_pgpass)
        .find(|f| {
            f.iter()
                .zip(&want)
                .all(|(got, want)| got == "*" || got == want)
        })
        .map(|f| f[4].clone())
}

fn split_pgpass(line: &str) -> Option<[String; 5]> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => fields.last_mut()?.push(chars.next().unwrap_or('\\')),
            ':' if fields.len() < 5 => fields.push(String::new()),
            _ => fields.last_mut()?.push(ch),
        }
    }
    fields.try_into().ok()
}

fn redact_text(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        text.to_string()
    } else {
        text.replace(secret, "***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_lines_split_on_unescaped_colons_only() {
        let f = split_pgpass(r"db\:host:5432:*:ana:pa\:ss\\w").unwrap();
        assert_eq!(
            f,
            ["db:host", "5432", "*", "ana", r"pa:ss\w"].map(String::from)
        );
        assert!(split_pgpass("a:b:c").is_none());
    }

    #[test]
    fn a_url_password_is_detected_and_redacted() {
        assert!(url_has_password("postgresql://u:s3cret@h/db"));
        assert!(!url_has_password("postgresql://u@h/db"));
        assert_eq!(
            redact_text("auth failed for s3cret", "s3cret"),
            "auth failed for ***"
        );
    }
}
