//! A throwaway PostgreSQL cluster for tests that need a real server: `initdb` into a temp
//! dir, started on a free loopback port, stopped and removed on drop.
//!
//! TCP connections need the superuser's password (scram-sha-256), so tests exercise the
//! same authentication a production server asks for; the unix socket (inside the temp dir)
//! trusts, for the fixture's own setup. As root the server runs as `postgres` (it refuses
//! root), through `runuser`.

use rand::distributions::{Alphanumeric, DistString};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The login role the farm app uses (read/write on its tables), made by
/// [`PgCluster::load_masclet_imperi`].
pub const APP_ROLE: &str = "masclet_app";
/// The password of [`APP_ROLE`].
pub const APP_PASSWORD: &str = "app-Pàssw0rd";
/// A read-only login role, made by [`PgCluster::load_masclet_imperi`].
pub const RO_ROLE: &str = "masclet_ro";
/// The password of [`RO_ROLE`].
pub const RO_PASSWORD: &str = "ro-passw0rd";

/// A running PostgreSQL cluster owned by one test.
pub struct PgCluster {
    bin: PathBuf,
    data: PathBuf,
    run: PathBuf,
    port: u16,
    password: String,
    as_postgres: bool,
    // Last field: dropped after `Drop::drop` has stopped the server.
    _dir: tempfile::TempDir,
}

impl PgCluster {
    /// Start a fresh cluster; `None` (with a note on stderr) only when no PostgreSQL
    /// binaries exist, unless `MASCLET_REQUIRE_PG=1`, which makes that a panic. Any other
    /// failure panics with the server log's tail: a broken install must not pass as a skip.
    pub fn start() -> Option<PgCluster> {
        let Some(bin) = find_bin_dir() else {
            let why = "no PostgreSQL binaries (install postgresql-15 or set PG_BIN)";
            if std::env::var("MASCLET_REQUIRE_PG").is_ok_and(|v| v == "1") {
                panic!("MASCLET_REQUIRE_PG=1 but {why}");
            }
            eprintln!("skipping: {why}");
            return None;
        };
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("masclet-pg-")
            .tempdir()
            .unwrap();
        // tempfile makes 0700 dirs; the server user must be able to walk into ours.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let (data, run) = (dir.path().join("data"), dir.path().join("run"));
        for d in [&data, &run] {
            std::fs::create_dir(d).unwrap();
            give(d, 0o755, as_postgres);
        }
        let password = Alphanumeric.sample_string(&mut rand::thread_rng(), 24);
        let mut c = PgCluster {
            bin,
            data,
            run,
            port: 0,
            password,
            as_postgres,
            _dir: dir,
        };
        c.initdb();
        // A port found free can be taken before the server binds it; try a few.
        for attempt in 1..=3 {
            c.port = free_port();
            if c.pg_ctl(&["start", "-w", "-t", "60", "-o", &format!("-p {}", c.port)]) {
                break;
            }
            let log = c.log_tail();
            if attempt == 3 || !log.contains("could not bind") {
                panic!(
                    "PostgreSQL did not start (port {}); server log tail:\n{log}",
                    c.port
                );
            }
        }
        Some(c)
    }

