//! `check`: is every snapshot restorable from what is stored?
//!
//! Structure (always): every indexed pack exists with the recorded size and an authentic
//! trailer that agrees with the index; every snapshot opens; its tree stream decodes and
//! validates; every chunk it references is indexed in a sound pack. With `read_data`,
//! every chunk of every pack is also decrypted and re-hashed. Damage is reported per object
//! together with the snapshots it hurts; packs the index does not know are orphans (left by
//! an interrupted backup), reported as information, not as errors.

mod snapshots;

use crate::disk::format::MAX_OBJECT_SIZE;
use crate::disk::id::{ChunkId, PackId};
use crate::disk::pack::{PackEntry, read_trailer, read_trailer_with};
use crate::error::{ErrorKind, Result};
use crate::progress::{Progress, Unit};
use crate::repository::repo::Repo;
use crate::repository::storage::Kind;
use rayon::prelude::*;
use snapshots::{check_snapshots, walk_snapshots};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Options of a check.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct CheckOptions {
    /// Decrypt and re-hash every chunk.
    pub read_data: bool,
}

impl CheckOptions {
    /// Options with `read_data` as given.
    pub fn new(read_data: bool) -> Self {
        Self { read_data }
    }
}

/// One damaged object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// What is damaged: `pack <id>`, `chunk <id>`, `snapshot <id>`.
    pub object: String,
    /// What is wrong with it.
    pub message: String,
}

/// The result of a check.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckReport {
    /// Snapshots examined.
    pub snapshots: u64,
    /// Packs examined.
    pub packs: u64,
    /// Chunks decrypted and re-hashed (with `read_data`).
    pub chunks_read: u64,
    /// Damaged objects.
    pub problems: Vec<Problem>,
    /// Snapshots that cannot be fully restored, with how many problems touch each.
    pub damaged_snapshots: BTreeMap<String, u64>,
    /// Packs present but not indexed (harmless; gc reclaims them).
    pub orphan_packs: Vec<String>,
    /// Temporary files of killed writes, idle past the lock stale limit, and their bytes
    /// (harmless; gc removes them).
    pub leftovers: (u64, u64),
}

impl CheckReport {
    /// Whether nothing is damaged.
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.damaged_snapshots.is_empty()
    }
}

fn verify_pack(
    repo: &Repo,
    id: PackId,
    size: u64,
    read_data: bool,
) -> (Result<Vec<PackEntry>>, Vec<(ChunkId, String)>) {
    if !read_data {
        return (read_trailer(repo.storage(), &repo.keys, id, size), vec![]);
    }
    let bytes = match repo.storage().get(Kind::Pack, &id.to_hex()) {
        Ok(b) => b,
        Err(e) => return (Err(e), vec![]),
    };
    let read = |off: u64, len: u64| -> Result<Vec<u8>> {
        let end = off
            .checked_add(len)
            .filter(|e| *e <= bytes.len() as u64)
            .ok_or_else(|| crate::Error::corrupt("pack truncated"))?;
        Ok(
            bytes[usize::try_from(off).expect("bounded")..usize::try_from(end).expect("bounded")]
                .to_vec(),
        )
    };
    let entries = match read_trailer_with(&repo.keys, id, bytes.len() as u64, &read) {
        Ok(e) => e,
        Err(e) => return (Err(e), vec![]),
    };
    let keys = &repo.keys;
    let judge = |e: &PackEntry, opened: Result<Vec<u8>>| match opened {
        Ok(p) if p.len() == e.raw_len as usize => None,
        Ok(_) => Some((e.id, "length differs from the pack trailer".to_string())),
        Err(err) => Some((e.id, err.to_string())),
    };
    let slice = |e: &PackEntry| {
        usize::try_from(e.offset)
            .ok()
            .and_then(|o| bytes.get(o..o + e.sealed_len as usize))
    };
    // Whole chunks in parallel; deltas need their base through the index, one by one.
    let mut bad: Vec<(ChunkId, String)> = entries
        .par_iter()
        .filter(|e| e.base.is_none())
        .filter_map(|e| {
            judge(
                e,
                slice(e)
                    .ok_or_else(|| crate::Error::corrupt("out of range"))
                    .and_then(|s| keys.open_chunk(e.ty, &e.id, s, MAX_OBJECT_SIZE)),
            )
        })
        .collect();
    // A delta gc already forgot (still in a pack below the repack threshold) may have lost
    // its base to that same gc: it is garbage awaiting a repack, not damage.
    for e in entries.iter().filter(|e| e.base.is_some()) {
        match repo.index.contains(&e.id) {
            Ok(true) => {}
            Ok(false) => continue,
            // Not damage of this pack: the check itself cannot go on.
            Err(err) => return (Err(err), bad),
        }
        let opened = slice(e)
            .ok_or_else(|| crate::Error::corrupt("out of range"))
            .and_then(|s| repo.open_sealed(e, s));
        bad.extend(judge(e, opened));
    }
    (Ok(entries), bad)
}

