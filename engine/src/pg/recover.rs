//! The recovery steps after a test restore proved a snapshot good: `restore --to-db`
//! (a new database that stays), `promote` (swap it in by renames, the old database kept
//! for rollback), and `db maintain` (VACUUM ANALYZE, REINDEX) for after the swap.

use super::conn::{Tools, connect, query_error, server_major};
use super::manifest::quote_ident;
use super::scratch::{ScratchDb, admin_target, drop_database, restore_into};
use super::target::Target;
use super::validate::{Check, validate};
use super::verify::{VerifyReport, load_pg_snapshot, previous_good, read_meta, record};
use crate::disk::id::SnapshotId;
use crate::error::{Error, ErrorKind, Result};
use crate::progress::Progress;
use crate::repository::repo::Repo;
use std::time::{Duration, Instant};

/// PostgreSQL truncates longer names silently; a truncated name would not be the one
/// printed for rollback.
const MAX_NAME: usize = 63;
/// `_pre_restore_YYYYMMDDHHMMSS`.
const PRE_RESTORE_LEN: usize = "_pre_restore_".len() + 14;

/// What `restore --to-db` is asked to do.
#[derive(Debug, Clone)]
pub struct RestoreDbOptions {
    /// The server (its database is only used to connect; see [`admin_target`]).
    pub target: Target,
    /// Where psql is.
    pub tools: Tools,
    /// The new database's name.
    pub name: String,
    /// Drop and recreate it if it exists.
    pub force: bool,
    /// Apply the snapshot's roles file to the server first.
    pub with_roles: bool,
}

fn check_name(name: &str, extra: usize) -> Result<()> {
    if name.is_empty() || name.len() + extra > MAX_NAME || name.contains('\0') {
        return Err(Error::invalid(format!(
            "database name {name:?} must be 1 to {} bytes long (PostgreSQL's limit is {MAX_NAME}{})",
            MAX_NAME - extra,
            if extra > 0 {
                ", and the old database's name gets _pre_restore_<time> added"
            } else {
                ""
            }
        )));
    }
    Ok(())
}

fn database_exists(c: &mut postgres::Client, t: &Target, name: &str) -> Result<bool> {
    let row = c
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .map_err(|e| query_error(t, "listing the databases", &e))?;
    Ok(row.get::<_, i64>(0) > 0)
}

/// Restore snapshot `snap_id` into a new database `opts.name` and check it like `verify`;
/// the database stays (also when a check fails: the report says which). A restore that
/// fails drops the half-made database.
///
/// # Errors
/// `InvalidInput` (not a database snapshot; the database exists and `force` is off; a bad
/// name), `Database`, `Corrupt` (damaged data), `VerifyFailed` (psql failed),
/// `Interrupted`.
pub fn restore_to_db(
    repo: &Repo,
    snap_id: SnapshotId,
    opts: &RestoreDbOptions,
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    let started = Instant::now();
    check_name(&opts.name, 0)?;
    let snap = load_pg_snapshot(repo, snap_id)?;
    let (manifest, globals) = read_meta(repo, &snap)?;
    let admin = admin_target(&opts.target, &[&opts.name]);
    let mut c = connect(&admin)?;
    let major = server_major(&mut c, &admin)?;
    opts.tools.check("psql", major)?;
    if database_exists(&mut c, &admin, &opts.name)? {
        if !opts.force {
            return Err(Error::invalid(format!(
                "database {} already exists on {}: choose another name, or pass --force to drop it and restore in its place",
                opts.name,
                admin.display()
            )));
        }
        progress.warn(&format!(
            "--force: dropping the existing database {}",
            opts.name
        ));
        drop_database(&admin, &opts.name)?;
    }
    drop(c);
    let scratch = ScratchDb::create(&admin, &opts.name)?;
    let db = opts.target.with_database(&opts.name);
    restore_into(
        repo,
        &snap,
        &manifest,
        &globals,
        &db,
        &opts.tools,
        opts.with_roles,
        progress,
    )?;
    let mut c = connect(&db)?;
    let v = validate(&mut c, &db, &manifest)?;
    drop(c);
    scratch.keep();
    let mut checks = vec![Check {
        name: "restore".into(),
        ok: true,
        detail: format!("{} restored into {} with psql", manifest.dump, opts.name),
    }];
    checks.extend(v.checks);
    let ok = checks.iter().all(|c| c.ok);
    let mut report = VerifyReport {
        ok,
        snapshot: snap_id,
        database: manifest.database.clone(),
        restored_into: opts.name.clone(),
        checks,
        tables: v.tables,
        duration_secs: started.elapsed().as_secs_f64(),
        previous_good: None,
        damaged: false,
        warnings: Vec::new(),
    };
    record(repo, &mut report);
    if !ok {
        report.previous_good = previous_good(repo, &snap)?;
    }
    Ok(report)
}

