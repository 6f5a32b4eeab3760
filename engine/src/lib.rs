//! # masclet-engine
//!
//! The engine of masclet, a deduplicating, encrypted backup tool for PostgreSQL-backed
//! applications. It does all the work; the `masclet` binary only translates arguments
//! and renders results.
//!
//! ## Overview
//!
//! - A byte stream (a file, a `pg_dump`, stdin) is cut into chunks by FastCDC
//!   ([`chunker`]); each chunk is named by keyed BLAKE3 ([`ChunkId`]).
//! - Chunks the repository lacks are compressed with zstd and sealed with
//!   XChaCha20-Poly1305 ([`crypto`]), then gathered into pack files ([`pack`]) stored whole
//!   through the [`Storage`] trait.
//! - A SQLite [`Index`] says where each chunk is; it is a cache that `repair index` rebuilds
//!   from the packs.
//! - A [`Snapshot`] names the chunks of a tree stream ([`tree`]) describing every entry; it
//!   is written last and is the commit point of a backup.
//!
//! `format-spec.md` at the repository root is the normative description of every byte.
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

pub mod backup;
pub mod check;
pub mod chunker;
mod compress;
pub mod config;
pub mod crypto;
mod delta;
pub mod error;
mod fetch;
pub mod forget;
pub mod format;
pub mod gc;
pub mod hazmat;
pub mod id;
pub mod index;
pub mod keys;
pub mod limits;
mod live_set;
pub mod lock;
pub mod pack;
mod parent;
pub mod progress;
mod random;
pub mod repair;
pub mod repo;
pub mod resemble;
pub mod restore;
pub mod retention;
pub mod snapshot;
pub mod storage;
pub mod tree;
pub mod walk;
mod write;

pub use backup::{BackupOptions, BackupSummary, Healing, Source, backup};
pub use check::{CheckOptions, CheckReport, Problem, check};
pub use chunker::ChunkerParams;
pub use config::RepoConfig;
pub use error::{Error, ErrorKind, Result};
pub use forget::{ForgetSummary, forget, forget_ids, snapshot_refs};
pub use gc::{GcOptions, GcPlan, GcSummary};
pub use id::{ChunkId, KeyId, PackId, RepoId, SnapshotId};
pub use index::Index;
pub use keys::KdfParams;
pub use lock::LockMode;
pub use progress::{NoProgress, Progress, Unit};
pub use repair::{RepairReport, SalvagedPack, repair_index};
pub use repo::{OpenOptions, Repo, check_init, init, unlock};
pub use restore::{LsEntry, RestoreOptions, RestoreSummary, dump, list, restore};
pub use retention::{ForgetPlan, KeepPolicy, SnapshotRef};
pub use snapshot::{BackupStats, Snapshot};
pub use storage::{FaultMode, FaultyStorage, Kind, LocalStorage, MemoryStorage, Storage};

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
