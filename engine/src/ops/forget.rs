//! Carry out a retention plan: rewrite tier tags of kept snapshots, forget the others.
//!
//! Tags are rewritten in place (the snapshot is sealed again under its own id and replaces
//! the old object atomically), so snapshot ids stay stable for the people who wrote them
//! down. Forgetting deletes snapshot objects only; `gc` gives the space back.

use crate::disk::id::SnapshotId;
use crate::disk::snapshot::Snapshot;
use crate::error::{Error, Result};
use crate::ops::retention::{ForgetPlan, SnapshotRef};
use crate::repository::repo::Repo;
use crate::repository::storage::Kind;

/// What forget did.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ForgetSummary {
    /// Snapshots kept.
    pub kept: u64,
    /// Snapshots forgotten.
    pub removed: u64,
    /// Kept snapshots whose tags changed.
    pub retagged: u64,
}

/// The readable snapshots as retention sees them, and the ones that could not be read
/// (never forgotten: nobody can tell what they are).
///
/// # Errors
/// `Storage` if listing fails.
#[allow(clippy::type_complexity)]
pub fn snapshot_refs(repo: &Repo) -> Result<(Vec<SnapshotRef>, Vec<(SnapshotId, Error)>)> {
    let (snaps, bad) = repo.snapshots()?;
    Ok((
        snaps
            .into_iter()
            .map(|(id, s)| SnapshotRef {
                id,
                time: s.time,
                tags: s.tags,
            })
            .collect(),
        bad,
    ))
}

/// Forget exactly the snapshots `ids`, readable or not: the way out for a snapshot no
/// reader accepts (one written past the format's limits by an older version), which
/// retention leaves alone and which stops `gc` until it is gone.
///
/// # Errors
/// `Storage` errors; `Locked` if the lock was lost.
pub fn forget_ids(repo: &Repo, ids: &[SnapshotId]) -> Result<u64> {
    repo.ensure_writable()?;
    repo.ensure_lock()?;
    crate::check_interrupt()?;
    let names: Vec<String> = ids.iter().map(SnapshotId::to_hex).collect();
    repo.storage().delete_many(Kind::Snapshot, &names)?;
    Ok(names.len() as u64)
}

/// Execute `plan`: retag first, then delete, so an interrupted run loses no restore point
/// the plan keeps. Rerunning forget converges.
///
/// # Errors
/// `InvalidInput` if the plan would forget every snapshot; `Storage` errors.
pub fn forget(repo: &Repo, plan: &ForgetPlan) -> Result<ForgetSummary> {
    repo.ensure_writable()?;
    let mut s = ForgetSummary::default();
    if plan.kept().next().is_none() && plan.removed().next().is_some() {
        return Err(Error::invalid(
            "the policy keeps no snapshot at all; refusing to forget every snapshot",
        ));
    }
    repo.ensure_lock()?;
    for d in plan.kept() {
        s.kept += 1;
        if d.tags_after == d.tags_before {
            continue;
        }
        crate::check_interrupt()?;
        let mut snap = Snapshot::load(repo.storage(), &repo.keys, d.id)?;
        snap.tags.clone_from(&d.tags_after);
        let sealed = snap.seal(&repo.keys, d.id)?;
        repo.storage()
            .replace(Kind::Snapshot, &d.id.to_hex(), &sealed)?;
        s.retagged += 1;
    }
    repo.ensure_lock()?;
    crate::check_interrupt()?;
    let removed: Vec<String> = plan.removed().map(|d| d.id.to_hex()).collect();
    repo.storage().delete_many(Kind::Snapshot, &removed)?;
    s.removed += removed.len() as u64;
    Ok(s)
}
