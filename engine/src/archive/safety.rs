//! Which archive members may be trusted (reliability.md T20–T22): a name is a relative
//! path that stays inside the archive, a symlink's target stays inside too, and only
//! regular files, directories and symlinks are accepted. Hard links, devices, FIFOs and
//! sparse members are refused by name: import stores each member as what it is, and none
//! of those can be stored without guessing.

use crate::disk::limits::Limit;
use tar::EntryType;

/// What a member is, once accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link and its target.
    Symlink(Vec<u8>),
    /// A refused member (its problem is reported).
    Other,
}

/// A name for messages: UTF-8 as is, other bytes escaped, long ones cut.
pub fn shown(raw: &[u8]) -> String {
    let s = raw.escape_ascii().to_string();
    match s.char_indices().nth(120) {
        Some((i, _)) => format!("{:?}… ({} bytes)", &s[..i], raw.len()),
        None => format!("{s:?}"),
    }
}

/// The member's path, without `.` and empty components: empty for the archive's root.
///
/// # Errors
/// What is wrong with the name, for the operator.
pub fn normalize(raw: &[u8]) -> Result<Vec<u8>, String> {
    let name = shown(raw);
    if raw.is_empty() {
        return Err("a member without a name".into());
    }
    if raw[0] == b'/' {
        return Err(format!(
            "{name}: an absolute path (it would be written outside any target)"
        ));
    }
    if raw.contains(&0) {
        return Err(format!("{name}: a NUL byte in the name"));
    }
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(format!(
                    "{name}: a `..` component climbs out of the archive"
                ));
            }
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Limit::TreePath
        .check(out.len(), &name)
        .map_err(|e| e.message().to_string())?;
    Ok(out)
}

/// Whether a symlink at `path` pointing to `target` stays inside the archive's root.
fn target_inside(path: &[u8], target: &[u8]) -> bool {
    if target.first() == Some(&b'/') {
        return false;
    }
    // Depth of the directory holding the link.
    let mut depth = path.split(|b| *b == b'/').count() as i64 - 1;
    for c in target.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => depth += 1,
        }
    }
    true
}

/// Check one member: its name, its type, a symlink's target.
///
/// # Errors
/// What is refused and why, naming the member.
pub fn check(raw: &[u8], kind: EntryType, link: Option<&[u8]>) -> Result<(Vec<u8>, Kind), String> {
    let path = normalize(raw)?;
    let name = shown(raw);
    let kind = match kind {
        EntryType::Regular | EntryType::Continuous => Kind::File,
        EntryType::Directory => Kind::Dir,
        EntryType::Symlink => {
            let target = link.unwrap_or_default();
            if target.is_empty() || target.contains(&0) {
                return Err(format!("{name}: a symlink with an empty target"));
            }
            Limit::SymlinkTarget
                .check(target.len(), &name)
                .map_err(|e| e.message().to_string())?;
            if path.is_empty() || !target_inside(&path, target) {
                return Err(format!(
                    "{name}: a symlink to {} points outside the archive",
                    shown(target)
                ));
            }
            Kind::Symlink(target.to_vec())
        }
        EntryType::Link => {
            return Err(format!(
                "{name}: a hard link to {} (import stores no hard links: unpack the archive and back up the files instead)",
                shown(link.unwrap_or_default())
            ));
        }
        EntryType::Char | EntryType::Block => {
            return Err(format!("{name}: a device file"));
        }
        EntryType::Fifo => return Err(format!("{name}: a FIFO")),
        EntryType::GNUSparse => return Err(format!("{name}: a sparse file")),
        other => {
            return Err(format!(
                "{name}: a member of type {:?} (only files, directories and symlinks)",
                other.as_byte() as char
            ));
        }
    };
    if path.is_empty() && kind != Kind::Dir {
        return Err(format!(
            "{name}: names the archive's root but is not a directory"
        ));
    }
    Ok((path, kind))
}

/// Most symlinks one target may pass through (as the kernel's ELOOP limit).
const MAX_HOPS: u32 = 40;

