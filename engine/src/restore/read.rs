//! Reading a snapshot without restoring it: one file's content to a writer (`dump`), and
//! every entry (`ls`).

use super::{BYTES_PER_READ, CHUNKS_PER_READ};
use crate::error::{Error, ErrorKind, Result};
use crate::format::ObjectType;
use crate::repo::Repo;
use crate::snapshot::Snapshot;
use crate::tree::{EntryMeta, Record, display_path};
use std::io::Write;

/// Write the content of the file at `path` in `snap` to `out`, checking its hash.
///
/// # Errors
/// `NotFound` if there is no such file, `Corrupt` for damage, `Io` if `out` fails.
pub fn dump(repo: &Repo, snap: &Snapshot, path: &[u8], out: &mut dyn Write) -> Result<u64> {
    let path = path.strip_prefix(b"/").unwrap_or(path);
    let mut reader = repo.tree_reader(snap);
    let mut hasher = None::<blake3::Hasher>;
    let mut pending = Vec::new();
    let mut bytes = 0u64;
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
            (Some(h), Record::FileChunk(id, len)) => {
                pending.push(id);
                bytes += u64::from(len);
                if pending.len() >= CHUNKS_PER_READ || bytes >= BYTES_PER_READ {
                    flush(&mut pending, h, out)?;
                    bytes = 0;
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
