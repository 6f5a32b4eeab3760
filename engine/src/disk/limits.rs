//! The size limits of a snapshot (format-spec.md §9, "Limits"), in one place for both sides:
//! the writer refuses input past them before anything is written (`InvalidInput`, naming
//! the limit), readers treat a stored value past them as damage (`Corrupt`). A limit only
//! one side knew is how a backup could say "saved" and leave a snapshot nobody can read.

use crate::error::{Error, Result};
use std::fmt::Display;

/// Longest host, user, source, tag or snapshot path, in bytes.
pub const MAX_STRING: usize = 4096;
/// Most tags, and most paths, one snapshot holds.
pub const MAX_LIST: usize = 1024;
/// Longest path or symlink target in the tree stream, in bytes.
pub const MAX_PATH_LEN: usize = 64 * 1024;

/// A limited field of a snapshot or of its tree stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Number of source paths.
    Paths,
    /// Number of tags.
    Tags,
    /// Bytes of one source path (or of a stream's name).
    Path,
    /// Bytes of one tag.
    Tag,
    /// Bytes of the host name.
    Host,
    /// Bytes of the user name.
    User,
    /// Bytes of the source kind.
    Source,
    /// Bytes of one path inside the tree stream.
    TreePath,
    /// Bytes of one symlink target.
    SymlinkTarget,
}

impl Limit {
    /// Every limit, in the order of the table in format-spec.md (the tests go through them).
    #[cfg(test)]
    pub const ALL: [Limit; 9] = [
        Limit::Paths,
        Limit::Tags,
        Limit::Path,
        Limit::Tag,
        Limit::Host,
        Limit::User,
        Limit::Source,
        Limit::TreePath,
        Limit::SymlinkTarget,
    ];

    /// The largest value allowed.
    pub const fn max(self) -> usize {
        match self {
            Limit::Paths | Limit::Tags => MAX_LIST,
            Limit::Path | Limit::Tag | Limit::Host | Limit::User | Limit::Source => MAX_STRING,
            Limit::TreePath | Limit::SymlinkTarget => MAX_PATH_LEN,
        }
    }

    /// Refuse `n` past this limit. `what` names the value (a tag, a path) for the message;
    /// it is shortened, since the value may be the oversize thing itself.
    ///
    /// # Errors
    /// `InvalidInput` naming the limit and what to do instead.
    pub fn check(self, n: usize, what: impl Display) -> Result<()> {
        if n <= self.max() {
            return Ok(());
        }
        let max = self.max();
        let what = abbrev(&what.to_string());
        let (said, advice) = match self {
            Limit::Paths => (
                format!("{n} paths given; a snapshot holds at most {max}"),
                ": back up their parent directory instead",
            ),
            Limit::Tags => (
                format!("{n} tags given; a snapshot holds at most {max}"),
                "",
            ),
            Limit::Path => (
                format!("path {what} is {n} bytes; a snapshot records paths of at most {max}"),
                ": back up from a shorter path or give a shorter name",
            ),
            Limit::Tag => (
                format!("tag {what} is {n} bytes; a tag holds at most {max}"),
                "",
            ),
            Limit::Host => (
                format!("host name {what} is {n} bytes; a snapshot records at most {max}"),
                "",
            ),
            Limit::User => (
                format!("user name {what} is {n} bytes; a snapshot records at most {max}"),
                ": set USER to a shorter name",
            ),
            Limit::Source => (
                format!("source {what} is {n} bytes; a snapshot records at most {max}"),
                "",
            ),
            Limit::TreePath => (
                format!("{what} is a {n}-byte path in the snapshot; a tree holds at most {max}"),
                ": back up a directory nearer to it",
            ),
            Limit::SymlinkTarget => (
                format!("symlink {what} has a {n}-byte target; a tree holds at most {max}"),
                "",
            ),
        };
        Err(Error::invalid(format!(
            "{said} (format-spec.md §9 limits){advice}; nothing was committed"
        )))
    }
}

/// The start of a long value, enough to recognise it.
fn abbrev(s: &str) -> String {
    const SHOWN: usize = 40;
    match s.char_indices().nth(SHOWN) {
        Some((i, _)) => format!("{:?}… ({} more bytes)", &s[..i], s.len() - i),
        None => format!("{s:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_limit_passes_and_past_it_names_the_limit() {
        for l in Limit::ALL {
            assert!(l.check(l.max(), "x").is_ok(), "{l:?}");
            let e = l.check(l.max() + 1, "y".repeat(5000)).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
            let m = e.to_string();
            assert!(m.contains(&l.max().to_string()) && m.contains("§9"), "{m}");
            assert!(m.len() < 300, "the message stays short: {m}");
        }
    }
}
