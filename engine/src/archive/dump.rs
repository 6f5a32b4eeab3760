//! The test restore of an archive's dump (`verify-archive --restore-test`): which member
//! is the dump, streamed out of the `.tar.gz` into psql through
//! [`crate::pg::scratch::restore_from`] in a temporary database that is always dropped,
//! then the checks: a masclet archive's database manifest gets those of `masclet verify`,
//! an old-system dump the original system's own ([`crate::pg::validate::original_only`]).
//!
//! A plain SQL dump is streamed, never written to disk. A pg_dump custom-format dump
//! (`PGDMP`) needs pg_restore, which seeks in its input: it is copied to an unlinked
//! temporary file (in `TMPDIR`, gone when the process ends, however it ends) that
//! pg_restore reads as its standard input and turns into SQL for psql.

use super::manifest::ArchiveManifest;
use super::reader::{Member, Scan};
use super::safety::Kind;
use super::verify::RestoreTest;
use crate::error::{Error, ErrorKind, Result};
use crate::pg::conn::{connect, server_major};
use crate::pg::scratch::{ScratchDb, admin_target, restore_from, scratch_name};
use crate::pg::validate::{Check, original_only, validate};
use crate::progress::Progress;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufReader, Read, Seek, Write};
use std::path::Path;
use std::process::Stdio;

/// pg_dump's custom format starts with these bytes.
const CUSTOM_MAGIC: &[u8] = b"PGDMP";

/// The member holding the dump: the database manifest's `dump`, else the only regular
/// file, else the only `.sql`/`.dump` file.
fn find_dump<'s>(
    scan: &'s Scan,
    manifest: Option<&ArchiveManifest>,
) -> std::result::Result<&'s Member, String> {
    let files = || {
        scan.members
            .iter()
            .filter(|m| m.kind == Kind::File && m.size > 0)
    };
    if let Some(db) = manifest.and_then(|m| m.database.as_ref()) {
        return files()
            .find(|m| m.path == db.dump.as_bytes())
            .ok_or_else(|| {
                format!(
                    "the manifest names the dump {:?}, which the archive lacks",
                    db.dump
                )
            });
    }
    let all: Vec<&Member> = files()
        .filter(|m| m.path != super::ARCHIVE_MANIFEST.as_bytes())
        .collect();
    if let [one] = all[..] {
        return Ok(one);
    }
    let dumps: Vec<&Member> = all
        .iter()
        .copied()
        .filter(|m| m.path.ends_with(b".sql") || m.path.ends_with(b".dump"))
        .collect();
    match dumps[..] {
        [one] => Ok(one),
        _ => Err(format!(
            "cannot tell which of the archive's {} files is the dump (expected one file, or one *.sql or *.dump)",
            all.len()
        )),
    }
}

/// Test-restore the dump of the archive at `path` (read as `scan`) and check the result;
/// returns the checks and warnings.
///
/// # Errors
/// `Database` when the server cannot be reached or the database made, `Interrupted` (the
/// temporary database is dropped first), `InvalidInput` for missing client programs.
pub(super) fn restore_test(
    path: &Path,
    scan: &Scan,
    manifest: Option<&ArchiveManifest>,
    rt: &RestoreTest,
    progress: &dyn Progress,
) -> Result<(Vec<Check>, Vec<String>)> {
    let fail = |detail: String| Check {
        name: "restore".into(),
        ok: false,
        detail,
    };
    let member = match find_dump(scan, manifest) {
        Ok(m) => m,
        Err(e) => return Ok((vec![fail(e)], Vec::new())),
    };
    let custom = starts_with_magic(path, member)?;
    let name = scratch_name();
    let admin = admin_target(&rt.target, &[&name]);
    let mut c = connect(&admin)?;
    let major = server_major(&mut c, &admin)?;
    drop(c);
    rt.tools.check("psql", major)?;
    if custom {
        rt.tools.check("pg_restore", major)?;
    }
    let scratch = ScratchDb::create(&admin, &name)?;
    let db = rt.target.with_database(&name);
    let shown = String::from_utf8_lossy(&member.path).into_owned();
    let restored = restore_from(
        &mut |w| {
            if custom {
                through_pg_restore(path, member, rt, w)
            } else {
                copy_member(path, member, w, "writing the dump to psql")
            }
        },
        None,
        &db,
        &rt.tools,
        progress,
    );
    let mut checks = Vec::new();
    match restored {
        Err(e) if e.kind() == ErrorKind::Interrupted => return Err(e),
        Err(e) => checks.push(fail(e.message().to_string())),
        Ok(()) => {
            let how = if custom {
                "pg_restore and psql"
            } else {
                "psql"
            };
            checks.push(Check {
                name: "restore".into(),
                ok: true,
                detail: format!("{shown} restored into {name} with {how}"),
            });
            let mut c = connect(&db)?;
            match manifest.and_then(|m| m.database.as_ref()) {
                Some(m) => checks.extend(validate(&mut c, &db, m)?.checks),
                None => checks.extend(original_only(&mut c)),
            }
        }
    }
    crate::check_interrupt()?;
    let mut warnings = Vec::new();
    if let Err(e) = scratch.drop_now() {
        warnings.push(e.message().to_string());
    }
    Ok((checks, warnings))
}

