//! The tar layer of a classic archive (format-spec.md, "Classic archives"): one GNU header
//! per snapshot entry in tree order, owner 0:0 without names, the snapshot's mode and
//! mtime (its nanoseconds in a pax header when not 0), long names and link targets as GNU
//! long-name entries, and
//! MANIFEST.json last, listing every member before it with the SHA-256 of its content.
//!
//! Headers are built with the `tar` crate's [`Header`] but written here, name bytes and
//! all: the crate's `append_*` helpers pass names through `Path::components` (which would
//! tidy a link target such as `dir/` into `dir`) and cannot store a long name whose first
//! bytes are not UTF-8. A snapshot's bytes go into the archive exactly as they are.

use super::manifest::{ARCHIVE_MANIFEST, Member, MemberKind};
use crate::disk::tree::{EntryMeta, display_path};
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Write;
use tar::{EntryType, Header};

/// Tar's block size.
const TAR_BLOCK: u64 = 512;
/// A name or link target at least this long goes in a GNU long-name entry (as GNU tar
/// does: the header's 100-byte field then keeps a terminating NUL).
const LONG_FROM: usize = 100;
/// Mode of MANIFEST.json, which is no snapshot entry.
const MANIFEST_MODE: u32 = 0o644;
/// Most bytes of a member kept in memory for the caller (a database snapshot's
/// `pg-manifest.json`, a few KiB in practice).
pub(crate) const MAX_KEPT: u64 = 16 << 20;

/// Writes the tar stream and gathers the members for MANIFEST.json.
pub(crate) struct TarWriter<W: Write> {
    out: W,
    members: Vec<Member>,
    file: Option<OpenFile>,
}

/// The regular file being written.
struct OpenFile {
    path: Vec<u8>,
    size: u64,
    written: u64,
    sha: Sha256,
    kept: Option<Vec<u8>>,
}

fn io(e: std::io::Error) -> Error {
    Error::io("writing the archive", e)
}

impl<W: Write> TarWriter<W> {
    pub(crate) fn new(out: W) -> Self {
        Self {
            out,
            members: Vec::new(),
            file: None,
        }
    }

    /// A directory; its tar name ends in `/`, as GNU tar writes it.
    pub(crate) fn dir(&mut self, m: &EntryMeta) -> Result<()> {
        let mut name = m.path.clone();
        name.push(b'/');
        self.header(EntryType::Directory, &name, None, m.mode, time(m), 0)?;
        self.members
            .push(Member::new(&m.path, MemberKind::Dir, 0, None));
        Ok(())
    }

    /// A symbolic link to `target`, byte for byte.
    pub(crate) fn symlink(&mut self, m: &EntryMeta, target: &[u8]) -> Result<()> {
        self.header(
            EntryType::Symlink,
            &m.path,
            Some(target),
            m.mode,
            time(m),
            0,
        )?;
        self.members
            .push(Member::new(&m.path, MemberKind::Symlink, 0, None));
        Ok(())
    }

    /// The header of a regular file of `size` bytes; its content follows through
    /// [`Self::data`]. With `keep`, the content is also handed back by [`Self::file_end`].
    pub(crate) fn file_start(&mut self, m: &EntryMeta, size: u64, keep: bool) -> Result<()> {
        if keep && size > MAX_KEPT {
            return Err(Error::corrupt(format!(
                "{} has {size} bytes, more than any the archive reads back ({MAX_KEPT})",
                display_path(&m.path)
            )));
        }
        self.header(EntryType::Regular, &m.path, None, m.mode, time(m), size)?;
        self.file = Some(OpenFile {
            path: m.path.clone(),
            size,
            written: 0,
            sha: Sha256::new(),
            kept: keep.then(Vec::new),
        });
        Ok(())
    }

