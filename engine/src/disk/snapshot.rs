//! Snapshot objects (format-spec.md, "Snapshots").
//!
//! A snapshot is the single commit point of a backup: it is written last, after every
//! chunk it references is in a durable pack and in the index. It is sealed under its own
//! random id, so one snapshot's object cannot stand in for another's.

use crate::disk::crypto::Keys;
use crate::disk::format::{Dec, Enc, MAX_OBJECT_SIZE, ObjectType};
use crate::disk::id::{ChunkId, SnapshotId};
use crate::disk::limits::Limit;
use crate::error::{Error, ErrorKind, Result};
use crate::repository::storage::{Kind, Storage};
use chrono::{DateTime, Utc};

/// Version byte at the start of a snapshot's plaintext.
pub const SNAPSHOT_VERSION: u8 = 1;

/// Counters recorded with a snapshot (and printed by `backup`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BackupStats {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Bytes of file content read.
    pub bytes_read: u64,
    /// Chunks referenced (data and tree).
    pub chunks: u64,
    /// Chunks that were new to the repository.
    pub new_chunks: u64,
    /// Plaintext bytes of the new data chunks (file content not seen before).
    pub new_raw_bytes: u64,
    /// Bytes added to the repository (sealed chunks, pack framing excluded).
    pub bytes_added: u64,
}

impl BackupStats {
    /// The counters in their on-disk order.
    fn to_array(self) -> [u64; 8] {
        let s = self;
        [
            s.files,
            s.dirs,
            s.symlinks,
            s.bytes_read,
            s.chunks,
            s.new_chunks,
            s.new_raw_bytes,
            s.bytes_added,
        ]
    }

    fn from_array(n: [u64; 8]) -> Self {
        let [
            files,
            dirs,
            symlinks,
            bytes_read,
            chunks,
            new_chunks,
            new_raw_bytes,
            bytes_added,
        ] = n;
        Self {
            files,
            dirs,
            symlinks,
            bytes_read,
            chunks,
            new_chunks,
            new_raw_bytes,
            bytes_added,
        }
    }
}

/// A snapshot as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// When the backup was taken (or the time given with `--time`).
    pub time: DateTime<Utc>,
    /// Host that made it.
    pub host: String,
    /// User that made it.
    pub user: String,
    /// Tags.
    pub tags: Vec<String>,
    /// The source paths as given (for `--stdin`, the stream's name).
    pub paths: Vec<Vec<u8>>,
    /// What was read: `files` or `stdin`.
    pub source: String,
    /// Counters of the backup that made it.
    pub stats: BackupStats,
    /// Total length of the tree stream.
    pub tree_len: u64,
    /// The tree stream's chunks, in order.
    pub tree: Vec<(ChunkId, u32)>,
}

impl Snapshot {
    /// Check every field against the format's limits (format-spec.md §9, "Limits"), the
    /// ones [`Snapshot::decode`] applies: what passes here, readers accept.
    ///
    /// # Errors
    /// `InvalidInput` naming the first limit exceeded.
    pub fn check_limits(&self) -> Result<()> {
        Limit::Paths.check(self.paths.len(), "")?;
        for p in &self.paths {
            Limit::Path.check(p.len(), String::from_utf8_lossy(p))?;
        }
        Limit::Tags.check(self.tags.len(), "")?;
        for t in &self.tags {
            Limit::Tag.check(t.len(), t)?;
        }
        Limit::Host.check(self.host.len(), &self.host)?;
        Limit::User.check(self.user.len(), &self.user)?;
        Limit::Source.check(self.source.len(), &self.source)?;
        // The fields above are capped; only a tree of millions of chunks can reach this.
        let size = self.encoded_len();
        if size > MAX_OBJECT_SIZE {
            return Err(Error::invalid(format!(
                "the snapshot would be {size} bytes ({} tree chunks); a snapshot object holds at most {MAX_OBJECT_SIZE} (format-spec.md §6); nothing was committed",
                self.tree.len()
            )));
        }
        Ok(())
    }

    /// Length of [`Snapshot::encode`]'s output.
    fn encoded_len(&self) -> usize {
        let strings = |v: &mut dyn Iterator<Item = usize>| v.map(|n| 4 + n).sum::<usize>();
        1 + 12
            + strings(&mut [self.host.len(), self.user.len(), self.source.len()].into_iter())
            + 2
            + strings(&mut self.tags.iter().map(String::len))
            + 2
            + strings(&mut self.paths.iter().map(Vec::len))
            + 8 * 8
            + 8
            + 4
            + 36 * self.tree.len()
    }

