//! Rendering helpers shared by the commands.

use chrono::{DateTime, Local, Utc};

/// Bytes for people: 1.5 MB style (powers of 1000, as `df -H`).
pub fn bytes(n: u64) -> String {
    masclet_engine::progress::human_bytes(n)
}

/// Local time, to the minute, for tables.
pub fn local_time(t: &DateTime<Utc>) -> String {
    t.with_timezone(&Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// RFC 3339 in UTC with seconds, for JSON.
pub fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A name from a snapshot (path, link target, host, tag) for text output: control
/// characters are escaped (`\n`, `\t`, `\u{1b}`), so a name cannot forge extra lines or
/// terminal escapes, and a backslash is doubled so an escape cannot be mistaken for the
/// name. JSON output carries names as they are.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() || c == '\\') {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Print a JSON value on stdout.
pub fn print_json(v: &serde_json::Value) {
    out(&format!(
        "{}\n",
        serde_json::to_string_pretty(v).expect("serializable")
    ));
}

/// Write a command's report to standard output, best effort: a reader that went away
/// (`masclet status | head -1`) must not turn the command's own exit status, which tells
/// what happened, into a crash or a false success.
pub fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_bytes() {
        assert_eq!(super::bytes(999), "999 B");
        assert_eq!(super::bytes(1_500_000), "1.5 MB");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(super::escape("plain name.txt"), "plain name.txt");
        assert_eq!(super::escape("a\nb\tc\u{1b}[2J"), "a\\nb\\tc\\u{1b}[2J");
        assert_eq!(super::escape("back\\slash"), "back\\\\slash");
    }
}
