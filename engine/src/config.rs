//! Configuration from a `.env` file, the way the original system was configured.
//!
//! The file is read, never executed: `KEY=value` lines, `#` comments (a whole line, or
//! after whitespace at the end of a line), blank lines, an optional `export ` prefix, and
//! values optionally in double or single quotes (inside quotes `#` is data). Nothing is
//! expanded: a `$` outside single quotes is refused rather than kept literally, because a
//! shell sourcing the same file would expand it and the two readings would differ.
//!
//! Every key must be one of [`KEYS`]; each value is checked against its key's type when the
//! file is read, so a typo is reported with its line before any work starts. Where the
//! values go (the process environment, below flags and real environment variables) is the
//! caller's business.

mod keys;
#[cfg(test)]
mod tests;

pub use keys::{KEYS, Key, ValueType, check_value, find, mask, parse_bool, parse_size, suggest};

use crate::error::{Error, ErrorKind, Result};
use std::path::{Path, PathBuf};

/// One `KEY=value` line of a configuration file.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The known key it sets.
    pub key: &'static Key,
    /// The value, unquoted. Never empty: `KEY=` leaves the key unset.
    pub value: String,
    /// Its line number, from 1.
    pub line: usize,
}

/// A parsed and validated configuration file.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// Where it was read from (as given).
    pub path: PathBuf,
    /// Its settings in file order; each key at most once.
    pub entries: Vec<Entry>,
}

impl ConfigFile {
    /// Read and validate the file at `path`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when there is no such file, [`ErrorKind::Io`] when it cannot
    /// be read, [`ErrorKind::InvalidInput`] for anything [`ConfigFile::parse`] refuses.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::new(
                    ErrorKind::NotFound,
                    format!("configuration file {} does not exist", path.display()),
                )
            } else {
                Error::io(format!("reading configuration file {}", path.display()), e)
            }
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::invalid(format!(
                "{}: not UTF-8 text; save it as UTF-8",
                path.display()
            ))
        })?;
        Self::parse(path, &text)
    }

    /// Parse and validate `text`, read from `path` (used only in messages).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] naming the file and line: a line that is not `KEY=value`,
    /// an unknown key (with the nearest known one when it looks like a typo), a key set
    /// twice, a passphrase (`MASCLET_PASSWORD`), a `$`, or a value of the wrong type.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut entries = Vec::new();
        let mut seen: Vec<(&'static str, usize)> = Vec::new();
        for (i, raw) in text.split('\n').enumerate() {
            let line = i + 1;
            let at = |msg: String| Error::invalid(format!("{}:{line}: {msg}", path.display()));
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let Some((name, value)) = split_line(raw).map_err(at)? else {
                continue;
            };
            let key = known(name).map_err(at)?;
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key.name) {
                return Err(at(format!(
                    "{} is set twice, on lines {first} and {line}: keep one",
                    key.name
                )));
            }
            seen.push((key.name, line));
            if value.is_empty() {
                continue;
            }
            check_value(key.kind, &value)
                .map_err(|msg| at(format!("{}'s value {msg}", key.name)))?;
            entries.push(Entry { key, value, line });
        }
        Ok(Self {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The entry setting `name`, if the file sets it.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key.name == name)
    }
}

/// The known key `name`, or why it is refused.
fn known(name: &str) -> std::result::Result<&'static Key, String> {
    if name == "MASCLET_PASSWORD" {
        return Err(
            "MASCLET_PASSWORD is refused in a configuration file: put the passphrase \
             alone in a file of mode 0600 and set MASCLET_PASSWORD_FILE to its path"
                .into(),
        );
    }
    find(name).ok_or_else(|| match suggest(name) {
        Some(near) => {
            format!("unknown key {name}: did you mean {near}? (docs/operations.md lists the keys)")
        }
        None => format!("unknown key {name}: remove the line (docs/operations.md lists the keys)"),
    })
}

/// Split one line into key and unquoted value; `None` for a blank or comment line. The
/// messages never quote the line, which may hold a secret.
fn split_line(raw: &str) -> std::result::Result<Option<(&str, String)>, String> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let line = match line.strip_prefix("export") {
        Some(rest) if rest.starts_with([' ', '\t']) => rest.trim_start(),
        _ => line,
    };
    let Some((name, rest)) = line.split_once('=') else {
        return Err("not a KEY=value line (comments start with #)".into());
    };
    let name = name.trim_end();
    let valid_name = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err("not a KEY=value line: a key is letters, digits and _".into());
    }
    // `KEY= # note` is an empty value and a comment; `KEY=#1` is the value `#1`.
    let spaced = rest.starts_with([' ', '\t']);
    let rest = rest.trim_start();
    let value = match rest.chars().next() {
        Some('#') if spaced => String::new(),
        Some(q @ ('"' | '\'')) => {
            let Some(end) = rest[1..].find(q) else {
                return Err(format!("{name}: the value's closing {q} is missing"));
            };
            let after = rest[end + 2..].trim_start();
            if !(after.is_empty() || after.starts_with('#')) {
                return Err(format!(
                    "{name}: text after the closing {q}: quote the whole value"
                ));
            }
            let value = &rest[1..=end];
            if q == '"' && value.contains('$') {
                return Err(dollar(name));
            }
            value.to_string()
        }
        _ => {
            let end = rest
                .char_indices()
                .find(|&(i, c)| c == '#' && i > 0 && rest[..i].ends_with([' ', '\t']))
                .map_or(rest.len(), |(i, _)| i);
            let value = rest[..end].trim_end();
            if value.contains('$') {
                return Err(dollar(name));
            }
            value.to_string()
        }
    };
    Ok(Some((name, value)))
}

fn dollar(name: &str) -> String {
    format!(
        "{name}: masclet does not expand variables; write the value out, or put it in single \
         quotes if the $ is meant literally"
    )
}
