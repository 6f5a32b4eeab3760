//! Replay nights of a masclet_imperi-like database and run a command after each.
//!
//! `history ANIMALS NIGHTS LAST_DAY CMD [ARGS...]`
//!
//! Night i (0-based) is dated `LAST_DAY - (NIGHTS - 1 - i)` days at 03:00 UTC. Before each
//! night's command the dump is written to `$NIGHT_FILE` (a temp file, replaced every night)
//! and `NIGHT`, `NIGHT_TIME` (RFC 3339) and `NIGHT_TIME_RESTIC` (`YYYY-MM-DD HH:MM:SS`) are
//! set. Benchmarks use it to feed the same history to several tools without keeping every
//! night on disk.

use anyhow::{Context, Result, bail};
use masclet_tests::DumpModel;
use std::process::Command;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        bail!("usage: history ANIMALS NIGHTS LAST_DAY(YYYY-MM-DD) CMD [ARGS...]");
    }
    let animals: u64 = args[0].parse().context("ANIMALS")?;
    let nights: i64 = args[1].parse().context("NIGHTS")?;
    let last = chrono::NaiveDate::parse_from_str(&args[2], "%Y-%m-%d").context("LAST_DAY")?;
    let file = std::env::temp_dir().join(format!("masclet-history-{}.sql", std::process::id()));
    let mut model = DumpModel::new(animals, 7);
    for i in 0..nights {
        if i > 0 {
            model.night(0.01);
        }
        std::fs::write(&file, model.render())?;
        let day = last - chrono::Duration::days(nights - 1 - i);
        let time = day.and_hms_opt(3, 0, 0).expect("valid time");
        let status = Command::new(&args[3])
            .args(&args[4..])
            .env("NIGHT_FILE", &file)
            .env("NIGHT", i.to_string())
            .env(
                "NIGHT_TIME",
                format!("{}Z", time.format("%Y-%m-%dT%H:%M:%S")),
            )
            .env(
                "NIGHT_TIME_RESTIC",
                time.format("%Y-%m-%d %H:%M:%S").to_string(),
            )
            .status()
            .with_context(|| format!("running {}", args[3]))?;
        if !status.success() {
            bail!("night {i}: command failed with {status}");
        }
    }
    let _ = std::fs::remove_file(&file);
    Ok(())
}
