//! One streaming read of a classic archive, start to end: the file's SHA-256, gzip (every
//! member's CRC), tar (every header's checksum, the end-of-archive blocks), each member's
//! safety and SHA-256, its offset in the decompressed stream (so import can read it again
//! in tree order), and `MANIFEST.json` when there is one. Nothing is written anywhere.
//!
//! The archive is hostile input (reliability.md T20–T22): every member name is checked
//! before it is used, and the decompressed size is capped ([`Limits`]) so a gzip bomb or a
//! header declaring an absurd size stops the read instead of filling the disk.

use super::manifest::ARCHIVE_MANIFEST;
use super::safety::{self, Kind};
use crate::progress::{Progress, Unit};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::rc::Rc;

/// Most bytes `MANIFEST.json` may hold (it is read into memory).
const MAX_MANIFEST: u64 = 64 << 20;

/// Caps on what one archive may expand to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Decompressed bytes allowed per compressed byte (gzip reaches about 1030 on zeros; a
    /// SQL dump stays under 20).
    pub ratio: u64,
    /// Decompressed bytes always allowed, whatever the ratio (many small or empty members).
    pub floor: u64,
    /// Bytes of member names kept in memory for the whole archive.
    pub name_bytes: usize,
    /// Members kept in memory (about 150 bytes each besides the names).
    pub members: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            ratio: 200,
            floor: 1 << 30,
            name_bytes: 64 << 20,
            members: 1_000_000,
        }
    }
}

impl Limits {
    /// The most an archive of `compressed` bytes may expand to.
    pub fn expanded(&self, compressed: u64) -> u64 {
        compressed.saturating_mul(self.ratio).max(self.floor)
    }
}

/// One member as read.
#[derive(Debug, Clone)]
pub struct Member {
    /// The path as stored in the archive.
    pub raw: Vec<u8>,
    /// The path with `./` and empty components removed (empty for the root itself).
    pub path: Vec<u8>,
    /// What it is.
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Content bytes (files).
    pub size: u64,
    /// Where the content starts in the decompressed stream.
    pub offset: u64,
    /// SHA-256 of the content (files).
    pub sha256: Option<[u8; 32]>,
}

/// What one read of an archive found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Bytes of the `.tar.gz` file.
    pub file_len: u64,
    /// SHA-256 of the whole file (every byte, even after damage).
    pub sha256: [u8; 32],
    /// The members read, in archive order (unsafe ones included, see `problems`).
    pub members: Vec<Member>,
    /// Unsafe or unusable members and refused sizes, one message each.
    pub problems: Vec<String>,
    /// The gzip stream was damaged or cut short.
    pub gzip_error: Option<String>,
    /// The tar structure was damaged, cut short or not read to its end.
    pub tar_error: Option<String>,
    /// `MANIFEST.json`'s bytes, when the archive has one at its root.
    pub manifest: Option<Vec<u8>>,
    /// Decompressed bytes read.
    pub expanded: u64,
}

impl Scan {
    /// Whether gzip and tar were read to their ends without damage.
    pub fn structure_ok(&self) -> bool {
        self.gzip_error.is_none() && self.tar_error.is_none()
    }
}

/// The SHA-256 of the file at `path` and its length (the check import makes before it
/// reads anything inside).
///
/// # Errors
/// `Io` when the file cannot be read.
pub fn hash_file(path: &Path, progress: &dyn Progress) -> crate::Result<([u8; 32], u64)> {
    let mut f = File::open(path).map_err(|e| crate::Error::io(path.display(), e))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    progress.start("checksum", Some(len), Unit::Bytes);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n_total = 0u64;
    loop {
        crate::check_interrupt()?;
        let n = match f.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => r.map_err(|e| crate::Error::io(path.display(), e))?,
        };
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        n_total += n as u64;
        progress.inc(n as u64);
    }
    progress.finish();
    Ok((h.finalize().into(), n_total))
}

