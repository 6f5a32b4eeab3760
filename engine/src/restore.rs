//! Restoring snapshots, dumping one file, listing entries.
//!
//! A snapshot is hostile input. The tree reader validates every path (no `..`, no absolute
//! paths, no duplicates, parents first); restore then works only through directory file
//! descriptors (`openat`, `mkdirat`, `symlinkat`, `renameat` relative to the parent), opens
//! with `O_NOFOLLOW`, and sets modes and times through the open descriptor, so nothing it
//! does can follow a symlink out of the target. Files are written to a temporary name and
//! renamed into place once their content hash checks, so a failed restore never leaves a
//! half file under a final name.
//!
//! Loading and writing overlap: the calling thread walks the tree and loads chunks in
//! batches (opening them on all cores), while a writer thread applies the previous batch to
//! the target and hashes each file, so the target's write path and the whole-file hash no
//! longer leave a core idle between batches.

use crate::error::{Error, ErrorKind, Result};
use crate::format::ObjectType;
use crate::progress::{Progress, Unit};
use crate::repo::Repo;
use crate::snapshot::Snapshot;
use crate::tree::{EntryMeta, Record, display_path};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Options of a restore.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// Replace symlinks and non-directories that stand where the snapshot has something else.
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
}

fn name_of(path: &[u8]) -> &[u8] {
    path.rsplit(|b| *b == b'/').next().unwrap_or(path)
}

