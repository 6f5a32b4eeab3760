//! Key slots: the master key wrapped under a passphrase (format-spec.md, "Key slots").
//!
//! The wrapping key is Argon2id(passphrase, salt) with the parameters stored in the slot.
//! Those parameters come from the repository, which may be hostile: they are checked
//! against a floor (no silent downgrade to a cheap KDF) and a ceiling (no gigabytes of RAM
//! forced on the client) before the KDF runs.

use crate::disk::crypto::{MasterKey, cipher_from, open_with, seal_with};
use crate::disk::format::{Dec, Enc, KEY_MAGIC, KEY_SLOT_VERSION, ObjectType};
use crate::disk::id::{KeyId, RepoId};
use crate::disk::random::random_array;
use crate::error::{Error, ErrorKind, Result};
use zeroize::Zeroizing;

/// KDF identifier byte: Argon2id, version 0x13.
pub const KDF_ARGON2ID: u8 = 1;
/// Salt length.
pub const SALT_LEN: usize = 16;
/// Offset of the sealed master key inside a key slot.
pub const KEY_SLOT_ENVELOPE_OFFSET: usize = 8 + 4 + 1 + 4 + 4 + 4 + SALT_LEN;
/// Smallest Argon2 memory a key slot may ask for, in KiB (8 MiB).
pub const MIN_M_COST_KIB: u32 = 8 * 1024;
/// Largest Argon2 memory a key slot may ask for, in KiB (4 GiB).
pub const MAX_M_COST_KIB: u32 = 4 * 1024 * 1024;
/// Largest Argon2 time cost accepted.
pub const MAX_T_COST: u32 = 64;
/// Largest Argon2 parallelism accepted.
pub const MAX_P_COST: u32 = 64;

/// Argon2id parameters of one key slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// The default for new key slots: 19 MiB, 2 passes, 1 lane, the first of the
    /// equivalent Argon2id settings the OWASP password storage guidance lists. Every
    /// command derives the key once at open, so the KDF's memory is the floor of every
    /// command's peak RSS and its time is paid by every nightly run: 64 MiB and 3 passes
    /// (borg 2's choice) cost a constrained server 0.12 s and 64 MiB per command.
    /// `init --kdf-memory` raises it where memory is plentiful.
    pub const DEFAULT: Self = Self {
        m_cost_kib: 19 * 1024,
        t_cost: 2,
        p_cost: 1,
    };
    /// The cheapest parameters the floor allows; for test suites only, selected by the
    /// environment variable `MASCLET_INSECURE_FAST_KDF=1`.
    pub const FAST_INSECURE: Self = Self {
        m_cost_kib: MIN_M_COST_KIB,
        t_cost: 1,
        p_cost: 1,
    };

    /// The parameters for a new key slot, honouring `MASCLET_INSECURE_FAST_KDF`.
    pub fn for_new_slot() -> Self {
        if std::env::var_os("MASCLET_INSECURE_FAST_KDF").is_some_and(|v| v == "1") {
            Self::FAST_INSECURE
        } else {
            Self::DEFAULT
        }
    }

    /// Check the bounds stated in format-spec.md.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`] naming the parameter out of bounds.
    pub fn check(&self) -> Result<()> {
        let ok = (MIN_M_COST_KIB..=MAX_M_COST_KIB).contains(&self.m_cost_kib)
            && (1..=MAX_T_COST).contains(&self.t_cost)
            && (1..=MAX_P_COST).contains(&self.p_cost)
            && self.m_cost_kib >= 8 * self.p_cost;
        if ok {
            Ok(())
        } else {
            Err(Error::corrupt(format!(
                "key slot KDF parameters out of bounds (memory {} KiB, time {}, lanes {}): the key slot was damaged or tampered with",
                self.m_cost_kib, self.t_cost, self.p_cost
            )))
        }
    }

    fn derive(&self, passphrase: &[u8], salt: &[u8; SALT_LEN]) -> Result<Zeroizing<[u8; 32]>> {
        self.check()?;
        let params = argon2::Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))
            .map_err(|e| Error::corrupt(format!("key slot KDF parameters rejected: {e}")))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase, salt, out.as_mut())
            .map_err(|e| Error::internal(format!("argon2: {e}")))?;
        Ok(out)
    }
}

/// A decoded key slot.
#[derive(Debug, Clone)]
pub struct KeySlot {
    /// KDF parameters.
    pub params: KdfParams,
    /// KDF salt.
    pub salt: [u8; SALT_LEN],
    /// The sealed master key.
    pub sealed: Vec<u8>,
}

