//! Pack files (format-spec.md, "Packs").
//!
//! ```text
//! 0        magic "MASCLPAK" (8) | format version u32
//! 12       sealed chunk envelopes, back to back, in shuffled order
//! T        sealed trailer envelope (type PackTrailer, id = pack id)
//! end-12   trailer length u32 | magic "MASCLEND" (8)
//! ```
//! The trailer lists every chunk with its type, id, offset and lengths, so the index can
//! be rebuilt from packs alone. Chunks are shuffled so the order in a pack says nothing
//! about the order in a file.

use crate::disk::crypto::Keys;
use crate::disk::format::{
    Dec, ENVELOPE_HEADER_LEN, Enc, FORMAT_VERSION, MAX_OBJECT_SIZE, MAX_PACK_ENTRIES,
    MAX_PACK_SIZE, OLDEST_READABLE_FORMAT, ObjectType, PACK_END_MAGIC, PACK_FOOTER_LEN,
    PACK_HEADER_LEN, PACK_MAGIC, TAG_LEN, TRAILER_ENTRY_LEN, TRAILER_ENTRY_LEN_V1,
};
use crate::disk::id::{ChunkId, PackId};
use crate::disk::random::random_array;
use crate::error::{Error, ErrorKind, Result};
use crate::repository::storage::{Kind, Storage};

/// Where one chunk sits in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    /// Data or tree.
    pub ty: ObjectType,
    /// The chunk's id.
    pub id: ChunkId,
    /// Byte offset of its envelope from the start of the pack.
    pub offset: u64,
    /// Length of the envelope.
    pub sealed_len: u32,
    /// Length of the plaintext.
    pub raw_len: u32,
    /// The base chunk of a delta (format 2), `None` for a chunk stored whole.
    pub base: Option<ChunkId>,
}

/// A sealed chunk waiting for its pack: type, id, envelope, raw length, base.
type PendingChunk = (ObjectType, ChunkId, Vec<u8>, u32, Option<ChunkId>);

/// Collects sealed chunks until the pack reaches its target size.
#[derive(Debug)]
pub struct PackBuilder {
    items: Vec<PendingChunk>,
    bytes: usize,
    target: usize,
}

impl PackBuilder {
    /// An empty pack aiming at `target` bytes.
    pub fn new(target: usize) -> Self {
        Self {
            items: Vec::new(),
            bytes: 0,
            target,
        }
    }

    /// Add one sealed chunk.
    pub fn add(
        &mut self,
        ty: ObjectType,
        id: ChunkId,
        sealed: Vec<u8>,
        raw_len: u32,
        base: Option<ChunkId>,
    ) {
        self.bytes += sealed.len();
        self.items.push((ty, id, sealed, raw_len, base));
    }

    /// Chunks held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no chunk is held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Sealed bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether the pack reached its target size (or the entry cap).
    pub fn is_full(&self) -> bool {
        self.bytes >= self.target || self.items.len() >= MAX_PACK_ENTRIES as usize / 2
    }

    /// Shuffle, lay out and seal the pack.
    pub fn finish(mut self, keys: &Keys) -> FinishedPack {
        shuffle(&mut self.items);
        let id = PackId::random();
        let mut header = Vec::with_capacity(PACK_HEADER_LEN);
        header.extend_from_slice(PACK_MAGIC);
        header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        let mut parts = Vec::with_capacity(self.items.len() + 2);
        parts.push(header);
        let mut entries = Vec::with_capacity(self.items.len());
        let mut offset = PACK_HEADER_LEN as u64;
        for (ty, cid, sealed, raw_len, base) in self.items {
            let sealed_len = u32::try_from(sealed.len()).expect("chunks are far below 4 GiB");
            entries.push(PackEntry {
                ty,
                id: cid,
                offset,
                sealed_len,
                raw_len,
                base,
            });
            offset += u64::from(sealed_len);
            parts.push(sealed);
        }
        let mut trailer = keys.seal(
            ObjectType::PackTrailer,
            &id.0,
            &encode_trailer(&entries),
            None,
        );
        let trailer_len = u32::try_from(trailer.len()).expect("trailer below 4 GiB");
        trailer.reserve_exact(PACK_FOOTER_LEN);
        trailer.extend_from_slice(&trailer_len.to_le_bytes());
        trailer.extend_from_slice(PACK_END_MAGIC);
        parts.push(trailer);
        FinishedPack { id, parts, entries }
    }
}

