//! `masclet run -t TIER`: the nightly job. Settings become [`RunOptions`] here; the
//! engine runs the steps, records them and sends the alerts; this renders the record.

use crate::args::{Cli, RunArgs};
use crate::output::{bytes, escape, print_json};
use crate::progress::Bars;
use anyhow::{Context, Result, bail};
use masclet_engine as engine;
use masclet_engine::job::nightly::{self, DatabaseSource, RunHooks, RunOptions, RunSource};
use masclet_engine::job::notify::Channels;
use masclet_engine::job::{Alert, StepOutcome};
use masclet_engine::{Error, ErrorKind, KeepPolicy, LocalStorage, OpenOptions, Repo};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub fn run(cli: &Cli, a: &RunArgs, bars: &Bars) -> Result<u8> {
    let opts = options(cli, a)?;
    // Read once: a prompt would otherwise ask at every step. A failure is the backup
    // step's failure, with its alert, not a silent exit.
    let pw = crate::password::read(false).map_err(|e| format!("{e:#}"));
    let repo_dir = opts.repo_dir.clone();
    let lock_wait = Duration::from_secs(cli.global.lock_wait);
    let open = |op: &str, lock: engine::LockMode| -> engine::Result<Repo> {
        let pw = pw
            .as_ref()
            .map_err(|m| Error::new(ErrorKind::InvalidInput, m.clone()))?;
        let storage = LocalStorage::open(&repo_dir)?;
        let index = storage.index_path();
        let o = OpenOptions::new(op, Some(lock)).lock_wait(lock_wait);
        let mut repo = Repo::open(Arc::new(storage), &index, pw, &o)?;
        for w in repo.take_warnings() {
            eprintln!("masclet: warning: {w}");
        }
        Ok(repo)
    };
    // Settings that name half a channel do not stop the backup: the alerts fail instead,
    // and the run's exit status says so.
    let channels = Channels::from_env();
    if let Err(e) = &channels {
        eprintln!("masclet: warning: notifications cannot be sent: {e}");
    }
    let notify = |alert: &Alert| -> Option<Vec<String>> {
        match &channels {
            Err(e) => Some(vec![format!("notification settings: {e}")]),
            Ok(c) if c.is_empty() => None,
            Ok(c) => Some(
                c.send(alert)
                    .into_iter()
                    .filter(|d| !d.ok)
                    .map(|d| {
                        format!(
                            "{} after {} attempts: {}",
                            d.channel,
                            d.attempts,
                            d.error.unwrap_or_default()
                        )
                    })
                    .collect(),
            ),
        }
    };
    let clean = crate::cleanup::for_space;
    let hooks = RunHooks {
        open: &open,
        notify: &notify,
        clean_files: &clean,
        exit_code: crate::code_for,
        progress: bars,
    };
    let report = nightly::run(&opts, &hooks)?;
    for w in &report.warnings {
        eprintln!("masclet: warning: {w}");
    }
    for e in &report.record_errors {
        eprintln!("masclet: error: {e}");
    }
    // The steps' status, unless they all went well and the record did not: a run whose
    // history, textfile or log is missing is not a quiet success.
    let code = match report.record.exit_code {
        0 if !report.record_errors.is_empty() => crate::exit::FAILURE,
        c => c,
    };
    let r = &report.record;
    if cli.global.json {
        let mut v = serde_json::to_value(r)?;
        v["warnings"] = json!(report.warnings);
        v["record_errors"] = json!(report.record_errors);
        print_json(&v);
        return Ok(code);
    }
    let mut text = String::new();
    for s in &r.steps {
        let mark = match s.outcome {
            StepOutcome::Ok => "ok  ",
            StepOutcome::Skipped => "skip",
            StepOutcome::Warning => "WARN",
            StepOutcome::Failed => "FAIL",
        };
        text.push_str(&format!(
            "{mark} {:<10} {:>7.1} s  {}\n",
            s.name,
            s.duration_secs,
            escape(&s.detail)
        ));
    }
    let m = &r.metrics;
    text.push_str(&format!(
        "run {} {} in {:.1} s: tamaño_final {}, espacio_liberado {}, repository {}{}\n",
        r.tier,
        r.outcome.as_str(),
        m.tiempo_total,
        bytes(m.tamano_final),
        bytes(m.espacio_liberado),
        bytes(m.repository_bytes),
        if r.alerts.is_empty() {
            String::new()
        } else {
            let keys: Vec<&str> = r.alerts.iter().map(|k| k.as_str()).collect();
            format!("; alerts: {}", keys.join(", "))
        }
    ));
    crate::output::out(&text);
    Ok(code)
}

