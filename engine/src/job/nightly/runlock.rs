//! One nightly run at a time per repository: an exclusive `flock` on `<repo>/ops/run.lock`.
//!
//! A `flock` belongs to the open file, so the kernel releases it when the process ends,
//! however it ends: a run killed with `kill -9` leaves no stale lock behind, unlike a lock
//! file whose existence is the lock. The file holds the holder's pid, tier and start time,
//! only so that the refusal can say who holds it.

use crate::error::{Error, ErrorKind, Result};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's path for the repository at `repo_dir`.
pub fn path(repo_dir: &Path) -> PathBuf {
    repo_dir.join("ops").join("run.lock")
}

/// A held run lock; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Take the run lock of the repository at `repo_dir` for a run of `tier`.
    ///
    /// # Errors
    /// `NotFound` when `repo_dir` does not exist; `Locked` naming the holder when another
    /// run holds it; `Io` when the lock file cannot be made.
    pub fn acquire(repo_dir: &Path, tier: &str) -> Result<Self> {
        if !repo_dir.is_dir() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "no repository at {}: create it with `masclet init`, or set MASCLET_REPO / BACKUP_ROOT",
                    repo_dir.display()
                ),
            ));
        }
        let path = path(repo_dir);
        let dir = path.parent().unwrap_or(repo_dir);
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(path.display(), e))?;
        if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(Error::new(
                ErrorKind::Locked,
                format!(
                    "another masclet run is in progress on this repository ({}): wait for it to end; a run that died holds nothing, so this one is alive",
                    if holder.is_empty() {
                        "holder unknown"
                    } else {
                        holder
                    }
                ),
            ));
        }
        let holder = format!(
            "pid {}, tier {tier}, started {}",
            std::process::id(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        // Best effort: the lock is the flock, the text only names its holder.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(holder.as_bytes()));
        Ok(Self { _file: file })
    }

    /// Whether a run holds the lock of the repository at `repo_dir` now (for `status`).
    /// Never creates the file.
    pub fn held(repo_dir: &Path) -> bool {
        let Ok(file) = File::open(path(repo_dir)) else {
            return false;
        };
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared).is_err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_is_refused_naming_the_first_and_allowed_once_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!RunLock::held(dir.path()));
        let first = RunLock::acquire(dir.path(), "daily").unwrap();
        assert!(RunLock::held(dir.path()));
        let e = RunLock::acquire(dir.path(), "weekly").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Locked);
        assert!(e.to_string().contains("tier daily"), "{e}");
        drop(first);
        assert!(!RunLock::held(dir.path()));
        RunLock::acquire(dir.path(), "weekly").unwrap();
    }

    #[test]
    fn a_missing_repository_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = RunLock::acquire(&dir.path().join("nope"), "daily").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }
}
