//! The database commands: `verify`, `restore --to-db`, `promote`, `db maintain`. Arguments
//! become engine options here and reports become text or JSON; the work is in
//! `masclet_engine::pg`.

use crate::args::{Cli, MaintainArgs, PgConnArgs, PromoteArgs, RestoreArgs, VerifyArgs};
use crate::commands::open;
use crate::exit;
use crate::output::{escape, print_json};
use crate::progress::Bars;
use anyhow::Result;
use masclet_engine::pg::{self, Check, Target, Tools, VerifyReport};
use masclet_engine::{LockMode, Repo};
use serde_json::json;

/// The server from `--pg`, DATABASE_URL or the PG* variables; a password on the command
/// line gets a warning (every user of the machine can read argv).
/// Checks as `--json` gives them: name, ok, detail.
pub(crate) fn checks_json(checks: &[Check]) -> Vec<serde_json::Value> {
    checks
        .iter()
        .map(|c| json!({"name": c.name, "ok": c.ok, "detail": c.detail}))
        .collect()
}

/// One line a check, its name padded to `width`; details may quote restored data or an
/// archive's names, so they are escaped for the terminal.
pub(crate) fn print_checks(checks: &[Check], width: usize) {
    for c in checks {
        let mark = if c.ok { "ok  " } else { "FAIL" };
        println!("{mark} {:<width$} {}", c.name, escape(&c.detail));
    }
}

/// The names of the checks that failed.
pub(crate) fn failed_names(checks: &[Check]) -> Vec<&str> {
    checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name.as_str())
        .collect()
}

fn target(c: &PgConnArgs) -> Result<Target> {
    if let Some(url) = &c.pg
        && pg::target::url_has_password(url)
    {
        eprintln!(
            "masclet: warning: the --pg URL holds a password, which other users can see in the process list; put it in PGPASSWORD or a pgpass file"
        );
    }
    Ok(Target::resolve(c.pg.as_deref())?)
}

/// Open with a shared lock, writing the index (the result is recorded there).
fn open_for(cli: &Cli, op: &str) -> Result<Repo> {
    open(cli, op, Some(LockMode::Shared))
}

pub fn verify(cli: &Cli, a: &VerifyArgs, bars: &Bars) -> Result<u8> {
    let repo = open_for(cli, "verify")?;
    let (id, _) = repo.resolve(&a.snapshot)?;
    let opts = pg::VerifyOptions {
        target: target(&a.conn)?,
        verify_target: a
            .verify_url
            .as_deref()
            .map(|u| Target::resolve(Some(u)))
            .transpose()?,
        tools: Tools::find(a.conn.pg_bin.as_deref()),
        with_roles: a.with_roles,
    };
    let report = pg::verify(&repo, id, &opts, bars)?;
    Ok(render(cli, &report, "verify"))
}

pub fn restore_db(cli: &Cli, a: &RestoreArgs, bars: &Bars) -> Result<u8> {
    let repo = open_for(cli, "restore")?;
    let (id, _) = repo.resolve(&a.snapshot)?;
    let opts = pg::RestoreDbOptions {
        target: Target::resolve(None)?,
        tools: Tools::find(a.pg_bin.as_deref()),
        name: a.to_db.clone().unwrap_or_default(),
        force: a.force,
        with_roles: a.with_roles,
    };
    let report = pg::restore_to_db(&repo, id, &opts, bars)?;
    let code = render(cli, &report, "restore");
    if !cli.global.json && report.ok {
        println!(
            "database {} is ready; swap it in with: masclet promote {} --to {}",
            report.restored_into, report.restored_into, report.database
        );
    }
    Ok(code)
}

/// Print the report (text, or exactly the documented JSON) and choose the exit code.
pub fn render(cli: &Cli, r: &VerifyReport, what: &str) -> u8 {
    for w in &r.warnings {
        eprintln!("masclet: warning: {w}");
    }
    if cli.global.json {
        let tables: serde_json::Map<String, serde_json::Value> = r
            .tables
            .iter()
            .map(|(k, t)| {
                (
                    k.clone(),
                    json!({ "expected": t.expected, "restored": t.restored }),
                )
            })
            .collect();
        print_json(&json!({
            "ok": r.ok,
            "snapshot": r.snapshot,
            "checks": checks_json(&r.checks),
            "tables": tables,
            "duration_secs": r.duration_secs,
        }));
    } else {
        print_checks(&r.checks, 40);
        println!(
            "{what} of snapshot {} ({}) into {}: {} checks in {:.1} s",
            r.snapshot.short(),
            r.database,
            r.restored_into,
            r.checks.len(),
            r.duration_secs
        );
    }
    if r.ok {
        if !cli.global.json {
            println!("PASSED: the snapshot restores to what was recorded");
        }
        return 0;
    }
    let failed = failed_names(&r.checks);
    eprintln!(
        "masclet: VERIFY FAILED: snapshot {} of {} does not restore to what was recorded ({} failed: {})",
        r.snapshot.short(),
        r.database,
        failed.len(),
        failed.join(", ")
    );
    match r.previous_good {
        Some(id) => eprintln!(
            "masclet: the newest older snapshot of {} that passed a test restore is {id}: restore that one (masclet restore {} --to-db NAME)",
            r.database,
            id.short()
        ),
        None => eprintln!(
            "masclet: no older snapshot of {} has passed a test restore yet (run `masclet verify ID` on older ones)",
            r.database
        ),
    }
    if r.damaged {
        eprintln!(
            "masclet: the snapshot's stored data is damaged: run `masclet check --read-data` to see what else it hurts"
        );
        return exit::DAMAGED;
    }
    exit::VERIFY_FAILED
}

pub fn promote(cli: &Cli, a: &PromoteArgs) -> Result<u8> {
    let p = pg::promote(&target(&a.conn)?, &a.name, &a.to)?;
    if cli.global.json {
        print_json(&serde_json::to_value(&p)?);
    } else {
        println!("promoted: {} is now {}", p.promoted, p.database);
        println!("the previous {} is kept as {}", p.database, p.previous);
        println!("to roll back, run on another database of the server (e.g. psql -d postgres):");
        for sql in &p.rollback {
            println!("  {sql}");
        }
        println!(
            "once the new database has proved itself: DROP DATABASE \"{}\";",
            p.previous
        );
    }
    Ok(0)
}

pub fn maintain(cli: &Cli, a: &MaintainArgs) -> Result<u8> {
    if a.full {
        eprintln!(
            "masclet: warning: VACUUM FULL takes an exclusive lock on every table while it rewrites it: the application waits until it is done"
        );
    }
    let s = pg::maintain(&target(&a.conn)?, a.full)?;
    if cli.global.json {
        print_json(&serde_json::to_value(&s)?);
    } else {
        println!(
            "{}: {} in {:.1} s, REINDEX DATABASE in {:.1} s",
            s.database,
            if s.full {
                "VACUUM FULL ANALYZE"
            } else {
                "VACUUM ANALYZE"
            },
            s.vacuum_secs,
            s.reindex_secs
        );
    }
    Ok(0)
}