/// Read the archive at `path` once, to the end, as the module says.
///
/// # Errors
/// `Io` when the file cannot be opened or read (damage inside is reported in the
/// [`Scan`], not as an error), `Interrupted`.
pub fn scan(path: &Path, limits: &Limits, progress: &dyn Progress) -> crate::Result<Scan> {
    let file = File::open(path).map_err(|e| crate::Error::io(path.display(), e))?;
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    progress.start("reading", Some(file_len), Unit::Bytes);
    let raw = Rc::new(RefCell::new(Hashing {
        inner: file,
        sha: Sha256::new(),
        len: 0,
        io_error: None,
    }));
    let state = Rc::new(RefCell::new(Watch {
        limit: limits.expanded(file_len),
        ..Watch::default()
    }));
    let gz = flate2::read::MultiGzDecoder::new(Shared(raw.clone(), progress));
    let watched = Watched {
        inner: gz,
        state: state.clone(),
        limit: limits.expanded(file_len),
    };
    let mut out = Scan {
        file_len,
        ..Scan::default()
    };
    let mut archive = tar::Archive::new(watched);
    let read = read_members(&mut archive, limits, &state, &mut out);
    let links: std::collections::HashMap<Vec<u8>, Vec<u8>> = out
        .members
        .iter()
        .filter_map(|m| match &m.kind {
            Kind::Symlink(t) => Some((m.path.clone(), t.clone())),
            _ => None,
        })
        .collect();
    out.problems.extend(safety::links_stay_inside(&links));
    let mut rest = archive.into_inner();
    if let Err(e) = read {
        crate::check_interrupt()?;
        out.tar_error = Some(printable(&e));
        // The gzip check speaks of the whole stream: read it to its end (still under the
        // bomb limit) so a sound gzip around a damaged tar is told from a damaged gzip.
        let _ = io::copy(&mut rest, &mut io::sink());
    } else {
        // Past the last member: the end-of-archive blocks (the tar reader stops at the
        // first and may have read the second), padding, gzip's trailer: zeros only.
        let mut tail = [0u8; 64 << 10];
        loop {
            match rest.read(&mut tail) {
                Ok(0) => break,
                Ok(n) if tail[..n].iter().all(|b| *b == 0) => {}
                Ok(_) => {
                    out.tar_error = Some("data after the end of the tar archive".into());
                    break;
                }
                Err(e) => {
                    out.tar_error = Some(format!("reading past the last member: {e}"));
                    break;
                }
            }
        }
        let last_end = out
            .members
            .last()
            .map_or(0, |m| m.offset + m.size.div_ceil(512) * 512);
        let after = state.borrow().count.saturating_sub(last_end);
        if out.tar_error.is_none() && after < 1024 {
            out.tar_error =
                Some("the tar end-of-archive blocks are missing: the archive was cut short".into());
        }
    }
    let w = state.borrow();
    out.expanded = w.count;
    if let Some(e) = &w.error {
        out.gzip_error = Some(e.clone());
        if out.tar_error.is_some() {
            out.tar_error = Some("not read to its end: the gzip stream is damaged".into());
        }
    }
    if let Some(b) = &w.bomb {
        out.problems.push(b.clone());
    }
    drop(w);
    drop(rest);
    // Hash what the decoder left unread, so the checksum covers every byte of the file.
    let mut raw = Rc::try_unwrap(raw)
        .map_err(|_| crate::Error::internal("archive reader still shared"))?
        .into_inner();
    io::copy(&mut raw, &mut io::sink()).map_err(|e| crate::Error::io(path.display(), e))?;
    progress.finish();
    if let Some(e) = raw.io_error {
        return Err(crate::Error::io(path.display(), e));
    }
    crate::check_interrupt()?;
    out.sha256 = raw.sha.finalize().into();
    out.file_len = raw.len;
    Ok(out)
}