impl KeySlot {
    /// Wrap `master` under `passphrase` as key slot `key_id` of repository `repo_id`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an empty passphrase.
    pub fn create(
        master: &MasterKey,
        passphrase: &[u8],
        params: KdfParams,
        repo_id: RepoId,
        key_id: KeyId,
    ) -> Result<Self> {
        if passphrase.is_empty() {
            return Err(Error::invalid("refusing an empty passphrase"));
        }
        let salt = random_array();
        let kek = params.derive(passphrase, &salt)?;
        let sealed = seal_with(
            &cipher_from(&kek),
            repo_id,
            ObjectType::KeySlot,
            &key_id.0,
            &master.0,
            None,
        );
        Ok(Self {
            params,
            salt,
            sealed,
        })
    }

    /// Encode to the on-disk layout.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        e.raw(KEY_MAGIC).u32(KEY_SLOT_VERSION).u8(KDF_ARGON2ID);
        e.u32(self.params.m_cost_kib)
            .u32(self.params.t_cost)
            .u32(self.params.p_cost);
        e.raw(&self.salt).raw(&self.sealed);
        e.finish()
    }

    /// Decode and check the layout (not the passphrase).
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`] for a bad magic or KDF id, [`ErrorKind::Unsupported`] for an
    /// unknown version.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut d = Dec::new(buf, "key slot");
        if d.raw(8)? != KEY_MAGIC {
            return Err(Error::corrupt("key slot: bad magic"));
        }
        let version = d.u32()?;
        if version != KEY_SLOT_VERSION {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("key slot format v{version} not supported"),
            ));
        }
        if d.u8()? != KDF_ARGON2ID {
            return Err(Error::corrupt("key slot: unknown KDF"));
        }
        let params = KdfParams {
            m_cost_kib: d.u32()?,
            t_cost: d.u32()?,
            p_cost: d.u32()?,
        };
        let salt = d.raw(SALT_LEN)?.try_into().expect("16 bytes");
        let sealed = d.raw(d.remaining())?.to_vec();
        Ok(Self {
            params,
            salt,
            sealed,
        })
    }

    /// Unwrap the master key.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`] if the KDF parameters are out of bounds (checked before the
    /// KDF runs); [`ErrorKind::WrongPassword`] if the passphrase does not open the slot.
    pub fn unlock(&self, passphrase: &[u8], repo_id: RepoId, key_id: KeyId) -> Result<MasterKey> {
        let kek = self.params.derive(passphrase, &self.salt)?;
        let plain = open_with(
            &cipher_from(&kek),
            repo_id,
            ObjectType::KeySlot,
            &key_id.0,
            &self.sealed,
            32,
            None,
        )
        .map_err(|_| {
            Error::new(
                ErrorKind::WrongPassword,
                "wrong passphrase or damaged key slot",
            )
        })?;
        let bytes: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| Error::corrupt("key slot holds a master key of the wrong length"))?;
        Ok(MasterKey(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_and_refusals() {
        let master = MasterKey::from_bytes([5; 32]);
        let (repo, key) = (RepoId([1; 32]), KeyId([2; 32]));
        let slot = KeySlot::create(&master, b"pw", KdfParams::FAST_INSECURE, repo, key).unwrap();
        let slot = KeySlot::decode(&slot.encode()).unwrap();
        assert_eq!(slot.unlock(b"pw", repo, key).unwrap().0, [5; 32]);
        assert_eq!(
            slot.unlock(b"pW", repo, key).unwrap_err().kind(),
            ErrorKind::WrongPassword
        );
        assert_eq!(
            slot.unlock(b"pw", repo, KeyId([3; 32])).unwrap_err().kind(),
            ErrorKind::WrongPassword
        );
        assert!(KeySlot::create(&master, b"", KdfParams::FAST_INSECURE, repo, key).is_err());
    }

    #[test]
    fn bounds_are_checked_before_the_kdf() {
        let master = MasterKey::from_bytes([5; 32]);
        let (repo, key) = (RepoId([1; 32]), KeyId([2; 32]));
        let mut slot =
            KeySlot::create(&master, b"pw", KdfParams::FAST_INSECURE, repo, key).unwrap();
        for m in [1, 64 * 1024 * 1024] {
            slot.params.m_cost_kib = m;
            let err = slot.unlock(b"pw", repo, key).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Corrupt);
            assert!(err.to_string().contains("out of bounds"), "{err}");
        }
    }
}
