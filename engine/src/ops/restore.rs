//! Restoring snapshots (the writer's side in restore/target.rs), dumping one file and
//! listing entries (restore/read.rs).
//!
//! A snapshot is hostile input. The tree reader validates every path (no `..`, no absolute
//! paths, no duplicates, parents first); restore then works only through directory file
//! descriptors (`openat`, `mkdirat`, `symlinkat`, `renameat` relative to the parent), opens
//! with `O_NOFOLLOW`, and sets modes and times through the open descriptor, so nothing it
//! does can follow a symlink out of the target.
//!
//! Restoring over an existing target never destroys what it cannot replace: every entry is
//! built under a temporary name (`.masclet-restore-` and 16 hex digits) and takes its final
//! name only once complete, a file only once its content hash checks; the old entry keeps
//! its name until then, whatever stops the restore. An entry of another kind than the
//! snapshot's is replaced only with `--overwrite`, and a directory never. The temporaries a
//! killed restore leaves are removed by the next restore into the same directories
//! (restore/scratch.rs), which reports how many it removed and where.
//!
//! Loading and writing overlap: the calling thread walks the tree (engine/src/repository/walk.rs) and
//! loads chunks in batches (opening them on all cores), while a writer thread applies the
//! previous batch to the target and hashes each file, so the target's write path and the
//! whole-file hash no longer leave a core idle between batches.

mod read;
mod scratch;
mod target;
pub(crate) mod verify;

pub(crate) use read::read_part;
pub use read::{LsEntry, dump, list};

use crate::disk::format::ObjectType;
use crate::disk::snapshot::Snapshot;
use crate::disk::tree::EntryMeta;
use crate::error::{Error, ErrorKind, Result};
use crate::progress::{Progress, Unit};
use crate::repository::repo::Repo;
use crate::repository::walk::{Entry, FilePart};
use rustix::fs::{Mode, OFlags};
use std::path::Path;
use std::sync::mpsc::{SyncSender, sync_channel};
use target::Restorer;

/// Options of a restore.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// Replace files and symlinks that stand where the snapshot has another kind of entry
    /// (directories are never replaced).
    pub overwrite: bool,
}

impl RestoreOptions {
    /// Options with `overwrite` set as given.
    pub fn new(overwrite: bool) -> Self {
        Self { overwrite }
    }
}

/// What a restore wrote.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct RestoreSummary {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// Temporaries left by an interrupted restore, found in the target and removed.
    pub leftovers_removed: u64,
}

/// Chunks loaded together (in parallel) during a restore: enough to keep all cores busy,
/// few enough to bound memory (three batches are alive at once: one loading, one queued,
/// one being written).
const CHUNKS_PER_READ: usize = 256;

/// Bytes of content loaded together, whatever the chunks' sizes: a batch's delta chunks
/// hold their bases' plaintexts while they load, one chain level at a time (up to 4 levels
/// as this build writes them). Bases are usually the size of their deltas' chunks, so a
/// batch typically costs a few times its own size; the bound is 256 chunks of the maximum
/// size a level.
const BYTES_PER_READ: u64 = 2 << 20;

/// Tree records per batch when they carry no chunks (trees of many empty files or links).
const OPS_PER_BATCH: usize = 4096;

/// One step for the writer thread, in tree order.
enum Op {
    Dir(EntryMeta),
    Symlink(EntryMeta, Vec<u8>),
    FileStart(EntryMeta),
    /// A chunk's id, the length the tree records, and (once loaded) its plaintext.
    Chunk(crate::disk::id::ChunkId, u32, Vec<u8>),
    FileEnd {
        size: u64,
        hash: [u8; 32],
    },
}

/// Load the chunks a batch names (on all cores) and fill them in, in order.
fn load_batch(repo: &Repo, batch: &mut [Op]) -> Result<()> {
    let ids: Vec<_> = batch
        .iter()
        .filter_map(|op| match op {
            Op::Chunk(id, ..) => Some(*id),
            _ => None,
        })
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let mut data = repo.load_chunks(&ids, ObjectType::Data)?.into_iter();
    for op in batch {
        if let Op::Chunk(_, _, slot) = op {
            *slot = data.next().expect("one result per id");
        }
    }
    Ok(())
}

