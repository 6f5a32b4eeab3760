//! `import`: a classic archive becomes a snapshot (format-spec.md, "Importing classic
//! archives"). Planned first, with nothing written: the name parsed, the file's SHA-256
//! checked against it before anything inside is read, then one read of the whole archive
//! ([`super::reader`]) that refuses damage and hostile members and gives every member's
//! place, sorted into the tree's order with missing parent directories made up. Then
//! executed: unless a snapshot already carries the archive's SHA-256, the members go to
//! the backup writer as [`Source::Entries`] ([`super::spool`]), and the snapshot commits
//! only when every one was stored and checked again.

use super::manifest::{ARCHIVE_MANIFEST, hex};
use super::name::ArchiveName;
use super::reader::{self, Limits};
use super::safety::{self, Kind};
use super::spool::{self, Planned, What};
use super::verify::{check_manifest, summarize};
use crate::disk::id::SnapshotId;
use crate::disk::limits::MAX_LIST;
use crate::disk::tree::{EntryMeta, path_cmp};
use crate::error::{Error, ErrorKind, Result};
use crate::ops::backup::{BackupOptions, BackupSummary, Source, backup};
use crate::pg::manifest::{MANIFEST_NAME, PG_SOURCE};
use crate::progress::Progress;
use crate::repository::repo::Repo;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// The tag that records which archive a snapshot was imported from: the prefix of
/// `archive-sha256:<64 hex digits>`, the SHA-256 of the whole `.tar.gz`.
pub const ARCHIVE_SHA_TAG: &str = "archive-sha256:";
/// The source of an imported snapshot that is not a masclet database archive.
pub const IMPORT_SOURCE: &str = "import";

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Caps on decompression.
    pub limits: Limits,
    /// Where to spool members that come before their turn (default: `TMPDIR`).
    pub spool_dir: Option<PathBuf>,
}

/// What importing one archive will do; nothing was written to make it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportPlan {
    /// The archive.
    pub file: PathBuf,
    /// Its tier (also a tag).
    pub tier: super::Tier,
    /// SHA-256 of the file, in hex (the idempotence key).
    pub sha256: String,
    /// Bytes of the file.
    pub file_len: u64,
    /// The snapshot's source: `import`, or `postgres` for a masclet database archive.
    pub source: String,
    /// The snapshot's paths, lossy UTF-8.
    pub paths: Vec<String>,
    /// The snapshot's tags.
    pub tags: Vec<String>,
    /// The snapshot's time (the name's local time, read in this machine's time zone).
    #[serde(serialize_with = "rfc3339")]
    pub time: DateTime<Utc>,
    /// Entries the snapshot will hold (made-up directories included).
    pub entries: usize,
    /// Directories made up for members whose parent the archive lacks.
    pub made_up_dirs: usize,
    /// Bytes of file content.
    pub content_bytes: u64,
    /// Whether the archive's files are already in the tree's order.
    pub in_tree_order: bool,
    /// Bytes spooled to a temporary file because they come before their turn.
    pub spool_bytes: u64,
    #[serde(skip)]
    snapshot_paths: Vec<Vec<u8>>,
    #[serde(skip)]
    planned: Vec<Planned>,
}

fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// What importing one archive did.
#[derive(Debug, Clone)]
pub enum ImportOutcome {
    /// A new snapshot.
    Imported(BackupSummary),
    /// A snapshot already carries this archive's SHA-256; nothing was written.
    Already(SnapshotId),
}

/// An archive whose name parsed and whose SHA-256 matches the name's checksum; nothing
/// inside it was read yet.
#[derive(Debug, Clone)]
pub struct Checksummed {
    /// The archive.
    pub path: PathBuf,
    /// Its parsed name.
    pub name: ArchiveName,
    /// The SHA-256 of the whole file.
    pub sha256: [u8; 32],
}

