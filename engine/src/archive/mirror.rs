//! Mirror: make the four tier folders hold exactly the exports retention asks for
//! (format-spec.md, "Classic archives"). The tier tags on snapshots are the truth (`forget`
//! writes them): every snapshot tagged `daily` has an export in `daily/`, and so on.
//!
//! A plan first ([`plan_mirror`], also what `--dry-run` prints), then [`mirror`]: exports
//! first, removals after, `latest.tar.gz` last, so an interrupted mirror never holds fewer
//! restore points than before. Only a file that is masclet's export of a snapshot of this
//! repository is ever removed: its name parses as a classic archive of the folder's tier,
//! its gzip comment names this repository and a snapshot no longer of that tier, and,
//! right before removal, its MANIFEST.json (the last member) names that same snapshot.
//! Every other file is listed and left alone; so are exports of snapshots that cannot be
//! read (their tags are unknown).

use super::export::{ExportOptions, Exported, export};
use super::folder;
use super::manifest::{ARCHIVE_MANIFEST, ArchiveManifest};
use super::name::{ArchiveName, Tier};
use crate::disk::id::SnapshotId;
use crate::disk::snapshot::Snapshot;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::repository::repo::Repo;
use std::io::Read;
use std::path::{Path, PathBuf};

/// An export the plan will make.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ToExport {
    /// Its tier.
    pub tier: Tier,
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// The snapshot's time, RFC 3339 UTC.
    pub time: String,
}

/// An export already in a tier folder, kept or to be removed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InFolder {
    /// Its tier.
    pub tier: Tier,
    /// The file.
    pub path: PathBuf,
    /// The snapshot its gzip comment names.
    pub snapshot: SnapshotId,
}

/// What mirror will do.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MirrorPlan {
    /// The root holding the tier folders.
    pub root: PathBuf,
    /// Missing exports, oldest snapshot first within each tier.
    pub exports: Vec<ToExport>,
    /// Exports whose snapshot no longer holds the folder's tier.
    pub removals: Vec<InFolder>,
    /// Exports that stay.
    pub kept: Vec<InFolder>,
    /// Files masclet does not recognise as its exports (left alone).
    pub ignored: Vec<PathBuf>,
}

/// What mirror did.
#[derive(Debug, Default, serde::Serialize)]
pub struct MirrorSummary {
    /// Exports made (or found already there, by a concurrent command).
    pub exported: Vec<Exported>,
    /// Exports that failed, and why (a damaged snapshot stops its own export only).
    pub failed: Vec<(ToExport, String)>,
    /// The first failed export's error, for its kind.
    #[serde(skip)]
    pub first_error: Option<Error>,
    /// Files removed (archives; their sidecars went with them).
    pub removed: Vec<PathBuf>,
    /// Planned removals not done, and kept exports whose bytes do not match their name, and
    /// why.
    pub skipped: Vec<(PathBuf, String)>,
    /// Per tier, the file `latest.tar.gz` points to now.
    pub latest: Vec<(Tier, Option<String>)>,
}

/// Plan a mirror of `repo`'s tiers into `root`.
///
/// # Errors
/// `Storage` when snapshots cannot be listed; `Io` when a folder cannot be read.
pub fn plan_mirror(repo: &Repo, root: &Path) -> Result<MirrorPlan> {
    let (snaps, bad) = repo.snapshots()?;
    let unreadable: Vec<SnapshotId> = bad.iter().map(|(id, _)| *id).collect();
    let mut plan = MirrorPlan {
        root: root.to_path_buf(),
        ..MirrorPlan::default()
    };
    for tier in Tier::ALL {
        let dir = root.join(tier.name());
        let wanted: Vec<&(SnapshotId, Snapshot)> = snaps
            .iter()
            .filter(|(_, s)| s.tags.iter().any(|t| t == tier.name()))
            .collect();
        let (found, other) = folder::scan(&dir, tier, repo.id())?;
        for (id, s) in &wanted {
            if !found.iter().any(|f| f.snapshot == *id) {
                plan.exports.push(ToExport {
                    tier,
                    snapshot: *id,
                    time: s.time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                });
            }
        }
        for f in found {
            let entry = InFolder {
                tier,
                path: dir.join(&f.file),
                snapshot: f.snapshot,
            };
            let keep =
                wanted.iter().any(|(id, _)| *id == f.snapshot) || unreadable.contains(&f.snapshot);
            if keep {
                plan.kept.push(entry);
            } else {
                plan.removals.push(entry);
            }
        }
        plan.ignored.extend(other.into_iter().map(|o| dir.join(o)));
    }
    Ok(plan)
}

