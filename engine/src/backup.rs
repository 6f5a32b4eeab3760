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

use crate::chunker::{Batch, Cutter};
use crate::delta::{candidate_chains, seal_chunk};
use crate::error::{Error, ErrorKind, Result};
use crate::format::ObjectType;
use crate::id::{ChunkId, SnapshotId};
use crate::pack::PackBuilder;
use crate::packer::{Durable, PackWriter};
use crate::parent::{self, Parent};
use crate::progress::{Progress, Unit};
use crate::repo::Repo;
use crate::resemble::sketch;
use crate::snapshot::{BackupStats, Snapshot};
use crate::tree::{EntryMeta, Record, TreeWriter, check_path, path_cmp};
use chrono::{DateTime, Utc};
use rayon::prelude::*;
use std::collections::HashSet;
use std::io::Read;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Instant;

mod files;
use files::top_level_name;

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
}

impl BackupOptions {
    /// Options with these tags and time.
    pub fn new(tags: Vec<String>, time: Option<DateTime<Utc>>) -> Self {
        Self {
            tags,
            time,
            force_read: false,
        }
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
}

pub(crate) struct Writer<'r> {
    pub(crate) repo: &'r Repo,
    pack: PackBuilder,
    /// Chunks stored by this backup but not indexed yet (in the open pack or in one being
    /// written): deduplication must see them as stored.
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
    progress: &'r dyn Progress,
}

/// A sealed chunk and the base it is a delta of, if any.
type Sealed = (Vec<u8>, Option<ChunkId>);

/// Most chunks an unchanged file may have for the parent's record of it to be reused (a
/// 1 GiB file at the default average chunk size); larger files are read, which bounds
/// memory.
const REUSE_MAX_CHUNKS: usize = 65_536;

/// A stretch of a read batch on its way to the repository.
struct Piece {
    range: Range<usize>,
    id: ChunkId,
    new: bool,
    sketch: Option<i64>,
}

impl Piece {
    fn len(&self) -> u32 {
        u32::try_from(self.range.len()).expect("chunks are below 4 GiB")
    }
}