    /// The TCP port the server listens on (loopback only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host to connect to: always `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The superuser `postgres`'s password (random per cluster).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The directory holding `psql`, `pg_dump`, `initdb`, … of the server's version.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// A libpq URL for the superuser on database `db`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql://postgres:{}@127.0.0.1:{}/{db}",
            self.password, self.port
        )
    }

    /// libpq environment for a child process connecting as the superuser to `db`.
    pub fn env(&self, db: &str) -> Vec<(String, String)> {
        [
            ("PGHOST", self.host().to_string()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", "postgres".to_string()),
            ("PGPASSWORD", self.password.clone()),
            ("PGDATABASE", db.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Run `sql` (a whole script) with the real `psql` over TCP as the superuser; panics
    /// with psql's stderr on any error, returns the trimmed unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql_as("postgres", &self.password, db, sql)
            .unwrap_or_else(|e| panic!("psql on {db} failed: {e}\nSQL:\n{sql}"))
    }

    /// Run `sql` with `psql` over TCP as `user` with `password`: Ok(trimmed stdout), or
    /// Err(stderr) when psql fails (a wrong password, a denied grant, an SQL error).
    pub fn try_psql_as(
        &self,
        user: &str,
        password: &str,
        db: &str,
        sql: &str,
    ) -> Result<String, String> {
        let port = self.port.to_string();
        let args = ["-h", "127.0.0.1", "-p", &port, "-U", user, "-d", db];
        run_psql(&self.bin, &args, Some(password), sql)
    }

    /// Create database `name` (UTF-8, like every database of the cluster).
    pub fn createdb(&self, name: &str) {
        self.psql("postgres", &format!("CREATE DATABASE {}", ident(name)));
    }

    /// Fill `db` (created if missing) with the Masclet Imperi farm schema: `users`,
    /// `animals` (`animals` rows, non-ASCII names, parent links), `parts` (about one per
    /// animal), indexes, and the roles [`APP_ROLE`] and [`RO_ROLE`]. Same seed, same rows.
    pub fn load_masclet_imperi(&self, db: &str, animals: usize, seed: u64) {
        let exists = self.psql(
            "postgres",
            &format!("SELECT 1 FROM pg_database WHERE datname = {}", lit(db)),
        );
        if exists.is_empty() {
            self.createdb(db);
        }
        let sql = include_str!("pg_schema.sql")
            .replace("@N@", &animals.to_string())
            .replace("@SEED@", &(seed % 1_000_003).to_string())
            .replace("@APP_PW@", &lit(APP_PASSWORD))
            .replace("@RO_PW@", &lit(RO_PASSWORD));
        self.psql(db, &sql);
    }

    /// One night of farm work on a database made by [`Self::load_masclet_imperi`]: about
    /// 1% of animals and parts updated (with a new `updated_at`), a few parts added, a few
    /// parts and one animal (with its parts) deleted. Deterministic in `seed`.
    pub fn night(&self, db: &str, seed: u64) {
        let sql = include_str!("pg_night.sql").replace("@SEED@", &(seed % 1_000_003).to_string());
        self.psql(db, &sql);
    }

    fn initdb(&self) {
        // initdb wants the superuser's password in a file the server user can read.
        let pwfile = self.run.join("pwfile");
        std::fs::write(&pwfile, &self.password).unwrap();
        give(&pwfile, 0o600, self.as_postgres);
        let pwfile_arg = format!("--pwfile={}", path_str(&pwfile));
        // UTF8 whatever the caller's locale: the farm data is not ASCII.
        let opts = "-U postgres -E UTF8 --locale=C --auth-host=scram-sha-256 --auth-local=trust";
        let mut args = vec!["-D", path_str(&self.data), "--no-sync", &pwfile_arg];
        args.extend(opts.split(' '));
        let out = self.server_cmd("initdb", &args).output().unwrap();
        std::fs::remove_file(&pwfile).unwrap();
        assert!(
            out.status.success(),
            "initdb failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Durability is not under test: fsync off makes tests fast. UTC keeps output stable.
        let conf_path = self.data.join("postgresql.conf");
        let mut conf = std::fs::read_to_string(&conf_path).unwrap();
        conf += &format!(
            "\n# masclet test fixture\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = {}\nfsync = off\nsynchronous_commit = off\n\
             full_page_writes = off\ntimezone = 'UTC'\nlog_timezone = 'UTC'\n",
            lit(path_str(&self.run))
        );
        std::fs::write(&conf_path, conf).unwrap();
    }

    /// Run `pg_ctl` on this cluster; whether it succeeded.
    fn pg_ctl(&self, args: &[&str]) -> bool {
        let log = self.run.join("server.log");
        let mut all = vec!["-D", path_str(&self.data), "-l", path_str(&log)];
        all.extend_from_slice(args);
        let out = self.server_cmd("pg_ctl", &all).output().unwrap();
        out.status.success()
    }

    /// A command for a server-side binary, as `postgres` when we are root.
    fn server_cmd(&self, tool: &str, args: &[&str]) -> Command {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        // The server user may not be able to enter the caller's working directory.
        cmd.args(args)
            .current_dir(self._dir.path())
            .stdin(Stdio::null());
        cmd
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.run.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.port != 0 {
            self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
        }
    }
}

fn run_psql(
    bin: &Path,
    conn: &[&str],
    password: Option<&str>,
    sql: &str,
) -> Result<String, String> {
    let mut cmd = Command::new(bin.join("psql"));
    // -q: no command tags (INSERT 0 1) mixed into the results.
    cmd.args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-f", "-"]);
    // The password goes to this child only; no passfile or service may answer for it.
    cmd.args(conn)
        .env("PGPASSFILE", "/dev/null")
        .env_remove("PGSERVICE");
    cmd.env("PGCLIENTENCODING", "UTF8")
        .env("PGCONNECT_TIMEOUT", "20");
    match password {
        Some(pw) => cmd.env("PGPASSWORD", pw),
        None => cmd.env_remove("PGPASSWORD"),
    };
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let sent = child.stdin.take().unwrap().write_all(sql.as_bytes());
    sent.unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `PG_BIN`, else Debian's PostgreSQL 15, else `pg_config --bindir`, else `initdb` on PATH.
fn find_bin_dir() -> Option<PathBuf> {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(d) = std::env::var_os("PG_BIN") {
        let d = PathBuf::from(d);
        assert!(has(&d), "PG_BIN={} holds no initdb/pg_ctl", d.display());
        return Some(d);
    }
    let debian = PathBuf::from("/usr/lib/postgresql/15/bin");
    if has(&debian) {
        return Some(debian);
    }
    let pg_config = Command::new("pg_config").arg("--bindir").output();
    let bindir = pg_config.map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(d) = bindir.ok().filter(|d| has(d)) {
        return Some(d);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| has(d))
}

/// Whether this process runs as root: `/proc/self` belongs to the effective user.
fn is_root() -> bool {
    match std::fs::metadata("/proc/self") {
        Ok(m) => m.uid() == 0,
        Err(_) => Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0"),
    }
}

/// Set `path`'s mode, and hand it to `postgres` when the server runs as that user.
fn give(path: &Path, mode: u32, to_postgres: bool) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    if to_postgres {
        let id = |flag: &str| {
            let out = Command::new("id")
                .args([flag, "postgres"])
                .output()
                .unwrap();
            let id = String::from_utf8_lossy(&out.stdout).trim().parse();
            id.expect("as root, the server runs as a `postgres` user, and there is none")
        };
        std::os::unix::fs::chown(path, Some(id("-u")), Some(id("-g"))).unwrap();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// An SQL string literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// An SQL identifier.
fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}