fn times(m: &EntryMeta) -> Timestamps {
    let t = Timespec {
        tv_sec: m.mtime,
        tv_nsec: i64::from(m.mtime_nsec.min(999_999_999)),
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn at_err(path: &[u8], what: &str, e: rustix::io::Errno) -> Error {
    Error::io(
        format!("{what} {}", display_path(path)),
        std::io::Error::from(e),
    )
}

struct OpenFile {
    meta: EntryMeta,
    file: File,
    tmp_name: Vec<u8>,
    hasher: blake3::Hasher,
    written: u64,
}

/// Chunks loaded together (in parallel) during a restore: enough to keep all cores busy,
/// few enough to bound memory (three batches are alive at once: one loading, one queued,
/// one being written).
const CHUNKS_PER_READ: usize = 256;

/// Tree records per batch when they carry no chunks (trees of many empty files or links).
const OPS_PER_BATCH: usize = 4096;

/// One step for the writer thread, in tree order.
enum Op {
    Dir(EntryMeta),
    Symlink(EntryMeta, Vec<u8>),
    FileStart(EntryMeta),
    /// A chunk's id, the length the tree records, and (once loaded) its plaintext.
    Chunk(crate::id::ChunkId, u32, Vec<u8>),
    FileEnd {
        size: u64,
        hash: [u8; 32],
    },
}

/// The writer's side of a restore: everything it does to the target.
struct Restorer<'a> {
    opts: &'a RestoreOptions,
    root: OwnedFd,
    dirs: Vec<(EntryMeta, OwnedFd)>,
    file: Option<OpenFile>,
    summary: RestoreSummary,
    progress: &'a dyn Progress,
}

impl Restorer<'_> {
    /// Close directories that are not ancestors of `path`, applying their mode and times
    /// now that nothing more will be written inside them.
    fn pop_to_parent(&mut self, path: &[u8]) -> Result<()> {
        let parent = path
            .iter()
            .rposition(|b| *b == b'/')
            .map_or(&[][..], |i| &path[..i]);
        while let Some((m, _)) = self.dirs.last() {
            if m.path == parent {
                break;
            }
            let (m, fd) = self.dirs.pop().expect("checked");
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(m.mode))
                .map_err(|e| at_err(&m.path, "setting mode of", e))?;
            rustix::fs::futimens(&fd, &times(&m))
                .map_err(|e| at_err(&m.path, "setting times of", e))?;
        }
        Ok(())
    }

    fn parent_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.dirs
            .last()
            .map_or(self.root.as_fd(), |(_, fd)| fd.as_fd())
    }

    /// What stands at `name` in the current directory, without following links.
    fn existing(&self, name: &[u8]) -> Option<FileType> {
        rustix::fs::statat(self.parent_fd(), name, AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .map(|st| FileType::from_raw_mode(st.st_mode))
    }

    /// Make room for a new non-directory at `name`, or refuse. An existing symlink is only
    /// replaced (never written through) with `--overwrite`, or by a symlink from the snapshot.
    fn clear_for(&self, m: &EntryMeta, replacing_with_link: bool) -> Result<()> {
        let name = name_of(&m.path);
        match self.existing(name) {
            None => Ok(()),
            Some(FileType::Directory) => Err(Error::new(
                ErrorKind::Io,
                format!(
                    "{} exists in the target as a directory; restore into an empty directory",
                    display_path(&m.path)
                ),
            )),
            Some(FileType::Symlink) if !self.opts.overwrite && !replacing_with_link => {
                Err(Error::new(
                    ErrorKind::Io,
                    format!(
                        "refusing to write through existing symlink {} (use --overwrite to replace it)",
                        display_path(&m.path)
                    ),
                ))
            }
            Some(_) => rustix::fs::unlinkat(self.parent_fd(), name, AtFlags::empty())
                .map_err(|e| at_err(&m.path, "replacing", e)),
        }
    }

    fn dir(&mut self, m: EntryMeta) -> Result<()> {
        self.pop_to_parent(&m.path)?;
        let name = name_of(&m.path);
        match rustix::fs::mkdirat(self.parent_fd(), name, Mode::from_raw_mode(0o700)) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) if self.existing(name) == Some(FileType::Directory) => {}
            Err(rustix::io::Errno::EXIST) => {
                self.clear_for(&m, false)?;
                rustix::fs::mkdirat(self.parent_fd(), name, Mode::from_raw_mode(0o700))
                    .map_err(|e| at_err(&m.path, "creating", e))?;
            }
            Err(e) => return Err(at_err(&m.path, "creating", e)),
        }
        let fd = rustix::fs::openat(
            self.parent_fd(),
            name,
            OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| at_err(&m.path, "opening directory", e))?;
        self.summary.dirs += 1;
        self.dirs.push((m, fd));
        Ok(())
    }

    fn symlink(&mut self, m: &EntryMeta, target: &[u8]) -> Result<()> {
        self.pop_to_parent(&m.path)?;
        self.clear_for(m, true)?;
        let name = name_of(&m.path);
        rustix::fs::symlinkat(target, self.parent_fd(), name)
            .map_err(|e| at_err(&m.path, "creating symlink", e))?;
        rustix::fs::utimensat(self.parent_fd(), name, &times(m), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| at_err(&m.path, "setting times of", e))?;
        self.summary.symlinks += 1;
        Ok(())
    }

    fn file_start(&mut self, meta: EntryMeta) -> Result<()> {
        self.pop_to_parent(&meta.path)?;
        if self.existing(name_of(&meta.path)).is_some() {
            self.clear_for(&meta, false)?;
        }
        let tmp_name = format!(
            ".masclet-restore-{}",
            crate::id::to_hex(&crate::crypto::random_array::<8>())
        )
        .into_bytes();
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(
            self.parent_fd(),
            tmp_name.as_slice(),
            flags,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| at_err(&meta.path, "creating", e))?;
        self.file = Some(OpenFile {
            meta,
            file: File::from(fd),
            tmp_name,
            hasher: blake3::Hasher::new(),
            written: 0,
        });
        Ok(())
    }

    fn file_chunk(&mut self, id: &crate::id::ChunkId, len: u32, data: &[u8]) -> Result<()> {
        if data.len() != len as usize {
            return Err(Error::corrupt(format!(
                "chunk {id} has {} bytes, the tree says {len}",
                data.len()
            )));
        }
        let f = self
            .file
            .as_mut()
            .expect("validator guarantees an open file");
        f.file
            .write_all(data)
            .map_err(|e| Error::io(format!("writing {}", display_path(&f.meta.path)), e))?;
        f.hasher.update(data);
        f.written += data.len() as u64;
        self.progress.inc(data.len() as u64);
        Ok(())
    }

    fn file_end(&mut self, size: u64, hash: &[u8; 32]) -> Result<()> {
        let f = self.file.take().expect("validator guarantees an open file");
        let path = f.meta.path.clone();
        let result = (|| {
            if f.written != size || f.hasher.finalize().as_bytes() != hash {
                return Err(Error::corrupt(format!(
                    "restored content of {} does not match the hash recorded at backup",
                    display_path(&path)
                )));
            }
            rustix::fs::fchmod(&f.file, Mode::from_raw_mode(f.meta.mode))
                .map_err(|e| at_err(&path, "setting mode of", e))?;
            rustix::fs::futimens(&f.file, &times(&f.meta))
                .map_err(|e| at_err(&path, "setting times of", e))?;
            let parent = self.parent_fd();
            rustix::fs::renameat(parent, f.tmp_name.as_slice(), parent, name_of(&path))
                .map_err(|e| at_err(&path, "renaming into place", e))
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(self.parent_fd(), f.tmp_name.as_slice(), AtFlags::empty());
        }
        result?;
        self.summary.files += 1;
        self.summary.bytes += size;
        Ok(())
    }

    fn abort(&mut self) {
        if let Some(f) = self.file.take() {
            let _ = rustix::fs::unlinkat(self.parent_fd(), f.tmp_name.as_slice(), AtFlags::empty());
        }
    }

    fn apply(&mut self, op: Op) -> Result<()> {
        match op {
            Op::Dir(m) => self.dir(m),
            Op::Symlink(m, target) => self.symlink(&m, &target),
            Op::FileStart(m) => self.file_start(m),
            Op::Chunk(id, len, data) => self.file_chunk(&id, len, &data),
            Op::FileEnd { size, hash } => self.file_end(size, &hash),
        }
    }

    /// The writer thread: apply batches until the loader says it is done (`None`), then
    /// close the remaining directories. A loader that hangs up without saying so failed:
    /// `Ok(None)` tells the loader to report its own error. Either way the file being
    /// written, if any, is removed when `self` drops.
    fn run(mut self, batches: &Receiver<Option<Vec<Op>>>) -> Result<Option<RestoreSummary>> {
        loop {
            match batches.recv() {
                Ok(Some(batch)) => {
                    for op in batch {
                        self.apply(op)?;
                    }
                }
                Ok(None) => {
                    self.pop_to_parent(b"")?;
                    return Ok(Some(self.summary));
                }
                Err(_) => return Ok(None),
            }
        }
    }
}