/// Carry out `plan`.
///
/// A failed export is recorded in the summary and the others go on: one damaged snapshot
/// must not keep every other tier out of date. Removals are of other snapshots' exports,
/// so they go ahead too.
///
/// # Errors
/// `Interrupted` on Ctrl-C (exports made stay, nothing more is removed); `Io` when a
/// removal, a folder's lock or `latest.tar.gz` fails.
pub fn mirror(
    repo: &Repo,
    plan: &MirrorPlan,
    opts: &ExportOptions,
    progress: &dyn Progress,
) -> Result<MirrorSummary> {
    let mut summary = MirrorSummary::default();
    for e in &plan.exports {
        crate::check_interrupt()?;
        let done = Snapshot::load(repo.storage(), &repo.keys, e.snapshot)
            .and_then(|snap| export(repo, e.snapshot, &snap, &plan.root, e.tier, opts, progress));
        match done {
            Ok(done) => summary.exported.push(done),
            Err(err) if err.kind() == crate::error::ErrorKind::Interrupted => return Err(err),
            Err(err) => {
                progress.warn(&format!(
                    "export of snapshot {} into {}/ failed: {err}",
                    e.snapshot.short(),
                    e.tier.name()
                ));
                summary.failed.push((e.clone(), err.to_string()));
                summary.first_error.get_or_insert(err);
            }
        }
    }
    for r in &plan.removals {
        crate::check_interrupt()?;
        let dir = r.path.parent().expect("a file in a tier folder");
        let _lock = folder::lock(dir)?;
        match read_manifest(&r.path) {
            Ok(m) if m.snapshot == r.snapshot.to_hex() => {
                remove(&r.path)?;
                summary.removed.push(r.path.clone());
            }
            Ok(m) => summary.skipped.push((
                r.path.clone(),
                format!("its {ARCHIVE_MANIFEST} names snapshot {}", m.snapshot),
            )),
            Err(e) => summary.skipped.push((r.path.clone(), e.to_string())),
        }
    }
    for k in &plan.kept {
        restore_sidecar(k, &mut summary)?;
    }
    for tier in Tier::ALL {
        let dir = plan.root.join(tier.name());
        if !dir.is_dir() {
            continue;
        }
        let _lock = folder::lock(&dir)?;
        let latest = match folder::update_latest(&dir, tier, repo.id()) {
            Err(e) if e.kind() == crate::error::ErrorKind::InvalidInput => {
                summary
                    .skipped
                    .push((dir.join(folder::LATEST), e.to_string()));
                None
            }
            other => other?,
        };
        folder::sync_dir(&dir)?;
        summary.latest.push((tier, latest));
    }
    Ok(summary)
}

/// Write a kept export's sidecar if it is missing (an export killed right after it was
/// named leaves none), once the file's bytes match its name.
fn restore_sidecar(k: &InFolder, summary: &mut MirrorSummary) -> Result<()> {
    let mut sidecar = k.path.as_os_str().to_owned();
    sidecar.push(".sha256");
    if Path::new(&sidecar).exists() {
        return Ok(());
    }
    let (Some(dir), Some(file)) = (k.path.parent(), k.path.file_name().and_then(|f| f.to_str()))
    else {
        return Ok(());
    };
    let sha = folder::sha256_file(&k.path)?;
    if ArchiveName::parse(file).is_ok_and(|n| n.matches(&sha)) {
        let _lock = folder::lock(dir)?;
        folder::write_sidecar(dir, file, &sha)?;
    } else {
        summary.skipped.push((
            k.path.clone(),
            "does not hold the bytes its name says; no sidecar written".to_string(),
        ));
    }
    Ok(())
}

/// Remove an export and its sidecar.
pub(crate) fn remove(path: &Path) -> Result<()> {
    let gone = |p: &Path, e: std::io::Error| Error::io(format!("removing {}", p.display()), e);
    std::fs::remove_file(path).or_else(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Ok(()),
        _ => Err(gone(path, e)),
    })?;
    let mut sidecar = path.as_os_str().to_owned();
    sidecar.push(".sha256");
    let sidecar = PathBuf::from(sidecar);
    std::fs::remove_file(&sidecar).or_else(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Ok(()),
        _ => Err(gone(&sidecar, e)),
    })
}

/// Most bytes of a MANIFEST.json read back.
const MAX_MANIFEST: u64 = 1 << 30;

/// The MANIFEST.json of an archive: its last member.
///
/// # Errors
/// `Corrupt` when the archive does not decode or does not end with a manifest; `Io`
/// when it cannot be read.
pub fn read_manifest(path: &Path) -> Result<ArchiveManifest> {
    let what = || format!("reading {}", path.display());
    let file = std::fs::File::open(path).map_err(|e| Error::io(what(), e))?;
    let gz = flate2::read::GzDecoder::new(std::io::BufReader::new(file));
    let mut archive = tar::Archive::new(gz);
    let damaged = |e: std::io::Error| Error::corrupt(format!("{}: {e}", what()));
    let mut last = None;
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        last = None;
        if *entry.path_bytes() == *ARCHIVE_MANIFEST.as_bytes() {
            let mut bytes = Vec::new();
            (&mut entry)
                .take(MAX_MANIFEST)
                .read_to_end(&mut bytes)
                .map_err(damaged)?;
            last = Some(bytes);
        }
    }
    let bytes = last.ok_or_else(|| {
        Error::corrupt(format!(
            "{} does not end with {ARCHIVE_MANIFEST}",
            path.display()
        ))
    })?;
    ArchiveManifest::parse(&bytes)
}
