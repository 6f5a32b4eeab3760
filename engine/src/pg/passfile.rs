//! The password handed to a client program (pg_dump, pg_dumpall, psql) in a pgpass file of
//! our own, named by `PGPASSFILE`, instead of `PGPASSWORD` in its environment: a process's
//! environment is easy to leak (core dumps, `ps e`, debugging tools, a script that logs
//! `env`), and libpq's own documentation advises against the variable.
//!
//! The file is `pgpass` in a folder of its own (mode 0700, file 0600) under
//! `XDG_RUNTIME_DIR` (a per-user tmpfs: never on disk) or else the temporary folder,
//! named `masclet-pgpass-<pid>-*`. It goes when the last copy of its target is dropped;
//! one left by a process killed outright (its pid is gone) is removed by the next.

use crate::error::{Error, Result};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const PREFIX: &str = "masclet-pgpass-";

/// A private pgpass file, removed when dropped.
pub(crate) struct PassFile {
    dir: tempfile::TempDir,
}

impl PassFile {
    /// A pgpass file giving `password` for every connection of the child that reads it
    /// (it connects only where masclet sends it).
    pub(crate) fn create(password: &str) -> Result<Self> {
        let base = base_dir();
        remove_stale(&base);
        // 0700 whatever the umask: the folder is the first gate to the secret.
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-", std::process::id()))
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir_in(&base)
            .map_err(|e| Error::io(format!("making a private folder in {}", base.display()), e))?;
        let path = dir.path().join("pgpass");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        f.write_all(format!("*:*:*:*:{}\n", escape(password)).as_bytes())
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        Ok(Self { dir })
    }

    /// The file's path, for `PGPASSFILE`.
    pub(crate) fn path(&self) -> PathBuf {
        self.dir.path().join("pgpass")
    }
}

/// pgpass escapes `:` and `\` with a backslash.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace(':', "\\:")
}

fn base_dir() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
        .unwrap_or_else(std::env::temp_dir)
}

/// Remove the folders of processes that are gone.
fn remove_stale(base: &Path) {
    for e in std::fs::read_dir(base).into_iter().flatten().flatten() {
        if crate::repository::lock::dead_owner(&e.file_name(), PREFIX).is_none() {
            continue;
        }
        let mine = std::fs::symlink_metadata(e.path()).is_ok_and(|m| {
            std::os::unix::fs::MetadataExt::uid(&m) == rustix::process::getuid().as_raw()
                && m.is_dir()
        });
        if mine {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_file_is_private_escaped_and_gone_with_its_guard() {
        let f = PassFile::create("pa:ss\\word").unwrap();
        let path = f.path();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "*:*:*:*:pa\\:ss\\\\word\n"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        drop(f);
        assert!(!path.exists());
    }

    #[test]
    fn a_folder_left_by_a_dead_process_is_removed_and_a_live_ones_is_not() {
        let base = tempfile::tempdir().unwrap();
        // No process has a pid above the kernel's pid_max (4194304 at most).
        let dead = base.path().join(format!("{PREFIX}2147483646-abc"));
        let live = base
            .path()
            .join(format!("{PREFIX}{}-def", std::process::id()));
        std::fs::create_dir(&dead).unwrap();
        std::fs::create_dir(&live).unwrap();
        remove_stale(base.path());
        assert!(!dead.exists());
        assert!(live.exists());
    }
}