/// Check the repository.
///
/// # Errors
/// Only for failures that stop the check itself (listing storage, the index); damage is
/// reported in the [`CheckReport`].
pub fn check(repo: &Repo, opts: CheckOptions, progress: &dyn Progress) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let stored: HashMap<String, u64> = repo.storage().list(Kind::Pack)?.into_iter().collect();
    let indexed = repo.index.packs()?;
    let indexed_names: HashSet<String> = indexed.iter().map(|(p, _)| p.to_hex()).collect();
    report.orphan_packs = stored
        .keys()
        .filter(|n| !indexed_names.contains(*n))
        .cloned()
        .collect();
    report.orphan_packs.sort();
    report.leftovers = repo
        .storage()
        .leftovers(crate::repository::lock::stale_after())?;
    let damage = check_packs(repo, &indexed, &stored, opts, &mut report, progress)?;
    check_snapshots(repo, &damage, opts, &mut report, progress)?;
    Ok(report)
}

/// Check one snapshot: it opens, its tree decodes, every chunk it references is indexed
/// and of the length the tree gives, and with `read_data` every file's content is read
/// back from the packs and verified as restore would. The nightly job's post-backup
/// check: it costs one read of the new snapshot, not of the whole repository.
///
/// # Errors
/// `NotFound` when the snapshot does not exist; failures that stop the check itself.
/// Damage is reported in the [`CheckReport`].
pub fn check_snapshot(
    repo: &Repo,
    id: crate::disk::id::SnapshotId,
    opts: CheckOptions,
    progress: &dyn Progress,
) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    match crate::disk::snapshot::Snapshot::load(repo.storage(), &repo.keys, id) {
        Ok(snap) => walk_snapshots(
            repo,
            &[(id, snap)],
            &Damaged::default(),
            opts,
            &mut report,
            progress,
        )?,
        Err(e) if e.kind() == crate::error::ErrorKind::Corrupt => {
            problem(&mut report, format!("snapshot {id}"), e.to_string());
            report.damaged_snapshots.insert(id.to_hex(), 1);
        }
        Err(e) => return Err(e),
    }
    Ok(report)
}

/// Report a damaged object.
fn problem(report: &mut CheckReport, object: String, message: String) {
    report.problems.push(Problem { object, message });
}

/// What the pack phase found damaged, for judging the snapshots.
#[derive(Default)]
struct Damaged {
    packs: HashSet<PackId>,
    chunks: HashMap<ChunkId, String>,
}

/// Check every indexed pack against storage, its trailer and (with `read_data`) its
/// chunks.
fn check_packs(
    repo: &Repo,
    indexed: &[(PackId, u64)],
    stored: &HashMap<String, u64>,
    opts: CheckOptions,
    report: &mut CheckReport,
    progress: &dyn Progress,
) -> Result<Damaged> {
    let per_pack = repo.index.chunks_per_pack()?;
    progress.start("checking packs", Some(indexed.len() as u64), Unit::Items);
    let mut damaged = Damaged::default();
    for (id, size) in indexed {
        crate::check_interrupt()?;
        report.packs += 1;
        progress.inc(1);
        let name = id.to_hex();
        let Some(actual) = stored.get(&name) else {
            problem(
                report,
                format!("pack {name}"),
                "missing from storage".into(),
            );
            damaged.packs.insert(*id);
            continue;
        };
        if actual != size {
            problem(
                report,
                format!("pack {name}"),
                format!("has {actual} bytes, the index says {size} (truncated or replaced)"),
            );
            damaged.packs.insert(*id);
            continue;
        }
        let (entries, bad) = verify_pack(repo, *id, *size, opts.read_data);
        match entries {
            // A pack that vanished since the listing is as lost as a missing one.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Corrupt | ErrorKind::Unsupported | ErrorKind::NotFound
                ) =>
            {
                problem(report, format!("pack {name}"), e.to_string());
                damaged.packs.insert(*id);
            }
            // A failing read or index is not damage: report it as what it is.
            Err(e) => return Err(e.context(format!("checking pack {name}"))),
            Ok(entries) => {
                if !index_agrees(repo, id, &entries, per_pack.get(id).copied().unwrap_or(0))? {
                    problem(
                        report,
                        format!("pack {name}"),
                        "the index disagrees with the pack trailer (run `masclet repair index`)"
                            .into(),
                    );
                    damaged.packs.insert(*id);
                }
                report.chunks_read += if opts.read_data {
                    entries.len() as u64
                } else {
                    0
                };
            }
        }
        for (cid, msg) in bad {
            problem(
                report,
                format!("chunk {cid}"),
                format!("in pack {}: {msg}", id.short()),
            );
            damaged.chunks.insert(cid, msg);
        }
    }
    progress.finish();
    Ok(damaged)
}

/// Every index row placing a chunk in pack `id` must be one of the trailer's entries, field
/// for field: count the rows that are, and compare with all the `rows` the index has for the
/// pack. (The index may omit a chunk stored twice by concurrent backups, never add one.)
fn index_agrees(repo: &Repo, id: &PackId, entries: &[PackEntry], rows: u64) -> Result<bool> {
    let agree = repo.index.reading(|| {
        let mut agree = 0u64;
        for e in entries {
            if repo.index.records(id, e)? {
                agree += 1;
            }
        }
        Ok(agree)
    })?;
    Ok(agree == rows)
}