impl Drop for Restorer<'_> {
    /// Whatever ends the writer (an error, a panic, the loader hanging up), no temporary
    /// file stays behind; after a file is renamed into place there is none to remove.
    fn drop(&mut self) {
        self.abort();
    }
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
    let mut reader = repo.tree_reader(snap);
    let mut batch = Vec::new();
    let mut chunks = 0;
    loop {
        let rec = reader.next_record()?;
        let done = rec.is_none();
        match rec {
            None | Some(Record::Sketch(_)) => {}
            Some(Record::Dir(m)) => batch.push(Op::Dir(m)),
            Some(Record::Symlink(m, target)) => batch.push(Op::Symlink(m, target)),
            Some(Record::FileStart(m)) => batch.push(Op::FileStart(m)),
            Some(Record::FileChunk(id, len)) => {
                batch.push(Op::Chunk(id, len, Vec::new()));
                chunks += 1;
            }
            Some(Record::FileEnd { size, content_hash }) => batch.push(Op::FileEnd {
                size,
                hash: content_hash,
            }),
        }
        if done || chunks >= CHUNKS_PER_READ || batch.len() >= OPS_PER_BATCH {
            crate::check_interrupt()?;
            load_batch(repo, &mut batch)?;
            if batches.send(Some(std::mem::take(&mut batch))).is_err() {
                return Ok(());
            }
            chunks = 0;
        }
        if done {
            let _ = batches.send(None);
            return Ok(());
        }
    }
}

/// Restore `snap` into `target` (created if missing).
///
/// # Errors
/// `Corrupt` for damaged or hostile snapshot data, `Io` for target failures (naming the
/// path), `Interrupted` on Ctrl-C.
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
    let r = Restorer {
        opts,
        root,
        dirs: Vec::new(),
        file: None,
        summary: RestoreSummary::default(),
        progress,
    };
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
        if e.kind() == ErrorKind::Io {
            e.context(format!("restoring into {}", target.display()))
        } else {
            e
        }
    })
}

