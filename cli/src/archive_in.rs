//! Classic archives coming in: `verify-archive` (the old test-backup.sh) and `import`.
//! Arguments become engine options here, reports become text or JSON; the work is in
//! `masclet_engine::archive`.

use crate::args::{Cli, ImportArgs, VerifyArchiveArgs};
use crate::commands::open;
use crate::exit;
use crate::output::{bytes, escape, local_time, print_json};
use crate::progress::Bars;
use anyhow::{Result, anyhow};
use masclet_engine::archive::{
    self, ArchiveReport, ImportOptions, ImportOutcome, VerifyArchiveOptions, verify::RestoreTest,
};
use masclet_engine::pg::{Target, Tools};
use masclet_engine::{ErrorKind, LockMode, OpenOptions, Progress, Unit};
use serde_json::json;
use std::path::PathBuf;

pub fn verify_archive(cli: &Cli, a: &VerifyArchiveArgs, bars: &Bars) -> Result<u8> {
    let restore = if a.restore_test {
        Some(RestoreTest {
            target: Target::resolve(a.pg.as_deref())?,
            tools: Tools::find(a.pg_bin.as_deref()),
        })
    } else {
        None
    };
    let opts = VerifyArchiveOptions {
        min_size: a.min_size.unwrap_or(archive::verify::DEFAULT_MIN_SIZE),
        restore,
        ..VerifyArchiveOptions::default()
    };
    let r = archive::verify_archive(&a.file, &opts, bars)?;
    Ok(render(cli, &r))
}

/// Print the report and choose the exit code: 0 when every check passed, 5 when the
/// archive's bytes are damaged, 8 when a check failed.
fn render(cli: &Cli, r: &ArchiveReport) -> u8 {
    for w in &r.warnings {
        eprintln!("masclet: warning: {w}");
    }
    if cli.global.json {
        print_json(&json!({
            "ok": r.ok,
            "file": r.file,
            "checks": crate::pg::checks_json(&r.checks),
            "duration_secs": r.duration_secs,
        }));
    } else {
        crate::pg::print_checks(&r.checks, 28);
    }
    let shown = escape(&r.file.to_string_lossy()).into_owned();
    if r.ok {
        if !cli.global.json {
            println!(
                "PASSED: {shown}: {} checks in {:.1} s",
                r.checks.len(),
                r.duration_secs
            );
        }
        return 0;
    }
    let failed = crate::pg::failed_names(&r.checks);
    eprintln!(
        "masclet: ARCHIVE CHECK FAILED: {shown} ({} failed: {})",
        failed.len(),
        failed.join(", ")
    );
    if r.damaged {
        exit::DAMAGED
    } else {
        exit::VERIFY_FAILED
    }
}

/// Where one archive's import got to.
enum Step {
    /// Imported, or found already imported.
    Done(ImportOutcome),
    /// Planned (`--dry-run`).
    Planned(archive::ImportPlan),
}

pub fn import(cli: &Cli, a: &ImportArgs, bars: &Bars) -> Result<u8> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for p in &a.paths {
        if p.is_dir() {
            let found = archive::discover::find_archives(p)?;
            files.extend(found.archives);
            skipped.extend(found.skipped);
        } else {
            files.push(p.clone());
        }
    }
    for (p, why) in &skipped {
        if !cli.global.json {
            eprintln!("skipped {}: {why}", escape(&p.to_string_lossy()));
        }
    }
    let mut repo = if a.dry_run {
        crate::commands::open_with(
            cli,
            OpenOptions::new("import", Some(LockMode::Shared)).read_only(),
        )?
    } else {
        open(cli, "import", Some(LockMode::Shared))?
    };
    let opts = ImportOptions::default();
    let mut results = Vec::new();
    let mut code = 0;
    if files.is_empty() {
        return Err(anyhow!(
            "no classic archives (masclet_<tier>_<YYYYMMDD_HHMM>_<sha8>.tar.gz) found in {}",
            a.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for (i, f) in files.iter().enumerate() {
        let shown = escape(&f.to_string_lossy()).into_owned();
        let bars = &Nth {
            bars,
            label: format!("{}/{}", i + 1, files.len()),
        };
        // The checksum first, then whether a snapshot has it: an archive already imported
        // is not read again.
        let outcome = (|| -> masclet_engine::Result<Step> {
            let _lock = archive::import::lock_archive(f)?;
            let c = archive::import::checksum(f, bars)?;
            if let Some(id) = archive::import::already_imported(&repo, &c.sha256_hex())? {
                return Ok(Step::Done(ImportOutcome::Already(id)));
            }
            let plan = archive::import::plan(c, &opts, bars)?;
            if a.dry_run {
                return Ok(Step::Planned(plan));
            }
            archive::import(&mut repo, plan, &opts, bars).map(Step::Done)
        })();
        let v = match outcome {
            Err(e) if e.kind() == ErrorKind::Interrupted => return Err(e.into()),
            Err(e) => {
                eprintln!("masclet: error: {e}");
                if code == 0 {
                    code = crate::code_for(e.kind());
                }
                json!({"file": f, "status": "failed", "error": e.message()})
            }
            Ok(Step::Done(ImportOutcome::Already(id))) => {
                if !cli.global.json {
                    println!("{shown}: already imported as {}", id.short());
                }
                json!({"file": f, "status": "already_imported", "snapshot": id})
            }
            Ok(Step::Done(ImportOutcome::Imported(s))) => {
                if !cli.global.json {
                    println!(
                        "{shown}: imported as snapshot {}: {} files, {} dirs, {} symlinks; read {}, stored {} in {:.1} s",
                        s.snapshot.short(),
                        s.stats.files,
                        s.stats.dirs,
                        s.stats.symlinks,
                        bytes(s.stats.bytes_read),
                        bytes(s.stats.bytes_added),
                        s.duration_secs
                    );
                }
                let mut v = serde_json::to_value(&s)?;
                v["file"] = json!(f);
                v["status"] = json!("imported");
                v
            }
            Ok(Step::Planned(plan)) => {
                if !cli.global.json {
                    println!(
                        "{shown}: would import: source {}, paths {}, time {}, tags {}; {} entries ({} made-up directories), {}{}",
                        plan.source,
                        escape(&plan.paths.join(" ")),
                        local_time(&plan.time),
                        plan.tags.join(","),
                        plan.entries,
                        plan.made_up_dirs,
                        bytes(plan.content_bytes),
                        if plan.in_tree_order {
                            String::new()
                        } else {
                            format!("; out of tree order, {} spooled", bytes(plan.spool_bytes))
                        }
                    );
                }
                let mut v = serde_json::to_value(&plan)?;
                v["status"] = json!("would_import");
                v
            }
        };
        results.push(v);
    }
    if cli.global.json {
        let skipped: Vec<_> = skipped
            .iter()
            .map(|(p, why): &(PathBuf, String)| json!({"file": p, "reason": why}))
            .collect();
        print_json(&json!({"ok": code == 0, "archives": results, "skipped": skipped}));
    }
    Ok(code)
}

/// The bars of one archive among several: each phase (checksum, reading, backup) is
/// named with the archive's place, so a long import shows how far it is.
struct Nth<'a> {
    bars: &'a Bars,
    label: String,
}

impl Progress for Nth<'_> {
    fn start(&self, phase: &str, total: Option<u64>, unit: Unit) {
        self.bars
            .start(&format!("{} {phase}", self.label), total, unit);
    }

    fn inc(&self, n: u64) {
        self.bars.inc(n);
    }

    fn finish(&self) {
        self.bars.finish();
    }

    fn warn(&self, message: &str) {
        self.bars.warn(message);
    }
}
