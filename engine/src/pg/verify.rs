//! `verify`: a test restore of a database snapshot into a temporary database, the checks
//! of [`super::validate`] on it, and the database dropped whatever happens. The result is
//! recorded in the index, so the last verified restore can be shown and a failed verify
//! can name the newest snapshot that restored well.
//!
//! The restore itself is [`super::scratch`]'s, shared with `restore --to-db`.

use super::conn::{Tools, connect, server_major};
use super::manifest::{GLOBALS_NAME, MANIFEST_NAME, Manifest, PG_SOURCE};
use super::scratch::{ScratchDb, admin_target, restore_into, scratch_name};
use super::target::Target;
use super::validate::{Check, TableCount, validate};
use crate::disk::id::SnapshotId;
use crate::disk::snapshot::Snapshot;
use crate::error::{Error, ErrorKind, Result};
use crate::ops::restore::dump;
use crate::progress::Progress;
use crate::repository::repo::Repo;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// What `verify` is asked to do.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The server of the snapshot's database (`--pg`, `DATABASE_URL`, `PG*`).
    pub target: Target,
    /// Another server to restore on instead (`--verify-url`, `VERIFY_DATABASE_URL`).
    pub verify_target: Option<Target>,
    /// Where psql is.
    pub tools: Tools,
    /// Apply the snapshot's roles file to the server first (roles are cluster-wide, so by
    /// default they are only checked).
    pub with_roles: bool,
}

/// What a test restore found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Every check passed.
    pub ok: bool,
    /// The snapshot restored.
    pub snapshot: SnapshotId,
    /// The database the snapshot holds.
    pub database: String,
    /// The database restored into (dropped again by `verify`).
    pub restored_into: String,
    /// Every check, in the order run.
    pub checks: Vec<Check>,
    /// Every table's rows, recorded and restored.
    pub tables: BTreeMap<String, TableCount>,
    /// Seconds the whole test restore took.
    pub duration_secs: f64,
    /// When it failed: the newest older snapshot of the same database whose last test
    /// restore passed.
    pub previous_good: Option<SnapshotId>,
    /// The snapshot's stored data is damaged (a chunk failed authentication or the dump's
    /// hash did not match): `ok` is false and the fault is the repository's, not the
    /// database's.
    pub damaged: bool,
    /// A problem met after the checks (the temporary database could not be dropped, the
    /// result could not be recorded); the checks' outcome stands.
    pub warnings: Vec<String>,
}

/// Load snapshot `id`, refusing one that is not a database snapshot.
///
/// # Errors
/// `InvalidInput` for a snapshot of files; `NotFound`, `Corrupt` from loading it.
pub fn load_pg_snapshot(repo: &Repo, id: SnapshotId) -> Result<Snapshot> {
    let snap = Snapshot::load(repo.storage(), repo.keys(), id)?;
    if snap.source != PG_SOURCE {
        return Err(Error::invalid(format!(
            "snapshot {} is not a database snapshot (its source is {:?}, not {PG_SOURCE:?}): only snapshots made by `masclet backup --pg` can be test-restored; list them with `masclet snapshots`",
            id.short(),
            snap.source
        )));
    }
    Ok(snap)
}

/// Read (and so authenticate) the snapshot's manifest and roles file.
///
/// # Errors
/// `Corrupt` for damage, `NotFound` when a file is missing.
pub fn read_meta(repo: &Repo, snap: &Snapshot) -> Result<(Manifest, Vec<u8>)> {
    let mut m = Vec::new();
    dump(repo, snap, MANIFEST_NAME.as_bytes(), &mut m)?;
    let manifest = Manifest::parse(&m)?;
    let mut globals = Vec::new();
    dump(repo, snap, manifest.globals.as_bytes(), &mut globals)?;
    Ok((manifest, globals))
}

