//! Temporary files and logs: the original's `find /tmp -name "masclet_backup_*" -mtime +1
//! -delete` and `find /logs -name "*.log" -mtime +30 -exec gzip {} \;`, each limited to
//! what is certainly ours to touch.

use super::{Action, Category, CleanupOptions, CleanupPlan, Guard, Item, Outcome, identity};
use crate::archive::folder::sync_dir;
use crate::error::{Error, Result};
use std::fs::Metadata;
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The temporaries' name prefix, as the original scripts named them.
pub(super) const TEMP_PREFIX: &str = "masclet_backup_";
/// A temporary younger than this may belong to a backup still running.
const TEMP_AGE: Duration = Duration::from_secs(24 * 3600);

/// Whether `t` is more than `age` before `now`.
fn older(now: SystemTime, t: SystemTime, age: Duration) -> bool {
    now.duration_since(t).is_ok_and(|d| d > age)
}

fn mtime(m: &Metadata) -> SystemTime {
    m.modified().unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The newest modification time and the bytes under a directory, links not followed: a
/// directory is old only when nothing in it was written lately (a file written in place
/// does not change its folder's time).
fn walk(dir: &Path) -> std::io::Result<(SystemTime, u64)> {
    let top = std::fs::symlink_metadata(dir)?;
    let (mut newest, mut bytes) = (mtime(&top), 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let m = std::fs::symlink_metadata(e.path())?;
            newest = newest.max(mtime(&m));
            if m.is_dir() {
                stack.push(e.path());
            } else {
                bytes += m.len();
            }
        }
    }
    Ok((newest, bytes))
}

/// `masclet_backup_*` entries directly in the temp folder, of this user, older than 24 h.
pub(super) fn plan_temp(opts: &CleanupOptions, plan: &mut CleanupPlan) {
    let dir = &opts.temp_dir;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            plan.errors
                .push((dir.clone(), format!("cannot list the temp folder: {e}")));
            return;
        }
    };
    let uid = rustix::process::getuid().as_raw();
    let mut found = Vec::new();
    for e in entries.flatten() {
        if !e
            .file_name()
            .as_encoded_bytes()
            .starts_with(TEMP_PREFIX.as_bytes())
        {
            continue;
        }
        let path = e.path();
        let m = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => {
                plan.errors
                    .push((path, format!("cannot examine it: {err}")));
                continue;
            }
        };
        if m.uid() != uid {
            plan.left_alone
                .push((path, "owned by another user".to_string()));
            continue;
        }
        let (newest, bytes) = if m.is_dir() {
            match walk(&path) {
                Ok(w) => w,
                Err(err) => {
                    plan.errors.push((
                        path,
                        format!("cannot examine what this folder holds: {err}"),
                    ));
                    continue;
                }
            }
        } else {
            (mtime(&m), m.len())
        };
        if older(opts.now, newest, TEMP_AGE) {
            found.push(Item {
                category: Category::TempFile,
                action: Action::Delete,
                path,
                bytes,
                reason: "older than 24 h".to_string(),
                guard: Guard::Same(m.dev(), m.ino()),
            });
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    plan.items.extend(found);
}

/// The beginning of the name of cleanup's own temporary files: with the pid, so that a
/// later cleanup can tell those of a cleanup that was killed from those of one running.
pub(super) fn own_temp_prefix() -> String {
    format!("{OWN_TEMP}{}-", std::process::id())
}

const OWN_TEMP: &str = ".masclet-cleanup-";

/// Cleanup's own temporary files in `dir` whose process is gone (a cleanup killed while it
/// compressed a log or copied an export into quarantine): removed like old temporaries.
pub(super) fn plan_own_temps(dir: &Path, plan: &mut CleanupPlan) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Some(pid) = crate::repository::lock::dead_owner(&e.file_name(), OWN_TEMP) else {
            continue;
        };
        let path = e.path();
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => plan.items.push(Item {
                category: Category::TempFile,
                action: Action::Delete,
                path,
                bytes: m.len(),
                reason: format!("left by a cleanup (pid {pid}) that was killed"),
                guard: Guard::Same(m.dev(), m.ino()),
            }),
            _ => {}
        }
    }
}

/// Remove a planned temporary, if it is still the same entry and still old.
pub(super) fn remove_temp(item: &Item, opts: &CleanupOptions) -> Result<Outcome> {
    if let Some(why) = changed(item) {
        return Ok(Outcome::Skipped(why));
    }
    let m = std::fs::symlink_metadata(&item.path)
        .map_err(|e| Error::io(format!("examining {}", item.path.display()), e))?;
    let gone = |e| {
        Error::io(
            format!(
                "removing {} (check its permissions, or remove it by hand)",
                item.path.display()
            ),
            e,
        )
    };
    if m.is_dir() {
        // Checked again: something may have been written inside since the plan.
        let (newest, _) = walk(&item.path).map_err(gone)?;
        if !older(opts.now, newest, TEMP_AGE) {
            return Ok(Outcome::Skipped("written to since the plan".to_string()));
        }
        // remove_dir_all removes links inside as links, never what they point to.
        std::fs::remove_dir_all(&item.path).map_err(gone)?;
    } else {
        std::fs::remove_file(&item.path).map_err(gone)?;
    }
    Ok(Outcome::Done(None, 0))
}

