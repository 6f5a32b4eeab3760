//! Opening and creating repositories.
//!
//! Opening is ordered so that a failure writes nothing: read the plaintext config header,
//! unlock a key slot (a wrong passphrase stops here), open the sealed config, verify the
//! index, and only then take the lock. Every command works on an open [`Repo`].
//!
//! Reading chunks through it is the chain reader's (engine/src/repository/fetch.rs), walking a
//! snapshot's tree the walk's (engine/src/repository/walk.rs): this layer only opens.

use crate::disk::config::RepoConfig;
use crate::disk::crypto::{Keys, MasterKey};
use crate::disk::id::{KeyId, RepoId, SnapshotId};
use crate::disk::keys::{KdfParams, KeySlot};
use crate::disk::snapshot::Snapshot;
use crate::error::{Error, ErrorKind, Result};
use crate::repository::index::Index;
use crate::repository::lock::{self, LockGuard, LockMode};
use crate::repository::storage::{CONFIG_NAME, Kind, Storage};
use rayon::prelude::*;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How to open a repository.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OpenOptions {
    /// The lock to take (`None` only for read-only inspection).
    pub lock: Option<LockMode>,
    /// Name of the operation, recorded in the lock.
    pub operation: String,
    /// How long to wait for a conflicting lock.
    pub lock_wait: Duration,
    /// The command only reads: the index opens read-only, and on read-only media the
    /// command runs without a lock (it cannot be written, so no writer can conflict).
    pub read_only: bool,
}

impl OpenOptions {
    /// Open for `operation` with lock `mode`, waiting up to a minute for other holders.
    pub fn new(operation: &str, lock: Option<LockMode>) -> Self {
        Self {
            lock,
            operation: operation.to_string(),
            lock_wait: Duration::from_secs(60),
            read_only: false,
        }
    }

    /// Mark the command as read-only (see [`OpenOptions::read_only`]).
    #[must_use]
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Set the lock wait.
    #[must_use]
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }
}

/// An open repository: keys, config, verified index and (usually) a lock.
pub struct Repo {
    pub(crate) storage: Arc<dyn Storage>,
    /// Shared with the sealing jobs a backup queues on the thread pool.
    pub(crate) keys: Arc<Keys>,
    pub(crate) config: RepoConfig,
    pub(crate) index: Index,
    lock: Option<LockGuard>,
    warnings: Vec<String>,
}

/// Refuse what [`init`] would refuse, so that a caller can check before it creates the
/// repository's directory: a failed init must leave nothing that blocks the retry.
///
/// # Errors
/// `InvalidInput` for an empty passphrase; `Corrupt` for a config out of bounds.
pub fn check_init(passphrase: &[u8], config: &RepoConfig) -> Result<()> {
    if passphrase.is_empty() {
        return Err(Error::invalid("refusing an empty passphrase"));
    }
    config.check()
}

/// Create a repository in `storage` with its index at `index_path`.
///
/// # Errors
/// `InvalidInput` for an empty passphrase; `Storage` errors.
pub fn init(
    storage: &dyn Storage,
    index_path: &Path,
    passphrase: &[u8],
    config: RepoConfig,
    kdf: KdfParams,
) -> Result<RepoId> {
    check_init(passphrase, &config)?;
    let repo_id = RepoId::random();
    let master = MasterKey::generate();
    let key_id = KeyId::random();
    let slot = KeySlot::create(&master, passphrase, kdf, repo_id, key_id)?;
    storage.put(Kind::Key, &key_id.to_hex(), &slot.encode())?;
    let keys = Keys::derive(&master, repo_id);
    Index::create(index_path, repo_id)?.record_format(config.format)?;
    // The config is written last: its presence is what makes the directory a repository.
    storage.put(Kind::Config, CONFIG_NAME, &config.encode(&keys))?;
    Ok(repo_id)
}

