//! `MANIFEST.json`, the last member of every exported archive: which snapshot it holds, and
//! the SHA-256 of every member, so `verify-archive` can check each one after gzip's CRC and
//! the archive's own checksum (format-spec.md, "Classic archives").

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The manifest's member name in an archive.
pub const ARCHIVE_MANIFEST: &str = "MANIFEST.json";
/// The manifest's format version.
pub const ARCHIVE_MANIFEST_VERSION: u32 = 1;

/// What kind of entry a member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
}

/// One member of the archive (every one but the manifest itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's path when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The member's path bytes in hex when they are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    /// What it is.
    pub kind: MemberKind,
    /// Content bytes (0 for directories and symlinks).
    pub size: u64,
    /// SHA-256 of the content in hex (files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl Member {
    /// A member for `path` (tar path bytes).
    pub fn new(path: &[u8], kind: MemberKind, size: u64, sha256: Option<[u8; 32]>) -> Self {
        let (path, path_hex) = match std::str::from_utf8(path) {
            Ok(s) => (Some(s.to_string()), None),
            Err(_) => (None, Some(hex(path))),
        };
        Self {
            path,
            path_hex,
            kind,
            size,
            sha256: sha256.map(|h| hex(&h)),
        }
    }

    /// The path's bytes.
    pub fn path_bytes(&self) -> Vec<u8> {
        match (&self.path, &self.path_hex) {
            (Some(p), _) => p.as_bytes().to_vec(),
            (None, Some(h)) => unhex(h).unwrap_or_default(),
            (None, None) => Vec::new(),
        }
    }
}

/// The manifest of an exported archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveManifest {
    /// [`ARCHIVE_MANIFEST_VERSION`].
    pub version: u32,
    /// The snapshot exported (full id in hex).
    pub snapshot: String,
    /// The snapshot's time, UTC, RFC 3339.
    pub time: String,
    /// The snapshot's source (`files`, `stdin`, `postgres`).
    pub source: String,
    /// The snapshot's paths (lossy UTF-8, for people).
    pub paths: Vec<String>,
    /// The snapshot's tags.
    pub tags: Vec<String>,
    /// The program that wrote the archive (`masclet <version>`).
    pub tool: String,
    /// Every member but this manifest, in archive order.
    pub members: Vec<Member>,
    /// For a database snapshot, the figures it recorded (its `pg-manifest.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<crate::pg::Manifest>,
}

impl ArchiveManifest {
    /// Parse a manifest read from an archive.
    ///
    /// # Errors
    /// `Corrupt` when it is not a manifest this version reads.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let m: Self = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt(format!("{ARCHIVE_MANIFEST} is not readable: {e}")))?;
        if m.version != ARCHIVE_MANIFEST_VERSION {
            return Err(Error::new(
                crate::error::ErrorKind::Unsupported,
                format!(
                    "{ARCHIVE_MANIFEST} has version {}, this masclet reads {ARCHIVE_MANIFEST_VERSION}",
                    m.version
                ),
            ));
        }
        Ok(m)
    }

    /// The manifest as stored (pretty JSON, one trailing newline: reproducible).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        v.push(b'\n');
        v
    }
}

pub(crate) use crate::disk::id::to_hex as hex;

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_utf8_member_paths_survive_the_json() {
        let m = Member::new(b"dir/caf\xe9.txt", MemberKind::File, 3, Some([7; 32]));
        assert!(m.path.is_none());
        let back: Member = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back.path_bytes(), b"dir/caf\xe9.txt");
        let u = Member::new("Ñandú.sql".as_bytes(), MemberKind::File, 0, None);
        assert_eq!(u.path.as_deref(), Some("Ñandú.sql"));
        assert_eq!(u.path_bytes(), "Ñandú.sql".as_bytes());
    }
}
