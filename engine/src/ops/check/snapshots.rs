//! The snapshot phase of `check`: every snapshot opens, its tree decodes and validates, and
//! every chunk it references is indexed, sound and of the length the tree gives; with
//! `read_data`, every file's content is read and verified as restore would.

use super::{CheckOptions, CheckReport, Damaged, problem};
use crate::disk::format::ObjectType;
use crate::disk::id::{ChunkId, SnapshotId};
use crate::disk::snapshot::Snapshot;
use crate::error::{ErrorKind, Result};
use crate::ops::restore::verify::{FileContent, chunk_len};
use crate::progress::{Progress, Unit};
use crate::repository::repo::Repo;
use crate::repository::walk::{ChunkRef, Entry, FilePart};
use std::collections::HashSet;

/// The file being walked in a snapshot: its path, the snapshot's damage count when it
/// started, and its chunks with the lengths the tree gives.
type FileSeen = (Vec<u8>, u64, Vec<(ChunkId, u32)>);

/// Check that every snapshot opens and that its tree and every chunk it references are
/// sound.
pub(super) fn check_snapshots(
    repo: &Repo,
    damaged: &Damaged,
    opts: CheckOptions,
    report: &mut CheckReport,
    progress: &dyn Progress,
) -> Result<()> {
    let (snaps, unreadable) = repo.snapshots()?;
    for (id, e) in unreadable {
        problem(report, format!("snapshot {id}"), e.to_string());
        report.damaged_snapshots.insert(id.to_hex(), 1);
    }
    walk_snapshots(repo, &snaps, damaged, opts, report, progress)
}

/// Check the snapshots `snaps`: their trees, and every chunk they reference.
pub(super) fn walk_snapshots(
    repo: &Repo,
    snaps: &[(SnapshotId, Snapshot)],
    damaged: &Damaged,
    opts: CheckOptions,
    report: &mut CheckReport,
    progress: &dyn Progress,
) -> Result<()> {
    // Files whose content was verified, by their list of chunks, size and hash: the same
    // file in many snapshots is read once.
    let mut verified = HashSet::new();
    progress.start("checking snapshots", Some(snaps.len() as u64), Unit::Items);
    for (sid, snap) in snaps {
        crate::check_interrupt()?;
        report.snapshots += 1;
        progress.inc(1);
        let mut walk = SnapshotCheck {
            repo,
            sid,
            damaged,
            read_data: opts.read_data,
            damage: 0,
            seen_missing: HashSet::new(),
            file: None,
        };
        walk.run(snap, report, &mut verified)?;
        if walk.damage > 0 {
            report.damaged_snapshots.insert(sid.to_hex(), walk.damage);
        }
    }
    progress.finish();
    Ok(())
}

/// The walk of one snapshot: how many problems hurt it so far, and the file being read.
struct SnapshotCheck<'a> {
    repo: &'a Repo,
    sid: &'a SnapshotId,
    damaged: &'a Damaged,
    read_data: bool,
    damage: u64,
    seen_missing: HashSet<ChunkId>,
    file: Option<FileSeen>,
}

impl SnapshotCheck<'_> {
    /// Walk the tree: damage in it ends the walk and is reported; any other failure stops
    /// the check.
    fn run(
        &mut self,
        snap: &Snapshot,
        report: &mut CheckReport,
        verified: &mut HashSet<[u8; 32]>,
    ) -> Result<()> {
        for entry in self.repo.walk(snap) {
            match entry {
                Ok(Entry::File(part)) => self.file_part(part, report, verified)?,
                Ok(Entry::Dir(_) | Entry::Symlink(..)) => {}
                Err(e) if e.kind() == ErrorKind::Corrupt => {
                    let sid = self.sid;
                    problem(report, format!("snapshot {sid}"), format!("tree: {e}"));
                    self.damage += 1;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn file_part(
        &mut self,
        part: FilePart,
        report: &mut CheckReport,
        verified: &mut HashSet<[u8; 32]>,
    ) -> Result<()> {
        if part.first {
            self.file = Some((part.meta.path, self.damage, Vec::new()));
        }
        for c in part.chunks {
            // The chunk list is kept only for reading the content at the file's end.
            if self.read_data
                && let Some((_, _, chunks)) = self.file.as_mut()
            {
                chunks.push((c.id, c.len));
            }
            self.chunk(c, report)?;
        }
        let Some(end) = part.end else {
            return Ok(());
        };
        let Some((path, before, chunks)) = self.file.take() else {
            return Ok(());
        };
        // A file whose chunks are already reported damaged is not read again.
        if self.read_data && self.damage == before {
            let file = (path.as_slice(), end.size, &end.content_hash);
            if let Err(e) = file_content(self.repo, file, &chunks, verified) {
                if e.kind() != ErrorKind::Corrupt {
                    return Err(e);
                }
                problem(report, format!("snapshot {}", self.sid), e.to_string());
                self.damage += 1;
            }
        }
        Ok(())
    }

    /// Judge one chunk reference against the index and the damage found in packs.
    fn chunk(&mut self, c: ChunkRef, report: &mut CheckReport) -> Result<()> {
        let (cid, len, sid) = (c.id, c.len, self.sid);
        match self.repo.index.locate(&cid)? {
            None => {
                if self.seen_missing.insert(cid) {
                    problem(
                        report,
                        format!("chunk {cid}"),
                        format!(
                            "referenced by snapshot {} but not in the index",
                            sid.short()
                        ),
                    );
                }
                self.damage += 1;
            }
            Some(loc)
                if self.damaged.packs.contains(&loc.pack)
                    || self.damaged.chunks.contains_key(&cid) =>
            {
                self.damage += 1;
            }
            Some(loc) if loc.raw_len != len => {
                let e = chunk_len(&cid, len, loc.raw_len as usize).expect_err("the lengths differ");
                problem(report, format!("snapshot {sid}"), e.to_string());
                self.damage += 1;
            }
            Some(loc) if loc.ty != ObjectType::Data => {
                problem(
                    report,
                    format!("chunk {cid}"),
                    "is a tree chunk used as file content".into(),
                );
                self.damage += 1;
            }
            Some(_) => {}
        }
        Ok(())
    }
}

/// Read a file's content as restore would and apply restore's rules to it (restore/verify.rs),
/// unless a file with the same chunks, size and hash was verified already.
fn file_content(
    repo: &Repo,
    (path, size, hash): (&[u8], u64, &[u8; 32]),
    chunks: &[(ChunkId, u32)],
    verified: &mut HashSet<[u8; 32]>,
) -> Result<()> {
    let mut key = blake3::Hasher::new();
    for (id, len) in chunks {
        key.update(&id.0).update(&len.to_le_bytes());
    }
    key.update(&size.to_le_bytes()).update(hash);
    let key = *key.finalize().as_bytes();
    if verified.contains(&key) {
        return Ok(());
    }
    let mut content = FileContent::new();
    for part in chunks.chunks(64) {
        let ids: Vec<ChunkId> = part.iter().map(|(id, _)| *id).collect();
        for ((id, len), data) in part.iter().zip(repo.load_chunks(&ids, ObjectType::Data)?) {
            content.chunk(id, *len, &data)?;
        }
    }
    content.end(path, size, hash)?;
    verified.insert(key);
    Ok(())
}