/// Unlock the repository's keys and config with a passphrase.
///
/// # Errors
/// `WrongPassword` when no key slot opens; `Corrupt`/`Unsupported` for a bad config.
pub fn unlock(storage: &dyn Storage, passphrase: &[u8]) -> Result<(Keys, RepoConfig)> {
    let config_bytes = storage.get(Kind::Config, CONFIG_NAME)?;
    let (repo_id, _) = RepoConfig::decode_header(&config_bytes)?;
    let mut last_err = None;
    for (name, _) in storage.list(Kind::Key)? {
        let key_id = KeyId::from_hex(&name)?;
        let attempt = storage
            .get(Kind::Key, &name)
            .and_then(|b| KeySlot::decode(&b))
            .and_then(|s| s.unlock(passphrase, repo_id, key_id));
        match attempt {
            Ok(master) => {
                let keys = Keys::derive(&master, repo_id);
                let config = RepoConfig::decode(&config_bytes, &keys)
                    .map_err(|e| e.context("repository config"))?;
                return Ok((keys, config));
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(match last_err {
        // A damaged slot (bad magic, KDF parameters out of bounds) is an unreadable key
        // slot, which the operator meets as exit 3 like a wrong passphrase; its message
        // says which.
        Some(e) if e.kind() == ErrorKind::Corrupt => Error::new(
            ErrorKind::WrongPassword,
            format!("unreadable key slot: {}", e.message()),
        ),
        Some(e) if e.kind() == ErrorKind::WrongPassword => Error::new(
            ErrorKind::WrongPassword,
            "wrong passphrase or damaged key slot",
        ),
        // Storage failures and unknown slot versions keep their kind.
        Some(e) => e,
        None => Error::corrupt("repository has no key slots"),
    })
}

impl Repo {
    /// Open a repository.
    ///
    /// # Errors
    /// `WrongPassword`, `IndexUnavailable` (run `repair index`), `Locked`, `Corrupt`,
    /// `Unsupported` or `Storage`, in the order the checks run.
    pub fn open(
        storage: Arc<dyn Storage>,
        index_path: &Path,
        passphrase: &[u8],
        opts: &OpenOptions,
    ) -> Result<Self> {
        let (keys, config) = unlock(storage.as_ref(), passphrase).map_err(|e| match e.kind() {
            ErrorKind::WrongPassword => config_id_damage(storage.as_ref(), index_path).unwrap_or(e),
            _ => e,
        })?;
        let index = if opts.read_only {
            Index::open_read_only(index_path, keys.repo_id())?
        } else {
            Index::open(index_path, keys.repo_id())?
        };
        check_format(&index, &config)?;
        let mut warnings = Vec::new();
        let lock = match opts.lock {
            Some(mode) => {
                match lock::acquire(
                    Arc::clone(&storage),
                    mode,
                    &opts.operation,
                    opts.lock_wait,
                    &mut warnings,
                ) {
                    Ok(guard) => Some(guard),
                    Err(e) if opts.read_only && cannot_write_here(&e) => {
                        warnings.push(format!(
                            "the repository cannot be written ({e}); reading it without a lock, which is safe only if no other process can change it (read-only media)"
                        ));
                        None
                    }
                    Err(e) => return Err(e),
                }
            }
            None => None,
        };
        Ok(Self {
            storage,
            keys: Arc::new(keys),
            config,
            index,
            lock,
            warnings,
        })
    }

    /// Refuse to write into a repository of an older format (it is read-only to this build).
    ///
    /// # Errors
    /// `Unsupported`, saying what to do.
    pub fn ensure_writable(&self) -> Result<()> {
        if self.config.format < crate::disk::format::FORMAT_VERSION {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "this repository has format v{}, which this masclet reads but no longer writes; restore from it, or start a new repository with `masclet init`",
                    self.config.format
                ),
            ));
        }
        Ok(())
    }

    /// Warnings gathered while opening (stale locks removed), for the operator.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Fail unless this repository's lock is certainly still held; called before every
    /// commit point so a process that stalled past the stale limit commits nothing.
    ///
    /// # Errors
    /// `Locked` when the lock was lost.
    pub fn ensure_lock(&self) -> Result<()> {
        self.lock.as_ref().map_or(Ok(()), LockGuard::ensure_held)
    }

    /// [`Repo::ensure_lock`] without storage access (see [`LockGuard::ensure_fresh`]): for
    /// inside an index transaction, right after a full check outside it.
    ///
    /// # Errors
    /// `Locked` when the lock was lost.
    pub(crate) fn ensure_lock_fresh(&self) -> Result<()> {
        self.lock.as_ref().map_or(Ok(()), LockGuard::ensure_fresh)
    }

    /// The lock this repository was opened with, if any.
    pub(crate) fn lock_mode(&self) -> Option<LockMode> {
        self.lock.as_ref().map(LockGuard::mode)
    }

    /// The repository id.
    pub fn id(&self) -> RepoId {
        self.keys.repo_id()
    }

    /// The settings fixed at init.
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// Seal the chunks this handle writes at zstd `level` (1 to 19) when that is stronger
    /// than the repository's: the space policy's "compress harder on a nearly full disk".
    /// Only this open handle changes; the stored config keeps its level, and readers need
    /// no level to decompress.
    pub fn compress_at_least(&mut self, level: u8) {
        self.config.zstd_level = self.config.zstd_level.max(level.clamp(1, 19));
    }

    /// The storage.
    pub fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    /// The index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The keys (for tools that craft or inspect objects).
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Every readable snapshot, oldest first, and the ones that failed to load.
    ///
    /// # Errors
    /// `Storage` if the listing fails.
    #[allow(clippy::type_complexity)]
    pub fn snapshots(&self) -> Result<(Vec<(SnapshotId, Snapshot)>, Vec<(SnapshotId, Error)>)> {
        let names = self.storage.list(Kind::Snapshot)?;
        let (storage, keys) = (self.storage.as_ref(), &self.keys);
        let loaded: Vec<(SnapshotId, Result<Snapshot>)> = names
            .par_iter()
            .filter_map(|(n, _)| SnapshotId::from_hex(n).ok())
            .map(|id| (id, Snapshot::load(storage, keys, id)))
            .collect();
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        for (id, r) in loaded {
            match r {
                Ok(s) => ok.push((id, s)),
                Err(e) => bad.push((id, e)),
            }
        }
        ok.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok((ok, bad))
    }

    /// Find a snapshot by full id, unique id prefix, or `latest`.
    ///
    /// # Errors
    /// `NotFound` or `InvalidInput` (ambiguous prefix).
    pub fn resolve(&self, spec: &str) -> Result<(SnapshotId, Snapshot)> {
        if spec == "latest" {
            let (mut all, _) = self.snapshots()?;
            return all.pop().ok_or_else(|| {
                Error::new(ErrorKind::NotFound, "the repository has no snapshots yet")
            });
        }
        let id = self.resolve_id(spec)?;
        Ok((id, Snapshot::load(self.storage.as_ref(), &self.keys, id)?))
    }

    /// Find a snapshot's id by full id or unique id prefix, from the names alone: it also
    /// finds a snapshot that cannot be read (so `forget` can remove it).
    ///
    /// # Errors
    /// `NotFound` or `InvalidInput` (ambiguous prefix, not hex).
    pub fn resolve_id(&self, spec: &str) -> Result<SnapshotId> {
        if spec.is_empty() || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid(format!(
                "{spec:?} is not a snapshot id, id prefix or `latest`"
            )));
        }
        let spec = spec.to_ascii_lowercase();
        let matches: Vec<SnapshotId> = self
            .storage
            .list(Kind::Snapshot)?
            .into_iter()
            .filter(|(n, _)| n.starts_with(&spec))
            .filter_map(|(n, _)| SnapshotId::from_hex(&n).ok())
            .collect();
        match matches.as_slice() {
            [id] => Ok(*id),
            [] => Err(Error::new(
                ErrorKind::NotFound,
                format!("no snapshot matches {spec:?} (list them with `masclet snapshots`)"),
            )),
            _ => Err(Error::invalid(format!(
                "{spec:?} matches {} snapshots; give more of the id",
                matches.len()
            ))),
        }
    }
}

