//! The backup pipeline (format-spec.md, "Write ordering").
//!
//! Read → cut into chunks (one thread, batches of whole chunks) → keyed hash of every chunk
//! (all cores) → drop chunks the index or the open pack already has → compress, seal and
//! verify the new ones (all cores) → pack. A full pack is written whole and durable, then
//! indexed in one transaction; the snapshot object, written last, is the one commit point.
//! A backup that stops anywhere before it leaves packs nobody references (reclaimed by
//! gc) and every earlier snapshot untouched.
//!
//! Memory is bounded by one read batch, its sealed copies and one open pack, whatever the
//! size of the input (format-spec.md states the figure).

use crate::chunker::Cutter;
use crate::error::{Error, Result};
use crate::format::ObjectType;
use crate::id::{ChunkId, SnapshotId};
use crate::pack::PackBuilder;
use crate::packer::{Durable, PackWriter};
use crate::parent::{self, Parent};
use crate::progress::{Progress, Unit};
use crate::repo::Repo;
use crate::snapshot::BackupStats;
use crate::tree::{Record, TreeWriter};
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

mod files;
mod heal;
mod input;
mod producer;
mod queue;
mod store;
pub use heal::Healing;
pub use input::{UNCHECKED_PRODUCER_TAG, check_request};

/// Bytes of input per parallel batch.
pub const BATCH_BYTES: usize = 1 << 20;
/// A glued chunk is cut at the length of the parent chunk it starts like only when both
/// pieces are at least this long: a piece costs a chunk record (~290 bytes of envelope,
/// trailer entry, index row and tree reference), more than a shorter stretch costs as
/// literals in its neighbour's delta.
const GLUED_MIN: usize = 2048;
/// Bytes of tree stream buffered before it is chunked.
const TREE_FLUSH_BYTES: usize = 1 << 20;

/// What to back up.
pub enum Source {
    /// Files and directories; each becomes a top-level entry named by its last component.
    Paths(Vec<PathBuf>),
    /// One stream (stdin, a child's stdout) stored as a single file entry named `name`.
    Stream {
        /// The entry's name.
        name: Vec<u8>,
        /// Where the bytes come from. Owned (`'static`): a backup that fails stops waiting
        /// for it instead of waiting for a read that may never return.
        reader: Box<dyn Read + Send + 'static>,
    },
    /// A producer the backup runs itself: its standard output is stored as a single file
    /// entry named `name`, and nothing is committed unless it exits 0. Its standard error
    /// is captured (the end of it goes into the error, or into a warning on success).
    Command {
        /// The entry's name.
        name: Vec<u8>,
        /// The command, with its arguments and environment; its stdout and stderr are
        /// replaced by pipes.
        command: std::process::Command,
    },
}

/// Options of a backup.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct BackupOptions {
    /// Tags for the new snapshot.
    pub tags: Vec<String>,
    /// The snapshot's time, instead of now (importing history, tests).
    pub time: Option<DateTime<Utc>>,
    /// Read every file, even those the parent snapshot records with the same modification
    /// time, mode and size.
    pub force_read: bool,
    /// Commit a backup whose sources gave no content (0 bytes of regular files or stream).
    pub allow_empty: bool,
    /// Refuse a backup whose sources gave fewer bytes of content than this.
    pub min_size: u64,
}

impl BackupOptions {
    /// Options with these tags and time.
    pub fn new(tags: Vec<String>, time: Option<DateTime<Utc>>) -> Self {
        Self {
            tags,
            time,
            ..Self::default()
        }
    }

    /// Commit a backup with no content (see [`BackupOptions::allow_empty`]).
    #[must_use]
    pub fn allow_empty(mut self, yes: bool) -> Self {
        self.allow_empty = yes;
        self
    }

    /// Refuse less content than `bytes` (see [`BackupOptions::min_size`]).
    #[must_use]
    pub fn min_size(mut self, bytes: u64) -> Self {
        self.min_size = bytes;
        self
    }

