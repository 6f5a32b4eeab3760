//! # masclet-engine
//!
//! The engine of masclet, a deduplicating, encrypted backup tool for PostgreSQL-backed
//! applications. It does all the work; the `masclet` binary only translates arguments
//! and renders results.
//!
//! ## The house, bottom up
//!
//! Each layer uses only the layers listed before it, with one exception: `disk` reads and
//! writes packs and snapshots through the storage trait of `repository`.
//!
//! - [`config`]: the `.env` configuration file: its syntax, the known keys, their types,
//!   defaults and which are secret. It knows nothing of repositories.
//! - [`disk`]: bytes on disk. Formats of every object (envelope, pack, tree stream,
//!   snapshot, key slot, config), encryption and keys, typed ids, the format's limits, and
//!   the FastCDC cut points (part of the format: they decide what deduplicates).
//!   `format-spec.md` at the repository root is the normative description of every byte;
//!   these modules mirror it.
//! - [`repository`]: the storage trait and its backends, the SQLite index (a cache of the
//!   packs' trailers), locks, an open [`Repo`], reading chunks and delta chains back out of
//!   packs, and [`repository::walk`], the one iterator over a snapshot's entries.
//! - [`chunking`]: how a new chunk is stored: resemblance sketches, deltas against a
//!   similar stored chunk, the walk beside the parent snapshot that finds those bases.
//! - `write`: the writer every operation that adds data shares: planning (ids,
//!   deduplication, delta bases), sealing on all cores, the pack sink that makes packs
//!   durable before indexing them, and the tree sink.
//! - [`ops`]: what the commands do: backup, restore, check, forget and retention, gc,
//!   repair.
//! - [`pg`]: PostgreSQL as a source: consistent dumps into a backup, the figures a test
//!   restore checks, test restores and the recovery steps.
//! - [`archive`]: the original system's classic `.tar.gz` files: reproducible export from
//!   snapshots, verification, and import of the old system's archives.
//!
//! ## Where a backup's bytes go
//!
//! [`ops::backup`] reads the source (files, a stream, a producer command) and cuts it into
//! chunks ([`disk::chunker`]); `write::planner` names each chunk by keyed BLAKE3
//! ([`ChunkId`]) and drops those the [`Index`] or this backup already has; `write::seal`
//! compresses the new ones with zstd (or as a delta), seals them with XChaCha20-Poly1305
//! ([`disk::crypto`]) and opens them again to verify; `write::pack_sink` gathers them into
//! pack files ([`disk::pack`]) written whole and durable through the [`Storage`] trait, and
//! only then indexes them. The tree stream ([`disk::tree`]) describing every entry goes the
//! same way through `write::tree_sink`; the [`Snapshot`] naming its chunks is written last
//! and is the commit point.
//!
//! ## Example
//!
//! ```
//! use masclet_engine::{backup, init, BackupOptions, LocalStorage, NoProgress, OpenOptions, Repo, RepoConfig, KdfParams, Source, LockMode};
//! use std::sync::Arc;
//! let dir = tempfile::tempdir().unwrap();
//! let storage = LocalStorage::create(&dir.path().join("repo")).unwrap();
//! let index = storage.index_path();
//! init(&storage, &index, b"secret", RepoConfig::new_default(), KdfParams::FAST_INSECURE).unwrap();
//! let mut repo = Repo::open(Arc::new(storage), &index, b"secret", &OpenOptions::new("backup", Some(LockMode::Shared))).unwrap();
//! let data: &[u8] = b"id\tname\n1\tBlanca\n";
//! let summary = backup(&mut repo, Source::Stream { name: b"dump.sql".to_vec(), reader: Box::new(data) },
//!                      &BackupOptions::default(), &NoProgress).unwrap();
//! assert_eq!(summary.stats.bytes_read, data.len() as u64);
//! ```

pub mod archive;
pub mod chunking;
pub mod config;
pub mod disk;
pub mod error;
pub mod job;
pub mod ops;
pub mod pg;
pub mod progress;
pub mod repository;
mod write;

pub use disk::chunker::ChunkerParams;
pub use disk::config::RepoConfig;
pub use disk::id::{ChunkId, KeyId, PackId, RepoId, SnapshotId};
pub use disk::keys::KdfParams;
pub use disk::snapshot::{BackupStats, Snapshot};
pub use error::{Error, ErrorKind, Result};
pub use ops::backup::{BackupOptions, BackupSummary, Healing, Source, backup};
pub use ops::check::{CheckOptions, CheckReport, Problem, check, check_snapshot};
pub use ops::forget::{ForgetSummary, forget, forget_ids, snapshot_refs};
pub use ops::gc::{GcOptions, GcPlan, GcSummary};
pub use ops::repair::{RepairReport, SalvagedPack, repair_index};
pub use ops::restore::{LsEntry, RestoreOptions, RestoreSummary, dump, list, restore};
pub use ops::retention::{ForgetPlan, KeepPolicy, SnapshotRef};
pub use progress::{NoProgress, Progress, Unit};
pub use repository::index::Index;
pub use repository::lock::LockMode;
pub use repository::repo::{OpenOptions, Repo, check_init, init, unlock};
pub use repository::storage::{
    FaultMode, FaultyStorage, Kind, LocalStorage, MemoryStorage, Storage,
};

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Ask every running operation to stop at its next safe point (the CLI's Ctrl-C handler
/// calls this). Operations stop before their commit point, so nothing partial is kept.
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Whether [`interrupt`] was called.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

pub(crate) fn check_interrupt() -> Result<()> {
    if interrupted() {
        Err(Error::new(
            ErrorKind::Interrupted,
            "interrupted; nothing was committed",
        ))
    } else {
        Ok(())
    }
}
