//! One function per subcommand: arguments → engine call → rendering.

use crate::args::{BackupArgs, Cli, Command, InitArgs, RepairCommand, RestoreArgs};
use crate::exit;
use crate::maintenance;
use crate::output::{bytes, local_time, print_json, rfc3339};
use crate::password;
use crate::progress::Bars;
use anyhow::{Context, Result, anyhow};
use clap::CommandFactory;
use masclet_engine as engine;
use masclet_engine::{LocalStorage, LockMode, OpenOptions, Repo};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Run the parsed command; returns the exit code for success-with-findings cases.
pub fn run(cli: &Cli) -> Result<u8> {
    let g = &cli.global;
    let bars = Bars::new(g.quiet || g.json);
    match &cli.command {
        Command::Init(a) => init(cli, a),
        Command::Backup(a) => backup(cli, a, &bars),
        Command::Snapshots => snapshots(cli),
        Command::Restore(a) => restore(cli, a, &bars),
        Command::Dump { snapshot, path } => dump(cli, snapshot, path),
        Command::Ls { snapshot, long } => ls(cli, snapshot, *long),
        Command::Check { read_data } => check(cli, *read_data, &bars),
        Command::Forget(a) => maintenance::forget(cli, a, &bars),
        Command::Gc(a) => maintenance::gc(cli, a, &bars),
        Command::Repair(RepairCommand::Index) => repair_index(cli, &bars),
        Command::Unlock { all } => unlock(cli, *all),
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "masclet",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(0)
        }
    }
}

fn repo_path(cli: &Cli) -> Result<PathBuf> {
    cli.global
        .repo
        .clone()
        .ok_or_else(|| anyhow!("no repository given: use --repo PATH or set MASCLET_REPO"))
}

pub fn open(cli: &Cli, operation: &str, lock: Option<LockMode>) -> Result<Repo> {
    let path = repo_path(cli)?;
    let storage = LocalStorage::open(&path)?;
    let index = storage.index_path();
    let pw = password::read(false)?;
    let opts =
        OpenOptions::new(operation, lock).lock_wait(Duration::from_secs(cli.global.lock_wait));
    let mut repo = Repo::open(Arc::new(storage), &index, &pw, &opts)?;
    for w in repo.take_warnings() {
        eprintln!("masclet: warning: {w}");
    }
    Ok(repo)
}

fn init(cli: &Cli, a: &InitArgs) -> Result<u8> {
    let path = repo_path(cli)?;
    let pw = password::read(true)?;
    let storage = LocalStorage::create(&path)?;
    let id = engine::init(
        &storage,
        &storage.index_path(),
        &pw,
        engine::RepoConfig::new_default(),
        kdf_params(a),
    )?;
    if cli.global.json {
        print_json(&json!({ "id": id, "path": path }));
    } else {
        println!(
            "created masclet repository {} at {}",
            id.short(),
            path.display()
        );
        println!("keep the passphrase safe: without it the backups cannot be read");
    }
    Ok(0)
}

/// The key slot's KDF: the flags, unless the test-suite override asks for the cheapest.
fn kdf_params(a: &InitArgs) -> engine::KdfParams {
    let fast = engine::KdfParams::for_new_slot();
    if fast == engine::KdfParams::FAST_INSECURE {
        return fast;
    }
    engine::KdfParams {
        m_cost_kib: a.kdf_memory * 1024,
        t_cost: a.kdf_passes,
        p_cost: 1,
    }
}

