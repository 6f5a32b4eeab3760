//! What the index knows about the repository's size, in one read-only pass: how many packs
//! and how many bytes they take, how many distinct chunks and their plaintext and sealed
//! lengths. `status` and the report use it; no command needs to read a pack for it.

use super::{Index, int};
use crate::error::Result;

/// The repository's size as the index records it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// Indexed packs.
    pub packs: u64,
    /// Their recorded sizes, summed: the bytes the repository's data takes on disk.
    pub pack_bytes: u64,
    /// Distinct chunks (data and tree).
    pub chunks: u64,
    /// Plaintext bytes of those chunks: the unique data, stored once.
    pub raw_bytes: u64,
    /// Sealed (compressed, encrypted) bytes of those chunks.
    pub sealed_bytes: u64,
}

impl Index {
    /// The totals, from two aggregate queries.
    ///
    /// # Errors
    /// `IndexUnavailable` on SQLite errors.
    pub fn totals(&self) -> Result<Totals> {
        let (packs, pack_bytes): (i64, i64) = self.conn.query_row(
            "SELECT count(*), coalesce(sum(size), 0) FROM packs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (chunks, raw, sealed): (i64, i64, i64) = self.conn.query_row(
            "SELECT count(*), coalesce(sum(raw_len), 0), coalesce(sum(sealed_len), 0) FROM chunks",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(Totals {
            packs: int(packs)?,
            pack_bytes: int(pack_bytes)?,
            chunks: int(chunks)?,
            raw_bytes: int(raw)?,
            sealed_bytes: int(sealed)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::format::ObjectType;
    use crate::disk::id::{ChunkId, PackId, RepoId};
    use crate::disk::pack::PackEntry;

    #[test]
    fn totals_sum_packs_and_distinct_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::create(&dir.path().join("index.db"), RepoId([7; 32])).unwrap();
        assert_eq!(index.totals().unwrap(), Totals::default());
        let entry = |b: u8, raw: u32, sealed: u32| PackEntry {
            ty: ObjectType::Data,
            id: ChunkId([b; 32]),
            offset: 0,
            sealed_len: sealed,
            raw_len: raw,
            base: None,
        };
        index
            .add_pack(
                PackId([1; 32]),
                500,
                &[entry(1, 1000, 300), entry(2, 200, 100)],
            )
            .unwrap();
        // The same chunk in a second pack (two concurrent backups) counts once.
        index
            .add_pack(
                PackId([2; 32]),
                400,
                &[entry(2, 200, 100), entry(3, 50, 60)],
            )
            .unwrap();
        let t = index.totals().unwrap();
        assert_eq!(
            t,
            Totals {
                packs: 2,
                pack_bytes: 900,
                chunks: 3,
                raw_bytes: 1250,
                sealed_bytes: 460,
            }
        );
    }
}