/// The tar reader's messages quote raw header bytes: from a hostile or damaged archive
/// they must not reach a terminal as control sequences, nor run for kilobytes.
fn printable(msg: &str) -> String {
    let mut out = String::new();
    for c in msg.chars() {
        if out.len() >= 200 {
            out.push_str("...");
            break;
        }
        if c.is_control() || c == char::REPLACEMENT_CHARACTER {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// Read every member; an `Err` is damage that stopped the read.
fn read_members<R: Read>(
    archive: &mut tar::Archive<R>,
    limits: &Limits,
    watch: &Rc<RefCell<Watch>>,
    out: &mut Scan,
) -> Result<(), String> {
    let mut names = 0usize;
    let mut seen = std::collections::HashSet::new();
    let mut buf = vec![0u8; 256 << 10];
    let entries = archive.entries().map_err(|e| e.to_string())?;
    for entry in entries {
        if crate::interrupted() {
            return Err("interrupted".into());
        }
        let mut entry = entry.map_err(|e| e.to_string())?;
        if out.members.len() >= limits.members {
            out.problems.push(format!(
                "more than {} members: refused (each is held in memory)",
                limits.members
            ));
            return Err("stopped at a member past the limit on members".into());
        }
        let raw = entry.path_bytes().into_owned();
        names += raw.len();
        if names > limits.name_bytes {
            out.problems.push(format!(
                "member names add up to more than {} bytes: refused",
                limits.name_bytes
            ));
            return Err("stopped at a member past the limit on names".into());
        }
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let header = entry.header();
        // A pax global header (bsdtar, git archive) describes the archive, not a member.
        if header.entry_type() == tar::EntryType::XGlobalHeader {
            continue;
        }
        let size = entry.size();
        let offset = entry.raw_file_position();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let mtime = header
            .mtime()
            .map_or(0, |t| i64::try_from(t).unwrap_or(i64::MAX));
        let checked = safety::check(&raw, header.entry_type(), link.as_deref());
        let (path, kind) = match checked {
            Ok(pk) => pk,
            Err(problem) => {
                out.problems.push(problem);
                (Vec::new(), Kind::Other)
            }
        };
        if !path.is_empty() && !seen.insert(path.clone()) {
            out.problems.push(format!(
                "{}: the archive holds this name twice",
                safety::shown(&raw)
            ));
        }
        // Checked before a byte of it is read: the declared size must fit what is left.
        let state = watch.borrow().clone();
        let left = state.limit.saturating_sub(state.count);
        if size > left {
            let problem = format!(
                "{}: declares {size} bytes, more than this archive may expand to ({} bytes left of {}); refused as a decompression bomb",
                safety::shown(&raw),
                left,
                state.limit
            );
            out.problems.push(problem);
            return Err("stopped at a member of absurd size".into());
        }
        let mut sha = Sha256::new();
        let keep = path == ARCHIVE_MANIFEST.as_bytes() && kind == Kind::File;
        let mut kept = Vec::new();
        loop {
            let n = entry.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            sha.update(&buf[..n]);
            if keep && (kept.len() as u64) < MAX_MANIFEST {
                kept.extend_from_slice(&buf[..n]);
            }
        }
        if keep {
            out.manifest = Some(kept);
        }
        let is_file = kind == Kind::File;
        out.members.push(Member {
            raw,
            path,
            sha256: is_file.then(|| sha.finalize().into()),
            kind,
            mode,
            mtime,
            size: if is_file { size } else { 0 },
            offset,
        });
    }
    Ok(())
}

/// What the decompressed stream has seen.
#[derive(Debug, Default, Clone)]
struct Watch {
    count: u64,
    limit: u64,
    error: Option<String>,
    bomb: Option<String>,
}

/// The file, hashed as it is read.
struct Hashing {
    inner: File,
    sha: Sha256,
    len: u64,
    io_error: Option<io::Error>,
}

impl Read for Hashing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.sha.update(&buf[..n]);
                self.len += n as u64;
                Ok(n)
            }
            Err(e) => {
                let shown = io::Error::new(e.kind(), e.to_string());
                self.io_error = Some(e);
                Err(shown)
            }
        }
    }
}

/// The hashing reader shared with [`scan`], which finishes it after the decoder is done.
struct Shared<'p>(Rc<RefCell<Hashing>>, &'p dyn Progress);

impl Read for Shared<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.borrow_mut().read(buf)?;
        self.1.inc(n as u64);
        Ok(n)
    }
}

/// The decompressed stream: counts bytes, stops past the limit, remembers gzip's errors
/// (so a damaged gzip stream is told from a damaged tar inside a sound one).
struct Watched<R> {
    inner: R,
    state: Rc<RefCell<Watch>>,
    limit: u64,
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut w = self.state.borrow_mut();
        w.limit = self.limit;
        match self.inner.read(buf) {
            Ok(n) if w.count + n as u64 > self.limit => {
                let msg = format!(
                    "the archive expands past {} bytes: refused as a decompression bomb",
                    self.limit
                );
                w.bomb = Some(msg.clone());
                Err(io::Error::other(msg))
            }
            Ok(n) => {
                w.count += n as u64;
                Ok(n)
            }
            Err(e) => {
                let msg = e.to_string();
                if w.error.is_none() {
                    w.error = Some(msg.clone());
                }
                Err(io::Error::new(e.kind(), msg))
            }
        }
    }
}

#[cfg(test)]
mod tests;
