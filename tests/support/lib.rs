//! Test kit shared by masclet's end-to-end tests: repositories in temp dirs, deterministic
//! data, and a digest of a directory tree that compares restores with their sources.
//!
//! It also holds the deterministic inputs other crates share: [`DumpModel`], the nightly
//! `pg_dump` workload (benches, tools and tests), and [`golden_bytes`] / [`fixture_tree`],
//! the inputs of the golden vectors (written by `tools/src/bin/gen-vectors.rs`, checked by
//! the `golden` tests).
//!
//! [`pg::PgCluster`] is a throwaway PostgreSQL server for tests of database backups.

mod dump;
mod golden;
pub mod pg;
pub use dump::DumpModel;
pub use golden::{fixture_tree, golden_bytes};

use masclet_engine::{
    BackupOptions, CheckOptions, KdfParams, LocalStorage, LockMode, MemoryStorage, NoProgress,
    OpenOptions, Repo, RepoConfig, RestoreOptions, SnapshotId, Source, Storage,
};
use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The passphrase of every test repository.
pub const PASSWORD: &[u8] = b"correct horse";

/// A repository on local disk in a temp dir.
pub struct LocalRepo {
    /// Holds everything; removed on drop.
    pub dir: tempfile::TempDir,
    /// The repository directory.
    pub path: PathBuf,
}

impl LocalRepo {
    /// Create a fresh repository (fast KDF).
    pub fn new() -> Self {
        Self::with_config(RepoConfig::new_default())
    }

    /// Create a fresh repository that cuts ~16 KiB chunks (the default before 128 KiB), for
    /// tests that need many chunks from little data; the writer's policy does not depend on
    /// the sizes.
    pub fn small_chunks() -> Self {
        let mut config = RepoConfig::new_default();
        config.chunker = masclet_engine::disk::chunker::ChunkerParams {
            min_size: 512,
            avg_size: 16 * 1024,
            max_size: 128 * 1024,
            normalization: 1,
        };
        Self::with_config(config)
    }

    /// Create a fresh repository with `config`.
    pub fn with_config(config: RepoConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo");
        let storage = LocalStorage::create(&path).unwrap();
        masclet_engine::init(
            &storage,
            &storage.index_path(),
            PASSWORD,
            config,
            KdfParams::FAST_INSECURE,
        )
        .unwrap();
        Self { dir, path }
    }

    /// Open it with a shared lock.
    pub fn open(&self) -> Repo {
        self.try_open().unwrap()
    }

    /// Open it, returning errors.
    pub fn try_open(&self) -> masclet_engine::Result<Repo> {
        let storage = LocalStorage::open(&self.path)?;
        let index = storage.index_path();
        Repo::open(
            Arc::new(storage),
            &index,
            PASSWORD,
            &OpenOptions::new("test", Some(LockMode::Shared)),
        )
    }

    /// The index database path.
    pub fn index_path(&self) -> PathBuf {
        self.path.join("index").join("index.sqlite")
    }