/// What `promote` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Promotion {
    /// The database that now has the production name.
    pub promoted: String,
    /// The production name.
    pub database: String,
    /// Where the previous production database went.
    pub previous: String,
    /// SQL that undoes the promotion (run on another database of the server).
    pub rollback: Vec<String>,
}

/// Swap database `name` in as `to`: other sessions on both are ended, `to` is renamed to
/// `<to>_pre_restore_<YYYYMMDDHHMMSS>` and `name` to `to`; when the second rename fails the
/// first is undone. The old database stays for rollback.
///
/// # Errors
/// `InvalidInput` (a missing database, a name too long), `Database` (a rename failed; the
/// message says in which state the databases are).
pub fn promote(target: &Target, name: &str, to: &str) -> Result<Promotion> {
    check_name(to, PRE_RESTORE_LEN)?;
    check_name(name, 0)?;
    if name == to {
        return Err(Error::invalid(
            "promote: the two database names are the same",
        ));
    }
    let admin = admin_target(target, &[name, to]);
    let mut c = connect(&admin)?;
    for db in [name, to] {
        if !database_exists(&mut c, &admin, db)? {
            return Err(Error::invalid(format!(
                "there is no database {db} on {}",
                admin.display()
            )));
        }
    }
    let previous = format!(
        "{to}_pre_restore_{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S")
    );
    rename(&mut c, &admin, &[name, to], to, &previous)?;
    if let Err(e) = rename(&mut c, &admin, &[name], name, to) {
        return match rename(&mut c, &admin, &[previous.as_str()], &previous, to) {
            Ok(()) => Err(Error::new(
                ErrorKind::Database,
                format!(
                    "promote failed and was undone: {to} is unchanged, {name} kept its name ({})",
                    e.message()
                ),
            )),
            Err(back) => Err(Error::new(
                ErrorKind::Database,
                format!(
                    "promote failed half-way: the production database is now named {previous} and {name} kept its name; rename it back with ALTER DATABASE {} RENAME TO {} ({}; then: {})",
                    quote_ident(&previous),
                    quote_ident(to),
                    e.message(),
                    back.message()
                ),
            )),
        };
    }
    Ok(Promotion {
        promoted: name.to_string(),
        database: to.to_string(),
        rollback: vec![
            format!(
                "ALTER DATABASE {} RENAME TO {};",
                quote_ident(to),
                quote_ident(name)
            ),
            format!(
                "ALTER DATABASE {} RENAME TO {};",
                quote_ident(&previous),
                quote_ident(to)
            ),
        ],
        previous,
    })
}

/// End other sessions on `dbs` and rename `from` to `to`. A session can connect between
/// the two steps (an application reconnecting), so it is tried a few times.
fn rename(
    c: &mut postgres::Client,
    admin: &Target,
    dbs: &[&str],
    from: &str,
    to: &str,
) -> Result<()> {
    let names: Vec<String> = dbs.iter().map(|s| (*s).to_string()).collect();
    let sql = format!(
        "ALTER DATABASE {} RENAME TO {}",
        quote_ident(from),
        quote_ident(to)
    );
    let mut last = None;
    for attempt in 0..5u32 {
        c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = ANY($1) AND pid <> pg_backend_pid()",
            &[&names],
        )
        .map_err(|e| query_error(admin, "ending other sessions", &e))?;
        match c.batch_execute(&sql) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(200 * u64::from(attempt + 1)));
    }
    let e = last.expect("tried at least once");
    Err(query_error(admin, &format!("renaming {from} to {to}"), &e))
}

/// What `db maintain` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MaintainSummary {
    /// The database.
    pub database: String,
    /// Whether VACUUM FULL ran.
    pub full: bool,
    /// Seconds VACUUM took.
    pub vacuum_secs: f64,
    /// Seconds REINDEX took.
    pub reindex_secs: f64,
}

/// `VACUUM ANALYZE` (`VACUUM FULL ANALYZE` with `full`: it rewrites every table under an
/// exclusive lock), then `REINDEX DATABASE` on the target's database.
///
/// # Errors
/// `Database` when a statement fails.
pub fn maintain(target: &Target, full: bool) -> Result<MaintainSummary> {
    let mut c = connect(target)?;
    let db = target.database();
    let t = Instant::now();
    let vacuum = if full {
        "VACUUM FULL ANALYZE"
    } else {
        "VACUUM ANALYZE"
    };
    c.batch_execute(vacuum)
        .map_err(|e| query_error(target, vacuum, &e))?;
    let vacuum_secs = t.elapsed().as_secs_f64();
    crate::check_interrupt()?;
    let t = Instant::now();
    c.batch_execute(&format!("REINDEX DATABASE {}", quote_ident(&db)))
        .map_err(|e| query_error(target, "REINDEX DATABASE", &e))?;
    Ok(MaintainSummary {
        database: db,
        full,
        vacuum_secs,
        reindex_secs: t.elapsed().as_secs_f64(),
    })
}