/// The run's settings: flags, then the environment (where the configuration file's keys
/// were placed at start), then the keys' defaults.
fn options(cli: &Cli, a: &RunArgs) -> Result<RunOptions> {
    let repo_dir = crate::commands::repo_path(cli)?;
    let tools = engine::pg::Tools::find(a.pg_bin.as_deref());
    let source = if let Some(url) = setting("DATABASE_URL") {
        RunSource::Database(Box::new(DatabaseSource {
            target: engine::pg::Target::resolve(Some(&url))?,
            tools,
            shape: engine::pg::DumpShape::Keyed,
            verify_target: setting("VERIFY_DATABASE_URL")
                .map(|u| engine::pg::Target::resolve(Some(&u)))
                .transpose()?,
        }))
    } else if let Some(paths) = setting("BACKUP_PATHS") {
        let paths: Vec<PathBuf> = paths
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
        if paths.is_empty() {
            bail!("BACKUP_PATHS names no path: list files or folders separated by ':'");
        }
        RunSource::Paths(paths)
    } else {
        bail!(
            "nothing to back up: set DATABASE_URL (the database) or BACKUP_PATHS (files and folders, separated by ':') in the environment or the configuration file"
        );
    };
    let export_root = if bool_setting("EXPORT_MIRROR")? {
        Some(
            setting("BACKUP_ROOT")
                .map(PathBuf::from)
                .context("EXPORT_MIRROR is true but BACKUP_ROOT is not set: set the folder the classic exports go to")?,
        )
    } else {
        None
    };
    let policy = KeepPolicy {
        daily: count("RETENTION_DAILY")?,
        weekly: count("RETENTION_WEEKLY")?,
        monthly: count("RETENTION_MONTHLY")?,
        yearly: count("RETENTION_YEARLY")?,
        ..KeepPolicy::ORIGINAL
    };
    if policy.is_empty() {
        bail!(
            "every RETENTION_* setting is 0: that would forget every snapshot; keep at least one"
        );
    }
    Ok(RunOptions {
        tier: a.tier.clone(),
        repo_dir,
        source,
        verify: !a.no_verify,
        min_free: a.min_free,
        min_backup_size: setting("MIN_BACKUP_SIZE")
            .map(|s| engine::config::parse_size(&s))
            .transpose()?
            .unwrap_or(0),
        alert_percent: f64::from(count("SPACE_ALERT_PERCENT")?),
        policy,
        gc_interval_days: count("GC_INTERVAL_DAYS")?,
        export_root,
        log_dir: setting("LOG_DIR").map(PathBuf::from),
        metrics_file: setting("METRICS_FILE").map(PathBuf::from),
        notify_on_success: bool_setting("NOTIFY_ON_SUCCESS")?,
    })
}

/// A setting's value: the environment's, else the key's default; empty counts as unset.
pub(crate) fn setting(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| {
            engine::config::find(name)
                .and_then(|k| k.default)
                .map(str::to_owned)
        })
}

fn count(name: &str) -> Result<u32> {
    let v = setting(name).unwrap_or_else(|| "0".into());
    v.parse()
        .with_context(|| format!("{name} is not a whole number (like 7)"))
}

fn bool_setting(name: &str) -> Result<bool> {
    match setting(name) {
        None => Ok(false),
        Some(v) => {
            engine::config::parse_bool(&v).with_context(|| format!("{name} is not true or false"))
        }
    }
}