/// A sealed pack in the pieces it is written from: the header, each sealed chunk in the
/// pack's (shuffled) order, and the trailer with the footer. They are written one after the
/// other ([`Storage::put_parts`]) and never copied into one buffer: that second copy of the
/// largest allocation of a backup or a gc was 4 MiB of their peak memory.
#[derive(Debug)]
pub struct FinishedPack {
    /// The pack's id (random).
    pub id: PackId,
    /// The pieces, in order.
    pub parts: Vec<Vec<u8>>,
    /// The trailer's entries.
    pub entries: Vec<PackEntry>,
}

impl FinishedPack {
    /// The pack's size in bytes.
    pub fn len(&self) -> u64 {
        self.parts.iter().map(|p| p.len() as u64).sum()
    }

    /// Never: a pack has at least its header and trailer.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The pieces as slices, for [`Storage::put_parts`].
    pub fn slices(&self) -> Vec<&[u8]> {
        self.parts.iter().map(Vec::as_slice).collect()
    }

    /// The whole pack in one buffer (tests, benchmarks).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.parts.concat()
    }
}

/// Fisher-Yates over a keyed BLAKE3 stream from one OS-random key: one system call per
/// pack, not one per chunk (gc's repacking spent more time in `getrandom` than in SQLite).
fn shuffle<T>(items: &mut [T]) {
    let mut stream = blake3::Hasher::new_keyed(&random_array()).finalize_xof();
    let mut r = [0u8; 8];
    for i in (1..items.len()).rev() {
        stream.fill(&mut r);
        let j = usize::try_from(u64::from_le_bytes(r) % (i as u64 + 1)).expect("below len");
        items.swap(i, j);
    }
}

/// Encode a trailer's plaintext.
pub fn encode_trailer(entries: &[PackEntry]) -> Vec<u8> {
    let mut e = Enc::new();
    e.u32(u32::try_from(entries.len()).expect("entry count capped"));
    for x in entries {
        e.u8(x.ty as u8)
            .raw(&x.id.0)
            .u64(x.offset)
            .u32(x.sealed_len)
            .u32(x.raw_len)
            .raw(&x.base.map_or([0; 32], |b| b.0));
    }
    e.finish()
}

/// Decode a trailer's plaintext and check that its entries tile the chunk area
/// `[PACK_HEADER_LEN, trailer_start)` exactly.
///
/// # Errors
/// [`ErrorKind::Corrupt`] for any inconsistency.
pub fn decode_trailer(plain: &[u8], trailer_start: u64, version: u32) -> Result<Vec<PackEntry>> {
    let entry_len = if version == 1 {
        TRAILER_ENTRY_LEN_V1
    } else {
        TRAILER_ENTRY_LEN
    };
    let mut d = Dec::new(plain, "pack trailer");
    let count = d.u32()?;
    if count > MAX_PACK_ENTRIES || d.remaining() != count as usize * entry_len {
        return Err(Error::corrupt(format!(
            "pack trailer: {count} entries do not fit its length"
        )));
    }
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let ty = ObjectType::from_u8(d.u8()?)?;
        if !matches!(ty, ObjectType::Data | ObjectType::Tree) {
            return Err(Error::corrupt(format!(
                "pack trailer lists a {}",
                ty.name()
            )));
        }
        let id = ChunkId(d.id()?);
        let (offset, sealed_len, raw_len) = (d.u64()?, d.u32()?, d.u32()?);
        if (sealed_len as usize) < ENVELOPE_HEADER_LEN + TAG_LEN
            || raw_len as usize > MAX_OBJECT_SIZE
        {
            return Err(Error::corrupt(format!(
                "pack trailer: bad lengths for chunk {}",
                id.short()
            )));
        }
        let base = if version == 1 {
            None
        } else {
            Some(ChunkId(d.id()?)).filter(|b| b.0 != [0; 32])
        };
        if base == Some(id) {
            return Err(Error::corrupt(format!(
                "pack trailer: chunk {} is its own base",
                id.short()
            )));
        }
        entries.push(PackEntry {
            ty,
            id,
            offset,
            sealed_len,
            raw_len,
            base,
        });
    }
    d.finish()?;
    let mut sorted: Vec<&PackEntry> = entries.iter().collect();
    sorted.sort_by_key(|e| e.offset);
    let mut pos = PACK_HEADER_LEN as u64;
    for e in sorted {
        if e.offset != pos {
            return Err(Error::corrupt("pack trailer: chunks overlap or leave gaps"));
        }
        pos += u64::from(e.sealed_len);
    }
    if pos != trailer_start {
        return Err(Error::corrupt(
            "pack trailer: chunks do not end where the trailer starts",
        ));
    }
    Ok(entries)
}