impl<'r> Writer<'r> {
    /// A change that erases a cut point glues the changed parent chunk to the next one:
    /// stored as is, the glued chunk would be one delta against one of them, carrying the
    /// other's bytes as literals. When the new chunk ends with exactly the parent's
    /// following chunk (same length, same keyed id), cut it off again: the tail
    /// deduplicates and only the head is new. Otherwise, when it starts like a parent chunk
    /// (same head) and is longer by at least [`GLUED_MIN`], cut it at that chunk's length:
    /// each piece then finds its own base (the head that chunk, the tail the one after it),
    /// and next night the same cut gives the same pieces. Chunk boundaries are the writer's
    /// choice (format-spec.md, "Chunking"), so this changes nothing for readers.
    fn resync(
        repo: &Repo,
        in_pack: &HashSet<ChunkId>,
        parent: &mut Parent<'r>,
        data: &[u8],
        piece: Piece,
    ) -> Result<Vec<Piece>> {
        let Range { start, end } = piece.range;
        let following = parent.following().filter(|(next, len)| {
            (*len as usize) < end - start
                && repo.keys.chunk_id(&data[end - *len as usize..end]) == *next
        });
        let cut = match following {
            Some((_, len)) => end - len as usize,
            None => {
                // A glued chunk that starts where a parent chunk started: cut it at that
                // chunk's length, so the head is a delta against that chunk and the tail
                // one against the chunk after it, instead of one delta carrying the tail's
                // bytes as literals. Next night the same cut reproduces both pieces.
                let Some(len) = piece.sketch.and_then(|s| parent.same_head_len(s)) else {
                    return Ok(vec![piece]);
                };
                let len = len as usize;
                if len < GLUED_MIN || end - start < len + GLUED_MIN {
                    return Ok(vec![piece]);
                }
                start + len
            }
        };
        let head = start..cut;
        let head_id = repo.keys.chunk_id(&data[head.clone()]);
        let is_new = |id: ChunkId| -> Result<bool> {
            Ok(!repo.index.contains(&id)? && !in_pack.contains(&id))
        };
        let tail = cut..end;
        let next = match following {
            Some((next, _)) => next,
            None => repo.keys.chunk_id(&data[tail.clone()]),
        };
        let head_new = is_new(head_id)?;
        let tail_new = is_new(next)?;
        let sketch_of = |r: &Range<usize>, new: bool| {
            if new { sketch(&data[r.clone()]) } else { None }
        };
        Ok(vec![
            Piece {
                sketch: sketch_of(&head, head_new),
                range: head,
                id: head_id,
                new: head_new,
            },
            Piece {
                sketch: sketch_of(&tail, tail_new),
                range: tail,
                id: next,
                new: tail_new,
            },
        ])
    }

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
            progress,
        }
    }

    /// Store the chunks of `batch` the repository lacks; return every chunk's id, length
    /// and (for file content) resemblance sketch.
    pub(crate) fn store(
        &mut self,
        ty: ObjectType,
        batch: &Batch,
    ) -> Result<Vec<(ChunkId, u32, Option<i64>)>> {
        crate::check_interrupt()?;
        let repo = self.repo;
        let keys = &repo.keys;
        let bytes = |i: usize| &batch.data[batch.chunks[i].clone()];
        let ids: Vec<ChunkId> = (0..batch.chunks.len())
            .into_par_iter()
            .map(|i| keys.chunk_id(bytes(i)))
            .collect();
        // The lookups below (presence, resync, base chains) share one read transaction;
        // it ends before sealing, which may index a pack.
        let read = repo.index.read_tx()?;
        let present = repo.index.contains_many(&ids)?;
        // Absent from the repository. Whether a chunk is stored is decided only when the
        // walk below emits it (`stored`): a chunk cut apart there is never stored itself,
        // so a later copy of it in the batch must not count on it.
        let is_new: Vec<bool> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| !present[i] && !self.in_pack.contains(id))
            .collect();
        let mut stored = HashSet::new();
        // Sketches of new file chunks (unchanged chunks inherit the parent's).
        // Without a parent nothing asks for sketches before sealing (they only go into the
        // tree, for the next backup): they are then computed by the sealing workers, in the
        // same pass over the chunk.
        let late_sketch = ty == ObjectType::Data && self.parent.is_none();
        let sketches: Vec<Option<i64>> = if late_sketch {
            vec![None; ids.len()]
        } else {
            (0..ids.len())
                .into_par_iter()
                .map(|i| {
                    if ty == ObjectType::Data && is_new[i] {
                        sketch(bytes(i))
                    } else {
                        None
                    }
                })
                .collect()
        };
        // Walk the chunks in order beside the parent, cutting merged chunks apart again
        // (see `resync`); `pieces` is what gets stored and listed from here on.
        let mut pieces: Vec<Piece> = Vec::with_capacity(ids.len());
        let mut bases = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let piece = Piece {
                range: batch.chunks[i].clone(),
                id: *id,
                new: is_new[i],
                sketch: sketches[i],
            };
            let split = match (&mut self.parent, ty) {
                (Some(p), ObjectType::Data) if piece.new => {
                    Self::resync(repo, &self.in_pack, p, &batch.data, piece)?
                }
                _ => vec![piece],
            };
            for mut piece in split {
                // Stored once, by its first emitted copy; later copies refer to it.
                piece.new = piece.new && stored.insert(piece.id);
                let hint = match (&mut self.parent, ty) {
                    (Some(p), ObjectType::Data) => {
                        let (hints, known) =
                            p.observe(&piece.id, piece.len(), piece.new, piece.sketch);
                        if !piece.new {
                            piece.sketch = known;
                        }
                        hints
                    }
                    (Some(p), _) => {
                        let [a, b, c] = p.observe_tree(piece.new, piece.len());
                        [a, b, c, None, None]
                    }
                    (None, _) => [None; 5],
                };
                if ty == ObjectType::Data && !piece.new && piece.sketch.is_none() {
                    piece.sketch = sketch(&batch.data[piece.range.clone()]);
                }
                if piece.new {
                    bases.push(candidate_chains(repo, &hint, &piece.id)?);
                }
                pieces.push(piece);
            }
        }
        drop(read);
        let level = i32::from(repo.config.zstd_level);
        let storage = repo.storage.as_ref();
        let fresh: Vec<&Piece> = pieces.iter().filter(|p| p.new).collect();
        let sealed: Vec<(Result<Sealed>, Option<i64>)> = fresh
            .par_iter()
            .zip(bases)
            .map(|(p, base)| {
                let plain = &batch.data[p.range.clone()];
                let sealed = seal_chunk(keys, storage, ty, &p.id, plain, base, level);
                (sealed, if late_sketch { sketch(plain) } else { None })
            })
            .collect();
        let mut late = Vec::with_capacity(if late_sketch { sealed.len() } else { 0 });
        for (p, (s, sk)) in fresh.iter().zip(sealed) {
            if late_sketch {
                late.push(sk);
            }
            let (s, base) = s?;
            let raw = p.range.len();
            self.stats.new_chunks += 1;
            if ty == ObjectType::Data {
                self.stats.new_raw_bytes += raw as u64;
            }
            self.stats.bytes_added += s.len() as u64;
            self.deltas += u64::from(base.is_some());
            self.pack.add(
                ty,
                p.id,
                s,
                u32::try_from(raw).expect("chunks are below 4 GiB"),
                base,
            );
            self.in_pack.insert(p.id);
            if self.pack.is_full() {
                self.seal_pack()?;
            }
        }
        let mut late = late.into_iter();
        for p in pieces.iter_mut().filter(|p| late_sketch && p.new) {
            p.sketch = late.next().flatten();
        }
        self.stats.chunks += pieces.len() as u64;
        Ok(pieces
            .into_iter()
            .map(|p| (p.id, p.len(), p.sketch))
            .collect())
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

    pub(crate) fn tree(&mut self, tree: &mut TreeWriter, r: &Record) -> Result<()> {
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
/// # Errors
/// `Io` for source failures (nothing is committed), `Storage` for repository failures,
/// `Interrupted` on Ctrl-C, `InvalidInput` for unusable paths or names.
pub fn backup(
    repo: &mut Repo,
    source: Source,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupSummary> {
    repo.ensure_writable()?;
    let started = Instant::now();
    let cutter = Cutter::new(repo.config.chunker, repo.keys.chunker_seed());
    let mut tree = TreeWriter::new(cutter, TREE_FLUSH_BYTES);
    let repo: &Repo = repo;
    let mut w = Writer::new(repo, progress);
    w.force_read = opts.force_read;
    progress.start("backup", None, Unit::Bytes);
    let (paths, kind) = match source {
        Source::Paths(paths) => {
            let mut named = Vec::new();
            for p in paths {
                let abs = std::path::absolute(&p)
                    .map_err(|e| Error::io(format!("resolving {}", p.display()), e))?;
                std::fs::symlink_metadata(&abs)
                    .map_err(|e| Error::io(format!("cannot back up {}", p.display()), e))?;
                named.push((top_level_name(&abs)?, abs));
            }
            named.sort_by(|a, b| path_cmp(&a.0, &b.0));
            if let Some(w) = named.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(Error::invalid(format!(
                    "{} and {} would both be named {:?} in the snapshot; back them up separately",
                    w[0].1.display(),
                    w[1].1.display(),
                    String::from_utf8_lossy(&w[0].0)
                )));
            }
            let paths: Vec<Vec<u8>> = named
                .iter()
                .map(|(_, p)| p.as_os_str().as_bytes().to_vec())
                .collect();
            w.parent = parent::find(w.repo, "files", &paths).map(|s| Parent::new(w.repo, &s));
            for (name, abs) in &named {
                w.walk(abs, name.clone(), &mut tree)?;
            }
            (paths, "files")
        }
        Source::Stream { name, reader } => {
            check_path(&name).map_err(|_| {
                Error::invalid("the stream name must be a file name (no `/`, not `.` or `..`)")
            })?;
            if name.contains(&b'/') {
                return Err(Error::invalid(
                    "the stream name must be a single file name without `/`",
                ));
            }
            let now = Utc::now();
            w.parent = parent::find(w.repo, "stdin", std::slice::from_ref(&name))
                .map(|s| Parent::new(w.repo, &s));
            if let Some(p) = &mut w.parent {
                p.start_file(&name);
            }
            let meta = EntryMeta {
                path: name.clone(),
                mode: 0o600,
                mtime: now.timestamp(),
                mtime_nsec: now.timestamp_subsec_nanos(),
            };
            w.stats.files += 1;
            w.tree(&mut tree, &Record::FileStart(meta))?;
            let (size, content_hash) =
                w.store_stream(reader, true, &|| "standard input".to_string(), &mut tree)?;
            w.tree(&mut tree, &Record::FileEnd { size, content_hash })?;
            (vec![name], "stdin")
        }
    };
    if let Some(batch) = tree.finish() {
        let ids = w.store(ObjectType::Tree, &batch)?;
        w.tree_chunks
            .extend(ids.into_iter().map(|(id, len, _)| (id, len)));
    }
    w.flush()?;
    progress.finish();
    crate::check_interrupt()?;
    let snapshot = Snapshot {
        time: opts.time.unwrap_or_else(Utc::now),
        host: crate::lock::hostname(),
        user: std::env::var("USER")
            .unwrap_or_else(|_| rustix::process::getuid().as_raw().to_string()),
        tags: opts.tags.clone(),
        paths,
        source: kind.to_string(),
        stats: w.stats,
        tree_len: tree.total(),
        tree: std::mem::take(&mut w.tree_chunks),
    };
    w.repo.ensure_lock()?;
    let id = snapshot
        .save(w.repo.storage.as_ref(), &w.repo.keys)
        .map_err(|e| {
            if e.kind() == ErrorKind::Storage {
                e.context("writing the snapshot (nothing was committed)")
            } else {
                e
            }
        })?;
    Ok(BackupSummary {
        snapshot: id,
        stats: w.stats,
        packs_written: w.packs_written,
        delta_chunks: w.deltas,
        unchanged_files: w.unchanged_files,
        duration_secs: started.elapsed().as_secs_f64(),
    })
}
