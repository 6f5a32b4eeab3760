//! `forget` and `gc`: retention and space reclamation.

use crate::args::{Cli, ForgetArgs, GcArgs};
use crate::commands::open;
use crate::output::{bytes, local_time, print_json};
use crate::progress::Bars;
use anyhow::{Result, bail};
use masclet_engine as engine;
use masclet_engine::{GcOptions, KeepPolicy, LockMode, Repo};
use serde_json::json;

pub fn forget(cli: &Cli, a: &ForgetArgs, bars: &Bars) -> Result<u8> {
    if !a.snapshots.is_empty() {
        return forget_named(cli, a, bars);
    }
    let policy = KeepPolicy {
        last: a.keep_last,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
        tags: a.keep_tags.clone(),
    };
    if policy.is_empty() {
        bail!("every --keep-* rule is 0: that would forget every snapshot; give at least one rule");
    }
    let mode = if a.dry_run {
        LockMode::Shared
    } else {
        LockMode::Exclusive
    };
    let mut repo = open(cli, "forget", Some(mode))?;
    let (refs, unreadable) = engine::snapshot_refs(&repo)?;
    for (id, e) in &unreadable {
        eprintln!(
            "masclet: warning: snapshot {} cannot be read and is left alone: {e}",
            id.short()
        );
    }
    let plan = engine::ops::retention::plan(&refs, &policy, &chrono::Local);
    let summary = if a.dry_run {
        None
    } else {
        Some(engine::forget(&repo, &plan)?)
    };
    let gc = match (a.prune, a.dry_run) {
        (true, false) => Some(run_gc(&mut repo, &GcOptions::default(), false, bars)?),
        _ => None,
    };
    if cli.global.json {
        print_json(
            &json!({ "dry_run": a.dry_run, "policy": policy, "plan": plan, "summary": summary, "gc": gc }),
        );
        return Ok(0);
    }
    let times: std::collections::HashMap<_, _> = refs.iter().map(|r| (r.id, r.time)).collect();
    let verb = |keep: bool| match (keep, a.dry_run) {
        (true, _) => "keep  ",
        (false, true) => "would forget",
        (false, false) => "forget",
    };
    for d in &plan.decisions {
        println!(
            "{} {}  {}  [{}]  {}",
            verb(d.keep),
            d.id.short(),
            local_time(&times[&d.id]),
            if d.keep {
                d.tags_after.join(",")
            } else {
                d.tags_before.join(",")
            },
            d.reasons.join("; ")
        );
    }
    let (kept, removed) = (plan.kept().count(), plan.removed().count());
    match summary {
        Some(s) => println!(
            "{kept} snapshots kept ({} retagged), {removed} forgotten",
            s.retagged
        ),
        None => println!(
            "dry run: {kept} snapshots would be kept, {removed} forgotten; nothing changed"
        ),
    }
    if let Some(g) = gc {
        print_gc(&g);
    } else if !a.dry_run && removed > 0 {
        println!("run `masclet gc` to reclaim their space");
    }
    Ok(0)
}

/// `forget ID...`: exactly the named snapshots, found by name so that one no reader
/// accepts can be removed too.
fn forget_named(cli: &Cli, a: &ForgetArgs, bars: &Bars) -> Result<u8> {
    let mode = if a.dry_run {
        LockMode::Shared
    } else {
        LockMode::Exclusive
    };
    let mut repo = open(cli, "forget", Some(mode))?;
    let mut ids = Vec::new();
    for spec in &a.snapshots {
        let id = repo.resolve_id(spec)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let removed = if a.dry_run {
        0
    } else {
        engine::forget_ids(&repo, &ids)?
    };
    let gc = match (a.prune, a.dry_run) {
        (true, false) => Some(run_gc(&mut repo, &GcOptions::default(), false, bars)?),
        _ => None,
    };
    if cli.global.json {
        print_json(&json!({ "dry_run": a.dry_run, "forget": ids, "removed": removed, "gc": gc }));
        return Ok(0);
    }
    for id in &ids {
        let verb = if a.dry_run { "would forget" } else { "forget" };
        println!("{verb} {}", id.short());
    }
    if let Some(g) = gc {
        print_gc(&g);
    } else if !a.dry_run {
        println!("run `masclet gc` to reclaim their space");
    }
    Ok(0)
}

#[derive(serde::Serialize)]
struct GcReport {
    plan: engine::GcPlan,
    summary: Option<engine::GcSummary>,
}

fn run_gc(repo: &mut Repo, opts: &GcOptions, dry_run: bool, bars: &Bars) -> Result<GcReport> {
    let plan = engine::ops::gc::plan(repo, opts, bars)?;
    let summary = if dry_run {
        None
    } else {
        Some(engine::ops::gc::execute(repo, &plan, bars)?)
    };
    Ok(GcReport { plan, summary })
}

fn print_gc(r: &GcReport) {
    let p = &r.plan;
    match &r.summary {
        Some(s) => println!(
            "gc: {} snapshots, {} live chunks; deleted {} packs, repacked {} into {} new; dropped {} dead chunks; removed {} temporary files of interrupted writes; freed {}",
            p.snapshots,
            p.live_chunks,
            s.packs_deleted,
            s.packs_repacked,
            s.packs_written,
            s.chunks_dropped,
            s.leftovers_removed,
            bytes(s.bytes_freed)
        ),
        None => println!(
            "gc dry run: {} snapshots, {} live chunks; would delete {} packs and {} orphans, repack {} (copying {}), keep {}; would free up to {}",
            p.snapshots,
            p.live_chunks,
            p.delete.len(),
            p.orphans.len(),
            p.repack.len(),
            bytes(p.bytes_to_copy),
            p.keep,
            bytes(p.bytes_to_free.saturating_sub(p.bytes_to_copy))
        ),
    }
}

pub fn gc(cli: &Cli, a: &GcArgs, bars: &Bars) -> Result<u8> {
    if !(0.0..=100.0).contains(&a.repack_threshold) {
        bail!("--repack-threshold is a percentage between 0 and 100");
    }
    if !(0.0..=100.0).contains(&a.max_unused) {
        bail!("--max-unused is a percentage between 0 and 100");
    }
    let mode = if a.dry_run {
        LockMode::Shared
    } else {
        LockMode::Exclusive
    };
    let mut repo = open(cli, "gc", Some(mode))?;
    let report = run_gc(
        &mut repo,
        &GcOptions::new(a.repack_threshold / 100.0).max_unused(a.max_unused / 100.0),
        a.dry_run,
        bars,
    )?;
    if cli.global.json {
        print_json(&serde_json::to_value(&report)?);
    } else {
        print_gc(&report);
    }
    Ok(0)
}
