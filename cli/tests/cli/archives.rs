//! Classic archives for the tests of `verify-archive` and `import`: the old system's,
//! made by GNU tar and gzip and named with their real checksum; hostile ones, written member
//! by member with the `tar` crate so that no name is cleaned up on the way; and one as
//! masclet exports a database snapshot.

use super::*;
use sha2::{Digest, Sha256};
use std::io::Write;

/// Hex SHA-256 of a file.
pub fn sha256_hex(path: &Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Rename `tmp` to `dir/<tier>/masclet_<tier>_<stamp>_<sha8>.tar.gz` with its real
/// checksum, as the old system named its archives.
pub fn name_it(tmp: &Path, dir: &Path, tier: &str, stamp: &str) -> PathBuf {
    let sha = sha256_hex(tmp);
    let d = dir.join(tier);
    std::fs::create_dir_all(&d).unwrap();
    let to = d.join(format!("masclet_{tier}_{stamp}_{}.tar.gz", &sha[..8]));
    std::fs::rename(tmp, &to).unwrap();
    to
}

/// An old-system archive: GNU `tar czf` of `members` (relative to `src`).
pub fn gnu_archive(src: &Path, members: &[&str], dir: &Path, tier: &str, stamp: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let tmp = dir.join("new.tar.gz");
    let o = Command::new("tar")
        .arg("-C")
        .arg(src)
        .arg("-czf")
        .arg(&tmp)
        .args(members)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    name_it(&tmp, dir, tier, stamp)
}

/// A member the `tar` crate writes without any of its checks on the name.
pub enum Raw<'a> {
    File(&'a [u8], &'a [u8]),
    Dir(&'a [u8]),
    Symlink(&'a [u8], &'a [u8]),
    HardLink(&'a [u8], &'a [u8]),
    Device(&'a [u8]),
    /// A header declaring `size` bytes followed by none.
    Huge(&'a [u8], u64),
}

/// A `.tar.gz` of raw members (names written into the header as they are, GNU long
/// names when needed), named with its real checksum.
pub fn raw_archive(members: &[Raw<'_>], dir: &Path, tier: &str, stamp: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let tmp = dir.join("new.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&tmp).unwrap(),
        flate2::Compression::default(),
    );
    let mut b = tar::Builder::new(gz);
    for m in members {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(1_741_675_500);
        let (name, data): (&[u8], &[u8]) = match m {
            Raw::File(n, d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(d.len() as u64);
                (n, d)
            }
            Raw::Dir(n) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                (n, b"")
            }
            Raw::Symlink(n, t) | Raw::HardLink(n, t) => {
                h.set_entry_type(if matches!(m, Raw::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                h.set_size(0);
                h.as_old_mut().linkname[..t.len()].copy_from_slice(t);
                (n, b"")
            }
            Raw::Device(n) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_size(0);
                (n, b"")
            }
            Raw::Huge(n, size) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(*size);
                (n, b"")
            }
        };
        if name.len() > 99 {
            let mut l = tar::Header::new_gnu();
            l.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
            l.set_entry_type(tar::EntryType::GNULongName);
            l.set_size(name.len() as u64 + 1);
            l.set_cksum();
            let mut n = name.to_vec();
            n.push(0);
            b.append(&l, &n[..]).unwrap();
        } else {
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
        }
        h.set_cksum();
        if let Raw::Huge(..) = m {
            // The header alone: its content never follows.
            b.get_mut().write_all(h.as_bytes()).unwrap();
        } else {
            b.append(&h, data).unwrap();
        }
    }
    b.into_inner().unwrap().finish().unwrap();
    name_it(&tmp, dir, tier, stamp)
}

/// A plain SQL dump of pseudo-random text (compresses to about its own size).
pub fn fake_dump(len: usize, seed: u64) -> Vec<u8> {
    let mut out = b"-- PostgreSQL database dump\n".to_vec();
    let noise = masclet_tests::noise(len, seed);
    for line in noise.chunks(60) {
        out.extend(line.iter().map(|b| b'a' + b % 26));
        out.push(b'\n');
    }
    out
}

/// A database snapshot's classic archive, made as a site makes one: `masclet backup --pg`
/// of the cluster's `masclet_imperi`, then `masclet export` (its dump, roles file and
/// manifest, MANIFEST.json last).
pub fn database_archive(env: &Env, pg: &masclet_tests::pg::PgCluster) -> PathBuf {
    let bin = pg.bin_dir().to_str().unwrap().to_string();
    let o = env
        .cmd(&["backup", "--pg", "--pg-bin", &bin, "--min-free", "0"])
        .env("DATABASE_URL", pg.url("masclet_imperi"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dir = env.path("exports");
    let out = env.ok(&[
        "export",
        "latest",
        "--tier",
        "daily",
        "--dir",
        dir.to_str().unwrap(),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    PathBuf::from(v["path"].as_str().unwrap())
}
