//! `verify-archive`: the old `test-backup.sh` for one classic archive, each check named,
//! in one streaming read of the file (format-spec.md, "Importing classic archives"):
//! `checksum` (the name's sha8), `sidecar` (`<file>.sha256`), `size`, `gzip`, `tar`,
//! `members`, `manifest`, then on request a test restore of the dump (`restore` and the
//! database's checks, see [`super::dump`]).
//!
//! A failed check is a finding in the report, not an error: the report must say
//! everything that is wrong at once.

use super::manifest::{ARCHIVE_MANIFEST, ArchiveManifest, MemberKind, hex};
use super::name::ArchiveName;
use super::reader::{self, Limits, Scan};
use super::safety::{self, Kind};
use crate::error::Result;
use crate::pg::validate::Check;
use crate::pg::{Target, Tools};
use crate::progress::Progress;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The size under which an archive fails `size` (the old `MIN_BACKUP_SIZE` default).
pub const DEFAULT_MIN_SIZE: u64 = 1 << 20;

/// Where a test restore goes.
#[derive(Debug, Clone)]
pub struct RestoreTest {
    /// The server to make the temporary database on.
    pub target: Target,
    /// Where psql (and pg_restore, for a custom-format dump) are.
    pub tools: Tools,
}

/// What `verify-archive` is asked to do.
#[derive(Debug, Clone)]
pub struct VerifyArchiveOptions {
    /// Fewer bytes than this fail `size`.
    pub min_size: u64,
    /// Test-restore the dump too.
    pub restore: Option<RestoreTest>,
    /// Caps on decompression.
    pub limits: Limits,
}

impl Default for VerifyArchiveOptions {
    fn default() -> Self {
        Self {
            min_size: DEFAULT_MIN_SIZE,
            restore: None,
            limits: Limits::default(),
        }
    }
}

/// What `verify-archive` found.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveReport {
    /// Every check passed.
    pub ok: bool,
    /// The archive checked.
    pub file: PathBuf,
    /// Every check, in the order run.
    pub checks: Vec<Check>,
    /// Seconds the whole run took.
    pub duration_secs: f64,
    /// The archive's bytes are damaged (gzip or tar did not read to the end, or a member
    /// differs from the manifest's hash), apart from a check that merely failed.
    pub damaged: bool,
    /// Problems met after the checks (a temporary database that could not be dropped).
    pub warnings: Vec<String>,
}

fn check(name: &str, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.to_string(),
        ok,
        detail: detail.into(),
    }
}

/// Check the archive at `path`.
///
/// # Errors
/// `Io` when the file cannot be read at all, `Interrupted`; with a test restore,
/// `Database` when the server cannot be reached or the temporary database made.
pub fn verify_archive(
    path: &Path,
    opts: &VerifyArchiveOptions,
    progress: &dyn Progress,
) -> Result<ArchiveReport> {
    let started = Instant::now();
    // `test-backup.sh /backups/daily/latest.tar.gz`: a link carries no checksum in its
    // name; the file it points at does, and its sidecar lies beside that file.
    let named = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
        }
        _ => path.to_path_buf(),
    };
    // The file itself is read, so a link moved meanwhile cannot pair one file's bytes with
    // another's name.
    let scan = reader::scan(&named, &opts.limits, progress)?;
    let mut checks = vec![checksum(&named, &scan), sidecar(&named, &scan)];
    checks.push(check(
        "size",
        scan.file_len >= opts.min_size,
        format!(
            "{} bytes; the minimum is {} (--min-size, MIN_BACKUP_SIZE)",
            scan.file_len, opts.min_size
        ),
    ));
    checks.push(match &scan.gzip_error {
        None => check(
            "gzip",
            true,
            format!(
                "read to its end, CRC sound ({} bytes expanded)",
                scan.expanded
            ),
        ),
        Some(e) => check("gzip", false, format!("damaged or cut short: {e}")),
    });
    checks.push(match &scan.tar_error {
        None => check(
            "tar",
            true,
            format!(
                "{} members, every header sound, end-of-archive blocks present",
                scan.members.len()
            ),
        ),
        Some(e) => check("tar", false, e.clone()),
    });
    checks.push(if scan.problems.is_empty() {
        check(
            "members",
            true,
            "relative names inside the archive; only files, directories and symlinks pointing inside",
        )
    } else {
        check("members", false, summarize(&scan.problems))
    });
    let (manifest_check, manifest) = match check_manifest(&scan) {
        _ if !scan.structure_ok() => (
            check(
                "manifest",
                false,
                "not checked: the archive could not be read to its end",
            ),
            None,
        ),
        Ok(None) => (
            check(
                "manifest",
                true,
                format!(
                    "no {ARCHIVE_MANIFEST} (an archive of the old system): members checked by gzip's CRC alone"
                ),
            ),
            None,
        ),
        Ok(Some(m)) => (
            check(
                "manifest",
                true,
                format!(
                    "{} members match {ARCHIVE_MANIFEST} exactly (snapshot {})",
                    m.members.len(),
                    m.snapshot.get(..8).unwrap_or(m.snapshot.as_str())
                ),
            ),
            Some(m),
        ),
        Err(e) => (check("manifest", false, e), None),
    };
    let damaged = !scan.structure_ok() || !manifest_check.ok;
    // The content can be trusted as far as it goes: a restore test says something even of
    // a renamed or small archive, nothing of a damaged or hostile one.
    let readable = !damaged && scan.problems.is_empty();
    checks.push(manifest_check);
    let mut warnings = Vec::new();
    if let Some(rt) = &opts.restore {
        if readable {
            let (more, warned) =
                super::dump::restore_test(path, &scan, manifest.as_ref(), rt, progress)?;
            checks.extend(more);
            warnings.extend(warned);
        } else {
            checks.push(check(
                "restore",
                false,
                "not attempted: the archive is damaged or holds refused members",
            ));
        }
    }
    Ok(ArchiveReport {
        ok: checks.iter().all(|c| c.ok),
        file: path.to_path_buf(),
        checks,
        duration_secs: started.elapsed().as_secs_f64(),
        damaged,
        warnings,
    })
}

