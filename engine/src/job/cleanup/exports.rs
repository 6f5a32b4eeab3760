//! Exports in the tier folders: those of snapshots this repository no longer has, the
//! temporaries of exports whose process died, and damaged ones (bytes that do not match
//! their name or sidecar), which go to the quarantine folder rather than away.
//!
//! Which exports are this repository's, and of which snapshot, is what `export --mirror`
//! decides ([`plan_mirror`]): the name, the gzip comment, and before removal the
//! MANIFEST.json. Mirror also removes exports of snapshots that lost a tier tag; cleanup
//! only those whose snapshot is gone, and leaves the rest to mirror.

use super::files::changed;
use super::{Action, Category, CleanupOptions, CleanupPlan, CleanupSummary, Guard, Item, Outcome};
use crate::archive::folder::{self, LATEST};
use crate::archive::mirror::{plan_mirror, read_manifest, remove as remove_export};
use crate::archive::name::{ArchiveName, Tier};
use crate::error::{Error, ErrorKind, Result};
use crate::repository::repo::Repo;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Plan the tier folders under `root`.
///
/// # Errors
/// `InvalidInput` when the quarantine folder is a tier folder or inside one.
pub(super) fn plan(
    repo: Option<&Repo>,
    root: &Path,
    opts: &CleanupOptions,
    plan: &mut CleanupPlan,
) -> Result<()> {
    if let Some(t) = Tier::ALL
        .iter()
        .find(|t| opts.quarantine.starts_with(root.join(t.name())))
    {
        return Err(Error::invalid(format!(
            "the quarantine folder {} is inside the {} tier folder, where it would be taken for exports: set QUARANTINE_DIR elsewhere",
            opts.quarantine.display(),
            t.name()
        )));
    }
    let mut corrupt = Vec::new();
    for tier in Tier::ALL {
        let dir = root.join(tier.name());
        for path in folder::stale(&dir) {
            if let Ok(m) = std::fs::symlink_metadata(&path) {
                plan.items.push(Item {
                    category: Category::ExportTemp,
                    action: Action::Delete,
                    path,
                    bytes: m.len(),
                    reason: "temporary of an export whose process is gone".to_string(),
                    guard: Guard::Same(m.dev(), m.ino()),
                });
            }
        }
        check_hashes(&dir, tier, plan, &mut corrupt);
    }
    let Some(repo) = repo else { return Ok(()) };
    let mirror = match plan_mirror(repo, root).and_then(|m| Ok((m, repo.snapshots()?))) {
        Ok(m) => m,
        Err(e) => {
            plan.errors.push((
                root.to_path_buf(),
                format!("cannot tell orphaned exports: {e}"),
            ));
            return Ok(());
        }
    };
    let (mirror, (snaps, unreadable)) = mirror;
    let exists =
        |id| snaps.iter().any(|(s, _)| *s == id) || unreadable.iter().any(|(s, _)| *s == id);
    for r in &mirror.removals {
        if corrupt.contains(&r.path) {
            continue;
        }
        if exists(r.snapshot) {
            plan.left_alone.push((
                r.path.clone(),
                format!(
                    "its snapshot {} exists, no longer tagged {}: `masclet export --mirror` removes it",
                    r.snapshot.short(),
                    r.tier.name()
                ),
            ));
            continue;
        }
        let Ok(m) = std::fs::symlink_metadata(&r.path) else {
            continue;
        };
        plan.items.push(Item {
            category: Category::OrphanExport,
            action: Action::Delete,
            path: r.path.clone(),
            bytes: m.len() + sidecar_len(&r.path),
            reason: format!("its snapshot {} no longer exists", r.snapshot.short()),
            guard: Guard::Export(m.dev(), m.ino(), r.snapshot),
        });
    }
    for p in mirror.ignored {
        if !corrupt.contains(&p) {
            plan.left_alone.push((
                p,
                "not an export of this repository (not ours), left alone".to_string(),
            ));
        }
    }
    Ok(())
}