/// Read, authenticate and decode the trailer of pack `id`, whose file is `size` bytes.
///
/// # Errors
/// [`ErrorKind::Corrupt`] naming the pack for truncation, bad magic, failed
/// authentication (including a pack stored under another pack's name) or a bad table.
pub fn read_trailer(
    storage: &dyn Storage,
    keys: &Keys,
    id: PackId,
    size: u64,
) -> Result<Vec<PackEntry>> {
    let name = id.to_hex();
    read_trailer_with(keys, id, size, &|offset, len| {
        storage.get_range(Kind::Pack, &name, offset, len)
    })
}

/// Name the pack in a damage report; other kinds keep their own wording.
fn pack_context(id: PackId, e: Error) -> Error {
    if e.kind() == ErrorKind::Corrupt {
        e.context(format!("pack {}", id.short()))
    } else {
        e
    }
}

/// A pack too small to hold header, footer and an empty trailer, or past the format's
/// largest pack, is damaged before any byte of it is read.
fn check_pack_size(id: PackId, size: u64) -> Result<()> {
    let min = (PACK_HEADER_LEN + PACK_FOOTER_LEN + ENVELOPE_HEADER_LEN + TAG_LEN) as u64;
    if size < min || size > MAX_PACK_SIZE {
        return Err(pack_context(
            id,
            Error::corrupt(format!("pack truncated or oversized ({size} bytes)")),
        ));
    }
    Ok(())
}

/// [`read_trailer`] over any range reader (a pack already in memory, say).
///
/// # Errors
/// As [`read_trailer`].
pub fn read_trailer_with(
    keys: &Keys,
    id: PackId,
    size: u64,
    read: &dyn Fn(u64, u64) -> Result<Vec<u8>>,
) -> Result<Vec<PackEntry>> {
    let ctx = |e: Error| pack_context(id, e);
    check_pack_size(id, size)?;
    let header = read(0, PACK_HEADER_LEN as u64).map_err(ctx)?;
    if &header[..8] != PACK_MAGIC {
        return Err(ctx(Error::corrupt("bad pack magic")));
    }
    let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if !(OLDEST_READABLE_FORMAT..=FORMAT_VERSION).contains(&version) {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("pack {} has format v{version}, not supported", id.short()),
        ));
    }
    read_trailer_past_header(keys, id, size, version, read)
}