/// The first problems, and how many more.
pub(crate) fn summarize(problems: &[String]) -> String {
    let mut s = problems
        .iter()
        .take(5)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > 5 {
        s.push_str(&format!("; and {} more", problems.len() - 5));
    }
    s
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The name's checksum against the file's SHA-256.
fn checksum(path: &Path, scan: &Scan) -> Check {
    let sha = hex(&scan.sha256);
    match ArchiveName::parse(&file_name(path)) {
        Err(_) => check(
            "checksum",
            false,
            format!(
                "{:?} is not a classic archive name (masclet_<tier>_<YYYYMMDD_HHMM>_<sha8>.tar.gz), so it carries no checksum to compare; the file's SHA-256 is {sha}",
                file_name(path)
            ),
        ),
        Ok(n) if n.matches(&scan.sha256) => check(
            "checksum",
            true,
            format!("SHA-256 {sha} begins with the name's {}", n.sha8),
        ),
        Ok(n) => check(
            "checksum",
            false,
            format!(
                "the name says {}, the file's SHA-256 is {sha}: the file was damaged or renamed",
                n.sha8
            ),
        ),
    }
}

/// `<file>.sha256` (sha256sum's format) beside the archive, when there is one.
fn sidecar(path: &Path, scan: &Scan) -> Check {
    let mut side = path.as_os_str().to_owned();
    side.push(".sha256");
    let side = PathBuf::from(side);
    let sha = hex(&scan.sha256);
    match std::fs::read_to_string(&side) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => check(
            "sidecar",
            true,
            format!("no {} beside the archive", file_name(&side)),
        ),
        Err(e) => check("sidecar", false, format!("{}: {e}", side.display())),
        Ok(text) => {
            let said = text
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            if said == sha {
                check("sidecar", true, format!("{} agrees", file_name(&side)))
            } else if said.len() != 64 || !said.bytes().all(|b| b.is_ascii_hexdigit()) {
                check(
                    "sidecar",
                    false,
                    format!("{} does not start with a SHA-256 in hex", file_name(&side)),
                )
            } else {
                check(
                    "sidecar",
                    false,
                    format!(
                        "{} says {said}, the file's SHA-256 is {sha}",
                        file_name(&side)
                    ),
                )
            }
        }
    }
}

/// Compare `MANIFEST.json` with the members read: the same names, kinds, sizes and
/// SHA-256, none missing, none extra. `Ok(None)` when there is no manifest.
///
/// # Errors
/// The first differences, for the operator.
pub(crate) fn check_manifest(scan: &Scan) -> std::result::Result<Option<ArchiveManifest>, String> {
    let Some(bytes) = &scan.manifest else {
        return Ok(None);
    };
    let m = ArchiveManifest::parse(bytes).map_err(|e| e.message().to_string())?;
    let mut listed = BTreeMap::new();
    for x in &m.members {
        let p = safety::normalize(&x.path_bytes())
            .map_err(|e| format!("{ARCHIVE_MANIFEST} lists a bad name: {e}"))?;
        if !p.is_empty() && listed.insert(p, x).is_some() {
            return Err(format!("{ARCHIVE_MANIFEST} lists a name twice"));
        }
    }
    let mut diffs = Vec::new();
    for a in &scan.members {
        if a.path.is_empty() || a.path == ARCHIVE_MANIFEST.as_bytes() {
            continue;
        }
        let shown = safety::shown(&a.raw);
        let Some(x) = listed.remove(&a.path) else {
            diffs.push(format!(
                "{shown} is in the archive but not in {ARCHIVE_MANIFEST}"
            ));
            continue;
        };
        let kind = match a.kind {
            Kind::File => MemberKind::File,
            Kind::Dir => MemberKind::Dir,
            Kind::Symlink(_) => MemberKind::Symlink,
            Kind::Other => continue,
        };
        if x.kind != kind {
            diffs.push(format!(
                "{shown} is a {kind:?} here, a {:?} in the manifest",
                x.kind
            ));
        } else if kind == MemberKind::File
            && (x.size != a.size || x.sha256.as_deref() != a.sha256.map(|h| hex(&h)).as_deref())
        {
            diffs.push(format!(
                "{shown}: {} bytes with SHA-256 {}, the manifest says {} bytes with {}",
                a.size,
                a.sha256.map(|h| hex(&h)).unwrap_or_default(),
                x.size,
                x.sha256.as_deref().unwrap_or("none")
            ));
        }
    }
    for p in listed.keys() {
        diffs.push(format!(
            "{} is in {ARCHIVE_MANIFEST} but missing from the archive",
            safety::shown(p)
        ));
    }
    if diffs.is_empty() {
        Ok(Some(m))
    } else {
        Err(summarize(&diffs))
    }
}
