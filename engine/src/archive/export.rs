//! Export a snapshot as a classic archive: `<root>/<tier>/masclet_<tier>_<YYYYMMDD_HHMM>_
//! <sha8>.tar.gz` and its `.sha256` sidecar (format-spec.md, "Classic archives").
//!
//! The same snapshot always gives the same bytes: entries in tree order with fixed owner
//! and the snapshot's modes and times (archive/tarball.rs), gzip whose blocks do not depend
//! on the number of threads (archive/gzip.rs), a manifest without the tier tags retention
//! rewrites. Content is read through restore's reader, so every chunk is authenticated and
//! every file's hash checked before the archive can get its name.
//!
//! Atomic: the archive is written under a temporary name in the tier folder, synced, and
//! only then named, without replacing anything (a name says which bytes the file holds, so
//! an existing file of that name is the same export, checked by its hash). A failure,
//! Ctrl-C or damage leaves no file under a final name; `kill -9` leaves a temporary that
//! the next export into the folder removes.

use super::folder::{self, Temp};
use super::gzip;
use super::manifest::{ARCHIVE_MANIFEST, ARCHIVE_MANIFEST_VERSION, ArchiveManifest};
use super::name::{ArchiveName, Tier};
use super::tarball::TarWriter;
use crate::disk::id::{RepoId, SnapshotId};
use crate::disk::snapshot::Snapshot;
use crate::error::{Error, ErrorKind, Result};
use crate::ops::restore::read_part;
use crate::ops::restore::verify::FileContent;
use crate::ops::retention::TIERS;
use crate::progress::{Progress, Unit};
use crate::repository::repo::Repo;
use crate::repository::walk::Entry;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Options of an export.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ExportOptions {
    /// Threads compressing (0: as many as rayon's pool, which `RAYON_NUM_THREADS` sets).
    /// The archive's bytes do not depend on it.
    pub threads: usize,
}

impl ExportOptions {
    /// Options with `threads` compressing.
    pub fn with_threads(threads: usize) -> Self {
        Self { threads }
    }
}

/// An export, made now or found already there.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Exported {
    /// Where it is.
    pub path: PathBuf,
    /// SHA-256 of the whole `.tar.gz`, hex.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    /// The snapshot it holds.
    pub snapshot: SnapshotId,
    /// Its tier.
    pub tier: Tier,
    /// `true` when this export was there already (checked by its hash), nothing written.
    pub already: bool,
    /// Temporaries of killed exports found in the folder and removed.
    pub leftovers_removed: u64,
}

/// Export snapshot `id` (`snap`) into `<root>/<tier>/`, or find it there already.
///
/// # Errors
/// `Corrupt` for damaged repository data (nothing is left under a final name) or an
/// existing export whose bytes do not match its name; `Io` when the folder cannot be
/// written (read-only, full, no permission); `InvalidInput` for a snapshot that holds a
/// top-level `MANIFEST.json` of its own; `Interrupted` on Ctrl-C.
pub fn export(
    repo: &Repo,
    id: SnapshotId,
    snap: &Snapshot,
    root: &Path,
    tier: Tier,
    opts: &ExportOptions,
    progress: &dyn Progress,
) -> Result<Exported> {
    let dir = root.join(tier.name());
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .create(&dir)
            .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        // The new folder's own name must survive a crash too.
        folder::sync_dir(root)?;
    }
    let leftovers_removed = folder::remove_stale(&dir);
    if let Some(mut done) = already_there(&dir, tier, repo.id(), id, progress)? {
        done.leftovers_removed = leftovers_removed;
        return Ok(done);
    }
    let (temp, file) = Temp::create(&dir)?;
    let threads = match opts.threads {
        0 => rayon::current_num_threads(),
        n => n,
    };
    let comment = folder::comment(&repo.id(), &id, &snap.time);
    let out = Hashed {
        file: std::io::BufWriter::with_capacity(1 << 20, file),
        sha: Sha256::new(),
        len: 0,
    };
    progress.start("export", Some(snap.stats.bytes_read), Unit::Bytes);
    let written = gzip::compress(out, &comment, threads, |blocks| {
        write_tar(repo, id, snap, blocks, progress)
    });
    progress.finish();
    let ((), out) = written.map_err(|e| match e.kind() {
        ErrorKind::Io => e.context(format!("exporting into {}", dir.display())),
        _ => e,
    })?;
    let (sha, size) = (out.sha.finalize().into(), out.len);
    let file = out
        .file
        .into_inner()
        .map_err(|e| Error::io(format!("writing {}", temp.path.display()), e.into_error()))?;
    file.sync_all()
        .map_err(|e| Error::io(format!("syncing {}", temp.path.display()), e))?;
    drop(file);
    let name = ArchiveName::new(tier, snap.time, &sha).file_name();
    let path = dir.join(&name);
    let _lock = folder::lock(&dir)?;
    let already = if folder::place_new(&temp.path, &path)? {
        temp.keep();
        false
    } else {
        // Another export of the same snapshot got there first: the name is taken by the
        // same bytes, or by a file that is not what its name says (left alone).
        check_existing(&path, &sha)?;
        true
    };
    finish_folder(&dir, tier, repo.id(), (&name, &sha), progress)?;
    Ok(Exported {
        path,
        sha256: crate::disk::id::to_hex(&sha),
        size,
        snapshot: id,
        tier,
        already,
        leftovers_removed,
    })
}

