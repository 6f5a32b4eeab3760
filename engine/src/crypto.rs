//! Keys, chunk ids and the object envelope (format-spec.md, "Keys" and "Object envelope").
//!
//! One random 32-byte master key per repository. Everything else is derived from it with
//! BLAKE3's `derive_key` under fixed context strings, so a key slot only ever wraps those
//! 32 bytes. Every object is compressed (when that pays), then sealed with
//! XChaCha20-Poly1305 under a fresh random 24-byte nonce; the associated data binds the
//! ciphertext to the repository, the object's type and id, and the format version.

use crate::error::{Error, Result};
use crate::format::{
    AAD_DOMAIN, COMPRESSION_NONE, COMPRESSION_ZSTD, ENVELOPE_HEADER_LEN, ENVELOPE_VERSION,
    FORMAT_VERSION, ObjectType, TAG_LEN,
};
use crate::id::{ChunkId, RepoId};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use std::cell::RefCell;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Context strings for `blake3::derive_key`; part of the format.
pub const CONTEXT_ID_KEY: &str = "masclet 2026-11 v1 chunk id key";
/// Context for the object encryption key.
pub const CONTEXT_ENC_KEY: &str = "masclet 2026-11 v1 object encryption key";
/// Context for the chunker's gear seed.
pub const CONTEXT_CHUNKER_SEED: &str = "masclet 2026-11 v1 chunker seed";

/// Length of the associated-data block (format-spec.md, "Associated data").
pub const AAD_LEN: usize = 8 + 4 + 32 + 1 + 32 + 2;

/// Fill an array from the operating system's CSPRNG.
///
/// # Panics
/// If the OS random source fails; there is no safe way to continue without it.
pub fn random_array<const N: usize>() -> [u8; N] {
    let mut a = [0u8; N];
    getrandom::getrandom(&mut a).expect("operating system random source failed");
    a
}

/// The repository master key. Never printed, zeroed on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey(pub(crate) [u8; 32]);

impl MasterKey {
    /// A fresh random master key.
    pub fn generate() -> Self {
        Self(random_array())
    }

    /// A master key from known bytes (golden vectors and tests only).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// The keys derived from a master key, bound to one repository id.
pub struct Keys {
    repo_id: RepoId,
    id_key: [u8; 32],
    cipher: XChaCha20Poly1305,
    chunker_seed: u64,
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.id_key.zeroize();
    }
}

impl Keys {
    /// Derive the working keys of repository `repo_id` from its master key.
    pub fn derive(master: &MasterKey, repo_id: RepoId) -> Self {
        let id_key = blake3::derive_key(CONTEXT_ID_KEY, &master.0);
        let mut enc = blake3::derive_key(CONTEXT_ENC_KEY, &master.0);
        let cipher = XChaCha20Poly1305::new((&enc).into());
        enc.zeroize();
        let seed = blake3::derive_key(CONTEXT_CHUNKER_SEED, &master.0);
        let chunker_seed = u64::from_le_bytes(seed[..8].try_into().expect("8 bytes"));
        Self {
            repo_id,
            id_key,
            cipher,
            chunker_seed,
        }
    }

    /// The repository these keys belong to.
    pub fn repo_id(&self) -> RepoId {
        self.repo_id
    }

    /// The seed XORed into the chunker's gear tables.
    pub fn chunker_seed(&self) -> u64 {
        self.chunker_seed
    }

    /// A chunk's id: keyed BLAKE3 of its plaintext.
    pub fn chunk_id(&self, plaintext: &[u8]) -> ChunkId {
        ChunkId(*blake3::keyed_hash(&self.id_key, plaintext).as_bytes())
    }

    /// Compress (zstd at `level`, or not at all when `level` is `None` or it does not pay)
    /// and seal `plaintext` as object `(ty, id)`.
    pub fn seal(
        &self,
        ty: ObjectType,
        id: &[u8; 32],
        plaintext: &[u8],
        level: Option<i32>,
    ) -> Vec<u8> {
        seal_with(&self.cipher, self.repo_id, ty, id, plaintext, level)
    }

    /// Open an envelope sealed as object `(ty, id)`; the plaintext may be at most `max_len`.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupt`] on a bad header, failed authentication (wrong object,
    /// type, repository or damaged bytes) or an oversize or undecodable payload.
    pub fn open(
        &self,
        ty: ObjectType,
        id: &[u8; 32],
        sealed: &[u8],
        max_len: usize,
    ) -> Result<Vec<u8>> {
        open_with(&self.cipher, self.repo_id, ty, id, sealed, max_len)
    }

