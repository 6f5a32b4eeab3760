//! Cleanup (`masclet cleanup`): the original system's maintenance, "Archivos temporales >
//! 24h; Logs > 30 días; Backups huérfanos; Archivos corruptos", made safe.
//!
//! Two steps, so that `--dry-run` shows exactly what a real run would do: [`plan`] looks
//! and changes nothing; [`execute`] carries out a plan, checking each item again right
//! before touching it (a file replaced since the plan is left alone). What is cleaned:
//!
//! - temporary files `masclet_backup_*` directly in the temp folder, older than 24 h and
//!   owned by this user: deleted (links as links, never their targets) (cleanup/files.rs);
//! - logs `*.log` and `*.log.N` directly in the log folder, older than the age in days:
//!   gzip-compressed next to the original, never overwriting anything (cleanup/files.rs);
//! - exports in the tier folders whose snapshot no longer exists in this repository, and
//!   temporaries of exports whose process is gone: deleted; exports whose bytes do not
//!   match their name or sidecar: moved to the quarantine folder, never deleted
//!   (cleanup/exports.rs);
//! - packs no index row names, left by a crash, and the repository's temporary files of
//!   interrupted writes: deleted through gc's own planning, under the exclusive lock
//!   (cleanup/packs.rs).
//!
//! One item failing (an unreadable file) is recorded and the others go on.

mod exports;
mod files;
mod packs;

use crate::error::Result;
use crate::progress::Progress;
use crate::repository::repo::Repo;
use std::path::PathBuf;
use std::time::SystemTime;

/// Where cleanup looks, and when "now" is.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CleanupOptions {
    /// The folder holding `masclet_backup_*` temporaries (`TMPDIR`, else `/tmp`).
    pub temp_dir: PathBuf,
    /// The log folder (`LOG_DIR`, default `/logs`); `None`: logs are not looked at.
    pub log_dir: Option<PathBuf>,
    /// Logs older than this many days are compressed (`-a DAYS`, default 30).
    pub log_age_days: u32,
    /// The folder of the tier folders (`BACKUP_ROOT`); `None`: exports are not looked at.
    pub export_root: Option<PathBuf>,
    /// Where damaged exports are moved (`QUARANTINE_DIR`, default
    /// `BACKUP_ROOT/quarantine`).
    pub quarantine: PathBuf,
    /// The time ages are measured from.
    pub now: SystemTime,
}

impl CleanupOptions {
    /// The defaults the original used: temporaries in `TMPDIR` (else `/tmp`), logs in
    /// `/logs` older than 30 days, exports under `export_root` with damaged ones moved to
    /// `<export_root>/quarantine` (empty, and unused, without a root), now.
    pub fn new(export_root: Option<PathBuf>) -> Self {
        let temp_dir = std::env::var_os("TMPDIR")
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
        let quarantine = export_root
            .as_ref()
            .map_or_else(PathBuf::new, |r| r.join("quarantine"));
        Self {
            temp_dir,
            log_dir: Some(PathBuf::from("/logs")),
            log_age_days: 30,
            export_root,
            quarantine,
            now: SystemTime::now(),
        }
    }
}

/// What a plan item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// A `masclet_backup_*` temporary older than 24 h.
    TempFile,
    /// A log older than the age in days.
    Log,
    /// An export of a snapshot that no longer exists.
    OrphanExport,
    /// A temporary of an export whose process is gone.
    ExportTemp,
    /// An export whose bytes do not match its name or sidecar.
    CorruptExport,
    /// A pack no index row names (left by a crash).
    OrphanPack,
    /// The repository's temporary files of interrupted writes.
    RepoTemp,
}

/// What is done to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Removed (a directory with what it holds; a link as a link).
    Delete,
    /// Compressed to `<name>.gz` (or `<name>.<n>.gz` when that is taken), then removed.
    Gzip,
    /// Moved into the quarantine folder (with its sidecar).
    Quarantine,
}

/// One thing the plan will do.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Item {
    /// What it is.
    pub category: Category,
    /// What will be done.
    pub action: Action,
    /// The file (for packs, `packs/<id>` inside the repository).
    pub path: PathBuf,
    /// Its bytes (a directory: everything in it).
    pub bytes: u64,
    /// Why, for people.
    pub reason: String,
    /// What must still hold when the item is carried out.
    #[serde(skip)]
    pub(crate) guard: Guard,
}

/// Checked again right before an item is carried out.
#[derive(Debug, Clone, Default)]
pub(crate) enum Guard {
    /// Nothing more to check.
    #[default]
    None,
    /// Still the same file (device, inode) as planned.
    Same(u64, u64),
    /// An export: same file, and its MANIFEST.json names this snapshot.
    Export(u64, u64, crate::disk::id::SnapshotId),
}

/// What cleanup will do.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CleanupPlan {
    /// The items, by category.
    pub items: Vec<Item>,
    /// Files looked at and left alone (not masclet's, of another repository...), and why.
    pub left_alone: Vec<(PathBuf, String)>,
    /// Parts not done, and why (no repository, the repository locked by a backup).
    pub warnings: Vec<String>,
    /// Files that could not be examined, and why: they make the run a failure.
    pub errors: Vec<(PathBuf, String)>,
}

impl CleanupPlan {
    /// Bytes the items hold (what deleting them would free; compression frees less).
    pub fn bytes(&self) -> u64 {
        self.items.iter().map(|i| i.bytes).sum()
    }
}

/// One item carried out.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Done {
    /// The item.
    pub item: Item,
    /// Where it went: the `.gz` written, the path in quarantine.
    pub to: Option<PathBuf>,
    /// Bytes it left behind (the `.gz`'s size; 0 otherwise).
    pub bytes_after: u64,
    /// Bytes given back.
    pub freed: u64,
}

