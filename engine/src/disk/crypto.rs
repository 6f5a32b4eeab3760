//! Keys, chunk ids and the object envelope (format-spec.md, "Keys and identifiers" and "Object envelope").
//!
//! One random 32-byte master key per repository. Everything else is derived from it with
//! BLAKE3's `derive_key` under fixed context strings, so a key slot only ever wraps those
//! 32 bytes. Every object is compressed (when that pays), then sealed with
//! XChaCha20-Poly1305 under a fresh random 24-byte nonce; the associated data binds the
//! ciphertext to the repository, the object's type and id, and the format version.

use crate::disk::compress::{compress, compress_delta, decompress, decompress_delta};
use crate::disk::format::{
    AAD_DOMAIN, AAD_VERSION, COMPRESSION_NONE, COMPRESSION_ZSTD, COMPRESSION_ZSTD_DELTA,
    ENVELOPE_HEADER_LEN, ENVELOPE_VERSION, ObjectType, TAG_LEN,
};
use crate::disk::id::{ChunkId, RepoId};
use crate::disk::random::random_array;
use crate::error::{Error, Result};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Context strings for `blake3::derive_key`; part of the format.
pub const CONTEXT_ID_KEY: &str = "masclet 2026-11 v1 chunk id key";
/// Context for the object encryption key.
pub const CONTEXT_ENC_KEY: &str = "masclet 2026-11 v1 object encryption key";
/// Context for the chunker's gear seed.
pub const CONTEXT_CHUNKER_SEED: &str = "masclet 2026-11 v1 chunker seed";

/// Fetches the plaintext of a delta's base chunk.
pub type BaseResolver<'a> = &'a dyn Fn(&ChunkId) -> Result<Vec<u8>>;