    /// A scratch directory inside the temp dir.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}

impl Default for LocalRepo {
    fn default() -> Self {
        Self::new()
    }
}

/// A repository in memory, its index in `dir`.
pub fn memory_repo(dir: &Path) -> (Arc<MemoryStorage>, PathBuf) {
    let storage = Arc::new(MemoryStorage::new());
    let index = dir.join("index.sqlite");
    masclet_engine::init(
        storage.as_ref(),
        &index,
        PASSWORD,
        RepoConfig::new_default(),
        KdfParams::FAST_INSECURE,
    )
    .unwrap();
    (storage, index)
}

/// Open any storage.
pub fn open(storage: Arc<dyn Storage>, index: &Path) -> masclet_engine::Result<Repo> {
    Repo::open(
        storage,
        index,
        PASSWORD,
        &OpenOptions::new("test", Some(LockMode::Shared)),
    )
}

/// Back up paths.
pub fn backup_paths(repo: &mut Repo, paths: &[&Path]) -> masclet_engine::Result<SnapshotId> {
    let src = Source::Paths(paths.iter().map(|p| p.to_path_buf()).collect());
    masclet_engine::backup(repo, src, &BackupOptions::default(), &NoProgress).map(|s| s.snapshot)
}

/// Back up bytes as a stream named `name`.
pub fn backup_bytes(
    repo: &mut Repo,
    name: &str,
    data: &[u8],
) -> masclet_engine::Result<SnapshotId> {
    backup_summary(repo, name, data).map(|s| s.snapshot)
}

/// Back up bytes as a stream named `name`, returning the whole summary (for tests of
/// what a backup stored or healed).
pub fn backup_summary(
    repo: &mut Repo,
    name: &str,
    data: &[u8],
) -> masclet_engine::Result<masclet_engine::BackupSummary> {
    let src = Source::Stream {
        name: name.as_bytes().to_vec(),
        reader: Box::new(std::io::Cursor::new(data.to_vec())),
    };
    masclet_engine::backup(repo, src, &BackupOptions::default(), &NoProgress)
}

/// Restore snapshot `id` into `target`.
pub fn restore(repo: &Repo, id: SnapshotId, target: &Path) -> masclet_engine::Result<()> {
    let snap = masclet_engine::Snapshot::load(repo.storage(), repo.keys(), id)?;
    masclet_engine::restore(repo, &snap, target, &RestoreOptions::default(), &NoProgress)
        .map(|_| ())
}

/// The content of file `path` in snapshot `id`.
pub fn dump(repo: &Repo, id: SnapshotId, path: &str) -> masclet_engine::Result<Vec<u8>> {
    let snap = masclet_engine::Snapshot::load(repo.storage(), repo.keys(), id)?;
    let mut out = Vec::new();
    masclet_engine::dump(repo, &snap, path.as_bytes(), &mut out)?;
    Ok(out)
}

/// Run `check`, returning whether it is clean.
pub fn check_ok(repo: &Repo, read_data: bool) -> bool {
    let r = masclet_engine::check(repo, CheckOptions::new(read_data), &NoProgress).unwrap();
    if !r.ok() {
        eprintln!("check found: {:?} {:?}", r.problems, r.damaged_snapshots);
    }
    r.ok()
}

/// Deterministic pseudo-random bytes (xorshift), incompressible.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// What a tree looks like, entry by entry: kind, mode, mtime and content (or link target).
pub type Digest = BTreeMap<Vec<u8>, (char, u32, i64, Vec<u8>)>;

/// Digest every entry under `root` (paths relative to `root`).
pub fn digest(root: &Path) -> Digest {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut Digest) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let mode = m.permissions().mode() & 0o7777;
            if m.file_type().is_symlink() {
                out.insert(
                    rel,
                    (
                        'l',
                        0,
                        m.mtime(),
                        std::fs::read_link(&p)
                            .unwrap()
                            .as_os_str()
                            .as_bytes()
                            .to_vec(),
                    ),
                );
            } else if m.is_dir() {
                out.insert(rel, ('d', mode, m.mtime(), vec![]));
                walk(root, &p, out);
            } else {
                let content = blake3::hash(&std::fs::read(&p).unwrap())
                    .as_bytes()
                    .to_vec();
                out.insert(rel, ('f', mode, m.mtime(), content));
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// Build a small source tree with the cases restores get wrong: nested dirs, an empty file,
/// a symlink, a non-UTF-8 name, odd modes, old and future mtimes, a multi-chunk file.
pub fn sample_tree(root: &Path) {
    use std::os::unix::ffi::OsStrExt as _;
    let d = root.join("sub/deeper");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    std::fs::write(root.join("hello.txt"), b"hola masclet\n").unwrap();
    std::fs::write(d.join("big.bin"), noise(700_000, 3)).unwrap();
    std::fs::write(
        root.join(std::ffi::OsStr::from_bytes(b"caf\xe9 \xff.txt")),
        b"latin1 name",
    )
    .unwrap();
    std::os::unix::fs::symlink("hello.txt", root.join("link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling")).unwrap();
    std::fs::set_permissions(
        root.join("hello.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::fs::write(root.join("setuid"), b"x").unwrap();
    std::fs::set_permissions(root.join("setuid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    let old = std::time::UNIX_EPOCH - std::time::Duration::from_secs(86_400 * 365);
    let future = std::time::UNIX_EPOCH + std::time::Duration::from_secs(4_200_000_000);
    std::fs::File::options()
        .write(true)
        .open(root.join("empty"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::fs::File::options()
        .write(true)
        .open(d.join("big.bin"))
        .unwrap()
        .set_modified(future)
        .unwrap();
    std::fs::set_permissions(root.join("sub"), std::fs::Permissions::from_mode(0o750)).unwrap();
}

/// Forget `ids` (as a plan made by hand: keep the rest with their tags).
pub fn forget_ids(repo: &Repo, ids: &[SnapshotId]) {
    let (refs, _) = masclet_engine::snapshot_refs(repo).unwrap();
    let decisions = refs
        .into_iter()
        .map(|r| masclet_engine::ops::retention::Decision {
            id: r.id,
            time: String::new(),
            keep: !ids.contains(&r.id),
            reasons: vec![],
            tags_before: r.tags.clone(),
            tags_after: r.tags,
        })
        .collect();
    masclet_engine::forget(repo, &masclet_engine::ForgetPlan { decisions }).unwrap();
}

/// Plan and run gc with default options.
pub fn gc(repo: &mut Repo) -> masclet_engine::Result<masclet_engine::GcSummary> {
    let plan =
        masclet_engine::ops::gc::plan(repo, &masclet_engine::GcOptions::default(), &NoProgress)?;
    masclet_engine::ops::gc::execute(repo, &plan, &NoProgress)
}

/// Total bytes of pack objects in a store.
pub fn pack_bytes(storage: &dyn Storage) -> u64 {
    storage
        .list(masclet_engine::Kind::Pack)
        .unwrap()
        .iter()
        .map(|(_, s)| s)
        .sum()
}

/// Copy a directory tree (files and subdirectories).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