/// Whether a planned path is no longer the entry the plan saw.
pub(super) fn changed(item: &Item) -> Option<String> {
    let now = identity(&item.path);
    match (&item.guard, now) {
        (_, None) => Some("gone since the plan".to_string()),
        (Guard::Same(dev, ino) | Guard::Export(dev, ino, _), Some(id)) if id != (*dev, *ino) => {
            Some("replaced by another file since the plan; left alone".to_string())
        }
        _ => None,
    }
}

/// `x.log` and rotated `x.log.N`.
fn is_log(name: &str) -> bool {
    let stem = match name.rsplit_once('.') {
        Some((stem, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => stem,
        _ => name,
    };
    stem.len() > ".log".len() && stem.ends_with(".log")
}

/// Logs directly in the log folder, regular files older than the age in days. A log
/// being written has a fresh time and is never among them.
pub(super) fn plan_logs(opts: &CleanupOptions, plan: &mut CleanupPlan) {
    let Some(dir) = &opts.log_dir else { return };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            plan.warnings.push(format!(
                "log folder {} does not exist: no logs looked at (set LOG_DIR)",
                dir.display()
            ));
            return;
        }
        Err(e) => {
            plan.errors
                .push((dir.clone(), format!("cannot list the log folder: {e}")));
            return;
        }
    };
    let age = Duration::from_secs(u64::from(opts.log_age_days) * 24 * 3600);
    let mut found = Vec::new();
    for e in entries.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !is_log(&name) {
            continue;
        }
        let path = e.path();
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() && older(opts.now, mtime(&m), age) => found.push(Item {
                category: Category::Log,
                action: Action::Gzip,
                path,
                bytes: m.len(),
                reason: format!("older than {} days", opts.log_age_days),
                guard: Guard::Same(m.dev(), m.ino()),
            }),
            Ok(m) if !m.is_file() => plan
                .left_alone
                .push((path, "not a regular file".to_string())),
            Ok(_) => {}
            Err(err) => plan
                .errors
                .push((path, format!("cannot examine it: {err}"))),
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    plan.items.extend(found);
    plan_own_temps(dir, plan);
}

/// Compress a planned log to `<name>.gz` (`<name>.<n>.gz` when taken: nothing is ever
/// overwritten), with the original's mode and time, durably, and only then remove the
/// original. A log written to meanwhile keeps its original and loses the copy.
pub(super) fn compress_log(item: &Item) -> Result<Outcome> {
    if let Some(why) = changed(item) {
        return Ok(Outcome::Skipped(why));
    }
    let src = &item.path;
    let (Some(dir), Some(name)) = (src.parent(), src.file_name().and_then(|n| n.to_str())) else {
        return Err(Error::internal(format!("{} is no log", src.display())));
    };
    let read = |e| {
        Error::io(
            format!(
                "reading {} (give masclet read access to it, or move it away)",
                src.display()
            ),
            e,
        )
    };
    let write = |e| {
        Error::io(
            format!(
                "compressing {} into {} (is the folder writable, the disk full?)",
                src.display(),
                dir.display()
            ),
            e,
        )
    };
    let input = std::fs::File::open(src).map_err(read)?;
    let before = input.metadata().map_err(read)?;
    let prefix = own_temp_prefix();
    let mut temp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(write)?;
    let mut gz = flate2::write::GzEncoder::new(
        BufWriter::new(temp.as_file_mut()),
        flate2::Compression::default(),
    );
    std::io::copy(&mut BufReader::new(input), &mut gz).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => read(e),
        _ => write(e),
    })?;
    gz.finish().and_then(|mut w| w.flush()).map_err(write)?;
    let f = temp.as_file();
    f.set_permissions(before.permissions())
        .and_then(|()| f.set_modified(mtime(&before)))
        .and_then(|()| f.sync_all())
        .map_err(write)?;
    let size = f.metadata().map_err(write)?.len();
    let after = std::fs::symlink_metadata(src).map_err(read)?;
    if after.len() != before.len() || mtime(&after) != mtime(&before) {
        return Ok(Outcome::Skipped(
            "written to while being compressed; left as it is".to_string(),
        ));
    }
    let to = place(temp, dir, name)?;
    sync_dir(dir)?;
    std::fs::remove_file(src).map_err(|e| {
        Error::io(
            format!(
                "removing {} after compressing it into {} (remove it by hand)",
                src.display(),
                to.display()
            ),
            e,
        )
    })?;
    sync_dir(dir)?;
    Ok(Outcome::Done(Some(to), size))
}

/// Name the compressed copy `<name>.gz`, or `<name>.<n>.gz` for the first free `n`.
fn place(mut temp: tempfile::NamedTempFile, dir: &Path, name: &str) -> Result<PathBuf> {
    for n in 0..1000u32 {
        let to = match n {
            0 => dir.join(format!("{name}.gz")),
            n => dir.join(format!("{name}.{n}.gz")),
        };
        match temp.persist_noclobber(&to) {
            Ok(_) => return Ok(to),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => temp = e.file,
            Err(e) => return Err(Error::io(format!("naming {}", to.display()), e.error)),
        }
    }
    Err(Error::invalid(format!(
        "{name}.gz and a thousand numbered names beside it are taken in {}: move old copies away",
        dir.display()
    )))
}