/// A fresh decompressed stream positioned at `member`'s content.
fn open_at(path: &Path, member: &Member) -> Result<impl Read> {
    let f = File::open(path).map_err(|e| Error::io(path.display(), e))?;
    let mut gz = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, f));
    let skipped = std::io::copy(&mut (&mut gz).take(member.offset), &mut std::io::sink())
        .map_err(|e| Error::corrupt(format!("{}: {e}", path.display())))?;
    if skipped != member.offset {
        return Err(Error::corrupt(format!(
            "{} ends before the dump: it changed since it was checked",
            path.display()
        )));
    }
    Ok(gz.take(member.size))
}

fn starts_with_magic(path: &Path, member: &Member) -> Result<bool> {
    let mut head = Vec::new();
    open_at(path, member)?
        .take(CUSTOM_MAGIC.len() as u64)
        .read_to_end(&mut head)
        .map_err(|e| Error::corrupt(format!("{}: {e}", path.display())))?;
    Ok(head == CUSTOM_MAGIC)
}

/// Copy `member`'s content into `w`, failing (so psql is killed before it commits) when
/// it ends early or its SHA-256 is no longer the one read before.
fn copy_member(path: &Path, member: &Member, w: &mut dyn Write, what: &str) -> Result<()> {
    let mut r = open_at(path, member)?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n_total = 0u64;
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| Error::corrupt(format!("{}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        n_total += n as u64;
        w.write_all(&buf[..n]).map_err(|e| Error::io(what, e))?;
    }
    let sha: [u8; 32] = sha.finalize().into();
    if n_total != member.size || Some(sha) != member.sha256 {
        return Err(Error::corrupt(format!(
            "{}: the dump changed since it was checked",
            path.display()
        )));
    }
    Ok(())
}

/// A custom-format dump: copied to an unlinked temporary file, turned into SQL by
/// `pg_restore -f -` (no server connection), and that SQL written to `w`.
fn through_pg_restore(
    path: &Path,
    member: &Member,
    rt: &RestoreTest,
    w: &mut dyn Write,
) -> Result<()> {
    let tmp_dir = std::env::temp_dir();
    let mut tmp = tempfile::tempfile_in(&tmp_dir).map_err(|e| {
        Error::io(
            format!("making a temporary file in {}", tmp_dir.display()),
            e,
        )
    })?;
    copy_member(
        path,
        member,
        &mut tmp,
        &format!(
            "writing the dump to a temporary file in {}",
            tmp_dir.display()
        ),
    )?;
    tmp.rewind()
        .map_err(|e| Error::io("rewinding the temporary dump", e))?;
    let program = rt.tools.path("pg_restore");
    let mut child = std::process::Command::new(&program)
        .args(["-f", "-"])
        .stdin(Stdio::from(tmp))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io(format!("running {}", program.display()), e))?;
    let mut stderr = child.stderr.take().expect("piped");
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut out = child.stdout.take().expect("piped");
    let copied =
        std::io::copy(&mut out, w).map_err(|e| Error::io("writing pg_restore's SQL to psql", e));
    if copied.is_err() {
        let _ = child.kill();
    }
    let status = child
        .wait()
        .map_err(|e| Error::io("waiting for pg_restore", e))?;
    let said = errs.join().unwrap_or_default();
    copied?;
    if !status.success() {
        return Err(Error::new(
            ErrorKind::VerifyFailed,
            format!(
                "pg_restore could not read the dump ({status}): {}",
                said.trim()
            ),
        ));
    }
    Ok(())
}
