//! `masclet cleanup`: temporary files, old logs, orphans, damaged exports.
//!
//! Settings come from the environment (where the configuration file's keys are put at
//! start): TMPDIR, LOG_DIR, BACKUP_ROOT, QUARANTINE_DIR. The repository is optional: with
//! none configured only the files are cleaned. With one, it is opened under the exclusive
//! lock with a short wait; held by a backup, the repository part is skipped with a warning
//! and the files are cleaned anyway.

use crate::args::{CleanupArgs, Cli};
use crate::output::{bytes, print_json};
use crate::password;
use anyhow::Result;
use masclet_engine as engine;
use masclet_engine::job::cleanup::{
    self, Action, CleanupOptions, CleanupPlan, CleanupSummary, Item,
};
use masclet_engine::{ErrorKind, LocalStorage, LockMode, NoProgress, OpenOptions, Repo};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Longest wait for the repository lock: a backup holding it may run for hours, and the
/// files need not wait for it.
const LOCK_WAIT: u64 = 10;

fn env_path(key: &str) -> Option<PathBuf> {
    std::env::var_os(key)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

pub fn cleanup(cli: &Cli, a: &CleanupArgs) -> Result<u8> {
    let mut opts = CleanupOptions::new(env_path("BACKUP_ROOT"));
    opts.log_dir = Some(env_path("LOG_DIR").unwrap_or_else(|| PathBuf::from("/logs")));
    opts.log_age_days = a.age;
    if let Some(q) = env_path("QUARANTINE_DIR") {
        opts.quarantine = q;
    }
    if let Some(t) = &a.temp_dir {
        opts.temp_dir = t.clone();
    }
    let mut warnings = Vec::new();
    let (repo, not_opened) = match open(cli, &mut warnings) {
        Ok(repo) => (repo, None),
        Err(e) => (None, Some(e)),
    };
    let mut plan = cleanup::plan(repo.as_ref(), &opts, &NoProgress)?;
    plan.warnings.splice(0..0, warnings);
    if let Some(e) = not_opened {
        // Said once, as the error it is, rather than again as "no repository".
        plan.warnings.retain(|w| !w.starts_with("no repository"));
        plan.errors.insert(0, e);
    }
    let summary = if a.dry_run {
        None
    } else {
        Some(cleanup::execute(repo.as_ref(), &plan, &opts)?)
    };
    let failed = match &summary {
        Some(s) => !s.ok(),
        None => !plan.errors.is_empty(),
    };
    if cli.global.json {
        print_json(&json!({ "dry_run": a.dry_run, "plan": plan, "summary": summary }));
    } else {
        match &summary {
            Some(s) => print_done(&plan, s),
            None => print_plan(&plan),
        }
    }
    Ok(u8::from(failed))
}

/// The repository, if one is configured and its exclusive lock can be had soon. One
/// that cannot be opened is an error of the run, but the files are still cleaned.
fn open(cli: &Cli, warnings: &mut Vec<String>) -> Result<Option<Repo>, (PathBuf, String)> {
    let path = match cli.global.repo.clone() {
        Some(p) => p,
        // BACKUP_ROOT alone names the exports' folder; a store is only used if there.
        None => match crate::config::default_repo() {
            Some(p) if p.exists() => p,
            _ => return Ok(None),
        },
    };
    let failed = |e: String| {
        (
            path.clone(),
            format!("repository not opened, orphaned exports and packs not looked for: {e}"),
        )
    };
    let storage = LocalStorage::open(&path).map_err(|e| failed(e.to_string()))?;
    let index = storage.index_path();
    let pw = password::read(false).map_err(|e| failed(e.to_string()))?;
    let opts = OpenOptions::new("cleanup", Some(LockMode::Exclusive))
        .lock_wait(Duration::from_secs(cli.global.lock_wait.min(LOCK_WAIT)));
    match Repo::open(Arc::new(storage), &index, &pw, &opts) {
        Ok(mut repo) => {
            for w in repo.take_warnings() {
                eprintln!("masclet: warning: {w}");
            }
            Ok(Some(repo))
        }
        Err(e) if e.kind() == ErrorKind::Locked => {
            warnings.push(format!(
                "repository part skipped (orphaned exports and packs): {e}; run cleanup again once it is free"
            ));
            Ok(None)
        }
        Err(e) => Err(failed(e.to_string())),
    }
}

fn verb(a: Action, dry: bool) -> &'static str {
    match (a, dry) {
        (Action::Delete, false) => "removed",
        (Action::Gzip, false) => "compressed",
        (Action::Quarantine, false) => "quarantined",
        (Action::Delete, true) => "would remove",
        (Action::Gzip, true) => "would compress",
        (Action::Quarantine, true) => "would quarantine",
    }
}

