//! Named constants and byte codecs mirroring `format-spec.md`.
//!
//! Every multi-byte integer on disk is little-endian. Every offset, magic and version the
//! spec names is a constant here, so the code and the document can be read side by side.
//! The [`Enc`]/[`Dec`] pair is the only way structures are turned into bytes: a decoder
//! never trusts a length field before checking it against what remains and a stated cap.

use crate::error::{Error, Result};

/// Repository format version written by this build (format-spec.md, "Version log").
pub const FORMAT_VERSION: u32 = 3;
/// Longest delta chain a reader follows (format 3; formats 1 and 2 allow one link): a delta's
/// base may itself be a delta, down to a chunk stored whole at most this many links away.
pub const MAX_DELTA_CHAIN: usize = 8;
/// Oldest repository format this build still reads (and restores from).
pub const OLDEST_READABLE_FORMAT: u32 = 1;
/// Version of the key-slot layout (unchanged since format 1).
pub const KEY_SLOT_VERSION: u32 = 1;
/// Version field of the associated data (unchanged since format 1: format 2 only added a
/// compression method, which the associated data binds through the envelope header).
pub const AAD_VERSION: u32 = 1;

/// Magic at the start of the `config` object.
pub const CONFIG_MAGIC: &[u8; 8] = b"MASCLCFG";
/// Magic at the start of a key slot.
pub const KEY_MAGIC: &[u8; 8] = b"MASCLKEY";
/// Magic at the start of a pack.
pub const PACK_MAGIC: &[u8; 8] = b"MASCLPAK";
/// Magic at the very end of a pack, after the trailer length.
pub const PACK_END_MAGIC: &[u8; 8] = b"MASCLEND";
/// Domain prefix of every associated-data block.
pub const AAD_DOMAIN: &[u8; 8] = b"masclet\0";

/// Pack header: magic (8) + format version (u32).
pub const PACK_HEADER_LEN: usize = 12;
/// Pack footer: trailer length (u32) + end magic (8).
pub const PACK_FOOTER_LEN: usize = 12;

/// Envelope header: envelope version (u8), compression (u8), nonce (24).
pub const ENVELOPE_HEADER_LEN: usize = 26;
/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;
/// Envelope version written by this build.
pub const ENVELOPE_VERSION: u8 = 1;
/// Compression byte: stored as is.
pub const COMPRESSION_NONE: u8 = 0;
/// Compression byte: one zstd frame.
pub const COMPRESSION_ZSTD: u8 = 1;
/// Compression byte (format 2): base chunk id (32) ‖ zstd frame with the base's plaintext
/// as prefix.
pub const COMPRESSION_ZSTD_DELTA: u8 = 2;

/// Largest plaintext any object may have (a cap for decoders, not a target).
pub const MAX_OBJECT_SIZE: usize = 64 << 20;
/// Largest number of entries a pack trailer may list.
pub const MAX_PACK_ENTRIES: u32 = 1 << 20;
/// Largest pack file a reader accepts.
pub const MAX_PACK_SIZE: u64 = 1 << 32;
/// One format-1 pack-trailer entry: type (1) + chunk id (32) + offset (8) + sealed len (4)
/// + raw len (4).
pub const TRAILER_ENTRY_LEN_V1: usize = 49;
/// One format-2 pack-trailer entry: the format-1 fields + base chunk id (32, zero for none).
pub const TRAILER_ENTRY_LEN: usize = 81;

/// Object types, bound into every envelope's associated data so that one kind of object can
/// never be accepted as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ObjectType {
    /// The sealed part of the `config` object.
    Config = 1,
    /// A chunk of file content.
    Data = 2,
    /// A chunk of a snapshot's tree stream.
    Tree = 3,
    /// A pack's trailer (its table of contents).
    PackTrailer = 4,
    /// A snapshot object.
    Snapshot = 5,
    /// The wrapped master key inside a key slot.
    KeySlot = 6,
}

