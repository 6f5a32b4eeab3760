//! The backup pipeline (format-spec.md, "Write ordering and the commit point").
//!
//! Read → cut into chunks (one thread, batches of whole chunks) → keyed hash of every chunk
//! (on the reader thread in a first backup, else on all cores) → drop chunks the index or
//! this backup already has → compress, seal and verify the new ones (all cores) → pack. A
//! full pack is written whole and durable on a thread of its own, then indexed in one
//! transaction; the snapshot object, written last, is the one commit point. The parts
//! after reading are in crate::write; this module and its children read the sources.
//! A backup that stops anywhere before it leaves packs nobody references (reclaimed by
//! gc) and every earlier snapshot untouched.
//!
//! Memory is bounded by a few read batches and their sealed copies, one open and one
//! finished pack, and the parent snapshot's window, whatever the size of the input
//! (format-spec.md, "Write ordering and the commit point", states the figure).

use crate::chunking::parent::{self, Parent};
use crate::disk::id::SnapshotId;
use crate::disk::snapshot::{BackupStats, Snapshot};
use crate::disk::tree::Record;
use crate::error::{Error, Result};
use crate::progress::{Progress, Unit};
use crate::repository::repo::Repo;
use crate::write::queue::Queue;
use crate::write::store::ChunkStore;
use crate::write::tree_sink::TreeSink;
use chrono::{DateTime, Utc};
use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

mod entries;
mod files;
mod heal;
mod input;
pub(crate) mod producer;
mod streams;
pub use crate::write::BATCH_BYTES;
pub use entries::{Entry, EntryIter};
pub use heal::Healing;
pub use input::{UNCHECKED_PRODUCER_TAG, check_request};
pub use streams::{StreamContent, StreamEntry};

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
    /// Several named streams of one source (a database's dump, roles and manifest), stored
    /// as the snapshot's files. The snapshot records `source` and `paths` as given (a later
    /// backup of the same pair walks beside it), and commits only if every stream's
    /// producer succeeded.
    Streams {
        /// The snapshot's source name (`postgres`); not `files` or `stdin`.
        source: String,
        /// What the snapshot names as its paths (the database).
        paths: Vec<Vec<u8>>,
        /// The streams; their names must differ.
        entries: Vec<StreamEntry>,
    },
    /// Entries handed over in tree order (an imported archive's members): directories,
    /// files with a reader and symlinks, each with its metadata. Every path is checked and
    /// an entry out of order, duplicated, without its parent directory before it, or past
    /// the format's limits fails the backup. The snapshot records `source` and `paths` as
    /// given.
    Entries {
        /// The snapshot's source name (`import`, `postgres`); not `files` or `stdin`.
        source: String,
        /// What the snapshot names as its paths.
        paths: Vec<Vec<u8>>,
        /// The entries.
        entries: EntryIter,
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

/// A backup being written: the sources' side (counters, the unchanged-file shortcut) in
/// front of the writer's parts (crate::write).
pub(crate) struct Writer<'r> {
    repo: &'r Repo,
    store: ChunkStore<'r>,
    queue: Queue,
    tree: TreeSink,
    /// Files, directories, symlinks and bytes read (the chunk counters are the store's).
    stats: BackupStats,
    /// Re-read files the parent snapshot says are unchanged.
    force_read: bool,
    /// Files listed from the parent snapshot without reading them.
    unchanged_files: u64,
    /// Bytes of regular-file and stream content, read or listed from the parent.
    content_bytes: u64,
    progress: &'r dyn Progress,
    healing: Healing,
}

/// Most chunks an unchanged file may have for the parent's record of it to be reused (an
/// 8 GiB file at the default average chunk size, 1 GiB at the 16 KiB of older
/// repositories); larger files are read, which bounds memory (~3 MiB of references).
const REUSE_MAX_CHUNKS: usize = 65_536;

impl<'r> Writer<'r> {
    fn new(repo: &'r Repo, progress: &'r dyn Progress) -> Self {
        Self {
            repo,
            store: ChunkStore::new(repo),
            queue: Queue::default(),
            tree: TreeSink::new(repo),
            stats: BackupStats::default(),
            force_read: false,
            unchanged_files: 0,
            content_bytes: 0,
            progress,
            healing: Healing::default(),
        }
    }

