//! `masclet export`: classic `.tar.gz` archives of snapshots in `BACKUP_ROOT/<tier>/`, one
//! at a time or mirrored from the snapshots' tier tags.

use crate::args::{Cli, ExportArgs};
use crate::commands::open_read_only;
use crate::output::{bytes, print_json};
use crate::progress::Bars;
use anyhow::{Result, anyhow};
use masclet_engine::archive::{self, ExportOptions, Exported, MirrorPlan, Tier};
use serde_json::json;
use std::path::PathBuf;

pub fn export(cli: &Cli, a: &ExportArgs, bars: &Bars) -> Result<u8> {
    let root = a
        .dir
        .clone()
        .ok_or_else(|| anyhow!("no folder to export into: give --dir DIR or set BACKUP_ROOT"))?;
    if a.mirror {
        return mirror(cli, a, root, bars);
    }
    let (Some(spec), Some(tier)) = (&a.snapshot, &a.tier) else {
        return Err(anyhow!("give a SNAPSHOT and --tier TIER, or --mirror"));
    };
    let tier = Tier::parse(tier)?;
    let repo = open_read_only(cli, "export")?;
    let (id, snap) = repo.resolve(spec)?;
    let e = archive::export(
        &repo,
        id,
        &snap,
        &root,
        tier,
        &ExportOptions::default(),
        bars,
    )?;
    if cli.global.json {
        print_json(&exported_json(&e));
    } else {
        if e.leftovers_removed > 0 {
            eprintln!(
                "removed {} temporaries of killed exports from {}",
                e.leftovers_removed,
                e.path.parent().unwrap_or(&root).display()
            );
        }
        if e.already {
            eprintln!("already there (its SHA-256 checks): {}", e.path.display());
        }
        println!("{}", e.path.display());
    }
    Ok(0)
}

fn exported_json(e: &Exported) -> serde_json::Value {
    json!({
        "path": e.path,
        "sha256": e.sha256,
        "size": e.size,
        "snapshot": e.snapshot,
        "tier": e.tier,
        "already": e.already,
        "leftovers_removed": e.leftovers_removed,
    })
}

fn mirror(cli: &Cli, a: &ExportArgs, root: PathBuf, bars: &Bars) -> Result<u8> {
    let repo = open_read_only(cli, "export --mirror")?;
    let plan = archive::plan_mirror(&repo, &root)?;
    if a.dry_run {
        if cli.global.json {
            print_json(&serde_json::to_value(&plan)?);
        } else {
            print_plan(&plan);
        }
        return Ok(0);
    }
    let s = archive::mirror(&repo, &plan, &ExportOptions::default(), bars)?;
    if cli.global.json {
        print_json(&json!({
            "exported": s.exported.iter().map(exported_json).collect::<Vec<_>>(),
            "failed": s.failed.iter().map(|(e, why)| json!({"tier": e.tier, "snapshot": e.snapshot, "reason": why})).collect::<Vec<_>>(),
            "removed": s.removed,
            "skipped": s.skipped.iter().map(|(p, why)| json!({"path": p, "reason": why})).collect::<Vec<_>>(),
            "latest": s.latest.iter().map(|(t, f)| json!({"tier": t, "file": f})).collect::<Vec<_>>(),
            "ignored": plan.ignored,
        }));
    } else {
        for e in &s.exported {
            println!("exported {} ({})", e.path.display(), bytes(e.size));
        }
        for (e, why) in &s.failed {
            println!(
                "FAILED to export {} into {}/: {why}",
                e.snapshot.short(),
                e.tier.name()
            );
        }
        for p in &s.removed {
            println!("removed {}", p.display());
        }
        for (p, why) in &s.skipped {
            println!("kept {}: {why}", p.display());
        }
        for p in &plan.ignored {
            println!("not masclet's, left alone: {}", p.display());
        }
        println!(
            "{} exported, {} removed, {} kept",
            s.exported.len(),
            s.removed.len(),
            plan.kept.len()
        );
    }
    if let Some(e) = s.first_error {
        // The exit code of the first failure's kind (5 for a damaged snapshot).
        let n = s.failed.len();
        return Err(masclet_engine::Error::new(
            e.kind(),
            format!("{n} export(s) failed, the others were made; first: {e}"),
        )
        .into());
    }
    Ok(if s.skipped.is_empty() {
        0
    } else {
        crate::exit::FAILURE
    })
}

fn print_plan(plan: &MirrorPlan) {
    for e in &plan.exports {
        println!(
            "would export {} into {}/ ({})",
            e.snapshot.short(),
            e.tier.name(),
            e.time
        );
    }
    for r in &plan.removals {
        println!(
            "would remove {} (snapshot {} no longer holds {})",
            r.path.display(),
            r.snapshot.short(),
            r.tier.name()
        );
    }
    for p in &plan.ignored {
        println!("not masclet's, left alone: {}", p.display());
    }
    println!(
        "{} to export, {} to remove, {} kept",
        plan.exports.len(),
        plan.removals.len(),
        plan.kept.len()
    );
}
