//! The old system's folders: archives under `<root>/{daily,weekly,monthly,yearly}/` (and
//! `<root>` itself), found by name.

use super::name::{ArchiveName, Tier};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// What [`find_archives`] found.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// The archives, oldest first.
    pub archives: Vec<PathBuf>,
    /// Names passed over, with why.
    pub skipped: Vec<(PathBuf, String)>,
}

/// The classic archives under `dir`: in `dir/{daily,weekly,monthly,yearly}/` and `dir`
/// itself, oldest first (by the name's time). Symlinks (`latest.tar.gz`) and `.sha256`
/// sidecars are passed over in silence; every other name that does not parse is returned
/// with the reason it was skipped.
///
/// # Errors
/// `Io` when `dir` cannot be listed.
pub fn find_archives(dir: &Path) -> Result<Found> {
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(Tier::ALL.iter().map(|t| dir.join(t.name())));
    for (i, d) in dirs.iter().enumerate() {
        let list = match std::fs::read_dir(d) {
            Err(e) if i > 0 && e.kind() == std::io::ErrorKind::NotFound => continue,
            r => r.map_err(|e| Error::io(d.display(), e))?,
        };
        for e in list {
            let e = e.map_err(|e| Error::io(d.display(), e))?;
            let ft = e
                .file_type()
                .map_err(|err| Error::io(e.path().display(), err))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if ft.is_symlink() || name.ends_with(".sha256") || (ft.is_dir() && i == 0) {
                continue;
            }
            match ArchiveName::parse(&name) {
                Ok(n) if ft.is_file() => found.push((n.local, n.tier, e.path())),
                Ok(_) => skipped.push((e.path(), "not a regular file".to_string())),
                Err(_) => skipped.push((e.path(), "not a classic archive name".to_string())),
            }
        }
    }
    found.sort();
    skipped.sort();
    Ok(Found {
        archives: found.into_iter().map(|(_, _, p)| p).collect(),
        skipped,
    })
}
