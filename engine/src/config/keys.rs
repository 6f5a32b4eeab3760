//! Every key a configuration file may set: its type, default, meaning and whether its value
//! must never be shown. One table, so the parser, `masclet config` and the documentation
//! cannot disagree about which keys exist.

use crate::error::{Error, Result};

/// What a key's value must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueType {
    /// A file or directory path (not checked for existence: it may be made later).
    Path,
    /// A whole number, 0 or more.
    Count,
    /// A byte count: `1048576`, `512K`, `10M`, `5G` (powers of 1024).
    Size,
    /// A whole percentage, 0 to 100.
    Percent,
    /// A URL or connection string, not empty.
    Url,
    /// Free text (a command line, a host name, a user name, a secret).
    Text,
    /// `true` or `false` (also `yes`/`no`, `on`/`off`, `1`/`0`).
    Bool,
    /// A TCP port, 1 to 65535.
    Port,
    /// One or more mail addresses, separated by commas.
    Email,
}

impl ValueType {
    /// The type's name as the documentation writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Path => "path",
            Self::Count => "integer",
            Self::Size => "size",
            Self::Percent => "percent",
            Self::Url => "URL",
            Self::Text => "text",
            Self::Bool => "bool",
            Self::Port => "port",
            Self::Email => "addresses",
        }
    }
}

/// One known key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The variable's name, as in the environment.
    pub name: &'static str,
    /// What its value must look like.
    pub kind: ValueType,
    /// The value used when neither a flag, the environment nor the file sets it.
    pub default: Option<&'static str>,
    /// Whether the value (or, for a URL, its password) is masked whenever it is shown.
    pub secret: bool,
    /// What it does, in one line.
    pub about: &'static str,
}

const fn key(name: &'static str, kind: ValueType, default: Option<&'static str>) -> Key {
    Key {
        name,
        kind,
        default,
        secret: false,
        about: "",
    }
}

const fn about(mut k: Key, about: &'static str) -> Key {
    k.about = about;
    k
}

const fn secret(mut k: Key) -> Key {
    k.secret = true;
    k
}

use ValueType::{Bool, Count, Email, Path, Percent, Port, Size, Text, Url};

/// The known keys, in the order `masclet config` lists them. The retention defaults are
/// the original system's (7, 4, 12, 5), the same as the engine's `KeepPolicy::ORIGINAL`.
pub const KEYS: &[Key] = &[
    about(
        key("BACKUP_ROOT", Path, None),
        "Folder of the classic exports (daily/ weekly/ monthly/ yearly/); the repository is BACKUP_ROOT/store unless MASCLET_REPO says otherwise",
    ),
    about(
        key("MASCLET_REPO", Path, None),
        "The repository's directory",
    ),
    about(
        key("MASCLET_PASSWORD_FILE", Path, None),
        "File holding the repository's passphrase (mode 0600, owned by the user)",
    ),
    about(
        key("RETENTION_DAILY", Count, Some("7")),
        "Daily snapshots forget keeps",
    ),
    about(
        key("RETENTION_WEEKLY", Count, Some("4")),
        "Weekly snapshots forget keeps",
    ),
    about(
        key("RETENTION_MONTHLY", Count, Some("12")),
        "Monthly snapshots forget keeps",
    ),
    about(
        key("RETENTION_YEARLY", Count, Some("5")),
        "Yearly snapshots forget keeps",
    ),
    about(
        key("MIN_BACKUP_SIZE", Size, None),
        "Smallest acceptable backup (backup refuses less; verify-archive's default is 1M)",
    ),
    about(
        key("MIN_FREE_SPACE", Size, Some("5G")),
        "Free space backup --pg and run require where the repository lives",
    ),
    about(
        key("SPACE_ALERT_PERCENT", Percent, Some("80")),
        "Disk use above which an alert is raised",
    ),
    about(
        secret(key("DATABASE_URL", Url, None)),
        "The database backup --pg dumps",
    ),
    about(
        key("BACKUP_PATHS", Text, None),
        "Files and folders run backs up when no DATABASE_URL is set, separated by ':'",
    ),
    about(
        key("GC_INTERVAL_DAYS", Count, Some("7")),
        "Days between the gc runs of the nightly job (sooner when space runs short)",
    ),
    about(
        secret(key("VERIFY_DATABASE_URL", Url, None)),
        "Server for test restores (default: the snapshot's own server)",
    ),
    about(
        key("LOG_DIR", Path, Some("/logs")),
        "Folder of the operation logs",
    ),
    about(
        key("METRICS_FILE", Path, None),
        "File the operation metrics are written to",
    ),
    about(
        key("EXPORT_MIRROR", Bool, Some("false")),
        "Whether the nightly job mirrors the classic exports into BACKUP_ROOT",
    ),
    about(
        key("QUARANTINE_DIR", Path, None),
        "Where cleanup moves damaged exports (default BACKUP_ROOT/quarantine)",
    ),
    about(
        key("NOTIFY_ON_SUCCESS", Bool, Some("false")),
        "Whether a run that ends well sends a backup_ok summary",
    ),
    about(
        key("NOTIFY_RETRIES", Count, Some("3")),
        "Attempts per channel before a notification is given up",
    ),
    about(
        key("NOTIFY_COMMAND", Text, None),
        "Command run with each notification",
    ),
    about(
        secret(key("NOTIFY_WEBHOOK_URL", Url, None)),
        "URL notifications are posted to",
    ),
    about(
        secret(key("NOTIFY_WEBHOOK_SECRET", Text, None)),
        "Key that signs the webhook's posts",
    ),
    about(
        key("SMTP_HOST", Text, None),
        "Mail server for notifications",
    ),
    about(key("SMTP_PORT", Port, Some("587")), "Mail server's port"),
    about(key("SMTP_USER", Text, None), "Mail server login"),
    about(
        secret(key("SMTP_PASSWORD", Text, None)),
        "Mail server password",
    ),
    about(
        key("SMTP_FROM", Email, None),
        "Sender of notification mails",
    ),
    about(
        key("NOTIFY_EMAIL_TO", Email, None),
        "Recipients of notification mails, comma-separated",
    ),
];