    /// Read every file (see [`BackupOptions::force_read`]).
    #[must_use]
    pub fn force_read(mut self, yes: bool) -> Self {
        self.force_read = yes;
        self
    }
}

/// What a backup did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupSummary {
    /// The new snapshot.
    pub snapshot: SnapshotId,
    /// Counters.
    #[serde(flatten)]
    pub stats: BackupStats,
    /// Packs written.
    pub packs_written: u64,
    /// New chunks stored as deltas against a similar stored chunk.
    pub delta_chunks: u64,
    /// Files the parent snapshot recorded with the same modification time, mode and size:
    /// listed from it without being read.
    pub unchanged_files: u64,
    /// Wall time in seconds.
    pub duration_secs: f64,
    /// Packs the index listed that storage no longer has, and what that cost.
    pub healing: Healing,
}

pub(crate) struct Writer<'r> {
    pub(crate) repo: &'r Repo,
    pack: PackBuilder,
    /// Chunks this backup stores but has not indexed yet (being sealed, in the open pack or
    /// in one being written): deduplication must see them as stored.
    in_pack: HashSet<ChunkId>,
    packs: PackWriter,
    stats: BackupStats,
    packs_written: u64,
    pub(crate) tree_chunks: Vec<(ChunkId, u32)>,
    parent: Option<Parent<'r>>,
    deltas: u64,
    /// Re-read files the parent snapshot says are unchanged.
    force_read: bool,
    /// Files listed from the parent snapshot without reading them.
    unchanged_files: u64,
    /// Bytes of regular-file and stream content, read or listed from the parent.
    content_bytes: u64,
    progress: &'r dyn Progress,
    /// Batches being sealed and the tree records behind them (queue.rs).
    queue: queue::Queue,
    /// Chunks whose index rows were dropped because their pack is gone (heal.rs).
    untrusted: HashSet<ChunkId>,
    healing: Healing,
}

/// A sealed chunk and the base it is a delta of, if any.
type Sealed = (Vec<u8>, Option<ChunkId>);

/// Most chunks an unchanged file may have for the parent's record of it to be reused (an
/// 8 GiB file at the default average chunk size, 1 GiB at the 16 KiB of older
/// repositories); larger files are read, which bounds memory (~3 MiB of references).
const REUSE_MAX_CHUNKS: usize = 65_536;

impl<'r> Writer<'r> {
    pub(crate) fn new(repo: &'r Repo, progress: &'r dyn Progress) -> Self {
        let target = repo.config.pack_target as usize;
        Self {
            repo,
            pack: PackBuilder::new(target),
            in_pack: HashSet::new(),
            packs: PackWriter::new(repo.storage.clone()),
            stats: BackupStats::default(),
            packs_written: 0,
            tree_chunks: Vec::new(),
            parent: None,
            deltas: 0,
            force_read: false,
            unchanged_files: 0,
            content_bytes: 0,
            progress,
            queue: queue::Queue::default(),
            untrusted: HashSet::new(),
            healing: Healing::default(),
        }
    }

    /// Hand the open pack to the pack writer thread, and index the packs it has made
    /// durable meanwhile.
    fn seal_pack(&mut self) -> Result<()> {
        if !self.pack.is_empty() {
            let pack = std::mem::replace(
                &mut self.pack,
                PackBuilder::new(self.repo.config.pack_target as usize),
            );
            self.packs.send(pack.finish(&self.repo.keys))?;
        }
        let durable = self.packs.durable()?;
        self.index(durable)
    }

    /// Write every pack durably, then index it: never the other way round. After this, all
    /// the chunks this writer stored are in the index.
    pub(crate) fn flush(&mut self) -> Result<()> {
        self.seal_pack()?;
        let durable = self.packs.finish()?;
        self.index(durable)
    }

    fn index(&mut self, durable: Vec<Durable>) -> Result<()> {
        for (id, size, entries) in durable {
            let repo = self.repo;
            repo.ensure_lock()?;
            repo.index
                .add_pack_if(id, size, &entries, || repo.ensure_lock_fresh())?;
            for e in &entries {
                self.in_pack.remove(&e.id);
            }
            self.packs_written += 1;
        }
        Ok(())
    }

