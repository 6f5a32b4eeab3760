//! `masclet status` and `masclet report --html`.
//!
//! Both only read: the repository opens read-only with a shared lock, which a running
//! backup also holds, so a monitor can ask at any time but during gc or forget.

use crate::args::{Cli, ReportArgs};
use crate::commands::open_read_only;
use crate::output::{bytes, escape, print_json};
use anyhow::{Context, Result};
use masclet_engine::job::record::History;
use masclet_engine::job::report::{ReportInput, report_html};
use masclet_engine::job::status::{Status, StatusOptions, status as look};
use std::io::Write;
use std::path::Path;

/// Exit status of `masclet status` when something is wrong (see `masclet status --help`).
const UNHEALTHY: u8 = 1;

pub fn status(cli: &Cli) -> Result<u8> {
    let opts = StatusOptions::from_env(chrono::Utc::now())?;
    let repo = open_read_only(cli, "status")?;
    let st = look(&repo, &crate::commands::repo_path(cli)?, &opts)?;
    if cli.global.json {
        print_json(&serde_json::to_value(&st)?);
    } else {
        crate::output::out(&render(&st));
    }
    Ok(if st.healthy { 0 } else { UNHEALTHY })
}

/// How long ago, for people: `45 s ago`, `12 min ago`, `3 h ago`, `4 d ago`.
fn ago(secs: i64) -> String {
    match secs {
        s if s < 0 => "in the future".into(),
        s if s < 120 => format!("{s} s ago"),
        s if s < 2 * 3600 => format!("{} min ago", s / 60),
        s if s < 48 * 3600 => format!("{} h ago", s / 3600),
        s => format!("{} d ago", s / 86400),
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn ratio(r: Option<f64>, unit: &str) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.2}{unit}"))
}

/// The text report: one block per subject, a verdict on the last line.
fn render(st: &Status) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "status at {}", st.time);
    o.push_str("tiers:\n");
    for t in &st.tiers {
        match (&t.snapshot, &t.time, t.age_secs) {
            (Some(id), Some(time), Some(age)) => {
                let _ = writeln!(
                    o,
                    "  {:<8} {}  {}  {:<12} ({} snapshots)",
                    t.tier,
                    short(id),
                    time,
                    ago(age),
                    t.count
                );
            }
            _ => {
                let _ = writeln!(o, "  {:<8} none", t.tier);
            }
        }
    }
    match &st.last_run {
        None => o.push_str("last run: none recorded\n"),
        Some(r) => {
            let _ = writeln!(
                o,
                "last run: {} on {}, {} to {}: {} (exit {})",
                escape(&r.tier),
                escape(&r.host),
                escape(&r.started),
                escape(&r.finished),
                r.outcome.as_str(),
                r.exit_code
            );
            for s in &r.steps {
                let _ = writeln!(
                    o,
                    "  {:<8} {:<10} {:>8.1} s  {}",
                    s.outcome.as_str(),
                    escape(&s.name),
                    s.duration_secs,
                    escape(&s.detail)
                );
            }
            let m = &r.metrics;
            let _ = writeln!(
                o,
                "  tiempo_total {:.1} s, tamaño_final {}, ratio_compresion {}, espacio_liberado {}",
                m.tiempo_total,
                bytes(m.tamano_final),
                ratio(m.ratio_compresion, "%"),
                bytes(m.espacio_liberado)
            );
        }
    }
    if st.history.unreadable > 0 {
        let _ = writeln!(
            o,
            "history: {} runs, {} unreadable lines skipped",
            st.history.runs, st.history.unreadable
        );
    }
    match &st.last_verified_restore {
        None => o.push_str("last verified restore: none recorded\n"),
        Some(v) => {
            let _ = writeln!(
                o,
                "last verified restore: {} at {}: {}",
                short(&v.snapshot),
                escape(&v.time),
                if v.ok { "passed" } else { "FAILED" }
            );
        }
    }
    let r = &st.repository;
    let _ = writeln!(
        o,
        "repository: {} snapshots{}, {} packs, {} on disk for {} of snapshot data ({}); {} of distinct chunks (counted until gc drops forgotten ones) stored at {} of their size",
        r.snapshots,
        if r.unreadable_snapshots > 0 {
            format!(" ({} unreadable)", r.unreadable_snapshots)
        } else {
            String::new()
        },
        r.packs,
        bytes(r.bytes),
        bytes(r.logical_bytes),
        // What an operator asks first: how much smaller than the data the backups are.
        match (r.logical_bytes, r.bytes) {
            (0, _) | (_, 0) => "-".to_owned(),
            (l, b) => format!("{:.1}x smaller", l as f64 / b as f64),
        },
        bytes(r.unique_bytes),
        r.compression_ratio
            .map_or("-".to_owned(), |c| format!("{:.0}%", c * 100.0)),
    );
    let d = &st.disk;
    let _ = writeln!(
        o,
        "disk: {:.1}% used, {} available (alert above {}%, minimum free {}): {}",
        d.used_percent,
        bytes(d.available),
        d.alert_percent,
        bytes(d.min_free),
        d.state
    );
    if st.locks.is_empty() {
        o.push_str("locks: none\n");
    }
    for l in &st.locks {
        match &l.info {
            Some(i) => {
                let _ = writeln!(
                    o,
                    "lock: {:?} by {} on host {} pid {}, since {}",
                    i.mode,
                    escape(&i.operation),
                    escape(&i.host),
                    i.pid,
                    escape(&i.time)
                );
            }
            None => {
                let _ = writeln!(o, "lock: {} (unreadable)", short(&l.name));
            }
        }
    }
    let _ = writeln!(
        o,
        "run in progress: {}",
        if st.run_in_progress { "yes" } else { "no" }
    );
    for a in &st.alerts {
        let _ = writeln!(o, "alert {}: {}: {}", a.key, a.message, escape(&a.detail));
    }
    if st.healthy {
        o.push_str("healthy\n");
    } else {
        let _ = writeln!(o, "UNHEALTHY: {}", escape(&st.problems.join("; ")));
    }
    o
}