/// Count and bytes freed of one category.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Total {
    /// The category.
    pub category: Category,
    /// Items done.
    pub count: u64,
    /// Bytes freed.
    pub freed: u64,
}

/// What cleanup did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CleanupSummary {
    /// Items carried out.
    pub done: Vec<Done>,
    /// Items not carried out (changed since the plan, already gone), and why.
    pub skipped: Vec<(PathBuf, String)>,
    /// Items (and files) that failed, and why: the run is a failure.
    pub failed: Vec<(PathBuf, String)>,
    /// The plan's warnings, and those of the run.
    pub warnings: Vec<String>,
    /// Per category, what was done.
    pub totals: Vec<Total>,
    /// Per tier folder touched, the export `latest.tar.gz` points at now.
    pub latest: Vec<(PathBuf, Option<String>)>,
    /// Bytes given back in all.
    pub freed: u64,
}

impl CleanupSummary {
    /// Whether every item went through (nothing failed).
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Plan a cleanup. Changes nothing.
///
/// With `repo`, exports are tied to its snapshots and its orphaned packs are looked for
/// (through gc's planning, which reads every snapshot); without it, only the files are.
/// A file that cannot be examined is recorded in [`CleanupPlan::errors`] and the others go
/// on.
///
/// # Errors
/// `InvalidInput` for an age of 0 days (the log being written would be compressed away
/// from under its writer), or when the quarantine folder is inside a tier folder (it
/// would be scanned as exports). Everything else is recorded per item.
pub fn plan(
    repo: Option<&Repo>,
    opts: &CleanupOptions,
    progress: &dyn Progress,
) -> Result<CleanupPlan> {
    if opts.log_age_days == 0 {
        return Err(crate::error::Error::invalid(
            "a log age of 0 days would compress the log being written: use -a 1 or more",
        ));
    }
    let mut plan = CleanupPlan::default();
    files::plan_temp(opts, &mut plan);
    files::plan_logs(opts, &mut plan);
    match &opts.export_root {
        Some(root) => {
            exports::plan(repo, root, opts, &mut plan)?;
            files::plan_own_temps(&opts.quarantine, &mut plan);
        }
        None => plan
            .warnings
            .push("no BACKUP_ROOT: exports not looked at".to_string()),
    }
    match repo {
        Some(repo) => packs::plan(repo, progress, &mut plan),
        None => plan
            .warnings
            .push("no repository: orphaned exports and packs not looked for".to_string()),
    }
    Ok(plan)
}

/// Carry out `plan` (made by [`plan`] with the same `repo` and `opts`).
///
/// Each item is checked again first: a file replaced or changed since the plan is
/// skipped, an export is removed only once its MANIFEST.json names the planned snapshot.
/// A failed item is recorded and the others go on; [`CleanupSummary::ok`] says whether
/// all went through. The repository's items need `repo` opened with the exclusive lock
/// (no backup may be writing a pack not indexed yet); under another lock they are skipped.
///
/// # Errors
/// `Interrupted` on Ctrl-C (what was done stays done).
pub fn execute(
    repo: Option<&Repo>,
    plan: &CleanupPlan,
    opts: &CleanupOptions,
) -> Result<CleanupSummary> {
    let mut s = CleanupSummary {
        warnings: plan.warnings.clone(),
        failed: plan.errors.clone(),
        ..CleanupSummary::default()
    };
    let mut touched = Vec::new();
    for item in &plan.items {
        crate::check_interrupt()?;
        let done = match item.category {
            Category::TempFile => files::remove_temp(item, opts),
            Category::Log => files::compress_log(item),
            Category::OrphanExport | Category::ExportTemp => exports::remove(item),
            Category::CorruptExport => exports::quarantine(item, opts),
            Category::OrphanPack | Category::RepoTemp => continue,
        };
        if matches!(
            item.category,
            Category::OrphanExport | Category::CorruptExport
        ) && let Some(dir) = item.path.parent()
            && !touched.iter().any(|d| d == dir)
        {
            touched.push(dir.to_path_buf());
        }
        record(&mut s, item, done);
    }
    exports::relink(repo, &touched, &mut s);
    packs::execute(repo, plan, &mut s)?;
    s.freed = s.done.iter().map(|d| d.freed).sum();
    let mut totals: Vec<Total> = Vec::new();
    for d in &s.done {
        match totals.iter_mut().find(|t| t.category == d.item.category) {
            Some(t) => {
                t.count += 1;
                t.freed += d.freed;
            }
            None => totals.push(Total {
                category: d.item.category,
                count: 1,
                freed: d.freed,
            }),
        }
    }
    totals.sort_by_key(|t| t.category);
    s.totals = totals;
    Ok(s)
}

/// What carrying out one item gave.
pub(crate) enum Outcome {
    /// Done: where it went, bytes left behind.
    Done(Option<PathBuf>, u64),
    /// Not done, for a reason that is no failure (changed or gone since the plan).
    Skipped(String),
}

fn record(s: &mut CleanupSummary, item: &Item, r: Result<Outcome>) {
    match r {
        Ok(Outcome::Done(to, after)) => s.done.push(Done {
            item: item.clone(),
            to,
            bytes_after: after,
            freed: item.bytes.saturating_sub(after),
        }),
        Ok(Outcome::Skipped(why)) => s.skipped.push((item.path.clone(), why)),
        Err(e) => s.failed.push((item.path.clone(), e.to_string())),
    }
}

/// The device and inode of `path` itself (not a link's target).
pub(crate) fn identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
mod tests;