    /// Open a chunk and check that its plaintext hashes to `id`.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupt`] as [`Keys::open`], or when the id does not match.
    pub fn open_chunk(
        &self,
        ty: ObjectType,
        id: &ChunkId,
        sealed: &[u8],
        max_len: usize,
    ) -> Result<Vec<u8>> {
        let plain = self.open(ty, &id.0, sealed, max_len)?;
        if self.chunk_id(&plain) != *id {
            return Err(Error::corrupt(format!(
                "{} {id}: content does not match its id",
                ty.name()
            )));
        }
        Ok(plain)
    }
}

/// The associated data of object `(ty, id)` with envelope header bytes `header`.
pub fn aad(repo_id: RepoId, ty: ObjectType, id: &[u8; 32], header: [u8; 2]) -> [u8; AAD_LEN] {
    let mut a = [0u8; AAD_LEN];
    a[..8].copy_from_slice(AAD_DOMAIN);
    a[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    a[12..44].copy_from_slice(&repo_id.0);
    a[44] = ty as u8;
    a[45..77].copy_from_slice(id);
    a[77..79].copy_from_slice(&header);
    a
}

thread_local! {
    // Reusing contexts matters: creating one per 16 KiB chunk costs more than compressing it.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

fn compress(plaintext: &[u8], level: i32) -> Option<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().is_none_or(|(l, _)| *l != level) {
            *c = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        let (_, comp) = c.as_mut()?;
        comp.compress(plaintext).ok()
    })
}

fn decompress(data: &[u8], max_len: usize) -> Result<Vec<u8>> {
    let size = zstd::zstd_safe::get_frame_content_size(data)
        .map_err(|_| Error::corrupt("compressed payload has a bad frame header"))?
        .ok_or_else(|| Error::corrupt("compressed payload does not state its size"))?;
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if size > max_len {
        return Err(Error::corrupt(format!(
            "payload of {size} bytes exceeds the limit of {max_len}"
        )));
    }
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(
                zstd::bulk::Decompressor::new()
                    .map_err(|e| Error::internal(format!("zstd: {e}")))?,
            );
        }
        let dec = d.as_mut().expect("set above");
        let out = dec
            .decompress(data, size)
            .map_err(|e| Error::corrupt(format!("compressed payload does not decode: {e}")))?;
        if out.len() != size {
            return Err(Error::corrupt("compressed payload has the wrong length"));
        }
        Ok(out)
    })
}

/// Seal with an explicit cipher (key slots use a passphrase-derived one).
pub(crate) fn seal_with(
    cipher: &XChaCha20Poly1305,
    repo_id: RepoId,
    ty: ObjectType,
    id: &[u8; 32],
    plaintext: &[u8],
    level: Option<i32>,
) -> Vec<u8> {
    let compressed = level
        .and_then(|l| compress(plaintext, l))
        .filter(|c| c.len() < plaintext.len());
    let (method, body) = match &compressed {
        Some(c) => (COMPRESSION_ZSTD, c.as_slice()),
        None => (COMPRESSION_NONE, plaintext),
    };
    let nonce: [u8; 24] = random_array();
    let header = [ENVELOPE_VERSION, method];
    let mut out = Vec::with_capacity(ENVELOPE_HEADER_LEN + body.len() + TAG_LEN);
    out.extend_from_slice(&header);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(body);
    let tag = cipher
        .encrypt_in_place_detached(
            XNonce::from_slice(&nonce),
            &aad(repo_id, ty, id, header),
            &mut out[ENVELOPE_HEADER_LEN..],
        )
        .expect("XChaCha20-Poly1305 accepts any message below 256 GiB");
    out.extend_from_slice(&tag);
    out
}

