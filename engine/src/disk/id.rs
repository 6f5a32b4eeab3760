//! Typed 32-byte identifiers.
//!
//! Every object in a repository is named by 32 bytes. The types keep a chunk id from being
//! used where a pack id is meant; all share one representation and hex form (lowercase,
//! 64 characters on disk, 8 characters in short displays).

use crate::error::{Error, Result};
use std::fmt;

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// A fresh id from the operating system's CSPRNG.
            pub fn random() -> Self {
                Self(crate::disk::random::random_array())
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Lowercase hex, 64 characters.
            pub fn to_hex(&self) -> String {
                to_hex(&self.0)
            }

            /// The first 8 hex characters, for people.
            pub fn short(&self) -> String {
                to_hex(&self.0[..4])
            }

            /// Parse 64 hex characters.
            ///
            /// # Errors
            /// [`crate::ErrorKind::InvalidInput`] if `s` is not 64 hex digits.
            pub fn from_hex(s: &str) -> Result<Self> {
                parse_hex32(s).map(Self).ok_or_else(|| {
                    Error::invalid(format!("not a {}: {s:?}", stringify!($name)))
                })
            }

            /// Build from a slice that must hold exactly 32 bytes.
            ///
            /// # Errors
            /// [`crate::ErrorKind::Corrupt`] if the slice has another length.
            pub fn from_slice(b: &[u8]) -> Result<Self> {
                let arr: [u8; 32] = b.try_into().map_err(|_| {
                    Error::corrupt(format!("{} of {} bytes", stringify!($name), b.len()))
                })?;
                Ok(Self(arr))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::from_hex(s)
            }
        }
    };
}

define_id!(
    /// Names a chunk: keyed BLAKE3 of its plaintext (format-spec.md, "Keys and identifiers").
    ChunkId
);
define_id!(
    /// Names a pack file; random, and bound into the pack trailer's associated data.
    PackId
);
define_id!(
    /// Names a snapshot object; random, and bound into its associated data.
    SnapshotId
);
define_id!(
    /// Names a key slot.
    KeyId
);
define_id!(
    /// Names a repository; chosen at `init`, bound into every object's associated data.
    RepoId
);
define_id!(
    /// Names a lock object.
    LockId
);

/// Lowercase hex of any byte string.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = ChunkId([0xab; 32]);
        assert_eq!(ChunkId::from_hex(&id.to_hex()).unwrap(), id);
        assert_eq!(id.short(), "abababab");
        assert!(ChunkId::from_hex("xyz").is_err());
        assert!(ChunkId::from_hex(&"g".repeat(64)).is_err());
    }
}
