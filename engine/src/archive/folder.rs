//! A tier folder's files (format-spec.md, "Classic archives"): the temporary an export is
//! written under, its atomic placement under the final name, the `.sha256` sidecar,
//! `latest.tar.gz`, and telling masclet's exports (and the snapshot each holds) from any
//! other file there.
//!
//! An export is known by the comment in its gzip header, `masclet export 1 repo <id>
//! snapshot <id> time <RFC 3339>`: reading it costs one small read, where MANIFEST.json,
//! the last member, costs a pass over the whole archive. Mirror reads the manifest too
//! before it deletes. Exports of another repository are other files to this one.

use super::name::{ArchiveName, Tier};
use crate::disk::id::{RepoId, SnapshotId};
use crate::error::{Error, ErrorKind, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The newest export of a tier, as a relative symlink in its folder.
pub const LATEST: &str = "latest.tar.gz";
/// Temporaries: `.masclet-export-<pid>-<16 hex>.tmp` (archives, sidecars, links).
const TEMP_PREFIX: &str = ".masclet-export-";
const TEMP_SUFFIX: &str = ".tmp";
/// How the gzip comment starts; the `1` is the layout's version.
const COMMENT_PREFIX: &str = "masclet export 1 repo ";

/// The gzip comment naming the repository and snapshot an export holds.
pub(crate) fn comment(repo: &RepoId, id: &SnapshotId, time: &DateTime<Utc>) -> String {
    format!(
        "{COMMENT_PREFIX}{} snapshot {} time {}",
        repo.to_hex(),
        id.to_hex(),
        time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    )
}

/// What a gzip comment written by [`comment`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hint {
    pub(crate) repo: RepoId,
    pub(crate) snapshot: SnapshotId,
    pub(crate) time: DateTime<Utc>,
}

fn parse_comment(c: &[u8]) -> Option<Hint> {
    let rest = std::str::from_utf8(c).ok()?.strip_prefix(COMMENT_PREFIX)?;
    let (repo, rest) = rest.split_once(" snapshot ")?;
    let (id, time) = rest.split_once(" time ")?;
    Some(Hint {
        repo: RepoId::from_hex(repo).ok()?,
        snapshot: SnapshotId::from_hex(id).ok()?,
        time: DateTime::parse_from_rfc3339(time).ok()?.with_timezone(&Utc),
    })
}

/// The snapshot an archive says it holds, from its gzip header; `None` for anything else.
pub(crate) fn read_hint(path: &Path) -> Option<Hint> {
    let mut head = [0u8; 512];
    let mut f = File::open(path).ok()?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    let h = &head[..n];
    // Magic, deflate, exactly FCOMMENT among the flags (as masclet writes it).
    if h.len() < 11 || h[..4] != [0x1f, 0x8b, 8, 0x10] {
        return None;
    }
    let end = h[10..].iter().position(|b| *b == 0)?;
    parse_comment(&h[10..10 + end])
}

/// One of masclet's exports found in a tier folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) file: String,
    pub(crate) snapshot: SnapshotId,
    pub(crate) time: DateTime<Utc>,
}

/// The exports of `repo`'s snapshots of `tier` in `dir` (names that parse, of this tier,
/// with masclet's comment naming `repo`), and the names of every other file but the
/// sidecars, `latest.tar.gz` and temporaries. A missing folder holds nothing.
pub(crate) fn scan(dir: &Path, tier: Tier, repo: RepoId) -> Result<(Vec<Found>, Vec<String>)> {
    let (mut found, mut other) = (Vec::new(), Vec::new());
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((found, other)),
        Err(e) => return Err(Error::io(format!("reading {}", dir.display()), e)),
    };
    for e in entries {
        let e = e.map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        let Some(file) = e.file_name().to_str().map(str::to_string) else {
            other.push(e.file_name().to_string_lossy().into_owned());
            continue;
        };
        let ours = ArchiveName::parse(&file).is_ok_and(|n| n.tier == tier)
            && e.file_type().is_ok_and(|t| t.is_file());
        let hint = ours.then(|| read_hint(&e.path())).flatten();
        match hint.filter(|h| h.repo == repo) {
            Some(h) => found.push(Found {
                file,
                snapshot: h.snapshot,
                time: h.time,
            }),
            None if file == LATEST
                || file.ends_with(".sha256")
                || (file.starts_with(TEMP_PREFIX) && file.ends_with(TEMP_SUFFIX)) => {}
            None => other.push(file),
        }
    }
    found.sort_by(|a, b| (a.time, &a.file).cmp(&(b.time, &b.file)));
    other.sort();
    Ok((found, other))
}

/// A temporary in a tier folder, removed when dropped unless [`Temp::keep`] was called:
/// on every error path and on Ctrl-C the final name never sees a partial file.
pub(crate) struct Temp {
    pub(crate) path: PathBuf,
    armed: bool,
}

