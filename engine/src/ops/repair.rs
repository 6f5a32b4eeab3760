//! `repair index`: rebuild the SQLite index from the packs' own trailers.
//!
//! The new index is built beside the old one and swapped in only when complete, so an
//! interrupted repair leaves the old state (usable or not) and can simply be rerun.
//!
//! Every chunk that can still be read is adopted, and only those (format-spec.md, "The index"):
//! a pack whose header is damaged but whose trailer authenticates is salvaged chunk by
//! chunk (each chunk authenticated; the ones that fail are left out), and a delta whose base
//! chain does not end in adopted whole chunks is dropped (a dead delta gc left in a kept
//! pack after deleting its base, say): a backup deduplicating against it would reference
//! data nobody can decode. Packs whose trailer cannot be read are left out and reported;
//! snapshots that then reference chunks no pack holds are reported too.

use crate::disk::crypto::Keys;
use crate::disk::format::{FORMAT_VERSION, OLDEST_READABLE_FORMAT, ObjectType, PACK_HEADER_LEN};
use crate::disk::id::PackId;
use crate::disk::pack::{PackEntry, read_trailer, read_trailer_past_header};
use crate::error::{Error, ErrorKind, Result};
use crate::progress::{Progress, Unit};
use crate::repository::index::{Index, remove_files};
use crate::repository::lock::{self, LockMode};
use crate::repository::repo::{OpenOptions, Repo, unlock};
use crate::repository::storage::{Kind, Storage};
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
    /// Damaged packs whose trailer still authenticates: the pack, why it failed the strict
    /// read, and how many of its chunks were adopted and left out.
    pub salvaged_packs: Vec<SalvagedPack>,
    /// Delta chunks left out because their base chain is not stored.
    pub undecodable_chunks: u64,
    /// Snapshots that reference chunks no pack holds.
    pub incomplete_snapshots: Vec<String>,
}

/// A damaged pack some of whose chunks were adopted.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SalvagedPack {
    /// The pack.
    pub pack: String,
    /// Why its strict read failed.
    pub damage: String,
    /// Chunks adopted.
    pub adopted: u64,
    /// Chunks that failed authentication, left out.
    pub lost: u64,
}

/// What reading one pack gave: its entries (salvaged ones with the strict read's error
/// and the count left out), or why nothing of it can be used.
type PackRead = Result<(Vec<PackEntry>, Option<(Error, u64)>)>;

/// The entries of pack `id`, salvaging a damaged one when its trailer authenticates.
fn read_pack(storage: &dyn Storage, keys: &Keys, id: PackId, size: u64) -> PackRead {
    match read_trailer(storage, keys, id, size) {
        Ok(entries) => Ok((entries, None)),
        Err(e) if e.kind() == ErrorKind::Corrupt || e.kind() == ErrorKind::Unsupported => {
            match salvage(storage, keys, id) {
                Ok((entries, lost)) if !entries.is_empty() => Ok((entries, Some((e, lost)))),
                // Nothing salvaged: the strict read's error says what is wrong.
                Ok(_) => Err(e),
                Err(s) if s.kind() == ErrorKind::Corrupt => Err(e),
                Err(s) => Err(s),
            }
        }
        Err(e) => Err(e),
    }
}