    /// Encode the plaintext, limits unchecked: [`Snapshot::seal`] checks them first, and
    /// only tests craft objects past them (a count past `u16` is written as `u16::MAX`).
    pub fn encode(&self) -> Vec<u8> {
        let count = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
        let mut e = Enc::new();
        e.u8(SNAPSHOT_VERSION)
            .i64(self.time.timestamp())
            .u32(self.time.timestamp_subsec_nanos());
        e.bytes(self.host.as_bytes()).bytes(self.user.as_bytes());
        e.u16(count(self.tags.len()));
        for t in &self.tags {
            e.bytes(t.as_bytes());
        }
        e.u16(count(self.paths.len()));
        for p in &self.paths {
            e.bytes(p);
        }
        e.bytes(self.source.as_bytes());
        for v in self.stats.to_array() {
            e.u64(v);
        }
        e.u64(self.tree_len)
            .u32(u32::try_from(self.tree.len()).unwrap_or(u32::MAX));
        for (id, len) in &self.tree {
            e.raw(&id.0).u32(*len);
        }
        e.finish()
    }

    /// Decode and check a plaintext.
    ///
    /// # Errors
    /// `Corrupt` for any malformed field; `Unsupported` for an unknown version.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut d = Dec::new(buf, "snapshot");
        let v = d.u8()?;
        if v != SNAPSHOT_VERSION {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("snapshot version {v} not supported"),
            ));
        }
        let (secs, nanos) = (d.i64()?, d.u32()?);
        let time = DateTime::from_timestamp(secs, nanos)
            .ok_or_else(|| Error::corrupt("snapshot: time out of range"))?;
        let host = d.string(Limit::Host.max())?;
        let user = d.string(Limit::User.max())?;
        let list_len = |d: &mut Dec<'_>, limit: Limit, what: &str| -> Result<u16> {
            let n = d.u16()?;
            if usize::from(n) > limit.max() {
                Err(Error::corrupt(format!(
                    "snapshot: list too long ({n} {what}; the format allows {})",
                    limit.max()
                )))
            } else {
                Ok(n)
            }
        };
        let tags = (0..list_len(&mut d, Limit::Tags, "tags")?)
            .map(|_| d.string(Limit::Tag.max()))
            .collect::<Result<_>>()?;
        let paths = (0..list_len(&mut d, Limit::Paths, "paths")?)
            .map(|_| d.bytes(Limit::Path.max()).map(<[u8]>::to_vec))
            .collect::<Result<_>>()?;
        let source = d.string(Limit::Source.max())?;
        let mut n = [0u64; 8];
        for v in &mut n {
            *v = d.u64()?;
        }
        let stats = BackupStats::from_array(n);
        let tree_len = d.u64()?;
        let count = d.u32()? as usize;
        if count > d.remaining() / 36 {
            return Err(Error::corrupt("snapshot: tree list longer than the object"));
        }
        let tree = (0..count)
            .map(|_| Ok((ChunkId(d.id()?), d.u32()?)))
            .collect::<Result<Vec<_>>>()?;
        d.finish()?;
        if tree.iter().map(|(_, l)| u64::from(*l)).sum::<u64>() != tree_len {
            return Err(Error::corrupt("snapshot: tree chunk lengths do not add up"));
        }
        Ok(Self {
            time,
            host,
            user,
            tags,
            paths,
            source,
            stats,
            tree_len,
            tree,
        })
    }

    /// The sealed object for snapshot `id`, once the fields pass the readers' limits: no
    /// writer can store a snapshot that `ls`, `restore` and `gc` would refuse.
    ///
    /// # Errors
    /// `InvalidInput` naming the limit exceeded.
    pub fn seal(&self, keys: &Keys, id: SnapshotId) -> Result<Vec<u8>> {
        self.check_limits()?;
        Ok(keys.seal(ObjectType::Snapshot, &id.0, &self.encode(), Some(3)))
    }

    /// Seal and store as a new snapshot object: the commit point of a backup.
    ///
    /// # Errors
    /// `InvalidInput` past a limit (nothing is stored), `Storage` errors. A failed write may
    /// still have put the snapshot in place (an error syncing the directory after the
    /// rename): the message then says it is committed with its durability unconfirmed, and
    /// otherwise that nothing was committed.
    pub fn save(&self, storage: &dyn Storage, keys: &Keys) -> Result<SnapshotId> {
        let id = SnapshotId::random();
        let sealed = self.seal(keys, id)?;
        storage
            .put(Kind::Snapshot, &id.to_hex(), &sealed)
            .map_err(|e| {
                if e.kind() != ErrorKind::Storage {
                    return e;
                }
                match storage.get(Kind::Snapshot, &id.to_hex()) {
                    Ok(stored) if stored == sealed => e.context(format!(
                        "snapshot {} is committed (it is in the repository, whole), but storage reported an error while making it durable, so surviving a power loss is unconfirmed",
                        id.short()
                    )),
                    _ => e.context("writing the snapshot (nothing was committed)"),
                }
            })?;
        Ok(id)
    }

    /// Load and authenticate snapshot `id`.
    ///
    /// # Errors
    /// `NotFound`, `Corrupt` (naming the snapshot), or `Storage`.
    pub fn load(storage: &dyn Storage, keys: &Keys, id: SnapshotId) -> Result<Self> {
        let sealed = storage.get(Kind::Snapshot, &id.to_hex())?;
        keys.open(ObjectType::Snapshot, &id.0, &sealed, MAX_OBJECT_SIZE)
            .and_then(|p| Self::decode(&p))
            .map_err(|e| e.context(format!("snapshot {}", id.short())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = Snapshot {
            time: DateTime::from_timestamp(1_700_000_000, 5).unwrap(),
            host: "h".into(),
            user: "u".into(),
            tags: vec!["daily".into()],
            paths: vec![b"/x\xff".to_vec()],
            source: "files".into(),
            stats: BackupStats {
                files: 1,
                ..Default::default()
            },
            tree_len: 7,
            tree: vec![(ChunkId([1; 32]), 7)],
        };
        assert_eq!(Snapshot::decode(&s.encode()).unwrap(), s);
        let mut bad = s.encode();
        bad.pop();
        assert!(Snapshot::decode(&bad).is_err());
    }

    /// Set `limit`'s field of a snapshot (or record of its tree) to `n` items or bytes, and
    /// say whether the writer accepts it and whether the reader does.
    fn write_and_read(limit: Limit, n: usize) -> (Result<()>, Result<()>) {
        use crate::disk::format::Dec;
        use crate::disk::tree::{EntryMeta, Record, Validator};
        let mut s = Snapshot {
            time: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            host: "h".into(),
            user: "u".into(),
            tags: vec![],
            paths: vec![b"/p".to_vec()],
            source: "files".into(),
            stats: BackupStats::default(),
            tree_len: 0,
            tree: vec![],
        };
        let long = "a".repeat(n);
        let meta = |path: &[u8]| EntryMeta {
            path: path.to_vec(),
            mode: 0o777,
            mtime: 0,
            mtime_nsec: 0,
        };
        let record = match limit {
            Limit::Paths => {
                s.paths = (0..n).map(|i| format!("/p{i}").into_bytes()).collect();
                None
            }
            Limit::Tags => {
                s.tags = (0..n).map(|i| format!("t{i}")).collect();
                None
            }
            Limit::Path => {
                s.paths = vec![long.into_bytes()];
                None
            }
            Limit::Tag => {
                s.tags = vec![long];
                None
            }
            Limit::Host => {
                s.host = long;
                None
            }
            Limit::User => {
                s.user = long;
                None
            }
            Limit::Source => {
                s.source = long;
                None
            }
            Limit::TreePath => Some(Record::Symlink(meta(long.as_bytes()), b"t".to_vec())),
            Limit::SymlinkTarget => Some(Record::Symlink(meta(b"l"), long.into_bytes())),
        };
        let Some(r) = record else {
            let read = Snapshot::decode(&s.encode()).map(|back| assert_eq!(back, s));
            return (s.check_limits(), read);
        };
        let Record::Symlink(m, target) = &r else {
            unreachable!()
        };
        let written = Limit::TreePath
            .check(m.path.len(), "p")
            .and_then(|()| Limit::SymlinkTarget.check(target.len(), "p"));
        let mut buf = Vec::new();
        r.encode(&mut buf);
        let read = Record::decode(&mut Dec::new(&buf, "tree"))
            .and_then(|back| Validator::new().check(&back).map(|()| assert_eq!(back, r)));
        (written, read)
    }

    /// Every limit, at and past it: what the writer accepts the reader reads back whole, and
    /// what the reader refuses the writer refuses first (with `InvalidInput`).
    #[test]
    fn writer_and_reader_agree_at_and_past_every_limit() {
        for limit in Limit::ALL {
            for n in [
                limit.max() - 1,
                limit.max(),
                limit.max() + 1,
                limit.max() + 977,
            ] {
                let (written, read) = write_and_read(limit, n);
                let past = n > limit.max();
                assert_eq!(written.is_err(), past, "{limit:?} {n}: {written:?}");
                assert_eq!(read.is_err(), past, "{limit:?} {n}: {read:?}");
                if let (Err(w), Err(r)) = (written, read) {
                    assert_eq!(w.kind(), ErrorKind::InvalidInput);
                    assert_eq!(r.kind(), ErrorKind::Corrupt);
                    assert!(w.to_string().contains("format-spec.md §9 limits"), "{w}");
                }
            }
        }
    }
}