/// Key slots are bound to the repository id in the config's plaintext header, so a
/// damaged id fails every slot like a wrong passphrase would. The index records the id
/// too: when it disagrees, the config is the likelier culprit, and saying "wrong
/// passphrase" would send the operator after the wrong thing.
fn config_id_damage(storage: &dyn Storage, index_path: &Path) -> Option<Error> {
    let config = storage.get(Kind::Config, CONFIG_NAME).ok()?;
    let (id, _) = RepoConfig::decode_header(&config).ok()?;
    let recorded = Index::recorded_repo_id(index_path)?;
    (recorded != id).then(|| {
        Error::corrupt(format!(
            "the repository id in the config header ({}) differs from the one the index records ({}): the config is damaged (no key slot can open with a wrong id), or the index belongs to another repository",
            id.short(),
            recorded.short()
        ))
    })
}

/// Whether `e` says the repository refuses writes (read-only media or no write permission),
/// as opposed to failing them (full disk, I/O error).
fn cannot_write_here(e: &Error) -> bool {
    e.kind() == ErrorKind::Storage
        && matches!(
            e.io_kind(),
            Some(std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied)
        )
}

/// The config header's format version against the copy the index keeps. The header is
/// plaintext (key slots need its repository id before anything can be authenticated), so
/// a flipped version byte would otherwise make every reader apply another format's rules.
fn check_format(index: &Index, config: &RepoConfig) -> Result<()> {
    match index.recorded_format()? {
        Some(recorded) if recorded != config.format => Err(Error::corrupt(format!(
            "the config header states format v{} but this repository is format v{recorded} (as recorded in the index at init or repair): the config header is damaged; restore the config file from a copy of the repository, or write byte 8..12 of it back as v{recorded}",
            config.format
        ))),
        _ => Ok(()),
    }
}