fn backup(cli: &Cli, a: &BackupArgs, bars: &Bars) -> Result<u8> {
    let time = a
        .time
        .as_deref()
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&chrono::Utc)))
        .transpose()
        .context(
            "--time must be RFC 3339, like 2025-03-11T07:45:00Z or 2025-03-11T08:45:00+01:00",
        )?;
    let mut tags = a.tags.clone();
    tags.extend(a.tier.clone());
    for t in &tags {
        if t.is_empty() || t.contains(',') || t.chars().any(char::is_whitespace) {
            return Err(anyhow!(
                "invalid tag {t:?}: tags are single words without commas"
            ));
        }
    }
    if a.stdin && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(anyhow!(
            "--stdin reads the data to back up from standard input, which is a terminal: pipe the data in (e.g. `pg_dump db | masclet backup --stdin`)"
        ));
    }
    let mut repo = open(cli, "backup", Some(LockMode::Shared))?;
    let source = if a.stdin {
        engine::Source::Stream {
            name: a.stdin_name.clone().into_bytes(),
            reader: Box::new(std::io::stdin()),
        }
    } else {
        engine::Source::Paths(a.paths.clone())
    };
    let s = engine::backup(
        &mut repo,
        source,
        &engine::BackupOptions::new(tags, time).force_read(a.force_read),
        bars,
    )?;
    let st = &s.stats;
    #[allow(clippy::cast_precision_loss)]
    let dedup = if st.bytes_read == 0 {
        0.0
    } else {
        1.0 - st.new_raw_bytes as f64 / st.bytes_read as f64
    };
    if cli.global.json {
        let mut v = serde_json::to_value(&s)?;
        v["dedup_ratio"] = json!(dedup);
        print_json(&v);
    } else {
        println!("{}", s.snapshot);
        eprintln!(
            "snapshot {} saved: {} files ({} unchanged, not read), {} dirs, {} symlinks; read {} in {:.1} s; added {} ({} new of {} chunks, {:.1}% deduplicated)",
            s.snapshot.short(),
            st.files,
            s.unchanged_files,
            st.dirs,
            st.symlinks,
            bytes(st.bytes_read),
            s.duration_secs,
            bytes(st.bytes_added),
            st.new_chunks,
            st.chunks,
            dedup * 100.0
        );
    }
    Ok(0)
}

fn snapshots(cli: &Cli) -> Result<u8> {
    let repo = open(cli, "snapshots", Some(LockMode::Shared))?;
    let (snaps, bad) = repo.snapshots()?;
    for (id, e) in &bad {
        eprintln!(
            "masclet: warning: snapshot {} cannot be read: {e}",
            id.short()
        );
    }
    if cli.global.json {
        let arr: Vec<_> = snaps
            .iter()
            .map(|(id, s)| {
                json!({
                    "id": id,
                    "short_id": id.short(),
                    "time": rfc3339(&s.time),
                    "host": s.host,
                    "user": s.user,
                    "tags": s.tags,
                    "paths": s.paths.iter().map(|p| String::from_utf8_lossy(p)).collect::<Vec<_>>(),
                    "source": s.source,
                    "stats": s.stats,
                })
            })
            .collect();
        print_json(&json!(arr));
    } else {
        println!(
            "{:<8}  {:<19}  {:<12}  {:<20}  {:>9}  paths",
            "id", "time", "host", "tags", "size"
        );
        for (id, s) in &snaps {
            let paths: Vec<_> = s
                .paths
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            println!(
                "{:<8}  {:<19}  {:<12}  {:<20}  {:>9}  {}",
                id.short(),
                local_time(&s.time),
                s.host,
                s.tags.join(","),
                bytes(s.stats.bytes_read),
                paths.join(" ")
            );
        }
        println!("{} snapshots", snaps.len());
    }
    Ok(if bad.is_empty() { 0 } else { exit::DAMAGED })
}

fn restore(cli: &Cli, a: &RestoreArgs, bars: &Bars) -> Result<u8> {
    let repo = open(cli, "restore", Some(LockMode::Shared))?;
    let (id, snap) = repo.resolve(&a.snapshot)?;
    let s = engine::restore(
        &repo,
        &snap,
        &a.target,
        &engine::RestoreOptions::new(a.overwrite),
        bars,
    )?;
    if cli.global.json {
        let mut v = serde_json::to_value(s)?;
        v["snapshot"] = json!(id);
        v["target"] = json!(a.target);
        print_json(&v);
    } else {
        let leftovers = match s.leftovers_removed {
            0 => String::new(),
            n => format!(" ({n} leftovers of an interrupted restore removed)"),
        };
        eprintln!(
            "restored snapshot {} into {}: {} files, {} dirs, {} symlinks, {}{leftovers}",
            id.short(),
            a.target.display(),
            s.files,
            s.dirs,
            s.symlinks,
            bytes(s.bytes)
        );
    }
    Ok(0)
}