impl ObjectType {
    /// Decode the on-disk byte.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupt`] for an unknown value.
    pub fn from_u8(b: u8) -> Result<Self> {
        Ok(match b {
            1 => Self::Config,
            2 => Self::Data,
            3 => Self::Tree,
            4 => Self::PackTrailer,
            5 => Self::Snapshot,
            6 => Self::KeySlot,
            _ => return Err(Error::corrupt(format!("unknown object type {b}"))),
        })
    }

    /// Lowercase name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Data => "data chunk",
            Self::Tree => "tree chunk",
            Self::PackTrailer => "pack trailer",
            Self::Snapshot => "snapshot",
            Self::KeySlot => "key slot",
        }
    }
}

/// Little-endian encoder.
#[derive(Default, Debug)]
pub struct Enc(pub Vec<u8>);

impl Enc {
    /// An empty encoder.
    pub fn new() -> Self {
        Self(Vec::new())
    }
    /// Append one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    /// Append a u16.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Append a u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Append a u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Append an i64.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Append raw bytes with no length.
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    /// Append a u32 length followed by the bytes.
    ///
    /// # Panics
    /// If `v` is 4 GiB or longer; callers cap their inputs far below that.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        let len = u32::try_from(v.len()).expect("field longer than 4 GiB");
        self.u32(len).raw(v)
    }
    /// The encoded bytes.
    pub fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Bounds-checked little-endian decoder over untrusted bytes.
#[derive(Debug)]
pub struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Dec<'a> {
    /// Decode `buf`; `what` names the structure in error messages.
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, pos: 0, what }
    }

    fn short(&self, need: usize) -> Error {
        Error::corrupt(format!(
            "{} truncated: need {need} bytes at offset {}, {} left",
            self.what,
            self.pos,
            self.remaining()
        ))
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Take exactly `n` bytes.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupt`] if fewer remain.
    pub fn raw(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(self.short(n));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn arr<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.raw(N)?);
        Ok(a)
    }

    /// One byte.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupt`] if the input ended.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.raw(1)?[0])
    }
    /// A u16.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupt`] if the input ended.
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.arr()?))
    }
    /// A u32.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupt`] if the input ended.
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    /// A u64.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupt`] if the input ended.
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    /// An i64.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupt`] if the input ended.
    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.arr()?))
    }
    /// 32 raw bytes.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupt`] if the input ended.
    pub fn id(&mut self) -> Result<[u8; 32]> {
        self.arr()
    }
    /// A u32 length (at most `max`) and that many bytes.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupt`] if the length passes `max` or the input ended.
    pub fn bytes(&mut self, max: usize) -> Result<&'a [u8]> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(Error::corrupt(format!(
                "{}: field of {len} bytes exceeds the limit of {max}",
                self.what
            )));
        }
        self.raw(len)
    }
    /// A length-prefixed UTF-8 string.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupt`] if too long, truncated or not UTF-8.
    pub fn string(&mut self, max: usize) -> Result<String> {
        let b = self.bytes(max)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| Error::corrupt(format!("{}: string is not UTF-8", self.what)))
    }
    /// Require that every byte was consumed.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupt`] if bytes remain.
    pub fn finish(self) -> Result<()> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(Error::corrupt(format!(
                "{}: {} trailing bytes",
                self.what,
                self.remaining()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let mut e = Enc::new();
        e.u8(7)
            .u16(300)
            .u32(70_000)
            .u64(1 << 40)
            .i64(-5)
            .bytes(b"abc");
        let buf = e.finish();
        let mut d = Dec::new(&buf, "test");
        assert_eq!(d.u8().unwrap(), 7);
        assert_eq!(d.u16().unwrap(), 300);
        assert_eq!(d.u32().unwrap(), 70_000);
        assert_eq!(d.u64().unwrap(), 1 << 40);
        assert_eq!(d.i64().unwrap(), -5);
        assert_eq!(d.bytes(3).unwrap(), b"abc");
        d.finish().unwrap();

        let mut d = Dec::new(&buf[..buf.len() - 1], "test");
        d.raw(23).unwrap();
        assert!(d.bytes(10).is_err());
        let mut d = Dec::new(&buf[23..], "test");
        assert!(d.bytes(2).is_err(), "length cap must hold");
    }
}
