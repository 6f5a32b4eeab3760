//! Low-level writing of chunks and snapshots, bypassing the backup pipeline's checks.
//!
//! For tools and tests that must craft repositories a correct client would never write
//! (hostile trees, type confusion), so that readers can be shown to refuse them. Nothing
//! in masclet's own commands uses this module.

use crate::disk::chunker::Batch;
use crate::disk::format::ObjectType;
use crate::disk::id::{ChunkId, SnapshotId};
use crate::disk::snapshot::{BackupStats, Snapshot};
use crate::disk::tree::Record;
use crate::error::Result;
use crate::repository::repo::Repo;
use crate::repository::storage::Kind;
use crate::write::store::ChunkStore;
use crate::write::tree_sink::TreeSink;

/// Store `data` as one chunk of type `ty` (in a pack of its own) and return its id.
///
/// # Errors
/// Storage or index errors.
pub fn store_chunk(repo: &mut Repo, ty: ObjectType, data: &[u8]) -> Result<ChunkId> {
    let mut store = ChunkStore::new(&*repo);
    let batch = Batch {
        data: data.to_vec(),
        chunks: std::iter::once(0..data.len()).collect(),
    };
    let ids = store.store(ty, &batch)?;
    store.flush()?;
    Ok(ids[0].0)
}

/// Store `snap` as a new snapshot object without checking its fields against the format's
/// limits: a snapshot older or foreign writers may have left, which readers refuse.
///
/// # Errors
/// Storage errors.
pub fn save_snapshot_unchecked(repo: &Repo, snap: &Snapshot) -> Result<SnapshotId> {
    let id = SnapshotId::random();
    let sealed = repo
        .keys()
        .seal(ObjectType::Snapshot, &id.0, &snap.encode(), Some(3));
    repo.storage().put(Kind::Snapshot, &id.to_hex(), &sealed)?;
    Ok(id)
}

/// Commit a snapshot whose tree stream is exactly `records`, unvalidated.
///
/// # Errors
/// Storage or index errors.
pub fn commit_records(
    repo: &mut Repo,
    records: &[Record],
    tags: Vec<String>,
) -> Result<SnapshotId> {
    let repo: &Repo = repo;
    let mut store = ChunkStore::new(repo);
    let mut tree = TreeSink::new(repo);
    for r in records {
        tree.push(r, &mut store)?;
    }
    let tree = tree.finish(&mut store)?;
    store.flush()?;
    let snap = Snapshot {
        time: chrono::Utc::now(),
        host: "crafted".into(),
        user: "crafted".into(),
        tags,
        paths: vec![b"crafted".to_vec()],
        source: "files".into(),
        stats: BackupStats::default(),
        tree_len: tree.len,
        tree: tree.chunks,
    };
    snap.save(repo.storage.as_ref(), &repo.keys)
}