/// Write the content of the file at `path` in `snap` to `out`, checking its hash.
///
/// # Errors
/// `NotFound` if there is no such file, `Corrupt` for damage, `Io` if `out` fails.
pub fn dump(repo: &Repo, snap: &Snapshot, path: &[u8], out: &mut dyn Write) -> Result<u64> {
    let path = path.strip_prefix(b"/").unwrap_or(path);
    let mut reader = repo.tree_reader(snap);
    let mut hasher = None::<blake3::Hasher>;
    let mut pending = Vec::new();
    let flush = |pending: &mut Vec<crate::id::ChunkId>,
                 h: &mut blake3::Hasher,
                 out: &mut dyn Write|
     -> Result<()> {
        for data in repo.load_chunks(pending, ObjectType::Data)? {
            out.write_all(&data)
                .map_err(|e| Error::io("writing output", e))?;
            h.update(&data);
        }
        pending.clear();
        Ok(())
    };
    while let Some(rec) = reader.next_record()? {
        match (&mut hasher, rec) {
            (None, Record::FileStart(m)) if m.path == path => hasher = Some(blake3::Hasher::new()),
            (None, Record::Dir(m) | Record::Symlink(m, _)) if m.path == path => {
                return Err(Error::invalid(format!(
                    "{} is not a regular file in this snapshot",
                    display_path(path)
                )));
            }
            (Some(h), Record::FileChunk(id, _)) => {
                pending.push(id);
                if pending.len() >= CHUNKS_PER_READ {
                    flush(&mut pending, h, out)?;
                }
            }
            (Some(h), Record::FileEnd { size, content_hash }) => {
                flush(&mut pending, h, out)?;
                if h.finalize().as_bytes() != &content_hash {
                    return Err(Error::corrupt(format!(
                        "content of {} does not match the hash recorded at backup",
                        display_path(path)
                    )));
                }
                out.flush().map_err(|e| Error::io("writing output", e))?;
                return Ok(size);
            }
            _ => {}
        }
    }
    Err(Error::new(
        ErrorKind::NotFound,
        format!(
            "no file {} in this snapshot (see `masclet ls`)",
            display_path(path)
        ),
    ))
}

/// One entry as `ls` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LsEntry {
    /// Path in the snapshot (lossy UTF-8 for display; see `path_bytes`).
    pub path: String,
    /// The path's exact bytes.
    #[serde(skip)]
    pub path_bytes: Vec<u8>,
    /// `file`, `dir` or `symlink`.
    pub kind: &'static str,
    /// Permission bits.
    pub mode: u32,
    /// Modification time, unix seconds.
    pub mtime: i64,
    /// Size in bytes (files).
    pub size: u64,
    /// Link target (symlinks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Call `f` for every entry of `snap`, in tree order.
///
/// # Errors
/// `Corrupt` for a damaged tree; whatever `f` returns.
pub fn list(repo: &Repo, snap: &Snapshot, mut f: impl FnMut(LsEntry) -> Result<()>) -> Result<()> {
    let mut reader = repo.tree_reader(snap);
    let entry = |m: &EntryMeta, kind, size, target| LsEntry {
        path: String::from_utf8_lossy(&m.path).into_owned(),
        path_bytes: m.path.clone(),
        kind,
        mode: m.mode,
        mtime: m.mtime,
        size,
        target,
    };
    let mut pending = None;
    while let Some(rec) = reader.next_record()? {
        match rec {
            Record::Dir(m) => f(entry(&m, "dir", 0, None))?,
            Record::Symlink(m, t) => f(entry(
                &m,
                "symlink",
                0,
                Some(String::from_utf8_lossy(&t).into_owned()),
            ))?,
            Record::FileStart(m) => pending = Some(m),
            Record::FileChunk(..) | Record::Sketch(_) => {}
            Record::FileEnd { size, .. } => f(entry(
                &pending.take().expect("validated"),
                "file",
                size,
                None,
            ))?,
        }
    }
    Ok(())
}