/// Test-restore snapshot `snap_id` into a temporary database, check it against its
/// manifest, drop the database, and record the result in the index.
///
/// A snapshot that does not restore, or restores different data, gives a report with `ok`
/// false (and [`VerifyReport::previous_good`]), not an error.
///
/// # Errors
/// `InvalidInput` for a snapshot that is not a database snapshot, `Database` when the
/// server cannot be reached or the temporary database cannot be created, `Interrupted`
/// (the temporary database is dropped first).
pub fn verify(
    repo: &Repo,
    snap_id: SnapshotId,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    let started = Instant::now();
    let snap = load_pg_snapshot(repo, snap_id)?;
    let database = String::from_utf8_lossy(snap.paths.first().map_or(&[][..], |p| p)).into_owned();
    let mut checks = Vec::new();
    let mut tables = BTreeMap::new();
    let mut warnings = Vec::new();
    let mut restored_into = String::new();
    let mut damaged = false;
    match read_meta(repo, &snap) {
        Err(e) if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::NotFound) => {
            damaged = e.kind() == ErrorKind::Corrupt;
            checks.push(Check {
                name: "read_snapshot".into(),
                ok: false,
                detail: e.message().to_string(),
            });
        }
        Err(e) => return Err(e),
        Ok((manifest, globals)) => {
            checks.push(Check {
                name: "read_snapshot".into(),
                ok: true,
                detail: format!("{MANIFEST_NAME} and {GLOBALS_NAME} authenticated"),
            });
            let server = opts.verify_target.as_ref().unwrap_or(&opts.target);
            let name = scratch_name();
            let admin = admin_target(server, &[&name]);
            let mut c = connect(&admin)?;
            let major = server_major(&mut c, &admin)?;
            drop(c);
            opts.tools.check("psql", major)?;
            let scratch = ScratchDb::create(&admin, &name)?;
            if !scratch.stale_dropped.is_empty() {
                warnings.push(format!(
                    "dropped {} test-restore databases left by runs that were killed: {}",
                    scratch.stale_dropped.len(),
                    scratch.stale_dropped.join(", ")
                ));
            }
            restored_into = scratch.name().to_string();
            let db = server.with_database(&name);
            let restored = restore_into(
                repo,
                &snap,
                &manifest,
                &globals,
                &db,
                &opts.tools,
                opts.with_roles,
                progress,
            );
            match restored {
                Err(e) if e.kind() == ErrorKind::Interrupted => return Err(e),
                Err(e) => {
                    damaged = e.kind() == ErrorKind::Corrupt;
                    checks.push(Check {
                        name: "restore".into(),
                        ok: false,
                        detail: e.message().to_string(),
                    });
                    for t in &manifest.tables {
                        let count = TableCount {
                            expected: t.rows,
                            restored: None,
                        };
                        tables.insert(t.display(), count);
                    }
                }
                Ok(()) => {
                    checks.push(Check {
                        name: "restore".into(),
                        ok: true,
                        detail: format!("{} restored into {name} with psql", manifest.dump),
                    });
                    let mut c = connect(&db)?;
                    let v = validate(&mut c, &db, &manifest)?;
                    checks.extend(v.checks);
                    tables = v.tables;
                }
            }
            crate::check_interrupt()?;
            if let Err(e) = scratch.drop_now() {
                warnings.push(e.message().to_string());
            }
        }
    }
    let ok = checks.iter().all(|c| c.ok);
    let mut report = VerifyReport {
        ok,
        snapshot: snap_id,
        database,
        restored_into,
        checks,
        tables,
        duration_secs: started.elapsed().as_secs_f64(),
        previous_good: None,
        damaged,
        warnings,
    };
    record(repo, &mut report);
    if !ok {
        report.previous_good = previous_good(repo, &snap)?;
    }
    Ok(report)
}

/// Record `report` in the index; a failure to record is a warning (the checks ran).
pub(crate) fn record(repo: &Repo, report: &mut VerifyReport) {
    let json = serde_json::to_string(&*report).unwrap_or_default();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if let Err(e) = repo
        .index()
        .record_verification(&report.snapshot, &now, report.ok, &json)
    {
        report.warnings.push(format!(
            "the result could not be recorded in the index: {e}"
        ));
    }
}

/// The newest snapshot of the same database, older than `snap`, whose last recorded test
/// restore passed.
///
/// # Errors
/// `Storage` listing snapshots, index errors.
pub fn previous_good(repo: &Repo, snap: &Snapshot) -> Result<Option<SnapshotId>> {
    let (all, _) = repo.snapshots()?;
    for (id, s) in all.iter().rev() {
        if s.source != PG_SOURCE || s.paths != snap.paths || s.time >= snap.time {
            continue;
        }
        if repo.index().last_verification(id)?.is_some_and(|v| v.ok) {
            return Ok(Some(*id));
        }
    }
    Ok(None)
}