impl Checksummed {
    /// The SHA-256 in hex (the idempotence key, see [`already_imported`]).
    pub fn sha256_hex(&self) -> String {
        hex(&self.sha256)
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Parse the name of the archive at `path` and check the file's SHA-256 against it: the
/// first step of an import, before anything inside is read.
///
/// # Errors
/// `InvalidInput` for a name that is not a classic archive's, `VerifyFailed` when the
/// SHA-256 does not match, `Io`.
pub fn checksum(path: &Path, progress: &dyn Progress) -> Result<Checksummed> {
    let file_name = file_name(path);
    let name = ArchiveName::parse(&file_name)?;
    let (sha, _) = reader::hash_file(path, progress)?;
    if !name.matches(&sha) {
        return Err(Error::new(
            ErrorKind::VerifyFailed,
            format!(
                "{file_name}: refused: the name's checksum is {}, the file's SHA-256 is {}: it was damaged or renamed; nothing was read or imported",
                name.sha8,
                hex(&sha)
            ),
        ));
    }
    Ok(Checksummed {
        path: path.to_path_buf(),
        name,
        sha256: sha,
    })
}

/// [`checksum`], then [`plan`].
///
/// # Errors
/// As both.
pub fn plan_import(
    path: &Path,
    opts: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImportPlan> {
    plan(checksum(path, progress)?, opts, progress)
}

/// Plan the import of a checksummed archive: one read of the whole archive; nothing is
/// written.
///
/// # Errors
/// `InvalidInput` for a refused member (every problem is listed), `Corrupt` for damaged
/// gzip or tar, a manifest the members contradict or a file that changed since its
/// checksum, `Io`.
pub fn plan(c: Checksummed, opts: &ImportOptions, progress: &dyn Progress) -> Result<ImportPlan> {
    let Checksummed {
        path,
        name,
        sha256: sha,
    } = c;
    let path = path.as_path();
    let file_name = file_name(path);
    let scan = reader::scan(path, &opts.limits, progress)?;
    if scan.sha256 != sha {
        return Err(Error::corrupt(format!(
            "{file_name}: the file changed while it was read; nothing was imported"
        )));
    }
    if !scan.problems.is_empty() {
        return Err(Error::invalid(format!(
            "{file_name}: refused, nothing was imported: {}",
            summarize(&scan.problems)
        )));
    }
    if let Some(e) = scan.gzip_error.as_ref().or(scan.tar_error.as_ref()) {
        return Err(Error::corrupt(format!(
            "{file_name}: damaged: {e}; nothing was imported"
        )));
    }
    let manifest = check_manifest(&scan)
        .map_err(|e| Error::corrupt(format!("{file_name}: {ARCHIVE_MANIFEST} disagrees: {e}")))?;
    let time = name.utc();
    let mut planned = Vec::new();
    for m in &scan.members {
        if m.path.is_empty() || (manifest.is_some() && m.path == ARCHIVE_MANIFEST.as_bytes()) {
            continue;
        }
        let meta = EntryMeta {
            path: m.path.clone(),
            mode: m.mode,
            mtime: m.mtime,
            mtime_nsec: 0,
        };
        let what = match &m.kind {
            Kind::Dir => What::Dir,
            Kind::Symlink(t) => What::Symlink(t.clone()),
            Kind::File => What::File {
                offset: m.offset,
                size: m.size,
                sha256: m.sha256.unwrap_or_default(),
            },
            Kind::Other => return Err(Error::internal("a refused member was planned")),
        };
        planned.push(Planned { meta, what });
    }
    let made_up_dirs = add_parents(&mut planned, time, &file_name)?;
    let in_archive: Vec<u64> = file_offsets(&planned);
    planned.sort_by(|a, b| path_cmp(&a.meta.path, &b.meta.path));
    let in_tree_order = file_offsets(&planned) == in_archive;
    let spool_bytes = spool::spool_bytes(&planned);
    let content_bytes = planned
        .iter()
        .map(|p| match p.what {
            What::File { size, .. } => size,
            _ => 0,
        })
        .sum();
    if content_bytes == 0 {
        // The writer would refuse it too, but with backup's advice (--allow-empty), which
        // import has no use for: an old nightly archive without a byte of data is no backup.
        return Err(Error::invalid(format!(
            "{file_name}: refused, nothing was imported: the archive holds no content ({} members, none a file with data)",
            scan.members.len()
        )));
    }
    let db = manifest
        .as_ref()
        .and_then(|m| m.database.as_ref())
        .filter(|d| {
            let has = |n: &str| planned.iter().any(|p| p.meta.path == n.as_bytes());
            has(MANIFEST_NAME) && has(&d.dump) && has(&d.globals)
        });
    let (source, snapshot_paths) = match db {
        Some(d) => (PG_SOURCE.to_string(), vec![d.database.as_bytes().to_vec()]),
        None => (IMPORT_SOURCE.to_string(), top_level(&planned)),
    };
    Ok(ImportPlan {
        file: path.to_path_buf(),
        tier: name.tier,
        sha256: hex(&sha),
        file_len: scan.file_len,
        source,
        paths: snapshot_paths
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect(),
        tags: vec![
            name.tier.name().to_string(),
            format!("{ARCHIVE_SHA_TAG}{}", hex(&sha)),
        ],
        time,
        entries: planned.len(),
        made_up_dirs,
        content_bytes,
        in_tree_order,
        spool_bytes,
        snapshot_paths,
        planned,
    })
}

fn file_offsets(planned: &[Planned]) -> Vec<u64> {
    planned
        .iter()
        .filter_map(|p| match p.what {
            What::File { offset, .. } => Some(offset),
            _ => None,
        })
        .collect()
}

/// Add a directory for every parent the archive lacks (mode 0755, the archive's time);
/// refuse a member inside something that is not a directory. Returns how many were made.
fn add_parents(planned: &mut Vec<Planned>, time: DateTime<Utc>, file_name: &str) -> Result<usize> {
    let kinds: BTreeMap<Vec<u8>, bool> = planned
        .iter()
        .map(|p| (p.meta.path.clone(), matches!(p.what, What::Dir)))
        .collect();
    let mut made = HashSet::new();
    for p in planned.iter() {
        let mut path = p.meta.path.as_slice();
        while let Some(i) = path.iter().rposition(|b| *b == b'/') {
            path = &path[..i];
            match kinds.get(path) {
                Some(true) => break,
                Some(false) => {
                    return Err(Error::invalid(format!(
                        "{file_name}: refused, nothing was imported: {} is inside {}, which is not a directory",
                        safety::shown(&p.meta.path),
                        safety::shown(path)
                    )));
                }
                None => {
                    if !made.insert(path.to_vec()) {
                        break;
                    }
                }
            }
        }
    }
    let n = made.len();
    planned.extend(made.into_iter().map(|path| Planned {
        meta: EntryMeta {
            path,
            mode: 0o755,
            mtime: time.timestamp(),
            mtime_nsec: 0,
        },
        what: What::Dir,
    }));
    Ok(n)
}

/// The snapshot's paths for a plain import: the archive's top-level names (one entry,
/// `archive`, past the format's limit on paths), so the next night's archive of the
/// same names walks beside this one.
fn top_level(planned: &[Planned]) -> Vec<Vec<u8>> {
    let tops: Vec<Vec<u8>> = planned
        .iter()
        .filter(|p| !p.meta.path.contains(&b'/'))
        .map(|p| p.meta.path.clone())
        .collect();
    if tops.is_empty() || tops.len() > MAX_LIST {
        vec![b"archive".to_vec()]
    } else {
        tops
    }
}

/// An exclusive lock on the archive file (`flock`), released when dropped: held from the
/// check for an earlier import to the commit, so two imports of the same file at once
/// make one snapshot (the second waits, then finds it). Copies of one archive under other
/// paths meet at [`import`]'s lock on the archive's SHA-256 instead.
#[derive(Debug)]
pub struct ArchiveLock {
    _file: Option<std::fs::File>,
}

/// Take [`ArchiveLock`] on the archive at `path`, waiting for another import of it.
///
/// # Errors
/// `Io` when the file cannot be opened or locked.
pub fn lock_archive(path: &Path) -> Result<ArchiveLock> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path.display(), e))?;
    flock(f, path)
}