    /// Add a record to the tree stream now, storing the tree chunks it completes.
    fn write_tree(&mut self, tree: &mut TreeWriter, r: &Record) -> Result<()> {
        if let Some(batch) = tree.push(r) {
            let ids = self.store(ObjectType::Tree, &batch)?;
            self.tree_chunks
                .extend(ids.into_iter().map(|(id, len, _)| (id, len)));
        }
        Ok(())
    }
}

/// Back up `source` into `repo` and commit a snapshot.
///
/// Refused before anything is written: a snapshot field past the format's limits
/// ([`check_request`]). Refused before the commit: no content or less than
/// [`BackupOptions::min_size`], and a [`Source::Command`] that does not exit 0.
///
/// # Errors
/// `Io` for source failures (nothing is committed), `Storage` for repository failures,
/// `Interrupted` on Ctrl-C, `InvalidInput` for unusable paths or names and the refusals
/// above.
pub fn backup(
    repo: &mut Repo,
    source: Source,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupSummary> {
    repo.ensure_writable()?;
    let input::Request {
        mut snapshot,
        named,
    } = input::request(&source, opts)?;
    input::warn_about_time(repo, snapshot.time, progress);
    let started = Instant::now();
    let cutter = Cutter::new(repo.config.chunker, repo.keys.chunker_seed());
    let mut tree = TreeWriter::new(cutter, TREE_FLUSH_BYTES);
    let repo: &Repo = repo;
    let mut w = Writer::new(repo, progress);
    w.force_read = opts.force_read;
    w.untrust_missing_packs()?;
    progress.start("backup", None, Unit::Bytes);
    let unchecked = matches!(source, Source::Stream { .. });
    let what = match source {
        Source::Paths(_) => {
            for (_, abs) in &named {
                std::fs::symlink_metadata(abs)
                    .map_err(|e| Error::io(format!("cannot back up {}", abs.display()), e))?;
            }
            w.parent =
                parent::find(w.repo, "files", &snapshot.paths).map(|s| Parent::new(w.repo, &s));
            for (name, abs) in named {
                w.walk(&abs, name, &mut tree)?;
            }
            "the backup's paths".to_string()
        }
        Source::Stream { name, reader } => {
            w.stream_entry(name, reader, "standard input", &mut tree)?;
            "standard input".to_string()
        }
        Source::Command { name, command } => {
            let (producer, stdout) = producer::Producer::spawn(command)?;
            let what = producer.what();
            w.stream_entry(name, stdout, &what, &mut tree)?;
            let stderr = producer.finish()?;
            if !stderr.is_empty() {
                progress.warn(&format!("{what}: its standard error said: {stderr}"));
            }
            what
        }
    };
    w.drain(0, 0, &mut tree)?;
    // Before the tree's last chunks are stored: an empty backup usually writes nothing.
    input::check_content(w.content_bytes, opts, &what, unchecked)?;
    if let Some(batch) = tree.finish() {
        let ids = w.store(ObjectType::Tree, &batch)?;
        w.tree_chunks
            .extend(ids.into_iter().map(|(id, len, _)| (id, len)));
    }
    w.flush()?;
    progress.finish();
    crate::check_interrupt()?;
    snapshot.stats = w.stats;
    snapshot.tree_len = tree.total();
    snapshot.tree = std::mem::take(&mut w.tree_chunks);
    w.repo.ensure_lock()?;
    let id = snapshot.save(w.repo.storage.as_ref(), &w.repo.keys)?;
    Ok(BackupSummary {
        snapshot: id,
        stats: w.stats,
        packs_written: w.packs_written,
        delta_chunks: w.deltas,
        unchanged_files: w.unchanged_files,
        duration_secs: started.elapsed().as_secs_f64(),
        healing: w.healing,
    })
}
