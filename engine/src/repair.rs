//! `repair index`: rebuild the SQLite index from the packs' own trailers.
//!
//! The new index is built beside the old one and swapped in only when complete, so an
//! interrupted repair leaves the old state (usable or not) and can simply be rerun. Packs
//! whose trailer cannot be read are left out and reported; snapshots that then reference
//! chunks no pack holds are reported too.

use crate::error::Result;
use crate::format::ObjectType;
use crate::id::PackId;
use crate::index::{Index, remove_files};
use crate::lock::{self, LockMode};
use crate::pack::read_trailer;
use crate::progress::{Progress, Unit};
use crate::repo::{OpenOptions, Repo, unlock};
use crate::storage::{Kind, Storage};
use crate::tree::Record;
use rayon::prelude::*;
use std::path::Path;
use std::sync::Arc;

/// What a rebuild found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RepairReport {
    /// Packs indexed.
    pub packs: u64,
    /// Chunks indexed.
    pub chunks: u64,
    /// Packs left out, with the reason.
    pub damaged_packs: Vec<(String, String)>,
    /// Snapshots that reference chunks no pack holds.
    pub incomplete_snapshots: Vec<String>,
}

/// Rebuild the index of the repository in `storage` at `index_path`.
///
/// # Errors
/// `WrongPassword`, `Locked`, `Storage`, or SQLite failures while building.
pub fn repair_index(
    storage: Arc<dyn Storage>,
    index_path: &Path,
    passphrase: &[u8],
    opts: &OpenOptions,
    progress: &dyn Progress,
) -> Result<RepairReport> {
    let (keys, _config) = unlock(storage.as_ref(), passphrase)?;
    let lock = lock::acquire(
        Arc::clone(&storage),
        LockMode::Exclusive,
        &opts.operation,
        opts.lock_wait,
        &mut Vec::new(),
    )?;
    let mut report = RepairReport::default();
    let packs = storage.list(Kind::Pack)?;
    progress.start(
        "reading pack trailers",
        Some(packs.len() as u64),
        Unit::Items,
    );
    let trailers: Vec<_> = packs
        .par_iter()
        .map(|(name, size)| {
            progress.inc(1);
            let r = PackId::from_hex(name)
                .and_then(|id| read_trailer(storage.as_ref(), &keys, id, *size).map(|e| (id, e)));
            (name.clone(), *size, r)
        })
        .collect();
    progress.finish();

    let tmp = index_path.with_extension("rebuild");
    remove_files(&tmp)
        .map_err(|e| crate::Error::storage(format!("removing {}", tmp.display()), e))?;
    let index = Index::create(&tmp, keys.repo_id())?;
    for (name, size, r) in trailers {
        match r {
            Ok((id, entries)) => {
                crate::check_interrupt()?;
                index.add_pack(id, size, &entries)?;
                report.packs += 1;
                report.chunks += entries.len() as u64;
            }
            Err(e) => report.damaged_packs.push((name, e.to_string())),
        }
    }
    drop(index);
    lock.ensure_held()?;
    // Swap: the stale WAL must go first, or SQLite would replay it onto the new database.
    remove_files(index_path)
        .map_err(|e| crate::Error::storage(format!("removing {}", index_path.display()), e))?;
    std::fs::rename(&tmp, index_path)
        .map_err(|e| crate::Error::storage(format!("installing {}", index_path.display()), e))?;
    if let Some(dir) = index_path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| crate::Error::storage("syncing the index directory", e))?;
    }

    drop(lock);
    // Report snapshots the rebuilt index cannot fully serve.
    let repo = Repo::open(
        storage,
        index_path,
        passphrase,
        &OpenOptions::new("repair", None),
    )?;
    let (snaps, unreadable) = repo.snapshots()?;
    report
        .incomplete_snapshots
        .extend(unreadable.into_iter().map(|(id, _)| id.to_hex()));
    for (sid, snap) in snaps {
        let complete = snap
            .tree
            .iter()
            .all(|(id, _)| repo.index.contains(id).unwrap_or(false))
            && {
                let mut reader = repo.tree_reader(&snap);
                let mut ok = true;
                loop {
                    match reader.next_record() {
                        Ok(Some(Record::FileChunk(id, _))) => {
                            ok &= repo
                                .index
                                .locate(&id)
                                .ok()
                                .flatten()
                                .is_some_and(|l| l.ty == ObjectType::Data)
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => break ok,
                        Err(_) => break false,
                    }
                }
            };
        if !complete {
            report.incomplete_snapshots.push(sid.to_hex());
        }
    }
    Ok(report)
}