fn dump(cli: &Cli, snapshot: &str, path: &str) -> Result<u8> {
    let repo = open(cli, "dump", Some(LockMode::Shared))?;
    let (_, snap) = repo.resolve(snapshot)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    engine::dump(&repo, &snap, path.as_bytes(), &mut out)?;
    out.flush()?;
    Ok(0)
}

fn ls(cli: &Cli, snapshot: &str, long: bool) -> Result<u8> {
    let repo = open(cli, "ls", Some(LockMode::Shared))?;
    let (_, snap) = repo.resolve(snapshot)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut entries = Vec::new();
    engine::list(&repo, &snap, |e| {
        if cli.global.json {
            entries.push(e);
            return Ok(());
        }
        let line = if long {
            let t = chrono::DateTime::from_timestamp(e.mtime, 0)
                .map(|t| local_time(&t))
                .unwrap_or_default();
            let target = e
                .target
                .as_ref()
                .map(|t| format!(" -> {t}"))
                .unwrap_or_default();
            format!(
                "{:<7} {:04o} {:>12} {t}  {}{target}",
                e.kind, e.mode, e.size, e.path
            )
        } else {
            e.path
        };
        writeln!(out, "{line}").map_err(|err| engine::Error::io("writing output", err))
    })?;
    if cli.global.json {
        serde_json::to_writer_pretty(&mut out, &entries)?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(0)
}

fn check(cli: &Cli, read_data: bool, bars: &Bars) -> Result<u8> {
    let repo = open(cli, "check", Some(LockMode::Shared))?;
    let r = engine::check(&repo, engine::CheckOptions::new(read_data), bars)?;
    if cli.global.json {
        let mut v = serde_json::to_value(&r)?;
        v["ok"] = json!(r.ok());
        print_json(&v);
    } else {
        for p in &r.problems {
            println!("damaged: {}: {}", p.object, p.message);
        }
        for (id, n) in &r.damaged_snapshots {
            println!("snapshot {id} cannot be fully restored ({n} damaged references)");
        }
        if !r.orphan_packs.is_empty() {
            println!(
                "info: {} packs are not indexed (left by an interrupted backup; `masclet gc` reclaims them, or `masclet repair index` adopts them)",
                r.orphan_packs.len()
            );
        }
        let what = if read_data {
            format!(", {} chunks read and verified", r.chunks_read)
        } else {
            String::new()
        };
        if r.ok() {
            println!(
                "no problems found: {} snapshots, {} packs{what}",
                r.snapshots, r.packs
            );
        } else {
            println!(
                "{} problems found; {} of {} snapshots damaged{what}",
                r.problems.len(),
                r.damaged_snapshots.len(),
                r.snapshots
            );
        }
    }
    Ok(if r.ok() { 0 } else { exit::DAMAGED })
}

fn repair_index(cli: &Cli, bars: &Bars) -> Result<u8> {
    let path = repo_path(cli)?;
    let storage = LocalStorage::open(&path)?;
    let index = storage.index_path();
    let pw = password::read(false)?;
    let opts =
        OpenOptions::new("repair index", None).lock_wait(Duration::from_secs(cli.global.lock_wait));
    let r = engine::repair_index(Arc::new(storage), &index, &pw, &opts, bars)?;
    if cli.global.json {
        print_json(&serde_json::to_value(&r)?);
    } else {
        println!("index rebuilt: {} packs, {} chunks", r.packs, r.chunks);
        for (p, why) in &r.damaged_packs {
            println!("damaged pack left out: {p}: {why}");
        }
        for s in &r.incomplete_snapshots {
            println!("snapshot {s} references data no pack holds");
        }
    }
    Ok(
        if r.damaged_packs.is_empty() && r.incomplete_snapshots.is_empty() {
            0
        } else {
            exit::DAMAGED
        },
    )
}

fn unlock(cli: &Cli, all: bool) -> Result<u8> {
    let storage = LocalStorage::open(&repo_path(cli)?)?;
    let n = engine::lock::remove_stale(&storage, all)?;
    if cli.global.json {
        print_json(&json!({ "removed": n }));
    } else {
        println!("removed {n} locks");
    }
    Ok(0)
}
