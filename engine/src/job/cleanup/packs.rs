//! The repository's crash leftovers: packs in storage that no index row names (a backup
//! killed after writing a pack and before indexing it), and temporary files of writes
//! interrupted long ago.
//!
//! Found by gc's own planning ([`crate::ops::gc::plan`], its `orphans`), which also
//! refuses when any referenced chunk or pack is missing. Only the orphans are deleted,
//! with the storage calls gc's execution uses: no repacking, no index row dropped, no
//! pack with an index row touched, whatever gc would reclaim from forgotten snapshots
//! (`masclet gc` does that). Safe only under the exclusive lock: a running backup's
//! newest pack is not indexed yet either.

use super::{Action, Category, CleanupPlan, CleanupSummary, Done, Guard, Item};
use crate::error::Result;
use crate::ops::gc::{self, GcOptions};
use crate::progress::Progress;
use crate::repository::lock::{LockMode, stale_after};
use crate::repository::repo::Repo;
use crate::repository::storage::Kind;
use std::path::{Path, PathBuf};

/// Where pack `hex` is, relative to the repository.
fn pack_path(hex: &str) -> PathBuf {
    Path::new(Kind::Pack.dir()).join(hex)
}

/// What stands for the repository's temporaries in the plan.
const TEMPS: &str = "temporary files of interrupted writes";

/// Plan the deletion of orphaned packs and old temporaries.
pub(super) fn plan(repo: &Repo, progress: &dyn Progress, plan: &mut CleanupPlan) {
    // A threshold of 1.0: no pack is ever more than wholly dead, so gc plans no repack.
    let opts = GcOptions::new(1.0).max_unused(1.0);
    let gc = match gc::plan(repo, &opts, progress) {
        Ok(p) => p,
        Err(e) => {
            plan.errors.push((
                PathBuf::from(Kind::Pack.dir()),
                format!("orphaned packs not looked for: {e}"),
            ));
            return;
        }
    };
    for (pack, size) in &gc.orphans {
        plan.items.push(Item {
            category: Category::OrphanPack,
            action: Action::Delete,
            path: pack_path(&pack.to_hex()),
            bytes: *size,
            reason: "no index row names it (left by an interrupted write)".to_string(),
            guard: Guard::None,
        });
    }
    if !gc.delete.is_empty() {
        plan.warnings.push(format!(
            "{} packs hold only data of forgotten snapshots: `masclet gc` reclaims them",
            gc.delete.len()
        ));
    }
    match repo.storage().leftovers(stale_after()) {
        Ok((0, _)) => {}
        Ok((n, bytes)) => plan.items.push(Item {
            category: Category::RepoTemp,
            action: Action::Delete,
            path: PathBuf::from(TEMPS),
            bytes,
            reason: format!("{n} files untouched for longer than a lock may go unrefreshed"),
            guard: Guard::None,
        }),
        Err(e) => plan
            .errors
            .push((PathBuf::from(TEMPS), format!("cannot list them: {e}"))),
    }
}

/// Delete the planned orphans and temporaries, under the exclusive lock only.
///
/// # Errors
/// `Interrupted` on Ctrl-C between batches.
pub(super) fn execute(
    repo: Option<&Repo>,
    plan: &CleanupPlan,
    s: &mut CleanupSummary,
) -> Result<()> {
    let items: Vec<&Item> = plan
        .items
        .iter()
        .filter(|i| matches!(i.category, Category::OrphanPack | Category::RepoTemp))
        .collect();
    if items.is_empty() {
        return Ok(());
    }
    let refuse = match repo {
        None => Some("no repository open".to_string()),
        Some(r) if r.lock_mode() != Some(LockMode::Exclusive) => Some(
            "the repository is not under the exclusive lock (a backup's newest pack is not indexed yet either)"
                .to_string(),
        ),
        Some(r) => r.ensure_lock().err().map(|e| e.to_string()),
    };
    let (Some(repo), None) = (repo, refuse.clone()) else {
        let why = refuse.unwrap_or_default();
        s.failed
            .extend(items.iter().map(|i| (i.path.clone(), why.clone())));
        return Ok(());
    };
    let packs: Vec<&Item> = items
        .iter()
        .copied()
        .filter(|i| i.category == Category::OrphanPack)
        .collect();
    for batch in packs.chunks(256) {
        crate::check_interrupt()?;
        let names: Vec<String> = batch
            .iter()
            .filter_map(|i| i.path.file_name()?.to_str().map(str::to_string))
            .collect();
        match repo.storage().delete_many(Kind::Pack, &names) {
            Ok(()) => s.done.extend(batch.iter().map(|i| done(i, i.bytes))),
            Err(e) => s
                .failed
                .extend(batch.iter().map(|i| (i.path.clone(), e.to_string()))),
        }
    }
    if let Some(t) = items.iter().find(|i| i.category == Category::RepoTemp) {
        match repo.storage().remove_leftovers(stale_after()) {
            Ok((_, bytes)) => s.done.push(done(t, bytes)),
            Err(e) => s.failed.push((t.path.clone(), e.to_string())),
        }
    }
    Ok(())
}

fn done(item: &Item, freed: u64) -> Done {
    Done {
        item: item.clone(),
        to: None,
        bytes_after: 0,
        freed,
    }
}