/// An exclusive lock on a lock file of our own at `path`, made if missing (mode 0600).
fn lock_file(path: &Path) -> Result<ArchiveLock> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path.display(), e))?;
    flock(f, path)
}

fn flock(f: std::fs::File, path: &Path) -> Result<ArchiveLock> {
    // Without locks (some network mounts) the snapshot list is the only guard left.
    super::folder::flock_exclusive(f, path).map(|f| ArchiveLock { _file: f })
}

/// The snapshot that already carries the archive SHA-256 `sha256` (hex), if any.
///
/// # Errors
/// `Storage` listing snapshots.
pub fn already_imported(repo: &Repo, sha256: &str) -> Result<Option<SnapshotId>> {
    let tag = format!("{ARCHIVE_SHA_TAG}{sha256}");
    let (snaps, _) = repo.snapshots()?;
    Ok(snaps
        .into_iter()
        .find(|(_, s)| s.tags.contains(&tag))
        .map(|(id, _)| id))
}

/// Import the planned archive into `repo`, unless a snapshot already carries its SHA-256.
///
/// # Errors
/// As [`backup`]; `Corrupt` when the archive changed since it was planned; `Precheck`
/// when the spool's file system lacks the room the plan needs. Nothing is committed then.
pub fn import(
    repo: &mut Repo,
    plan: ImportPlan,
    opts: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImportOutcome> {
    // Copies of one archive under several paths, imported at once on this host: one lock
    // a repository and SHA-256, held from the check to the commit, makes them one snapshot.
    let _same_archive = lock_file(&std::env::temp_dir().join(format!(
        "masclet-import-{}-{}.lock",
        repo.id(),
        plan.sha256
    )))?;
    if let Some(id) = already_imported(repo, &plan.sha256)? {
        return Ok(ImportOutcome::Already(id));
    }
    let spool_dir = opts.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
    if plan.spool_bytes > 0 {
        let free = rustix::fs::statvfs(&spool_dir)
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
            .map_err(|e| Error::io(spool_dir.display(), e.into()))?;
        if free < plan.spool_bytes {
            return Err(Error::new(
                ErrorKind::Precheck,
                format!(
                    "{}: its members are not in the tree's order, and reordering them needs {} bytes of temporary space in {}, which has {free} free: set TMPDIR to a roomier place; nothing was imported",
                    plan.file.display(),
                    plan.spool_bytes,
                    spool_dir.display()
                ),
            ));
        }
    }
    let entries = spool::entries(&plan.file, plan.planned, spool_dir)?;
    let source = Source::Entries {
        source: plan.source,
        paths: plan.snapshot_paths,
        entries,
    };
    let opts = BackupOptions::new(plan.tags, Some(plan.time));
    backup(repo, source, &opts, progress).map(ImportOutcome::Imported)
}

#[cfg(test)]
mod tests;