/// The trailer of a pack of format `version`, read without looking at the pack's header:
/// what `repair index` uses to salvage a pack whose header is damaged. The trailer is
/// authenticated under the pack's id, so entries it yields are the ones its writer sealed.
///
/// # Errors
/// `Corrupt` for a damaged footer or trailer, or one that does not fit `size`.
pub(crate) fn read_trailer_past_header(
    keys: &Keys,
    id: PackId,
    size: u64,
    version: u32,
    read: &dyn Fn(u64, u64) -> Result<Vec<u8>>,
) -> Result<Vec<PackEntry>> {
    let ctx = |e: Error| pack_context(id, e);
    check_pack_size(id, size)?;
    let footer = read(size - PACK_FOOTER_LEN as u64, PACK_FOOTER_LEN as u64).map_err(ctx)?;
    if &footer[4..] != PACK_END_MAGIC {
        return Err(ctx(Error::corrupt("pack truncated (no end magic)")));
    }
    let tlen = u64::from(u32::from_le_bytes(footer[..4].try_into().expect("4 bytes")));
    if tlen + (PACK_HEADER_LEN + PACK_FOOTER_LEN) as u64 > size {
        return Err(ctx(Error::corrupt("pack trailer length exceeds the pack")));
    }
    let start = size - PACK_FOOTER_LEN as u64 - tlen;
    let sealed = read(start, tlen).map_err(ctx)?;
    let plain = keys
        .open(
            ObjectType::PackTrailer,
            &id.0,
            &sealed,
            MAX_PACK_ENTRIES as usize * TRAILER_ENTRY_LEN + 4,
        )
        .map_err(ctx)?;
    decode_trailer(&plain, start, version).map_err(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::crypto::MasterKey;
    use crate::disk::id::RepoId;
    use crate::repository::storage::MemoryStorage;
    use proptest::prelude::*;

    fn keys() -> Keys {
        Keys::derive(&MasterKey::from_bytes([1; 32]), RepoId([2; 32]))
    }

    proptest! {
        #[test]
        fn pack_write_read_round_trip(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..2000), 1..30)) {
            let k = keys();
            let mut b = PackBuilder::new(1 << 20);
            for c in &chunks {
                let id = k.chunk_id(c);
                b.add(ObjectType::Data, id, k.seal(ObjectType::Data, &id.0, c, Some(3)), u32::try_from(c.len()).unwrap(), None);
            }
            let p = b.finish(&k);
            let (pid, bytes, entries) = (p.id, p.to_bytes(), p.entries.clone());
            prop_assert_eq!(bytes.len() as u64, p.len());
            let s = MemoryStorage::new();
            s.put(Kind::Pack, &pid.to_hex(), &bytes).unwrap();
            let mut read = read_trailer(&s, &k, pid, bytes.len() as u64).unwrap();
            let mut expect = entries.clone();
            read.sort_by_key(|e| e.offset);
            expect.sort_by_key(|e| e.offset);
            prop_assert_eq!(&read, &expect);
            for e in &read {
                let sealed = &bytes[usize::try_from(e.offset).unwrap()..][..e.sealed_len as usize];
                let plain = k.open_chunk(ObjectType::Data, &e.id, sealed, 4096).unwrap();
                prop_assert!(chunks.contains(&plain));
            }
        }
    }

    #[test]
    fn truncation_and_renaming_are_detected() {
        let k = keys();
        let mut b = PackBuilder::new(1 << 20);
        let id = k.chunk_id(b"abc");
        b.add(
            ObjectType::Data,
            id,
            k.seal(ObjectType::Data, &id.0, b"abc", None),
            3,
            None,
        );
        let p = b.finish(&k);
        let (pid, bytes) = (p.id, p.to_bytes());
        let s = MemoryStorage::new();
        let other = PackId([9; 32]);
        s.put(Kind::Pack, &other.to_hex(), &bytes).unwrap();
        let err = read_trailer(&s, &k, other, bytes.len() as u64).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "renamed pack: {err}");
        for cut in [0, 5, 12, bytes.len() - 13, bytes.len() - 1] {
            s.overwrite(Kind::Pack, &pid.to_hex(), bytes[..cut].to_vec());
            assert_eq!(
                read_trailer(&s, &k, pid, cut as u64).unwrap_err().kind(),
                ErrorKind::Corrupt,
                "cut {cut}"
            );
        }
    }
}