/// Open with an explicit cipher.
pub(crate) fn open_with(
    cipher: &XChaCha20Poly1305,
    repo_id: RepoId,
    ty: ObjectType,
    id: &[u8; 32],
    sealed: &[u8],
    max_len: usize,
) -> Result<Vec<u8>> {
    if sealed.len() < ENVELOPE_HEADER_LEN + TAG_LEN {
        return Err(Error::corrupt(format!(
            "{}: envelope of {} bytes is too short",
            ty.name(),
            sealed.len()
        )));
    }
    let header = [sealed[0], sealed[1]];
    if header[0] != ENVELOPE_VERSION {
        return Err(Error::corrupt(format!(
            "{}: unknown envelope version {}",
            ty.name(),
            header[0]
        )));
    }
    let nonce = XNonce::from_slice(&sealed[2..ENVELOPE_HEADER_LEN]);
    let (body, tag) =
        sealed[ENVELOPE_HEADER_LEN..].split_at(sealed.len() - ENVELOPE_HEADER_LEN - TAG_LEN);
    let mut buf = body.to_vec();
    cipher
        .decrypt_in_place_detached(
            nonce,
            &aad(repo_id, ty, id, header),
            &mut buf,
            Tag::from_slice(tag),
        )
        .map_err(|_| {
            Error::corrupt(format!(
                "{} {}: authentication failed",
                ty.name(),
                crate::id::to_hex(&id[..4])
            ))
        })?;
    match header[1] {
        COMPRESSION_NONE if buf.len() <= max_len => Ok(buf),
        COMPRESSION_NONE => Err(Error::corrupt(format!(
            "{}: payload exceeds the limit of {max_len}",
            ty.name()
        ))),
        COMPRESSION_ZSTD => decompress(&buf, max_len).map_err(|e| e.context(ty.name())),
        m => Err(Error::corrupt(format!(
            "{}: unknown compression {m}",
            ty.name()
        ))),
    }
}

/// A cipher from raw key bytes (used for key-slot wrapping keys).
pub(crate) fn cipher_from(key: &[u8; 32]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(key.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys() -> Keys {
        Keys::derive(&MasterKey::from_bytes([7; 32]), RepoId([9; 32]))
    }

    #[test]
    fn every_aad_field_is_bound() {
        let k = keys();
        let id = [1u8; 32];
        let sealed = k.seal(ObjectType::Data, &id, b"hello hello hello hello", Some(3));
        assert_eq!(
            k.open(ObjectType::Data, &id, &sealed, 100).unwrap(),
            b"hello hello hello hello"
        );
        assert!(k.open(ObjectType::Tree, &id, &sealed, 100).is_err(), "type");
        assert!(
            k.open(ObjectType::Data, &[2; 32], &sealed, 100).is_err(),
            "id"
        );
        let other = Keys::derive(&MasterKey::from_bytes([7; 32]), RepoId([8; 32]));
        assert!(
            other.open(ObjectType::Data, &id, &sealed, 100).is_err(),
            "repo"
        );
        let mut bad = sealed.clone();
        bad[1] ^= 1; // compression byte is authenticated
        assert!(k.open(ObjectType::Data, &id, &bad, 100).is_err(), "header");
        assert!(
            k.open(ObjectType::Data, &id, &sealed, 3).is_err(),
            "length cap"
        );
    }

    #[test]
    fn same_plaintext_twice_differs() {
        let k = keys();
        let a = k.seal(ObjectType::Data, &[0; 32], b"x", None);
        let b = k.seal(ObjectType::Data, &[0; 32], b"x", None);
        assert_ne!(a, b);
        assert_ne!(a[2..26], b[2..26], "nonces must differ");
    }

    #[test]
    fn incompressible_is_stored_raw() {
        let k = keys();
        let mut data = vec![0u8; 4096];
        blake3::Hasher::new().finalize_xof().fill(&mut data);
        let sealed = k.seal(ObjectType::Data, &[0; 32], &data, Some(3));
        assert_eq!(sealed[1], COMPRESSION_NONE);
        let zeros = vec![0u8; 4096];
        let sealed = k.seal(ObjectType::Data, &[0; 32], &zeros, Some(3));
        assert_eq!(sealed[1], COMPRESSION_ZSTD);
        assert!(sealed.len() < 200);
    }

    proptest! {
        #[test]
        fn seal_open_round_trip(data in proptest::collection::vec(any::<u8>(), 0..5000), level in proptest::option::of(1i32..6)) {
            let k = keys();
            let id = k.chunk_id(&data);
            let sealed = k.seal(ObjectType::Data, &id.0, &data, level);
            prop_assert_eq!(k.open_chunk(ObjectType::Data, &id, &sealed, 5000).unwrap(), data);
        }

        #[test]
        fn flipped_bit_never_opens(data in proptest::collection::vec(any::<u8>(), 1..300), bit in any::<usize>()) {
            let k = keys();
            let mut sealed = k.seal(ObjectType::Data, &[3; 32], &data, Some(3));
            let n = sealed.len() * 8;
            sealed[(bit % n) / 8] ^= 1 << (bit % 8);
            prop_assert!(k.open(ObjectType::Data, &[3; 32], &sealed, 1000).is_err());
        }
    }
}
