//! One function per subcommand: arguments → engine call → rendering.

use crate::args::{Cli, Command, DbCommand, InitArgs, RepairCommand, RestoreArgs};
use crate::exit;
use crate::maintenance;
use crate::output::{bytes, escape, local_time, print_json, rfc3339};
use crate::password;
use crate::progress::Bars;
use anyhow::{Result, anyhow};
use clap::CommandFactory;
use masclet_engine as engine;
use masclet_engine::{LocalStorage, LockMode, OpenOptions, Repo};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::pg;

/// Run the parsed command; returns the exit code for success-with-findings cases.
pub fn run(cli: &Cli) -> Result<u8> {
    let g = &cli.global;
    let bars = Bars::new(g.quiet || g.json);
    match &cli.command {
        Command::Init(a) => init(cli, a),
        Command::Backup(a) => crate::backup::backup(cli, a, &bars),
        Command::Snapshots => snapshots(cli),
        Command::Restore(a) if a.to_db.is_some() => pg::restore_db(cli, a, &bars),
        Command::Restore(a) => restore(cli, a, &bars),
        Command::Verify(a) => pg::verify(cli, a, &bars),
        Command::Promote(a) => pg::promote(cli, a),
        Command::Db(DbCommand::Maintain(a)) => pg::maintain(cli, a),
        Command::Dump { snapshot, path } => dump(cli, snapshot, path),
        Command::Ls { snapshot, long } => ls(cli, snapshot, *long),
        Command::Check { read_data } => check(cli, *read_data, &bars),
        Command::Forget(a) => maintenance::forget(cli, a, &bars),
        Command::Gc(a) => maintenance::gc(cli, a, &bars),
        Command::Repair(RepairCommand::Index) => repair_index(cli, &bars),
        Command::VerifyArchive(a) => crate::archive_in::verify_archive(cli, a, &bars),
        Command::Import(a) => crate::archive_in::import(cli, a, &bars),
        Command::Unlock { all } => unlock(cli, *all),
        Command::Export(a) => crate::archive_out::export(cli, a, &bars),
        Command::Config => crate::config::show(cli),
        Command::Run(a) => crate::job::run(cli, a, &bars),
        Command::Notify(a) => crate::notify::notify(cli, a),
        Command::Cleanup(a) => crate::cleanup::cleanup(cli, a),
        Command::Status => crate::status::status(cli),
        Command::Report(a) => crate::status::report(cli, a),
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

pub(crate) fn repo_path(cli: &Cli) -> Result<PathBuf> {
    cli.global
        .repo
        .clone()
        .or_else(crate::config::default_repo)
        .ok_or_else(|| {
            anyhow!("no repository given: use --repo PATH, or set MASCLET_REPO or BACKUP_ROOT")
        })
}

pub fn open(cli: &Cli, operation: &str, lock: Option<LockMode>) -> Result<Repo> {
    open_with(cli, OpenOptions::new(operation, lock))
}

/// Open for a command that only reads: it works on a repository on read-only media.
pub fn open_read_only(cli: &Cli, operation: &str) -> Result<Repo> {
    open_with(
        cli,
        OpenOptions::new(operation, Some(LockMode::Shared)).read_only(),
    )
}

pub fn open_with(cli: &Cli, opts: OpenOptions) -> Result<Repo> {
    let path = repo_path(cli)?;
    let storage = LocalStorage::open(&path)?;
    let index = storage.index_path();
    let pw = password::read(false)?;
    let opts = opts.lock_wait(Duration::from_secs(cli.global.lock_wait));
    let mut repo = Repo::open(Arc::new(storage), &index, &pw, &opts)?;
    for w in repo.take_warnings() {
        eprintln!("masclet: warning: {w}");
    }
    Ok(repo)
}

fn init(cli: &Cli, a: &InitArgs) -> Result<u8> {
    let path = repo_path(cli)?;
    let pw = password::read(true)?;
    let config = engine::RepoConfig::new_default();
    engine::check_init(&pw, &config)?;
    let existed = path.exists();
    let storage = LocalStorage::create(&path)?;
    let id = engine::init(&storage, &storage.index_path(), &pw, config, kdf_params(a))
        .inspect_err(|_| undo_init(&path, existed))?;
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

/// Remove what a failed init created (the directory was absent or empty before, as
/// `LocalStorage::create` requires), so that the retry finds no half-made repository.
fn undo_init(path: &std::path::Path, existed: bool) {
    if !existed {
        let _ = std::fs::remove_dir_all(path);
        return;
    }
    for e in std::fs::read_dir(path).into_iter().flatten().flatten() {
        let p = e.path();
        let _ = if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
    }
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

fn snapshots(cli: &Cli) -> Result<u8> {
    let repo = open_read_only(cli, "snapshots")?;
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
                .map(|p| escape(&String::from_utf8_lossy(p)).into_owned())
                .collect();
            println!(
                "{:<8}  {:<19}  {:<12}  {:<20}  {:>9}  {}",
                id.short(),
                local_time(&s.time),
                escape(&s.host),
                escape(&s.tags.join(",")),
                bytes(s.stats.bytes_read),
                paths.join(" ")
            );
        }
        println!("{} snapshots", snaps.len());
    }
    Ok(if bad.is_empty() { 0 } else { exit::DAMAGED })
}

fn restore(cli: &Cli, a: &RestoreArgs, bars: &Bars) -> Result<u8> {
    let repo = open_read_only(cli, "restore")?;
    let (id, snap) = repo.resolve(&a.snapshot)?;
    let target = a
        .target
        .as_deref()
        .ok_or_else(|| anyhow!("give --target DIR (or --to-db NAME for a database)"))?;
    let s = engine::restore(
        &repo,
        &snap,
        target,
        &engine::RestoreOptions::new(a.overwrite),
        bars,
    )?;
    if cli.global.json {
        let mut v = serde_json::to_value(s)?;
        v["snapshot"] = json!(id);
        v["target"] = json!(target);
        print_json(&v);
    } else {
        let leftovers = match s.leftovers_removed {
            0 => String::new(),
            n => format!(" ({n} leftovers of an interrupted restore removed)"),
        };
        eprintln!(
            "restored snapshot {} into {}: {} files, {} dirs, {} symlinks, {}{leftovers}",
            id.short(),
            target.display(),
            s.files,
            s.dirs,
            s.symlinks,
            bytes(s.bytes)
        );
    }
    Ok(0)
}

fn dump(cli: &Cli, snapshot: &str, path: &str) -> Result<u8> {
    let repo = open_read_only(cli, "dump")?;
    let (_, snap) = repo.resolve(snapshot)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    engine::dump(&repo, &snap, path.as_bytes(), &mut out)?;
    out.flush()?;
    Ok(0)
}

fn ls(cli: &Cli, snapshot: &str, long: bool) -> Result<u8> {
    let repo = open_read_only(cli, "ls")?;
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
                .map(|t| format!(" -> {}", escape(t)))
                .unwrap_or_default();
            format!(
                "{:<7} {:04o} {:>12} {t}  {}{target}",
                e.kind,
                e.mode,
                e.size,
                escape(&e.path)
            )
        } else {
            escape(&e.path).into_owned()
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
    let repo = open_read_only(cli, "check")?;
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
                "info: {} packs are not indexed (left by an interrupted backup; `masclet gc` reclaims them, or `masclet repair index` adopts every chunk in them that still authenticates)",
                r.orphan_packs.len()
            );
        }
        if r.leftovers.0 > 0 {
            println!(
                "info: {} temporary files of interrupted writes ({}) in tmp/; `masclet gc` removes them",
                r.leftovers.0,
                bytes(r.leftovers.1)
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
        for p in &r.salvaged_packs {
            println!(
                "damaged pack salvaged: {}: {}; adopted {} chunks that still authenticate, left out {}",
                p.pack, p.damage, p.adopted, p.lost
            );
        }
        if r.undecodable_chunks > 0 {
            println!(
                "left out {} delta chunks whose base is not stored (nothing can decode them)",
                r.undecodable_chunks
            );
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
    let n = engine::repository::lock::remove_stale(&storage, all)?;
    if cli.global.json {
        print_json(&json!({ "removed": n }));
    } else {
        println!("removed {n} locks");
    }
    Ok(0)
}
