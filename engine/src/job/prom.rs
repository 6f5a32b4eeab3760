//! The Prometheus textfile (`METRICS_FILE`), in the text exposition format node_exporter's
//! textfile collector reads: the latest run of each tier, its metrics under their original
//! names, and the times of the last successful backup and last verified restore.
//!
//! The whole file is rewritten from the history after each run, to a temporary file in the
//! same folder that is then renamed over the old one: the collector may read at any moment
//! and must never see half a file. It is made readable by all (0644), since node_exporter
//! usually runs as another user; it holds sizes and times, nothing secret.

use super::record::{RunRecord, Runs};
use crate::error::{Error, Result};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// The tiers, in the order the file lists them.
const TIERS: [&str; 4] = ["daily", "weekly", "monthly", "yearly"];

/// One gauge: its name, help text, and how to read it off a run.
struct Gauge {
    name: &'static str,
    help: &'static str,
    value: fn(&RunRecord) -> Option<f64>,
}

const GAUGES: &[Gauge] = &[
    Gauge {
        name: "masclet_last_run_timestamp_seconds",
        help: "When the tier's last run ended (Unix time)",
        value: |r| unix(&r.finished),
    },
    Gauge {
        name: "masclet_last_run_success",
        help: "1 when the tier's last run had no failed step, else 0",
        value: |r| Some(f64::from(u8::from(r.succeeded()))),
    },
    Gauge {
        name: "masclet_last_run_exit_code",
        help: "Exit status of the tier's last run",
        value: |r| Some(f64::from(r.exit_code)),
    },
    Gauge {
        name: "masclet_tiempo_total_seconds",
        help: "tiempo_total: seconds the tier's last run took",
        value: |r| Some(r.metrics.tiempo_total),
    },
    Gauge {
        name: "masclet_tamano_final_bytes",
        help: "tamaño_final: bytes the tier's last backup added to the repository",
        value: |r| Some(r.metrics.tamano_final as f64),
    },
    Gauge {
        name: "masclet_ratio_compresion_percent",
        help: "ratio_compresion: size of the new data after compression, percent of before",
        value: |r| r.metrics.ratio_compresion,
    },
    Gauge {
        name: "masclet_espacio_liberado_bytes",
        help: "espacio_liberado: bytes gc gave back in the tier's last run",
        value: |r| Some(r.metrics.espacio_liberado as f64),
    },
    Gauge {
        name: "masclet_bytes_read",
        help: "Bytes the tier's last backup read from its source",
        value: |r| Some(r.metrics.bytes_read as f64),
    },
    Gauge {
        name: "masclet_dedup_ratio",
        help: "Share of the bytes read that were already stored (0 to 1)",
        value: |r| r.metrics.dedup_ratio,
    },
    Gauge {
        name: "masclet_repository_bytes",
        help: "Bytes the repository takes on disk after the tier's last run",
        value: |r| Some(r.metrics.repository_bytes as f64),
    },
    Gauge {
        name: "masclet_disk_used_percent",
        help: "Percent of the repository's disk in use after the tier's last run",
        value: |r| r.metrics.disk_used_percent,
    },
];

fn unix(rfc3339: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp() as f64)
}

/// The file's text for `runs`.
pub fn render(runs: &Runs) -> String {
    let mut out = String::new();
    for g in GAUGES {
        family(&mut out, g.name, g.help, |tier| {
            runs.last(tier).and_then(|r| (g.value)(r))
        });
    }
    family(
        &mut out,
        "masclet_last_success_timestamp_seconds",
        "When the tier's last run that saved a snapshot without a failed step ended",
        |tier| runs.last_success(tier).and_then(|r| unix(&r.finished)),
    );
    family(
        &mut out,
        "masclet_last_verified_restore_timestamp_seconds",
        "When the tier's last run whose snapshot passed its verification ended",
        |tier| runs.last_verified(tier).and_then(|r| unix(&r.finished)),
    );
    out
}

fn family(out: &mut String, name: &str, help: &str, value: impl Fn(&str) -> Option<f64>) {
    let samples: Vec<(&str, f64)> = TIERS
        .iter()
        .filter_map(|t| value(t).map(|v| (*t, v)))
        .filter(|(_, v)| v.is_finite())
        .collect();
    if samples.is_empty() {
        return;
    }
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (tier, v) in samples {
        let _ = writeln!(out, "{name}{{tier=\"{tier}\"}} {v}");
    }
}

/// Write the file for `runs` at `path`, replacing it whole.
///
/// # Errors
/// `Io` naming the file when its folder cannot be written.
pub fn write(path: &Path, runs: &Runs) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".masclet-metrics-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(format!("METRICS_FILE folder {}", dir.display()), e))?;
    let io = |e| Error::io(path.display(), e);
    tmp.write_all(render(runs).as_bytes()).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::record::{History, Metrics, RECORD_VERSION, StepOutcome};

    fn run(tier: &str, outcome: StepOutcome, finished: &str) -> RunRecord {
        RunRecord {
            version: RECORD_VERSION,
            tier: tier.into(),
            host: "granja".into(),
            started: finished.into(),
            finished: finished.into(),
            outcome,
            exit_code: u8::from(outcome == StepOutcome::Failed),
            snapshot: (outcome != StepOutcome::Failed).then(|| "ab".into()),
            verified: (outcome != StepOutcome::Failed).then_some(true),
            steps: vec![],
            metrics: Metrics {
                tiempo_total: 12.5,
                tamano_final: 2048,
                ratio_compresion: Some(31.0),
                ..Metrics::default()
            },
            alerts: vec![],
        }
    }

    #[test]
    fn the_textfile_has_one_sample_per_tier_with_the_latest_run() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::in_repo(dir.path());
        h.append(&run("daily", StepOutcome::Ok, "2026-12-01T02:00:00Z"))
            .unwrap();
        h.append(&run("daily", StepOutcome::Failed, "2026-12-02T02:00:00Z"))
            .unwrap();
        h.append(&run("weekly", StepOutcome::Ok, "2026-12-02T03:00:00Z"))
            .unwrap();
        let path = dir.path().join("masclet.prom");
        write(&path, &h.read().unwrap()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("masclet_last_run_success{tier=\"daily\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("masclet_last_run_success{tier=\"weekly\"} 1\n"));
        // The last success of daily is the first night's, not the failed second one.
        assert!(
            text.contains("masclet_last_success_timestamp_seconds{tier=\"daily\"} 1796090400\n")
        );
        assert!(text.contains("masclet_tamano_final_bytes{tier=\"daily\"} 2048\n"));
        assert!(!text.contains("monthly"));
        // Every sample line belongs to a family announced by TYPE.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split('{').next().unwrap();
            assert!(text.contains(&format!("# TYPE {name} gauge")), "{line}");
        }
        let mode = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o644
        );
    }
}
