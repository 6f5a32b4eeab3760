//! Temporary entries in the target. Whatever restore writes where something may already
//! stand is built under a name of its own, `.masclet-restore-` and 16 lowercase hex digits,
//! next to its final name, and only takes that name once it is complete (and, for a file,
//! its content hash checked). So the old entry keeps its name until the replacement is
//! ready, whatever stops the restore (a damaged chunk, a full disk, kill -9).
//!
//! A process killed mid-restore cannot remove its temporaries; the next restore into the
//! same directories removes every entry that matches the pattern exactly, and nothing else.

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::os::fd::{AsFd, BorrowedFd};

/// The start of every temporary name.
pub(super) const PREFIX: &str = ".masclet-restore-";

/// A fresh temporary name. Random, so two restores into one directory do not collide and a
/// name left by a killed run is never reused by the next.
pub(super) fn new_name() -> Vec<u8> {
    format!(
        "{PREFIX}{}",
        crate::disk::id::to_hex(&crate::disk::random::random_array::<8>())
    )
    .into_bytes()
}

/// Whether `name` is one of ours: the prefix and exactly 16 lowercase hex digits. A user's
/// file that merely starts like ours is left alone.
pub(super) fn is_ours(name: &[u8]) -> bool {
    name.strip_prefix(PREFIX.as_bytes()).is_some_and(|rest| {
        rest.len() == 16 && rest.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// The names in directory `dir`, without `.` and `..`. Collected before anything is
/// removed, so removal never races the directory stream.
fn names_in(dir: BorrowedFd<'_>) -> rustix::io::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for entry in Dir::read_from(dir)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            out.push(name);
        }
    }
    Ok(out)
}

/// Remove `name` in `dir` and, when it is a directory, everything under it, never
/// following a symlink. Only ever called on our own temporaries: a directory built for a
/// snapshot directory that replaces a file, with whatever restore put inside it.
pub(super) fn remove_tree(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<()> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return rustix::fs::unlinkat(dir, name, AtFlags::empty());
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // A run killed after giving the directory its snapshot mode (say 0555) left it
    // unwritable; it is ours, so make it writable again to empty it.
    rustix::fs::fchmod(&sub, Mode::from_raw_mode(0o700))?;
    for child in names_in(sub.as_fd())? {
        remove_tree(sub.as_fd(), &child)?;
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}

/// What sweeping one directory found.
#[derive(Debug, Default)]
pub(super) struct Swept {
    /// Temporaries removed.
    pub(super) removed: u64,
    /// Temporaries that could not be removed, with the reason.
    pub(super) failed: Vec<(Vec<u8>, Errno)>,
}

/// Remove the temporaries a killed restore left in directory `dir`.
pub(super) fn sweep(dir: BorrowedFd<'_>) -> rustix::io::Result<Swept> {
    let mut swept = Swept::default();
    for name in names_in(dir)?.into_iter().filter(|n| is_ours(n)) {
        match remove_tree(dir, &name) {
            Ok(()) => swept.removed += 1,
            // Gone meanwhile: nothing left to remove.
            Err(Errno::NOENT) => {}
            Err(e) => swept.failed.push((name, e)),
        }
    }
    Ok(swept)
}

/// Put the complete directory `tmp` in place of the non-directory `name`, both in `dir`.
/// A directory cannot be renamed over a file, so the two are exchanged atomically and the
/// old entry, now under the temporary name, is removed last: at every moment `name` is
/// either the old entry or the complete new directory. Returns the removal's failure, if
/// any, for the caller to report (the old entry then stays under the temporary name, for
/// the next restore to remove).
pub(super) fn exchange_in(
    dir: BorrowedFd<'_>,
    tmp: &[u8],
    name: &[u8],
) -> rustix::io::Result<Option<Errno>> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    match rustix::fs::renameat_with(dir, tmp, dir, name, rustix::fs::RenameFlags::EXCHANGE) {
        Ok(()) => return Ok(remove_tree(dir, tmp).err()),
        // Filesystems without atomic exchange fall through to the two steps below.
        Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {}
        Err(e) => return Err(e),
    }
    // No atomic exchange: the old entry goes first. The new directory is already complete,
    // so only a crash between these two calls can leave neither under `name`; the new one
    // then stays under `tmp` (and is removed by the next restore, which writes it again).
    rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
    rustix::fs::renameat(dir, tmp, dir, name)?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_temporary_names_are_ours() {
        assert!(is_ours(&new_name()));
        assert!(is_ours(b".masclet-restore-0123456789abcdef"));
        for name in [
            &b".masclet-restore-0123456789abcde"[..],
            b".masclet-restore-0123456789abcdef0",
            b".masclet-restore-0123456789ABCDEF",
            b".masclet-restore-notours",
            b"masclet-restore-0123456789abcdef",
            b"x.masclet-restore-0123456789abcdef",
        ] {
            assert!(!is_ours(name), "{}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn sweep_removes_temporary_trees_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::write(p.join(".masclet-restore-00000000000000aa"), b"x").unwrap();
        let tree = p.join(".masclet-restore-00000000000000bb");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("sub/f"), b"x").unwrap();
        std::os::unix::fs::symlink(p.join("keep"), tree.join("link")).unwrap();
        std::fs::write(p.join("keep"), b"mine").unwrap();
        std::fs::write(p.join(".masclet-restore-notours"), b"mine").unwrap();
        let fd = rustix::fs::open(p, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
        let swept = sweep(fd.as_fd()).unwrap();
        assert_eq!(swept.removed, 2);
        assert!(swept.failed.is_empty());
        let mut left: Vec<_> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, [".masclet-restore-notours", "keep"]);
        assert_eq!(std::fs::read(p.join("keep")).unwrap(), b"mine");
    }
}