fn sidecar(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

fn sidecar_len(path: &Path) -> u64 {
    std::fs::symlink_metadata(sidecar(path)).map_or(0, |m| m.len())
}

/// Hash every classic archive of `tier` in `dir` that this user owns; plan the quarantine
/// of those whose SHA-256 disagrees with their name or their sidecar.
fn check_hashes(dir: &Path, tier: Tier, plan: &mut CleanupPlan, corrupt: &mut Vec<PathBuf>) {
    let uid = rustix::process::getuid().as_raw();
    let mut names: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.to_string(), e.path())))
        .filter(|(n, _)| ArchiveName::parse(n).is_ok_and(|a| a.tier == tier))
        .collect();
    names.sort();
    for (name, path) in names {
        let Ok(m) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !m.is_file() || m.uid() != uid {
            continue;
        }
        let sha = match crate::archive::reader::hash_file(&path, &crate::progress::NoProgress) {
            Ok((sha, _)) => sha,
            Err(e) => {
                plan.errors.push((path, format!("cannot check it: {e}")));
                continue;
            }
        };
        let hex = crate::disk::id::to_hex(&sha);
        let claimed = std::fs::read_to_string(sidecar(&path))
            .ok()
            .and_then(|s| s.split_whitespace().next().map(str::to_ascii_lowercase));
        let reason = if !ArchiveName::parse(&name).is_ok_and(|a| a.matches(&sha)) {
            format!("its SHA-256 {} does not match its name", &hex[..8])
        } else if claimed.as_ref().is_some_and(|c| *c != hex) {
            format!(
                "its SHA-256 {} does not match its .sha256 sidecar",
                &hex[..8]
            )
        } else {
            continue;
        };
        corrupt.push(path.clone());
        let bytes = m.len() + sidecar_len(&path);
        plan.items.push(Item {
            category: Category::CorruptExport,
            action: Action::Quarantine,
            path,
            bytes,
            reason,
            guard: Guard::Same(m.dev(), m.ino()),
        });
    }
}

/// Remove an orphaned export (with its sidecar) once its MANIFEST.json names the planned
/// snapshot, or a dead export's temporary.
pub(super) fn remove(item: &Item) -> Result<Outcome> {
    if let Some(why) = changed(item) {
        return Ok(Outcome::Skipped(why));
    }
    let dir = item.path.parent().expect("a file in a tier folder");
    let _lock = folder::lock(dir)?;
    match item.guard {
        Guard::Export(_, _, snapshot) => match read_manifest(&item.path) {
            Ok(m) if m.snapshot == snapshot.to_hex() => remove_export(&item.path)?,
            Ok(m) => {
                return Ok(Outcome::Skipped(format!(
                    "its MANIFEST.json names snapshot {}, left alone",
                    m.snapshot
                )));
            }
            Err(e) => return Ok(Outcome::Skipped(format!("{e}; left alone"))),
        },
        _ => std::fs::remove_file(&item.path)
            .map_err(|e| Error::io(format!("removing {}", item.path.display()), e))?,
    }
    folder::sync_dir(dir)?;
    Ok(Outcome::Done(None, 0))
}

/// Move a damaged export and its sidecar into the quarantine folder (made 0700), keeping
/// the name, or `<stem>.<n>.tar.gz` when taken. Never deleted: someone may want to look.
pub(super) fn quarantine(item: &Item, opts: &CleanupOptions) -> Result<Outcome> {
    if let Some(why) = changed(item) {
        return Ok(Outcome::Skipped(why));
    }
    let q = &opts.quarantine;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(q)
        .map_err(|e| {
            Error::io(
                format!(
                    "cannot create the quarantine folder {} (set QUARANTINE_DIR)",
                    q.display()
                ),
                e,
            )
        })?;
    let dir = item.path.parent().expect("a file in a tier folder");
    let name = item
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a classic archive name");
    let _lock = folder::lock(dir)?;
    let to = move_into(&item.path, q, name)?;
    let side = sidecar(&item.path);
    if side.exists() {
        let to_name = to.file_name().and_then(|n| n.to_str()).expect("utf-8 name");
        move_into(&side, q, &format!("{to_name}.sha256"))?;
    }
    folder::sync_dir(dir)?;
    folder::sync_dir(q)?;
    Ok(Outcome::Done(Some(to), 0))
}

