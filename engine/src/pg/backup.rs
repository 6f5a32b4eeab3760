//! `backup --pg`: the original system's pre-backup checks, then one consistent database
//! snapshot: a REPEATABLE READ transaction is held open and its snapshot exported; the
//! manifest's figures are read in it and the dump reads it, so the figures describe exactly
//! the data dumped. The snapshot's files are the dump (`<database>.sql`), the roles file
//! ([`GLOBALS_NAME`]) and the manifest ([`MANIFEST_NAME`]).

use super::conn::{Tools, connect, query_error, server_major};
use super::dump::{DumpJob, has_large_objects};
use super::manifest::{
    self, DumpShape, GLOBALS_NAME, MANIFEST_NAME, MANIFEST_VERSION, Manifest, PG_SOURCE,
};
use super::target::Target;
use crate::error::{Error, ErrorKind, Result};
use crate::ops::backup::{BackupOptions, BackupSummary, Source, StreamContent, StreamEntry};
use crate::progress::Progress;
use crate::repository::repo::Repo;
use std::path::{Path, PathBuf};

/// Free space the repository's disk must have before a backup starts, unless told
/// otherwise: a dump that fills the disk half-way fails anyway, after minutes of work.
/// The original spec's "Mínimo requerido: 5GB".
pub const DEFAULT_MIN_FREE: u64 = 5 << 30;

/// What `backup --pg` is asked to do.
#[derive(Debug, Clone)]
pub struct PgBackupOptions {
    /// The database.
    pub target: Target,
    /// Where pg_dump and pg_dumpall are.
    pub tools: Tools,
    /// The dump's shape.
    pub shape: DumpShape,
    /// The repository's directory, for the space and permission checks (`None` for
    /// storage that is not a local directory).
    pub repo_dir: Option<PathBuf>,
    /// Free bytes the repository's disk must have ([`DEFAULT_MIN_FREE`]).
    pub min_free: u64,
    /// The backup's own options (tags, time, minimum size).
    pub backup: BackupOptions,
}

/// What `backup --pg` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PgBackupSummary {
    /// The snapshot written.
    #[serde(flatten)]
    pub backup: BackupSummary,
    /// The figures recorded with it.
    pub manifest: Manifest,
}

/// Check that the repository's disk has `min_free` bytes free and that the repository
/// directory takes a new file.
///
/// # Errors
/// `Precheck` saying which check failed and what to do.
pub fn prechecks(repo_dir: &Path, min_free: u64) -> Result<()> {
    let st = rustix::fs::statvfs(repo_dir).map_err(|e| {
        Error::new(
            ErrorKind::Precheck,
            format!("cannot read the free space of {}: {e}", repo_dir.display()),
        )
    })?;
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    if free < min_free {
        return Err(Error::new(
            ErrorKind::Precheck,
            format!(
                "only {} free on the repository's disk ({}), below the {} a backup needs (--min-free): free space (`masclet gc` reclaims what forgotten snapshots held) and rerun",
                human(free),
                repo_dir.display(),
                human(min_free)
            ),
        ));
    }
    let probe = repo_dir.join(format!(".masclet-precheck-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            Error::new(
                ErrorKind::Precheck,
                format!(
                    "cannot write in the repository {} ({e}): run as the repository's owner or fix its permissions",
                    repo_dir.display()
                ),
            )
        })
}

fn human(b: u64) -> String {
    format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30))
}

/// Back up the database `opts.target` into `repo` as one consistent snapshot.
///
/// # Errors
/// `Precheck` (space, permission), `Database` (unreachable after the retries, a failed
/// query), `InvalidInput` (client programs missing or older than the server), `Io` when
/// pg_dump or pg_dumpall fails (nothing is committed; the message has their exit status and
/// the end of their standard error, without the password), and whatever the backup itself
/// may return.
pub fn backup_pg(
    repo: &mut Repo,
    opts: &PgBackupOptions,
    progress: &dyn Progress,
) -> Result<PgBackupSummary> {
    repo.ensure_writable()?;
    if let Some(dir) = &opts.repo_dir {
        prechecks(dir, opts.min_free)?;
    }
    let target = &opts.target;
    let mut client = connect(target)?;
    let major = server_major(&mut client, target)?;
    opts.tools.check("pg_dump", major)?;
    opts.tools.check("pg_dumpall", major)?;
    let mut shape = opts.shape;
    if shape == DumpShape::Keyed && has_large_objects(&mut client, target)? {
        progress.warn("the database holds large objects, which only pg_dump's own shape carries: this backup uses --dump-shape pg-dump");
        shape = DumpShape::PgDump;
    }
    manifest::utc(&mut client, target)?;
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(|e| query_error(target, "starting the backup's transaction", &e))?;
    let row = tx
        .query_one(
            "SELECT pg_export_snapshot(), \
             to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
             current_setting('server_version'), \
             (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
            &[],
        )
        .map_err(|e| query_error(target, "exporting the transaction's snapshot", &e))?;
    let (snapshot, taken_at, server_version, superuser): (String, String, String, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let (tables, roles, grants) = manifest::figures(&mut tx, target)?;
    let database = target.database();
    let dump_name = format!("{database}.sql");
    if dump_name.contains('/') || dump_name == GLOBALS_NAME || dump_name == MANIFEST_NAME {
        return Err(Error::invalid(format!(
            "the database name {database:?} cannot name a file in the snapshot"
        )));
    }
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        database: database.clone(),
        server_version,
        taken_at,
        shape,
        dump: dump_name.clone(),
        globals: GLOBALS_NAME.to_string(),
        tables,
        roles,
        grants,
    };
    let dump = DumpJob {
        target: target.clone(),
        pg_dump: opts.tools.path("pg_dump"),
        snapshot,
        shape,
    };
    let mut globals = opts.tools.command("pg_dumpall", target)?;
    globals.args(["-w", "--globals-only", "--database", &database]);
    if !superuser {
        // Only a superuser may read the password hashes; the roles are still recreated.
        progress.warn("not connected as a superuser: the roles file is dumped without passwords (--no-role-passwords); set them again after a restore on a new server");
        globals.arg("--no-role-passwords");
    }
    let entries = vec![
        StreamEntry {
            name: dump_name.into_bytes(),
            content: dump.content()?,
        },
        StreamEntry {
            name: GLOBALS_NAME.as_bytes().to_vec(),
            content: StreamContent::Command(globals),
        },
        StreamEntry {
            name: MANIFEST_NAME.as_bytes().to_vec(),
            content: StreamContent::Bytes(manifest.to_bytes()),
        },
    ];
    let source = Source::Streams {
        source: PG_SOURCE.to_string(),
        paths: vec![database.into_bytes()],
        entries,
    };
    let summary = crate::ops::backup::backup(repo, source, &opts.backup, progress)
        .map_err(|e| Error::new(e.kind(), target.redact(e.message())))?;
    // The exported snapshot had to stay valid until the dump finished; now it may go.
    let _ = tx.commit();
    Ok(PgBackupSummary {
        backup: summary,
        manifest,
    })
}