/// The known key named `name`.
pub fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// The known key closest to a misspelt `name`, when it is close enough to be a typo.
pub fn suggest(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    KEYS.iter()
        .map(|k| (distance(&upper, k.name), k.name))
        .filter(|(d, k)| *d <= 2.max(k.len() / 5))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over bytes (key names are ASCII).
fn distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Check `value` against `kind`. The message never repeats the value, so a secret put in
/// the wrong key is not printed.
pub fn check_value(kind: ValueType, value: &str) -> std::result::Result<(), String> {
    let ok = match kind {
        Path | Text => !value.contains('\0'),
        Url => !value.trim().is_empty(),
        Count => value.parse::<u32>().is_ok(),
        Size => parse_size(value).is_ok(),
        Percent => value.parse::<u8>().is_ok_and(|p| p <= 100),
        Bool => parse_bool(value).is_some(),
        Port => value.parse::<u16>().is_ok_and(|p| p > 0),
        Email => value.split(',').all(|a| {
            let a = a.trim();
            a.find('@').is_some_and(|at| at > 0 && at + 1 < a.len())
        }),
    };
    if ok {
        return Ok(());
    }
    Err(match kind {
        Path | Text => "holds a NUL byte".into(),
        Url => "is empty: give a URL".into(),
        Count => "is not a whole number (like 7)".into(),
        Size => "is not a size (like 1048576, 512K, 10M or 5G)".into(),
        Percent => "is not a percentage from 0 to 100".into(),
        Bool => "is not true or false".into(),
        Port => "is not a port from 1 to 65535".into(),
        Email => "is not a mail address or a comma-separated list of them".into(),
    })
}

/// `true`/`yes`/`on`/`1` or `false`/`no`/`off`/`0`, in any case.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// A byte count: digits with an optional K, M, G or T suffix (powers of 1024; a trailing
/// `B` or `iB` is accepted), as the command line's size options take it.
///
/// # Errors
///
/// [`crate::ErrorKind::InvalidInput`] when `s` is not such a count or does not fit in 64
/// bits.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (digits, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => {
                    return Err(Error::invalid(format!(
                        "{s:?}: unknown size suffix {c:?} (use K, M, G or T)"
                    )));
                }
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let n: u64 = digits.parse().map_err(|_| {
        Error::invalid(format!(
            "{s:?} is not a size in bytes (like 1048576, 512K or 10M)"
        ))
    })?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| Error::invalid(format!("{s:?} is more bytes than fit in 64 bits")))
}

/// `value` as it may be shown: a secret key's value as `********`, a URL with its password
/// (user-info or `password=` parameter) masked. A webhook URL's path often is its token, so
/// a secret URL keeps only its scheme and host.
pub fn mask(key: &Key, value: &str) -> String {
    const STARS: &str = "********";
    if !key.secret {
        return value.to_string();
    }
    if key.kind != Url {
        return STARS.into();
    }
    let Some(scheme_end) = value.find("://") else {
        return STARS.into();
    };
    let rest = &value[scheme_end + 3..];
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (auth, tail) = rest.split_at(auth_end);
    let host = match auth.rfind('@') {
        Some(at) => match auth[..at].split_once(':') {
            Some((user, _)) => format!("{user}:{STARS}@{}", &auth[at + 1..]),
            None => auth.to_string(),
        },
        None => auth.to_string(),
    };
    let scheme = &value[..scheme_end];
    if key.name == "NOTIFY_WEBHOOK_URL" {
        let path = if tail.is_empty() { "" } else { "/" };
        return format!(
            "{scheme}://{host}{path}{}",
            if tail.is_empty() { "" } else { STARS }
        );
    }
    let tail = tail
        .split('&')
        .map(|part| match part.find("password=") {
            Some(at) => format!("{}password={STARS}", &part[..at]),
            None => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{scheme}://{host}{tail}")
}