    /// Plan a batch of file content, whose chunk ids are `ids`, and queue it for sealing.
    fn enqueue(
        &mut self,
        batch: crate::disk::chunker::Batch,
        ids: &[crate::disk::id::ChunkId],
    ) -> Result<()> {
        self.progress.inc(batch.data.len() as u64);
        self.queue
            .enqueue(batch, ids, &mut self.store, &mut self.tree)
    }

    /// Add a record to the tree, behind the batches still being sealed.
    fn record(&mut self, r: &Record) -> Result<()> {
        self.queue.record(r, &mut self.store, &mut self.tree)
    }

    /// The parent snapshot walked beside, if any.
    fn parent(&mut self) -> Option<&mut Parent<'r>> {
        self.store.planner().parent()
    }

    /// Read the sources into the tree; return what they were, for messages.
    fn read_sources(
        &mut self,
        source: Source,
        named: Vec<(Vec<u8>, PathBuf)>,
        paths: &[Vec<u8>],
    ) -> Result<String> {
        Ok(match source {
            Source::Paths(_) => {
                for (_, abs) in &named {
                    std::fs::symlink_metadata(abs)
                        .map_err(|e| Error::io(format!("cannot back up {}", abs.display()), e))?;
                }
                let parent =
                    parent::find(self.repo, "files", paths).map(|s| Parent::new(self.repo, &s));
                self.store.planner().set_parent(parent);
                for (name, abs) in named {
                    self.walk(&abs, name)?;
                }
                "the backup's paths".to_string()
            }
            Source::Stream { name, reader } => {
                self.stream_entry(name, reader, "standard input")?;
                "standard input".to_string()
            }
            Source::Command { name, command } => {
                let (producer, stdout) = producer::Producer::spawn(command)?;
                let what = producer.what();
                self.stream_entry(name, stdout, &what)?;
                let stderr = producer.finish()?;
                if !stderr.is_empty() {
                    self.progress
                        .warn(&format!("{what}: its standard error said: {stderr}"));
                }
                what
            }
            Source::Streams {
                source,
                paths,
                entries,
            } => self.stream_entries(&source, &paths, entries)?,
            Source::Entries {
                source,
                paths,
                entries,
            } => self.entries(&source, &paths, entries)?,
        })
    }

    /// Store the rest, wait until every pack is durable and indexed, and commit `snapshot`
    /// naming the tree. The snapshot is the commit point: nothing before it is visible.
    fn commit(mut self, mut snapshot: Snapshot, started: Instant) -> Result<BackupSummary> {
        let tree = self.tree.finish(&mut self.store)?;
        self.store.flush()?;
        self.progress.finish();
        crate::check_interrupt()?;
        let counters = self.store.counters();
        counters.add_to(&mut self.stats);
        snapshot.stats = self.stats;
        snapshot.tree_len = tree.len;
        snapshot.tree = tree.chunks;
        self.repo.ensure_lock()?;
        let id = snapshot.save(self.repo.storage.as_ref(), &self.repo.keys)?;
        Ok(BackupSummary {
            snapshot: id,
            stats: self.stats,
            packs_written: counters.packs_written,
            delta_chunks: counters.deltas,
            unchanged_files: self.unchanged_files,
            duration_secs: started.elapsed().as_secs_f64(),
            healing: Healing {
                stored_again: counters.stored_again,
                ..self.healing
            },
        })
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
    let input::Request { snapshot, named } = input::request(&source, opts)?;
    input::warn_about_time(repo, snapshot.time, progress);
    let started = Instant::now();
    let repo: &Repo = repo;
    let mut w = Writer::new(repo, progress);
    w.force_read = opts.force_read;
    let (healing, untrusted) = heal::untrust_missing_packs(repo)?;
    w.healing = healing;
    w.store.untrust(untrusted);
    progress.start("backup", None, Unit::Bytes);
    let unchecked = matches!(source, Source::Stream { .. });
    let what = w.read_sources(source, named, &snapshot.paths)?;
    w.queue.finish(&mut w.store, &mut w.tree)?;
    // Before the tree's last chunks are stored: an empty backup usually writes nothing.
    input::check_content(w.content_bytes, opts, &what, unchecked)?;
    w.commit(snapshot, started)
}