impl Temp {
    /// A new temporary file in `dir`, mode 0600, that did not exist before.
    pub(crate) fn create(dir: &Path) -> Result<(Self, File)> {
        let mut rnd = [0u8; 8];
        getrandom::getrandom(&mut rnd).map_err(|e| Error::internal(format!("random: {e}")))?;
        let name = format!(
            "{TEMP_PREFIX}{}-{}{TEMP_SUFFIX}",
            std::process::id(),
            crate::disk::id::to_hex(&rnd)
        );
        let path = dir.join(name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot create a file in {}", dir.display()), e))?;
        Ok((Self { path, armed: true }, file))
    }

    /// The file is placed or gone: do not remove it on drop.
    pub(crate) fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Remove the temporaries of exports killed before they could (their process is gone).
/// Returns how many.
pub(crate) fn remove_stale(dir: &Path) -> u64 {
    let mut n = 0;
    for path in stale(dir) {
        if std::fs::remove_file(path).is_ok() {
            n += 1;
        }
    }
    n
}

/// The temporaries in `dir` of exports whose process is gone (a `kill -9`, a crash): no
/// one will ever name them, so they may go. A live process's temporary is not listed.
pub(crate) fn stale(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name();
        let ours = name.to_str().is_some_and(|n| n.ends_with(TEMP_SUFFIX));
        if ours && crate::repository::lock::dead_owner(&name, TEMP_PREFIX).is_some() {
            out.push(e.path());
        }
    }
    out.sort();
    out
}

/// Hold the folder's lock (an exclusive `flock` on the folder) while files are placed,
/// removed and `latest.tar.gz` is chosen, so two commands at once cannot interleave. A
/// filesystem without `flock` (some network mounts) gets no lock: every step is atomic on
/// its own, only `latest.tar.gz` could then end on an older export until the next run.
pub(crate) fn lock(dir: &Path) -> Result<Option<File>> {
    let f = File::open(dir).map_err(|e| Error::io(format!("opening {}", dir.display()), e))?;
    flock_exclusive(f, dir)
}

/// An exclusive `flock` on `f` (opened from `path`), waiting for its holder; `None` on a
/// filesystem without `flock` (some network mounts), where callers fall back on what
/// stays atomic without it.
pub(crate) fn flock_exclusive(f: File, path: &Path) -> Result<Option<File>> {
    use rustix::io::Errno;
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive) {
        Ok(()) => Ok(Some(f)),
        Err(Errno::NOLCK | Errno::OPNOTSUPP | Errno::INVAL) => Ok(None),
        Err(e) => Err(Error::io(format!("locking {}", path.display()), e.into())),
    }
}

/// Make `dir`'s entries durable (after renames, links and removals).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("syncing {}", dir.display()), e))
}

/// Give `temp` the name `to`, unless `to` exists: then `false`, and nothing changed.
pub(crate) fn place_new(temp: &Path, to: &Path) -> Result<bool> {
    let cwd = rustix::fs::CWD;
    match rustix::fs::renameat_with(cwd, temp, cwd, to, rustix::fs::RenameFlags::NOREPLACE) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::EXIST) => Ok(false),
        // A filesystem without RENAME_NOREPLACE: a hard link fails on an existing name too.
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            match std::fs::hard_link(temp, to) {
                Ok(()) => {
                    let _ = std::fs::remove_file(temp);
                    Ok(true)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(Error::io(format!("naming {}", to.display()), e)),
            }
        }
        Err(e) => Err(Error::io(format!("naming {}", to.display()), e.into())),
    }
}

/// SHA-256 of a whole file.
pub(crate) fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    super::reader::hash_file(path, &crate::progress::NoProgress).map(|(sha, _)| sha)
}

/// Write `<file>.sha256` in `sha256sum` format (`<64 hex>  <file>`), atomically.
pub(crate) fn write_sidecar(dir: &Path, file: &str, sha: &[u8; 32]) -> Result<()> {
    let line = format!("{}  {file}\n", crate::disk::id::to_hex(sha));
    let path = dir.join(format!("{file}.sha256"));
    if std::fs::read(&path).is_ok_and(|b| b == line.as_bytes()) {
        return Ok(());
    }
    let (temp, mut f) = Temp::create(dir)?;
    f.write_all(line.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(format!("writing {}", temp.path.display()), e))?;
    std::fs::rename(&temp.path, &path)
        .map_err(|e| Error::io(format!("naming {}", path.display()), e))?;
    temp.keep();
    Ok(())
}

/// Point `latest.tar.gz` at the newest export of `tier` from `repo` in `dir` (by snapshot
/// time),
/// replacing the link atomically; remove it when no export is left. A `latest.tar.gz`
/// that is not a symlink is nobody's to replace: an error says so.
pub(crate) fn update_latest(dir: &Path, tier: Tier, repo: RepoId) -> Result<Option<String>> {
    let (found, _) = scan(dir, tier, repo)?;
    let link = dir.join(LATEST);
    let now = std::fs::symlink_metadata(&link);
    if now.as_ref().is_ok_and(|m| !m.file_type().is_symlink()) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{} is not a symlink: masclet leaves it alone (move it away to let masclet keep it)",
                link.display()
            ),
        ));
    }
    let Some(newest) = found.last() else {
        if now.is_ok() {
            std::fs::remove_file(&link)
                .map_err(|e| Error::io(format!("removing {}", link.display()), e))?;
        }
        return Ok(None);
    };
    if std::fs::read_link(&link).is_ok_and(|t| t == Path::new(&newest.file)) {
        return Ok(Some(newest.file.clone()));
    }
    let (temp, f) = Temp::create(dir)?;
    drop(f);
    // A symlink can't be made over a file: free the temporary's name first.
    std::fs::remove_file(&temp.path)
        .and_then(|()| std::os::unix::fs::symlink(&newest.file, &temp.path))
        .and_then(|()| std::fs::rename(&temp.path, &link))
        .map_err(|e| Error::io(format!("replacing {}", link.display()), e))?;
    temp.keep();
    Ok(Some(newest.file.clone()))
}

#[cfg(test)]
mod tests;
