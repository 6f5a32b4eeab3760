//! `backup`: checks the request before the repository is opened, runs the engine, and
//! renders the summary.

use crate::args::{BackupArgs, Cli};
use crate::commands::open;
use crate::output::{bytes, print_json};
use crate::progress::Bars;
use anyhow::{Context, Result, anyhow};
use masclet_engine as engine;
use masclet_engine::LockMode;
use serde_json::json;

/// Environment variables that carry the repository passphrase: a producer masclet runs
/// must not see them (it has no use for them, and it may log its environment).
const SECRET_ENV: [&str; 2] = ["MASCLET_PASSWORD", "MASCLET_PASSWORD_FILE"];

pub fn backup(cli: &Cli, a: &BackupArgs, bars: &Bars) -> Result<u8> {
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
            let shown: String = t.chars().take(40).collect();
            return Err(anyhow!(
                "invalid tag {shown:?}: tags are single words without commas"
            ));
        }
    }
    if a.stdin && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(anyhow!(
            "--stdin reads the data to back up from standard input, which is a terminal: pipe the data in (e.g. `pg_dump db | masclet backup --stdin`), or let masclet run it with --stdin-from-command"
        ));
    }
    if let Some(url) = &a.pg {
        return pg_backup(cli, a, url, engine::BackupOptions::new(tags, time), bars);
    }
    let name = a.stdin_name.clone().into_bytes();
    let source = if a.stdin {
        engine::Source::Stream {
            name,
            reader: Box::new(std::io::stdin()),
        }
    } else if a.stdin_from_command {
        let (program, args) = a
            .paths
            .split_first()
            .ok_or_else(|| anyhow!("--stdin-from-command needs a command after `--`"))?;
        let mut command = std::process::Command::new(program);
        command.args(args);
        for v in SECRET_ENV {
            command.env_remove(v);
        }
        // The notification secrets a configuration file may have put in the environment
        // are none of a producer's business. The database URLs stay: a producer script may
        // dump from DATABASE_URL, as it could before there was a configuration file.
        for k in engine::config::KEYS {
            if k.secret && k.kind != engine::config::ValueType::Url {
                command.env_remove(k.name);
            }
        }
        engine::Source::Command { name, command }
    } else {
        engine::Source::Paths(a.paths.clone())
    };
    let opts = engine::BackupOptions::new(tags, time)
        .force_read(a.force_read)
        .allow_empty(a.allow_empty)
        .min_size(a.min_size.unwrap_or(0));
    // Before the repository is even opened: a request past the format's limits leaves
    // no trace, not even a lock.
    engine::ops::backup::check_request(&source, &opts)?;
    let mut repo = open(cli, "backup", Some(LockMode::Shared))?;
    let s = engine::backup(&mut repo, source, &opts, bars)?;
    report(cli, &s, None)
}

/// `backup --pg`: the engine checks, holds the transaction and dumps; this resolves the
/// settings and renders.
fn pg_backup(
    cli: &Cli,
    a: &BackupArgs,
    url: &str,
    opts: engine::BackupOptions,
    bars: &Bars,
) -> Result<u8> {
    let url = Some(url).filter(|u| !u.is_empty());
    if url.is_some_and(engine::pg::target::url_has_password) {
        eprintln!(
            "masclet: warning: the URL given to --pg holds a password, which every user of this machine can read in the process list: put it in DATABASE_URL (in a private file) or in a pgpass file (PGPASSFILE)"
        );
    }
    let target = engine::pg::Target::resolve(url)?;
    let shape = match a.dump_shape.as_str() {
        "pg-dump" => engine::pg::DumpShape::PgDump,
        _ => engine::pg::DumpShape::Keyed,
    };
    let pg = engine::pg::PgBackupOptions {
        target,
        tools: engine::pg::Tools::find(a.pg_bin.as_deref()),
        shape,
        repo_dir: cli.global.repo.clone().or_else(crate::config::default_repo),
        min_free: a.min_free,
        backup: opts.min_size(a.min_size.unwrap_or(0)),
    };
    let mut repo = open(cli, "backup", Some(LockMode::Shared))?;
    let s = engine::pg::backup_pg(&mut repo, &pg, bars)?;
    if !a.verify {
        return report(cli, &s.backup, Some(&s.manifest));
    }
    // The summary goes to stderr here: stdout carries the verification's report.
    if !cli.global.json {
        report(cli, &s.backup, Some(&s.manifest))?;
    }
    let verify_target = std::env::var("VERIFY_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .map(|u| engine::pg::Target::resolve(Some(&u)))
        .transpose()?;
    let opts = engine::pg::VerifyOptions {
        target: pg.target,
        verify_target,
        tools: pg.tools,
        with_roles: false,
    };
    let r = engine::pg::verify(&repo, s.backup.snapshot, &opts, bars)?;
    let code = crate::pg::render(cli, &r, "verify");
    if !r.ok {
        eprintln!(
            "masclet: snapshot {} was saved, but its test restore failed: do not count on it (see docs/recovery.md)",
            s.backup.snapshot.short()
        );
    }
    Ok(code)
}

/// Print what a backup did (and, for a database, what it recorded).
fn report(
    cli: &Cli,
    s: &engine::BackupSummary,
    manifest: Option<&engine::pg::Manifest>,
) -> Result<u8> {
    let st = &s.stats;
    let h = &s.healing;
    if h.missing_packs > 0 {
        // Printed in JSON mode too: it is damage the operator should know of.
        eprintln!(
            "masclet: warning: {} packs listed in the index are missing from storage; their {} chunks are no longer trusted: {} of them were in this backup's input and were stored again (run `masclet check` to see which snapshots lost data)",
            h.missing_packs, h.untrusted_chunks, h.stored_again
        );
    }
    // Bytes stored against bytes read: what the night cost. Counting new chunks' plaintext
    // instead would call a chunk stored as a 300-byte delta "new" in full.
    let stored = if st.bytes_read == 0 {
        0.0
    } else {
        st.bytes_added as f64 / st.bytes_read as f64
    };
    if cli.global.json {
        let mut v = serde_json::to_value(s)?;
        v["stored_ratio"] = json!(stored);
        v["dedup_ratio"] = json!((1.0 - stored).max(0.0));
        if let Some(m) = manifest {
            v["database"] = serde_json::to_value(m)?;
        }
        print_json(&v);
    } else {
        println!("{}", s.snapshot);
        eprintln!(
            "snapshot {} saved: {} files ({} unchanged, not read), {} dirs, {} symlinks; read {} in {:.1} s; stored {} ({:.1}% of the bytes read; {} new of {} chunks)",
            s.snapshot.short(),
            st.files,
            s.unchanged_files,
            st.dirs,
            st.symlinks,
            bytes(st.bytes_read),
            s.duration_secs,
            bytes(st.bytes_added),
            stored * 100.0,
            st.new_chunks,
            st.chunks,
        );
        if let Some(m) = manifest {
            let rows: Vec<String> = m
                .tables
                .iter()
                .map(|t| format!("{} {}", t.display(), t.rows))
                .collect();
            eprintln!(
                "database {} ({} shape, PostgreSQL {}) as of {}: rows {}",
                m.database,
                m.shape.name(),
                m.server_version,
                m.taken_at,
                rows.join(", ")
            );
        }
    }
    Ok(0)
}