/// Salvage a pack that fails the strict read (a flipped byte in its magic or version):
/// read its trailer without trusting the header, trying each format version it could be,
/// and keep each chunk that authenticates. Returns the kept entries and how many failed.
/// A pack whose trailer is damaged cannot be salvaged: chunk boundaries and ids are
/// known only from it.
fn salvage(storage: &dyn Storage, keys: &Keys, id: PackId) -> Result<(Vec<PackEntry>, u64)> {
    let bytes = storage.get(Kind::Pack, &id.to_hex())?;
    let read = |off: u64, len: u64| -> Result<Vec<u8>> {
        let a = usize::try_from(off).ok();
        let b = off.checked_add(len).and_then(|e| usize::try_from(e).ok());
        a.zip(b)
            .and_then(|(a, b)| bytes.get(a..b))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Error::corrupt("pack shorter than its trailer says"))
    };
    let size = bytes.len() as u64;
    let stated = bytes
        .get(8..PACK_HEADER_LEN)
        .map(|v| u32::from_le_bytes(v.try_into().expect("4 bytes")));
    let mut versions: Vec<u32> = stated.into_iter().collect();
    versions.extend((OLDEST_READABLE_FORMAT..=FORMAT_VERSION).rev());
    let mut last = Error::corrupt("pack has no readable trailer");
    for v in versions {
        if !(OLDEST_READABLE_FORMAT..=FORMAT_VERSION).contains(&v) {
            continue;
        }
        match read_trailer_past_header(keys, id, size, v, &read) {
            Ok(entries) => {
                let (good, bad): (Vec<PackEntry>, Vec<PackEntry>) =
                    entries.into_iter().partition(|e| {
                        read(e.offset, u64::from(e.sealed_len)).is_ok_and(|sealed| {
                            keys.authenticate_chunk(e.ty, &e.id, &sealed, e.base.as_ref())
                                .is_ok()
                        })
                    });
                return Ok((good, bad.len() as u64));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
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
    let (keys, config) = unlock(storage.as_ref(), passphrase)?;
    let lock = lock::acquire(
        Arc::clone(&storage),
        LockMode::Exclusive,
        &opts.operation,
        opts.lock_wait,
        &mut Vec::new(),
    )?;
    let mut report = RepairReport::default();
    let trailers = read_trailers(storage.as_ref(), &keys, progress)?;
    let tmp = index_path.with_extension("rebuild");
    build(&tmp, &keys, config.format, trailers, &mut report)?;
    lock.ensure_held()?;
    install(&tmp, index_path)?;
    drop(lock);
    // Report snapshots the rebuilt index cannot fully serve.
    let repo = Repo::open(
        storage,
        index_path,
        passphrase,
        &OpenOptions::new("repair", None),
    )?;
    report.incomplete_snapshots = incomplete_snapshots(&repo)?;
    Ok(report)
}

/// Every stored pack with what reading it gave, read in parallel.
type Trailers = Vec<(
    String,
    u64,
    Result<(PackId, (Vec<PackEntry>, Option<(Error, u64)>))>,
)>;

/// Read (or salvage) the trailer of every stored pack.
fn read_trailers(storage: &dyn Storage, keys: &Keys, progress: &dyn Progress) -> Result<Trailers> {
    let packs = storage.list(Kind::Pack)?;
    progress.start(
        "reading pack trailers",
        Some(packs.len() as u64),
        Unit::Items,
    );
    let trailers = packs
        .par_iter()
        .map(|(name, size)| {
            progress.inc(1);
            let r = PackId::from_hex(name)
                .and_then(|id| read_pack(storage, keys, id, *size).map(|e| (id, e)));
            (name.clone(), *size, r)
        })
        .collect();
    progress.finish();
    Ok(trailers)
}

/// Build the new index at `tmp` from the packs read, recording in `report` what was
/// adopted, salvaged and left out.
fn build(
    tmp: &Path,
    keys: &Keys,
    format: u32,
    trailers: Trailers,
    report: &mut RepairReport,
) -> Result<()> {
    remove_files(tmp)
        .map_err(|e| crate::Error::storage(format!("removing {}", tmp.display()), e))?;
    let index = Index::create(tmp, keys.repo_id())?;
    index.record_format(format)?;
    for (name, size, r) in trailers {
        match r {
            Ok((id, (entries, salvaged))) => {
                crate::check_interrupt()?;
                index.add_pack(id, size, &entries)?;
                report.packs += 1;
                report.chunks += entries.len() as u64;
                if let Some((damage, lost)) = salvaged {
                    report.salvaged_packs.push(SalvagedPack {
                        pack: name,
                        damage: damage.to_string(),
                        adopted: entries.len() as u64,
                        lost,
                    });
                }
            }
            // Storage failures stop the repair: a pack that could not be read is not
            // damaged, and leaving it out would lose its chunks from the index.
            Err(e) if e.kind() == ErrorKind::Corrupt || e.kind() == ErrorKind::Unsupported => {
                report.damaged_packs.push((name, e.to_string()));
            }
            Err(e) => return Err(e.context(format!("reading pack {name}"))),
        }
    }
    report.undecodable_chunks = index.drop_undecodable()?;
    report.chunks -= report.undecodable_chunks;
    Ok(())
}

/// Swap the rebuilt index at `tmp` in as `index_path`, durably.
fn install(tmp: &Path, index_path: &Path) -> Result<()> {
    // The stale WAL must go first, or SQLite would replay it onto the new database.
    remove_files(index_path)
        .map_err(|e| crate::Error::storage(format!("removing {}", index_path.display()), e))?;
    std::fs::rename(tmp, index_path)
        .map_err(|e| crate::Error::storage(format!("installing {}", index_path.display()), e))?;
    if let Some(dir) = index_path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| crate::Error::storage("syncing the index directory", e))?;
    }
    Ok(())
}

/// The snapshots that cannot be read, then those the index cannot fully serve.
fn incomplete_snapshots(repo: &Repo) -> Result<Vec<String>> {
    let (snaps, unreadable) = repo.snapshots()?;
    let mut incomplete: Vec<String> = unreadable.into_iter().map(|(id, _)| id.to_hex()).collect();
    for (sid, snap) in snaps {
        if !snapshot_complete(repo, &snap)? {
            incomplete.push(sid.to_hex());
        }
    }
    Ok(incomplete)
}

/// Whether every chunk `snap` references is indexed with the right type. Damage in its tree
/// makes it incomplete; index and storage failures are errors, not damage.
fn snapshot_complete(repo: &Repo, snap: &crate::disk::snapshot::Snapshot) -> Result<bool> {
    for (id, _) in &snap.tree {
        if !repo.index.contains(id)? {
            return Ok(false);
        }
    }
    for chunk in repo.file_chunks(snap) {
        match chunk {
            Ok(c) => {
                let data = repo
                    .index
                    .locate(&c.id)?
                    .is_some_and(|l| l.ty == ObjectType::Data);
                if !data {
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == ErrorKind::Corrupt || e.kind() == ErrorKind::NotFound => {
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