/// Follow every symlink of the archive through the others (`links`: path → target, both
/// normalized as in the archive): each must end inside the archive. One link at a time
/// stays inside by [`check`]; through another (`a/l -> ../x` beside `a -> sub/..`...) a
/// chain could still climb out. Returns one problem per link that does, or that loops.
pub fn links_stay_inside(links: &std::collections::HashMap<Vec<u8>, Vec<u8>>) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, target) in links {
        let mut dir: Vec<&[u8]> = path.split(|b| *b == b'/').collect();
        dir.pop();
        if let Err(why) = resolve(links, dir, target) {
            problems.push(format!(
                "{}: a symlink to {} {why}",
                shown(path),
                shown(target)
            ));
        }
    }
    problems.sort();
    problems
}

fn resolve<'a>(
    links: &'a std::collections::HashMap<Vec<u8>, Vec<u8>>,
    mut cur: Vec<&'a [u8]>,
    target: &'a [u8],
) -> Result<(), &'static str> {
    let mut todo: std::collections::VecDeque<&[u8]> = target.split(|b| *b == b'/').collect();
    let mut hops = 0;
    while let Some(c) = todo.pop_front() {
        match c {
            b"" | b"." => {}
            b".." => {
                if cur.pop().is_none() {
                    return Err("leads outside the archive through other symlinks");
                }
            }
            name => {
                cur.push(name);
                if let Some(t) = links.get(&cur.join(&b'/')) {
                    hops += 1;
                    if hops > MAX_HOPS || t.first() == Some(&b'/') {
                        return Err("goes through too many symlinks, or an absolute one");
                    }
                    cur.pop();
                    for part in t.split(|b| *b == b'/').rev() {
                        todo.push_front(part);
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_and_escapes_refused() {
        assert_eq!(normalize(b"./a//b/./c").unwrap(), b"a/b/c");
        assert_eq!(normalize(b"./").unwrap(), b"");
        assert_eq!(normalize(b"dir/").unwrap(), b"dir");
        for bad in [&b"/etc/passwd"[..], b"a/../../b", b"..", b"", b"a\0b"] {
            assert!(normalize(bad).is_err(), "{}", shown(bad));
        }
        let long = vec![b'x'; Limit::TreePath.max() + 1];
        assert!(normalize(&long).unwrap_err().contains("§9"));
    }

    #[test]
    fn symlinks_must_stay_inside_and_special_members_are_refused() {
        let ok = |p: &[u8], t: &[u8]| check(p, EntryType::Symlink, Some(t)).is_ok();
        assert!(ok(b"a/link", b"../b"));
        assert!(ok(b"a/b/link", b"../../c"));
        assert!(ok(b"link", b"x/./y"));
        assert!(!ok(b"link", b"../x"));
        assert!(!ok(b"a/link", b"../../x"));
        assert!(!ok(b"a/link", b"/etc/passwd"));
        assert!(!ok(b"a/link", b""));
        for t in [
            EntryType::Link,
            EntryType::Char,
            EntryType::Block,
            EntryType::Fifo,
            EntryType::GNUSparse,
        ] {
            assert!(check(b"x", t, Some(b"y")).is_err(), "{t:?}");
        }
        assert_eq!(check(b"./", EntryType::Directory, None).unwrap().0, b"");
        assert!(check(b"./", EntryType::Regular, None).is_err());
    }

    #[test]
    fn a_chain_of_symlinks_may_not_climb_out_or_loop() {
        let links = |pairs: &[(&str, &str)]| -> std::collections::HashMap<Vec<u8>, Vec<u8>> {
            pairs
                .iter()
                .map(|(p, t)| (p.as_bytes().to_vec(), t.as_bytes().to_vec()))
                .collect()
        };
        // Each inside alone: sub/d is the root, so sub/e = root/.. is outside.
        let bad = links(&[("sub/d", ".."), ("sub/e", "d/..")]);
        let p = links_stay_inside(&bad);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("sub/e") && p[0].contains("outside"), "{p:?}");
        let looping = links(&[("a", "b"), ("b", "a")]);
        assert_eq!(links_stay_inside(&looping).len(), 2);
        let fine = links(&[
            ("cur", "releases/v2"),
            ("log", "cur/log"),
            ("releases/v2/up", ".."),
        ]);
        assert!(links_stay_inside(&fine).is_empty());
    }
}
