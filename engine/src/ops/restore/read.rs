//! Reading a snapshot without restoring it: one file's content to a writer (`dump`), and
//! every entry (`ls`).

use super::verify::FileContent;
use super::{BYTES_PER_READ, CHUNKS_PER_READ};
use crate::disk::format::ObjectType;
use crate::disk::snapshot::Snapshot;
use crate::disk::tree::{EntryMeta, display_path};
use crate::error::{Error, ErrorKind, Result};
use crate::repository::repo::Repo;
use crate::repository::walk::{ChunkRef, Entry, FilePart};
use std::io::Write;

/// Load the chunks of one part of a file in batches (on all cores), check each against
/// the tree and feed it to `content`'s hash, then hand it to `sink`, in order. `dump` and
/// `archive::export` read content through here, so both apply restore's rules.
///
/// # Errors
/// `Corrupt` for damage; whatever `sink` returns.
pub(crate) fn read_part(
    repo: &Repo,
    chunks: &[ChunkRef],
    content: &mut FileContent,
    sink: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let mut start = 0;
    while start < chunks.len() {
        // A batch: up to CHUNKS_PER_READ chunks, stopping once BYTES_PER_READ are reached.
        let mut end = start;
        let mut bytes = 0u64;
        while end < chunks.len() && end - start < CHUNKS_PER_READ && bytes < BYTES_PER_READ {
            bytes += u64::from(chunks[end].len);
            end += 1;
        }
        let batch = &chunks[start..end];
        let ids: Vec<_> = batch.iter().map(|c| c.id).collect();
        for (c, data) in batch.iter().zip(repo.load_chunks(&ids, ObjectType::Data)?) {
            content.chunk(&c.id, c.len, &data)?;
            sink(&data)?;
        }
        start = end;
    }
    Ok(())
}

/// Write the content of the file at `path` in `snap` to `out`, checking its hash.
///
/// # Errors
/// `NotFound` if there is no such file, `Corrupt` for damage, `Io` if `out` fails.
pub fn dump(repo: &Repo, snap: &Snapshot, path: &[u8], out: &mut dyn Write) -> Result<u64> {
    let path = path.strip_prefix(b"/").unwrap_or(path);
    let mut content = None::<FileContent>;
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
                read_part(repo, &part.chunks, c, &mut |data| {
                    out.write_all(data)
                        .map_err(|e| Error::io("writing output", e))
                })?;
                if let Some(end) = part.end {
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