pub fn report(cli: &Cli, a: &ReportArgs) -> Result<u8> {
    let repo = open_read_only(cli, "report")?;
    let runs = History::in_repo(&crate::commands::repo_path(cli)?).read()?;
    let (snapshots, _) = repo.snapshots()?;
    let verifications = repo.index().verifications()?;
    let html = report_html(&ReportInput {
        runs: &runs,
        snapshots: &snapshots,
        verifications: &verifications,
        now: chrono::Utc::now(),
    })?;
    write_atomically(&a.html, html.as_bytes())
        .with_context(|| format!("cannot write {}", a.html.display()))?;
    if cli.global.json {
        print_json(&serde_json::json!({
            "path": a.html,
            "runs": runs.records.len(),
            "unreadable": runs.unreadable,
            "snapshots": snapshots.len(),
            "verifications": verifications.len(),
        }));
    } else if !cli.global.quiet {
        println!(
            "wrote {} ({} runs, {} snapshots, {} test restores)",
            a.html.display(),
            runs.records.len(),
            snapshots.len(),
            verifications.len()
        );
    }
    Ok(0)
}

/// Replace `path` whole or not at all: a web server serving it never sees half a page.
/// The file gets the process umask's mode (masclet's is 077, so 0600): whoever publishes
/// the report decides who may read it.
fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(ago(45), "45 s ago");
        assert_eq!(ago(12 * 60), "12 min ago");
        assert_eq!(ago(3 * 3600 + 5), "3 h ago");
        assert_eq!(ago(5 * 86400), "5 d ago");
        assert_eq!(ago(-5), "in the future");
    }

    #[test]
    fn the_report_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.html");
        std::fs::write(&p, "old").unwrap();
        write_atomically(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "a temporary file was left behind");
    }
}