/// Length of the associated-data block (format-spec.md, "Object envelope", associated data).
pub const AAD_LEN: usize = 8 + 4 + 32 + 1 + 32 + 2;

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
        open_with(&self.cipher, self.repo_id, ty, id, sealed, max_len, None)
    }

    /// Open a chunk stored whole (not as a delta) and check that its plaintext hashes to `id`.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupt`] as [`Keys::open`], for a delta, or when the id does not
    /// match.
    pub fn open_chunk(
        &self,
        ty: ObjectType,
        id: &ChunkId,
        sealed: &[u8],
        max_len: usize,
    ) -> Result<Vec<u8>> {
        self.open_chunk_with(ty, id, sealed, max_len, None)
    }

    /// Open a chunk that may be a delta without checking its id: for a writer comparing
    /// what it just sealed with the plaintext it holds, where a byte comparison says more
    /// than a hash (and costs less).
    pub(crate) fn open_unhashed(
        &self,
        ty: ObjectType,
        id: &ChunkId,
        sealed: &[u8],
        max_len: usize,
        base: Option<BaseResolver<'_>>,
    ) -> Result<Vec<u8>> {
        open_with(&self.cipher, self.repo_id, ty, &id.0, sealed, max_len, base)
    }

    /// Open a chunk that may be a delta, fetching its base with `base`, and check its id.
    ///
    /// # Errors
    /// As [`Keys::open_chunk`], plus whatever `base` returns.
    pub fn open_chunk_with(
        &self,
        ty: ObjectType,
        id: &ChunkId,
        sealed: &[u8],
        max_len: usize,
        base: Option<BaseResolver<'_>>,
    ) -> Result<Vec<u8>> {
        let plain = self.open_unhashed(ty, id, sealed, max_len, base)?;
        if self.chunk_id(&plain) != *id {
            return Err(Error::corrupt(format!(
                "{} {id}: content does not match its id",
                ty.name()
            )));
        }
        Ok(plain)
    }

    /// Check that `sealed` is the envelope a writer sealed for chunk `id` of type `ty`, and
    /// that its encoding agrees with the base the index records (`base`), without decoding
    /// the payload. Writers open every chunk again before it reaches a pack, so an authentic
    /// chunk decodes; what authentication catches is what happened to the bytes since. gc
    /// copies chunks that pass this (format-spec.md, "Forget and garbage collection").
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupt`] on a bad header, failed authentication, or a delta
    /// whose base is not `base` (or a whole chunk with a `base`).
    pub fn authenticate_chunk(
        &self,
        ty: ObjectType,
        id: &ChunkId,
        sealed: &[u8],
        base: Option<&ChunkId>,
    ) -> Result<()> {
        if sealed.len() < ENVELOPE_HEADER_LEN + TAG_LEN || sealed[0] != ENVELOPE_VERSION {
            return Err(Error::corrupt(format!(
                "{} {}: bad envelope header",
                ty.name(),
                id.short()
            )));
        }
        let header = [sealed[0], sealed[1]];
        let buf = decrypt(&self.cipher, self.repo_id, ty, &id.0, sealed, header)?;
        let agrees = match (header[1], base) {
            (COMPRESSION_NONE | COMPRESSION_ZSTD, None) => true,
            (COMPRESSION_ZSTD_DELTA, Some(b)) => buf.len() >= 32 && buf[..32] == b.0,
            _ => false,
        };
        if agrees {
            Ok(())
        } else {
            Err(Error::corrupt(format!(
                "{} {}: encoding does not match the base its pack trailer records",
                ty.name(),
                id.short()
            )))
        }
    }

    /// Seal `plaintext` as a delta against chunk `base_id` whose plaintext is `base`:
    /// payload = base id ‖ zstd frame with `base` as prefix. `None` when it does not pay.
    pub fn seal_delta(
        &self,
        ty: ObjectType,
        id: &ChunkId,
        plaintext: &[u8],
        base_id: &ChunkId,
        base: &[u8],
        level: i32,
    ) -> Option<Vec<u8>> {
        let frame = compress_delta(plaintext, base, level)?;
        if frame.len() + 32 >= plaintext.len() {
            return None;
        }
        let mut body = Vec::with_capacity(32 + frame.len());
        body.extend_from_slice(&base_id.0);
        body.extend_from_slice(&frame);
        Some(seal_body(
            &self.cipher,
            self.repo_id,
            ty,
            &id.0,
            COMPRESSION_ZSTD_DELTA,
            &body,
        ))
    }
}

/// The associated data of object `(ty, id)` with envelope header bytes `header`.
pub fn aad(repo_id: RepoId, ty: ObjectType, id: &[u8; 32], header: [u8; 2]) -> [u8; AAD_LEN] {
    let mut a = [0u8; AAD_LEN];
    a[..8].copy_from_slice(AAD_DOMAIN);
    a[8..12].copy_from_slice(&AAD_VERSION.to_le_bytes());
    a[12..44].copy_from_slice(&repo_id.0);
    a[44] = ty as u8;
    a[45..77].copy_from_slice(id);
    a[77..79].copy_from_slice(&header);
    a
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
    match &compressed {
        Some(c) => seal_body(cipher, repo_id, ty, id, COMPRESSION_ZSTD, c),
        None => seal_body(cipher, repo_id, ty, id, COMPRESSION_NONE, plaintext),
    }
}

/// Encrypt an already encoded payload with compression byte `method`.
pub(crate) fn seal_body(
    cipher: &XChaCha20Poly1305,
    repo_id: RepoId,
    ty: ObjectType,
    id: &[u8; 32],
    method: u8,
    body: &[u8],
) -> Vec<u8> {
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

/// Authenticate and decrypt an envelope whose header was checked; the (compressed) payload.
fn decrypt(
    cipher: &XChaCha20Poly1305,
    repo_id: RepoId,
    ty: ObjectType,
    id: &[u8; 32],
    sealed: &[u8],
    header: [u8; 2],
) -> Result<Vec<u8>> {
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
                crate::disk::id::to_hex(&id[..4])
            ))
        })?;
    Ok(buf)
}

/// Open with an explicit cipher. A delta payload (compression 2) needs `base` to fetch the
/// plaintext of its base chunk; objects that are never deltas pass `None`.
pub(crate) fn open_with(
    cipher: &XChaCha20Poly1305,
    repo_id: RepoId,
    ty: ObjectType,
    id: &[u8; 32],
    sealed: &[u8],
    max_len: usize,
    base: Option<BaseResolver<'_>>,
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
    let buf = decrypt(cipher, repo_id, ty, id, sealed, header)?;
    match (header[1], base) {
        (COMPRESSION_NONE, _) if buf.len() <= max_len => Ok(buf),
        (COMPRESSION_NONE, _) => Err(Error::corrupt(format!(
            "{}: payload exceeds the limit of {max_len}",
            ty.name()
        ))),
        (COMPRESSION_ZSTD, _) => decompress(&buf, max_len).map_err(|e| e.context(ty.name())),
        (COMPRESSION_ZSTD_DELTA, Some(resolve)) if buf.len() >= 32 => {
            let base_id = ChunkId::from_slice(&buf[..32])?;
            if base_id.0 == *id {
                return Err(Error::corrupt(format!(
                    "{}: a delta that is its own base",
                    ty.name()
                )));
            }
            let base = resolve(&base_id).map_err(|e| {
                e.context(format!(
                    "base {} of {} {}",
                    base_id.short(),
                    ty.name(),
                    crate::disk::id::to_hex(&id[..4])
                ))
            })?;
            decompress_delta(&buf[32..], &base, max_len).map_err(|e| e.context(ty.name()))
        }
        (COMPRESSION_ZSTD_DELTA, _) => Err(Error::corrupt(format!(
            "{}: unexpected delta encoding",
            ty.name()
        ))),
        (m, _) => Err(Error::corrupt(format!(
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
