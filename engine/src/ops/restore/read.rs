//! Reading a snapshot without restoring it: one file's content to a writer (`dump`), and
//! every entry (`ls`).

use super::verify::FileContent;
use super::{BYTES_PER_READ, CHUNKS_PER_READ};
use crate::disk::format::ObjectType;
use crate::disk::snapshot::Snapshot;
use crate::disk::tree::{EntryMeta, display_path};
use crate::error::{Error, ErrorKind, Result};
use crate::repository::repo::Repo;
use crate::repository::walk::{Entry, FilePart};
use std::io::Write;

/// Write the content of the file at `path` in `snap` to `out`, checking its hash.
///
/// # Errors
/// `NotFound` if there is no such file, `Corrupt` for damage, `Io` if `out` fails.
pub fn dump(repo: &Repo, snap: &Snapshot, path: &[u8], out: &mut dyn Write) -> Result<u64> {
    let path = path.strip_prefix(b"/").unwrap_or(path);
    let mut content = None::<FileContent>;
    let mut pending: Vec<(crate::disk::id::ChunkId, u32)> = Vec::new();
    let mut bytes = 0u64;
    let flush = |pending: &mut Vec<(crate::disk::id::ChunkId, u32)>,
                 c: &mut FileContent,
                 out: &mut dyn Write|
     -> Result<()> {
        let ids: Vec<_> = pending.iter().map(|(id, _)| *id).collect();
        for ((id, len), data) in pending
            .iter()
            .zip(repo.load_chunks(&ids, ObjectType::Data)?)
        {
            c.chunk(id, *len, &data)?;
            out.write_all(&data)
                .map_err(|e| Error::io("writing output", e))?;
        }
        pending.clear();
        Ok(())
    };
    for entry in repo.walk(snap) {
        match entry? {
            Entry::Dir(m) | Entry::Symlink(m, _) if m.path == path => {
                return Err(Error::invalid(format!(
                    "{} is not a regular file in this snapshot",
                    display_path(path)
                )));
            }
            Entry::File(part) if part.meta.path == path => {
                let c = content.get_or_insert_with(FileContent::new);
                for chunk in part.chunks {
                    pending.push((chunk.id, chunk.len));
                    bytes += u64::from(chunk.len);
                    if pending.len() >= CHUNKS_PER_READ || bytes >= BYTES_PER_READ {
                        flush(&mut pending, c, out)?;
                        bytes = 0;
                    }
                }
                if let Some(end) = part.end {
                    flush(&mut pending, c, out)?;
                    c.end(path, end.size, &end.content_hash)?;
                    out.flush().map_err(|e| Error::io("writing output", e))?;
                    return Ok(end.size);
                }
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
    let entry = |m: &EntryMeta, kind, size, target| LsEntry {
        path: String::from_utf8_lossy(&m.path).into_owned(),
        path_bytes: m.path.clone(),
        kind,
        mode: m.mode,
        mtime: m.mtime,
        size,
        target,
    };
    for item in repo.walk(snap) {
        match item? {
            Entry::Dir(m) => f(entry(&m, "dir", 0, None))?,
            Entry::Symlink(m, t) => f(entry(
                &m,
                "symlink",
                0,
                Some(String::from_utf8_lossy(&t).into_owned()),
            ))?,
            // A long file comes in parts; it is listed once, with its size, at its end.
            Entry::File(FilePart {
                meta,
                end: Some(end),
                ..
            }) => f(entry(&meta, "file", end.size, None))?,
            Entry::File(_) => {}
        }
    }
    Ok(())
}