/// Move `src` into `dir` as `name`, or the first free numbered variant: a rename on the
/// same filesystem, else a synced copy placed there before the original goes.
fn move_into(src: &Path, dir: &Path, name: &str) -> Result<PathBuf> {
    let same_fs = std::fs::metadata(dir)
        .and_then(|d| std::fs::metadata(src).map(|s| s.dev() == d.dev()))
        .map_err(|e| Error::io(format!("examining {}", src.display()), e))?;
    let temp = if same_fs {
        None
    } else {
        let prefix = super::files::own_temp_prefix();
        let mut t = tempfile::Builder::new()
            .prefix(&prefix)
            .tempfile_in(dir)
            .map_err(|e| Error::io(format!("writing into {}", dir.display()), e))?;
        let mut from = std::fs::File::open(src)
            .map_err(|e| Error::io(format!("reading {}", src.display()), e))?;
        // The copy keeps the original's time: when it was damaged may matter to whoever looks.
        std::io::copy(&mut from, t.as_file_mut())
            .and_then(|_| from.metadata()?.modified())
            .and_then(|m| t.as_file().set_modified(m))
            .and_then(|()| t.as_file().sync_all())
            .map_err(|e| {
                Error::io(
                    format!("copying {} into {}", src.display(), dir.display()),
                    e,
                )
            })?;
        Some(t.into_temp_path())
    };
    let from: &Path = temp.as_deref().unwrap_or(src);
    let (stem, ext) = name
        .strip_suffix(".tar.gz")
        .map_or((name, ""), |s| (s, ".tar.gz"));
    for n in 0..1000u32 {
        let to = match n {
            0 => dir.join(name),
            n => dir.join(format!("{stem}.{n}{ext}")),
        };
        if folder::place_new(from, &to)? {
            if let Some(t) = temp {
                // Placed: the temporary's name is gone already.
                let _ = t.keep();
                std::fs::remove_file(src).map_err(|e| {
                    Error::io(format!("removing {} after copying it", src.display()), e)
                })?;
            }
            return Ok(to);
        }
    }
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!(
            "{name} and a thousand numbered names are taken in {}: empty it",
            dir.display()
        ),
    ))
}

/// After removals and moves, point each touched tier folder's `latest.tar.gz` at its
/// newest export as mirror does; without a repository (exports cannot be told apart by
/// repository), only a link left pointing at nothing is removed.
pub(super) fn relink(repo: Option<&Repo>, dirs: &[PathBuf], s: &mut CleanupSummary) {
    for dir in dirs {
        let r = (|| {
            let _lock = folder::lock(dir)?;
            let tier = dir
                .file_name()
                .and_then(|n| n.to_str())
                .map(Tier::parse)
                .transpose()?
                .ok_or_else(|| Error::internal("a tier folder without a name"))?;
            let latest = match repo {
                Some(repo) => folder::update_latest(dir, tier, repo.id())?,
                None => {
                    let link = dir.join(LATEST);
                    let dangling = std::fs::symlink_metadata(&link)
                        .is_ok_and(|m| m.file_type().is_symlink())
                        && std::fs::metadata(&link).is_err();
                    if dangling {
                        std::fs::remove_file(&link)
                            .map_err(|e| Error::io(format!("removing {}", link.display()), e))?;
                    }
                    std::fs::read_link(&link)
                        .ok()
                        .map(|t| t.to_string_lossy().into_owned())
                }
            };
            folder::sync_dir(dir)?;
            Ok::<_, Error>(latest)
        })();
        match r {
            Ok(latest) => s.latest.push((dir.clone(), latest)),
            Err(e) if e.kind() == ErrorKind::InvalidInput => s.warnings.push(e.to_string()),
            Err(e) => s.failed.push((dir.join(LATEST), e.to_string())),
        }
    }
}