/// The loader's side: walk the tree, load each batch's chunks and hand the batch over.
/// Returns when the tree is done, a step fails, or the writer hangs up (after an error of
/// its own, which the caller reports).
fn load_all(repo: &Repo, snap: &Snapshot, batches: &SyncSender<Option<Vec<Op>>>) -> Result<()> {
    let mut loader = Loader {
        repo,
        batches,
        batch: Vec::new(),
        chunks: 0,
        bytes: 0,
    };
    for entry in repo.walk(snap) {
        let sent = match entry? {
            Entry::Dir(m) => loader.push(Op::Dir(m))?,
            Entry::Symlink(m, target) => loader.push(Op::Symlink(m, target))?,
            Entry::File(part) => loader.file_part(part)?,
        };
        if !sent {
            return Ok(());
        }
    }
    if loader.flush()? {
        let _ = batches.send(None);
    }
    Ok(())
}

/// The batch being gathered, and where it goes once loaded.
struct Loader<'a> {
    repo: &'a Repo,
    batches: &'a SyncSender<Option<Vec<Op>>>,
    batch: Vec<Op>,
    chunks: usize,
    bytes: u64,
}

impl Loader<'_> {
    /// Add a file's part (its start, chunks and end as it has them). `false` when the
    /// writer hung up.
    fn file_part(&mut self, part: FilePart) -> Result<bool> {
        if part.first && !self.push(Op::FileStart(part.meta))? {
            return Ok(false);
        }
        for c in part.chunks {
            if !self.push(Op::Chunk(c.id, c.len, Vec::new()))? {
                return Ok(false);
            }
        }
        match part.end {
            Some(end) => self.push(Op::FileEnd {
                size: end.size,
                hash: end.content_hash,
            }),
            None => Ok(true),
        }
    }

    /// Add a step, handing the batch over once it is full. `false` when the writer hung up.
    fn push(&mut self, op: Op) -> Result<bool> {
        if let Op::Chunk(_, len, _) = &op {
            self.chunks += 1;
            self.bytes += u64::from(*len);
        }
        self.batch.push(op);
        if self.chunks >= CHUNKS_PER_READ
            || self.bytes >= BYTES_PER_READ
            || self.batch.len() >= OPS_PER_BATCH
        {
            return self.flush();
        }
        Ok(true)
    }

    /// Load the batch's chunks and hand it over. `false` when the writer hung up.
    fn flush(&mut self) -> Result<bool> {
        crate::check_interrupt()?;
        load_batch(self.repo, &mut self.batch)?;
        if self
            .batches
            .send(Some(std::mem::take(&mut self.batch)))
            .is_err()
        {
            return Ok(false);
        }
        (self.chunks, self.bytes) = (0, 0);
        Ok(true)
    }
}

/// Restore `snap` into `target` (created if missing).
///
/// # Errors
/// `Corrupt` for damaged or hostile snapshot data, `Io` for target failures (naming the
/// path), `InvalidInput` where the target holds another kind of entry than the snapshot and
/// `opts` does not allow replacing it, `Interrupted` on Ctrl-C. Entries already in the
/// target are then as they were, or replaced whole by their verified snapshot version.
pub fn restore(
    repo: &Repo,
    snap: &Snapshot,
    target: &Path,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreSummary> {
    std::fs::create_dir_all(target)
        .map_err(|e| Error::io(format!("creating {}", target.display()), e))?;
    let root = rustix::fs::open(
        target,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        Error::io(
            format!("opening {}", target.display()),
            std::io::Error::from(e),
        )
    })?;
    let r = Restorer::new(opts, target, root, progress);
    progress.start("restore", Some(snap.stats.bytes_read), Unit::Bytes);
    let (tx, rx) = sync_channel(1);
    let result = std::thread::scope(|s| {
        let writer = s.spawn(move || r.run(&rx));
        let loaded = load_all(repo, snap, &tx);
        drop(tx);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(Error::internal("restore writer thread panicked")));
        match (loaded, written) {
            (Ok(()), Ok(Some(summary))) => Ok(summary),
            // The writer's error comes first: the loader only stops early because of it.
            (_, Err(e)) | (Err(e), Ok(_)) => Err(e),
            (Ok(()), Ok(None)) => Err(Error::internal("restore writer stopped early")),
        }
    });
    progress.finish();
    result.map_err(|e| {
        if matches!(e.kind(), ErrorKind::Io | ErrorKind::InvalidInput) {
            e.context(format!("restoring into {}", target.display()))
        } else {
            e
        }
    })
}