fn line(item: &Item, dry: bool) -> String {
    format!(
        "{} {} ({}, {})",
        verb(item.action, dry),
        item.path.display(),
        bytes(item.bytes),
        item.reason
    )
}

fn print_notes(plan: &CleanupPlan, warnings: &[String]) {
    for (p, why) in &plan.left_alone {
        println!("left alone {}: {why}", p.display());
    }
    for w in warnings {
        eprintln!("masclet: warning: {w}");
    }
}

fn print_plan(plan: &CleanupPlan) {
    for item in &plan.items {
        println!("{}", line(item, true));
    }
    print_notes(plan, &plan.warnings);
    for (p, e) in &plan.errors {
        eprintln!("masclet: error: {}: {e}", p.display());
    }
    println!(
        "dry run: {} items, up to {} bytes ({}) to free; nothing changed",
        plan.items.len(),
        plan.bytes(),
        bytes(plan.bytes())
    );
}

fn print_done(plan: &CleanupPlan, s: &CleanupSummary) {
    for d in &s.done {
        match (d.item.action, &d.to) {
            (Action::Gzip, Some(to)) => println!(
                "compressed {} ({} -> {}) into {}",
                d.item.path.display(),
                bytes(d.item.bytes),
                bytes(d.bytes_after),
                to.display()
            ),
            (Action::Quarantine, Some(to)) => println!(
                "quarantined {} -> {} ({})",
                d.item.path.display(),
                to.display(),
                d.item.reason
            ),
            _ => println!("{}", line(&d.item, false)),
        }
    }
    for (p, why) in &s.skipped {
        println!("skipped {}: {why}", p.display());
    }
    for (dir, latest) in &s.latest {
        match latest {
            Some(l) => println!("{}/{} -> {l}", dir.display(), engine::archive::LATEST),
            None => println!(
                "{}/{} removed (no export left)",
                dir.display(),
                engine::archive::LATEST
            ),
        }
    }
    print_notes(plan, &s.warnings);
    for (p, e) in &s.failed {
        eprintln!("masclet: error: {}: {e}", p.display());
    }
    for t in &s.totals {
        let name = serde_json::to_value(t.category).unwrap_or_default();
        println!(
            "{}: {} done, {} freed",
            name.as_str().unwrap_or("other"),
            t.count,
            bytes(t.freed)
        );
    }
    println!("freed {} bytes ({})", s.freed, bytes(s.freed));
    if !s.ok() {
        eprintln!(
            "masclet: {} items failed (above); the rest was done",
            s.failed.len()
        );
    }
}

/// The nightly job's remedy for a full disk: temporary files older than 24 h and logs
/// older than a day compressed (the one being written is younger), without the repository
/// (the job runs retention and gc itself) or the exports. Returns bytes freed and what
/// was done.
pub fn for_space() -> engine::Result<(u64, String)> {
    let mut opts = CleanupOptions::new(None);
    opts.log_dir = Some(env_path("LOG_DIR").unwrap_or_else(|| PathBuf::from("/logs")));
    opts.log_age_days = 1;
    let plan = cleanup::plan(None, &opts, &NoProgress)?;
    let s = cleanup::execute(None, &plan, &opts)?;
    let what = format!(
        "cleanup removed or compressed {} temporary files and logs{}",
        s.done.len(),
        if s.failed.is_empty() {
            String::new()
        } else {
            format!(" ({} failed)", s.failed.len())
        }
    );
    Ok((s.freed, what))
}