/// The sidecar, `latest.tar.gz`, and the folder synced. A `latest.tar.gz` that is not
/// masclet's symlink is left alone with a warning: the export itself is complete.
fn finish_folder(
    dir: &Path,
    tier: Tier,
    repo: RepoId,
    (name, sha): (&str, &[u8; 32]),
    progress: &dyn Progress,
) -> Result<()> {
    folder::write_sidecar(dir, name, sha)?;
    match folder::update_latest(dir, tier, repo) {
        Err(e) if e.kind() == ErrorKind::InvalidInput => progress.warn(&e.to_string()),
        other => {
            other?;
        }
    }
    folder::sync_dir(dir)
}

/// An export of `id` already in the folder (by its gzip comment), checked against its
/// name's checksum: then nothing needs writing.
fn already_there(
    dir: &Path,
    tier: Tier,
    repo: RepoId,
    id: SnapshotId,
    progress: &dyn Progress,
) -> Result<Option<Exported>> {
    let (found, _) = folder::scan(dir, tier, repo)?;
    let Some(f) = found.into_iter().find(|f| f.snapshot == id) else {
        return Ok(None);
    };
    let path = dir.join(&f.file);
    let sha = folder::sha256_file(&path)?;
    let name = ArchiveName::parse(&f.file)?;
    if !name.matches(&sha) {
        return Err(damaged_existing(&path));
    }
    let size = std::fs::metadata(&path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
        .len();
    let _lock = folder::lock(dir)?;
    finish_folder(dir, tier, repo, (&f.file, &sha), progress)?;
    Ok(Some(Exported {
        path,
        sha256: crate::disk::id::to_hex(&sha),
        size,
        snapshot: id,
        tier,
        already: true,
        leftovers_removed: 0,
    }))
}

fn check_existing(path: &Path, sha: &[u8; 32]) -> Result<()> {
    if folder::sha256_file(path)? == *sha {
        Ok(())
    } else {
        Err(damaged_existing(path))
    }
}

fn damaged_existing(path: &Path) -> Error {
    Error::corrupt(format!(
        "{} does not hold the bytes its name says (damaged?); masclet leaves it alone: move it away and export again",
        path.display()
    ))
}

/// The output file, hashed and counted as it is written.
struct Hashed {
    file: std::io::BufWriter<std::fs::File>,
    sha: Sha256,
    len: u64,
}

impl Write for Hashed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.sha.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// The tar stream of `snap`: its entries in tree order, then MANIFEST.json.
fn write_tar(
    repo: &Repo,
    id: SnapshotId,
    snap: &Snapshot,
    out: &mut gzip::Blocks,
    progress: &dyn Progress,
) -> Result<()> {
    let mut sizes = long_file_sizes(repo, snap)?.into_iter();
    let database = snap.source == crate::pg::manifest::PG_SOURCE;
    let mut tar = TarWriter::new(out);
    let mut content = None::<FileContent>;
    let mut pg_manifest = None;
    for entry in repo.walk(snap) {
        crate::check_interrupt()?;
        match entry? {
            Entry::Dir(m) => tar.dir(&m)?,
            Entry::Symlink(m, target) => tar.symlink(&m, &target)?,
            Entry::File(part) => {
                if part.first {
                    let size = match &part.end {
                        Some(end) => end.size,
                        None => sizes
                            .next()
                            .ok_or_else(|| Error::internal("export: a long file's size"))?,
                    };
                    let keep =
                        database && part.meta.path == crate::pg::manifest::MANIFEST_NAME.as_bytes();
                    tar.file_start(&part.meta, size, keep)?;
                    content = Some(FileContent::new());
                }
                let c = content
                    .as_mut()
                    .ok_or_else(|| Error::internal("export: a file part without its start"))?;
                read_part(repo, &part.chunks, c, &mut |data| {
                    crate::check_interrupt()?;
                    progress.inc(data.len() as u64);
                    tar.data(data)
                })?;
                if let Some(end) = part.end {
                    c.end(&part.meta.path, end.size, &end.content_hash)?;
                    if let Some(bytes) = tar.file_end()? {
                        pg_manifest = Some(crate::pg::Manifest::parse(&bytes)?);
                    }
                    content = None;
                }
            }
        }
    }
    let manifest = ArchiveManifest {
        version: ARCHIVE_MANIFEST_VERSION,
        snapshot: id.to_hex(),
        time: snap
            .time
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        source: snap.source.clone(),
        paths: snap
            .paths
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect(),
        // Tier tags change as retention runs; the archive must not.
        tags: snap
            .tags
            .iter()
            .filter(|t| !TIERS.contains(&t.as_str()))
            .cloned()
            .collect(),
        tool: format!("masclet {}", env!("CARGO_PKG_VERSION")),
        members: tar.members().to_vec(),
        database: pg_manifest,
    };
    tar.finish(&manifest.to_bytes(), snap.time.timestamp())?;
    Ok(())
}

/// The sizes of the files that come in several parts, in tree order (a tar header needs
/// the size before the content, and a long file's size is only at its last part), read
/// by a first walk over the tree alone. Refuses a snapshot whose own top-level
/// `MANIFEST.json` would clash with the archive's.
fn long_file_sizes(repo: &Repo, snap: &Snapshot) -> Result<Vec<u64>> {
    let mut sizes = Vec::new();
    for entry in repo.walk(snap) {
        let (meta, long) = match entry? {
            Entry::Dir(m) | Entry::Symlink(m, _) => (m, None),
            Entry::File(part) => {
                let long = match (&part.end, part.first) {
                    (Some(end), false) => Some(end.size),
                    _ => None,
                };
                (part.meta, long)
            }
        };
        if meta.path == ARCHIVE_MANIFEST.as_bytes() {
            return Err(Error::invalid(format!(
                "this snapshot has a top-level {ARCHIVE_MANIFEST} of its own, which would clash with the archive's manifest; restore it and archive it with tar instead"
            )));
        }
        sizes.extend(long);
    }
    Ok(sizes)
}

#[cfg(test)]
mod tests;
