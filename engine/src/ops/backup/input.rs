//! What a backup is asked to store, checked before it counts as a backup: the snapshot's
//! fields against the readers' limits before anything is written, the amount of content
//! before the commit, and the recorded time against the clock and the other snapshots.

use super::{BackupOptions, Source, files::top_level_name};
use crate::disk::snapshot::{BackupStats, Snapshot};
use crate::disk::tree::{check_path, path_cmp};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::repository::repo::Repo;
use chrono::{DateTime, Utc};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Tag of a snapshot whose stream came from a producer nobody checked (`--stdin`): an
/// empty or truncated stream from a failed `pg_dump` looks like any other. A producer the
/// backup runs itself (`--stdin-from-command`) is checked and gets no such tag.
pub const UNCHECKED_PRODUCER_TAG: &str = "unchecked-producer";

/// How far a snapshot's time may be from the system clock before the backup warns.
const CLOCK_SLACK: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// The snapshot a request will commit, without its tree and counters, and for paths each
/// top-level name with its absolute path, in the tree's order.
pub(super) struct Request {
    pub(super) snapshot: Snapshot,
    pub(super) named: Vec<(Vec<u8>, PathBuf)>,
}

/// Check a backup request without touching the repository: names, duplicates, and every
/// field of the snapshot it would write against the format's limits. [`crate::ops::backup`]
/// runs it first; a caller may run it before opening the repository.
///
/// # Errors
/// `InvalidInput` naming the problem (and the limit, for one past a limit); `Io` when a
/// path cannot be resolved.
pub fn check_request(source: &Source, opts: &BackupOptions) -> Result<()> {
    request(source, opts).map(|_| ())
}

pub(super) fn request(source: &Source, opts: &BackupOptions) -> Result<Request> {
    let mut tags = opts.tags.clone();
    let (named, paths, kind) = match source {
        Source::Paths(paths) => {
            let mut named = Vec::new();
            for p in paths {
                let abs = std::path::absolute(p)
                    .map_err(|e| Error::io(format!("resolving {}", p.display()), e))?;
                named.push((top_level_name(&abs)?, abs));
            }
            named.sort_by(|a, b| path_cmp(&a.0, &b.0));
            if let Some(w) = named.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(Error::invalid(format!(
                    "{} and {} would both be named {:?} in the snapshot; back them up separately",
                    w[0].1.display(),
                    w[1].1.display(),
                    String::from_utf8_lossy(&w[0].0)
                )));
            }
            let paths = named
                .iter()
                .map(|(_, p)| p.as_os_str().as_bytes().to_vec())
                .collect();
            (named, paths, "files")
        }
        Source::Streams {
            source: kind,
            paths,
            entries,
        } => {
            super::streams::check_names(entries)?;
            if entries.is_empty() || kind.is_empty() || kind == "files" || kind == "stdin" {
                return Err(Error::invalid(
                    "a source of named streams needs at least one stream and its own source name",
                ));
            }
            (Vec::new(), paths.clone(), kind.as_str())
        }
        Source::Entries {
            source: kind,
            paths,
            ..
        } => {
            if kind.is_empty() || kind == "files" || kind == "stdin" {
                return Err(Error::invalid(
                    "a source of entries needs its own source name (not files or stdin)",
                ));
            }
            (Vec::new(), paths.clone(), kind.as_str())
        }
        Source::Stream { name, .. } | Source::Command { name, .. } => {
            check_stream_name(name)?;
            if matches!(source, Source::Stream { .. })
                && !tags.iter().any(|t| t == UNCHECKED_PRODUCER_TAG)
            {
                tags.push(UNCHECKED_PRODUCER_TAG.to_string());
            }
            (Vec::new(), vec![name.clone()], "stdin")
        }
    };
    let snapshot = Snapshot {
        time: opts.time.unwrap_or_else(Utc::now),
        host: crate::repository::lock::hostname(),
        user: std::env::var("USER")
            .unwrap_or_else(|_| rustix::process::getuid().as_raw().to_string()),
        tags,
        paths,
        source: kind.to_string(),
        stats: BackupStats::default(),
        tree_len: 0,
        tree: Vec::new(),
    };
    snapshot.check_limits()?;
    Ok(Request { snapshot, named })
}

/// A stream's entry name must be one file name.
pub(super) fn check_stream_name(name: &[u8]) -> Result<()> {
    if check_path(name).is_err() || name.contains(&b'/') {
        return Err(Error::invalid(
            "the stream name must be a single file name (no `/`, not `.` or `..`)",
        ));
    }
    Ok(())
}

/// Refuse a backup whose sources gave no content (or less than the minimum) before it is
/// committed: an empty stream is what a failed producer looks like, and retention would
/// keep the empty snapshot as the newest restore point and forget a good one.
///
/// # Errors
/// `InvalidInput` saying what was read and which option would accept it.
pub(super) fn check_content(
    bytes: u64,
    opts: &BackupOptions,
    what: &str,
    unchecked: bool,
) -> Result<()> {
    if bytes < opts.min_size {
        return Err(Error::invalid(format!(
            "{what} gave {bytes} bytes, less than the minimum backup size of {} bytes (--min-size, MIN_BACKUP_SIZE); nothing was committed",
            opts.min_size
        )));
    }
    if bytes == 0 && !opts.allow_empty {
        let advice = if unchecked {
            "an empty stream is what a failed producer gives: let masclet run it with --stdin-from-command to check its exit status, or "
        } else {
            ""
        };
        return Err(Error::invalid(format!(
            "{what} gave no content (0 bytes of regular files or stream); nothing was committed ({advice}pass --allow-empty if an empty backup is right)"
        )));
    }
    Ok(())
}

/// Warn when the snapshot's time will mislead `latest` (the snapshot with the largest
/// recorded time, not the last one written): a time far ahead of the system clock, which
/// `latest` would name until a later one is written, or an existing snapshot with a later
/// time, which `latest` will keep naming. A time in the past is a deliberate `--time` (an
/// import of older dumps, say) and misleads nothing by itself.
pub(super) fn warn_about_time(repo: &Repo, time: DateTime<Utc>, progress: &dyn Progress) {
    let now = Utc::now();
    let off = time.signed_duration_since(now);
    if off > CLOCK_SLACK {
        progress.warn(&format!(
            "this snapshot's time {} is {} ahead of the system clock (now {}): `latest` will name it until a snapshot with a later time is written",
            rfc3339(time),
            span(off),
            rfc3339(now)
        ));
    }
    let Ok((snaps, _)) = repo.snapshots() else {
        return;
    };
    if let Some((id, newest)) = snaps.last()
        && newest.time > time
    {
        progress.warn(&format!(
            "snapshot {} has a later time ({}) than this one ({}): `latest` means the snapshot with the largest recorded time, so it will still name {}",
            id.short(),
            rfc3339(newest.time),
            rfc3339(time),
            id.short()
        ));
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn span(d: chrono::TimeDelta) -> String {
    if d.num_days() >= 2 {
        format!("{} days", d.num_days())
    } else {
        format!("{} hours", d.num_hours())
    }
}