    /// Content of the current file.
    pub(crate) fn data(&mut self, bytes: &[u8]) -> Result<()> {
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| Error::internal("tar: content outside a file"))?;
        f.written += bytes.len() as u64;
        if f.written > f.size {
            return Err(Error::corrupt(format!(
                "{} has more content than its size in the tree ({} bytes)",
                display_path(&f.path),
                f.size
            )));
        }
        f.sha.update(bytes);
        if let Some(k) = &mut f.kept {
            k.extend_from_slice(bytes);
        }
        self.out.write_all(bytes).map_err(io)
    }

    /// The current file is complete: pad it to a block. Returns the content if kept.
    pub(crate) fn file_end(&mut self) -> Result<Option<Vec<u8>>> {
        let f = self
            .file
            .take()
            .ok_or_else(|| Error::internal("tar: file end outside a file"))?;
        if f.written != f.size {
            return Err(Error::corrupt(format!(
                "{} has {} bytes of content, its size in the tree is {}",
                display_path(&f.path),
                f.written,
                f.size
            )));
        }
        self.pad(f.size)?;
        let sha: [u8; 32] = f.sha.finalize().into();
        self.members
            .push(Member::new(&f.path, MemberKind::File, f.size, Some(sha)));
        Ok(f.kept)
    }

    /// Every member so far, in archive order.
    pub(crate) fn members(&self) -> &[Member] {
        &self.members
    }

    /// Write MANIFEST.json (`manifest`, modification time `mtime`) and the end of the
    /// archive (two zero blocks); hand back the output.
    pub(crate) fn finish(mut self, manifest: &[u8], mtime: i64) -> Result<W> {
        if self.file.is_some() {
            return Err(Error::internal("tar: archive ended inside a file"));
        }
        let size = manifest.len() as u64;
        let name = ARCHIVE_MANIFEST.as_bytes();
        self.header(
            EntryType::Regular,
            name,
            None,
            MANIFEST_MODE,
            (mtime, 0),
            size,
        )?;
        self.out.write_all(manifest).map_err(io)?;
        self.pad(size)?;
        self.out
            .write_all(&[0; 2 * TAR_BLOCK as usize])
            .map_err(io)?;
        Ok(self.out)
    }

    /// Zeros up to the next block boundary after `len` bytes of content.
    fn pad(&mut self, len: u64) -> Result<()> {
        let rest = (TAR_BLOCK - len % TAR_BLOCK) % TAR_BLOCK;
        self.out
            .write_all(&[0; TAR_BLOCK as usize][..usize::try_from(rest).expect("< 512")])
            .map_err(io)
    }

    /// One header, after the pax header its sub-second time needs and the GNU long-name
    /// entries its name or link target needs.
    fn header(
        &mut self,
        kind: EntryType,
        name: &[u8],
        link: Option<&[u8]>,
        mode: u32,
        (mtime, nsec): (i64, u32),
        size: u64,
    ) -> Result<()> {
        if nsec != 0 {
            self.pax_mtime(mtime, nsec)?;
        }
        if name.len() >= LONG_FROM {
            self.long_name(EntryType::GNULongName, name)?;
        }
        if let Some(l) = link.filter(|l| l.len() >= LONG_FROM) {
            self.long_name(EntryType::GNULongLink, l)?;
        }
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode & 0o7777);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(size);
        let gnu = h.as_gnu_mut().expect("a GNU header");
        put_truncated(&mut gnu.name, name);
        if let Some(l) = link {
            put_truncated(&mut gnu.linkname, l);
        }
        put_mtime(&mut gnu.mtime, mtime);
        h.set_cksum();
        self.out.write_all(h.as_bytes()).map_err(io)
    }

    /// The header of an entry that describes the next one (a pax record, a GNU long name
    /// or link): owner 0:0, mode 0644, no time, so it varies with nothing but its content.
    fn meta_header(&mut self, kind: EntryType, name: &[u8], size: u64) -> Result<()> {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(MANIFEST_MODE);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(size);
        put_truncated(&mut h.as_gnu_mut().expect("a GNU header").name, name);
        h.set_cksum();
        self.out.write_all(h.as_bytes()).map_err(io)
    }

    /// A pax extended header (`x`, `././@PaxHeader`) with one record, `mtime=<seconds>.<9
    /// digits>`: the time to the nanosecond, which GNU tar applies to the next entry.
    fn pax_mtime(&mut self, mtime: i64, nsec: u32) -> Result<()> {
        let body = format!(" mtime={}\n", pax_time(mtime, nsec));
        // The record's length counts its own digits.
        let mut len = body.len() + 1;
        while len.to_string().len() + body.len() != len {
            len += 1;
        }
        let record = format!("{len}{body}");
        let size = record.len() as u64;
        self.meta_header(EntryType::XHeader, b"././@PaxHeader", size)?;
        self.out.write_all(record.as_bytes()).map_err(io)?;
        self.pad(size)
    }

    /// A GNU long-name (`L`) or long-link (`K`) entry: `././@LongLink`, the bytes and a NUL.
    fn long_name(&mut self, kind: EntryType, bytes: &[u8]) -> Result<()> {
        let size = bytes.len() as u64 + 1;
        self.meta_header(kind, b"././@LongLink", size)?;
        self.out.write_all(bytes).map_err(io)?;
        self.out.write_all(&[0]).map_err(io)?;
        self.pad(size)
    }
}

/// An entry's time as the header wants it: seconds and nanoseconds.
fn time(m: &EntryMeta) -> (i64, u32) {
    (m.mtime, m.mtime_nsec)
}

/// `seconds + nsec / 10^9` in decimal with 9 fractional digits, also before 1970 (-2 s and
/// 750 000 000 ns is `-1.250000000`).
pub(crate) fn pax_time(secs: i64, nsec: u32) -> String {
    if secs >= 0 || nsec == 0 {
        format!("{secs}.{nsec:09}")
    } else {
        let whole = -(i128::from(secs) + 1);
        format!("-{whole}.{:09}", 1_000_000_000 - nsec)
    }
}

/// As much of `bytes` as fits in `field` leaving a NUL (the whole name is then in a
/// long-name entry before the header).
fn put_truncated(field: &mut [u8], bytes: &[u8]) {
    let n = bytes.len().min(field.len() - 1);
    field[..n].copy_from_slice(&bytes[..n]);
}

/// A modification time in the 12-byte field: octal when it fits (0 to 8^11 - 1, until
/// the year 2242), else GNU's base-256 form, two's complement big endian behind a first
/// byte with the high bit set, so times before 1970 and far in the future are exact.
pub(crate) fn put_mtime(field: &mut [u8; 12], mtime: i64) {
    const OCTAL_MAX: i64 = (1 << 33) - 1;
    if (0..=OCTAL_MAX).contains(&mtime) {
        let digits = format!("{mtime:011o}");
        field[..11].copy_from_slice(digits.as_bytes());
        field[11] = 0;
        return;
    }
    let mut v = mtime;
    for b in field.iter_mut().rev() {
        *b = u8::try_from(v & 0xff).expect("masked");
        v >>= 8;
    }
    field[0] |= 0x80;
}

#[cfg(test)]
mod tests;
