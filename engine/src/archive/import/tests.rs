//! Plans of archives built in memory: the tree's order, made-up parents, the spool, what
//! the snapshot will be called, and the refusals that need the whole member list.

use super::*;
use crate::progress::NoProgress;
use sha2::{Digest, Sha256};
use std::io::Write;

/// Write a `.tar.gz` of `files` (in this order) under its classic name in `dir`.
fn archive(dir: &Path, files: &[(&str, &[u8])]) -> PathBuf {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&b.into_inner().unwrap()).unwrap();
    let gz = e.finish().unwrap();
    let sha = hex(&Sha256::digest(&gz));
    let p = dir.join(format!("masclet_weekly_20250316_0300_{}.tar.gz", &sha[..8]));
    std::fs::write(&p, gz).unwrap();
    p
}

#[test]
fn an_unsorted_archive_is_planned_in_tree_order_with_its_parents_made_up() {
    let dir = tempfile::tempdir().unwrap();
    let p = archive(
        dir.path(),
        &[("z.sql", b"zz"), ("a/b/c.txt", b"c"), ("a/a.txt", b"aaaa")],
    );
    let plan = plan_import(&p, &ImportOptions::default(), &NoProgress).unwrap();
    let paths: Vec<&[u8]> = plan
        .planned
        .iter()
        .map(|e| e.meta.path.as_slice())
        .collect();
    assert_eq!(
        paths,
        [&b"a"[..], b"a/a.txt", b"a/b", b"a/b/c.txt", b"z.sql"]
    );
    assert_eq!(plan.made_up_dirs, 2);
    assert!(!plan.in_tree_order);
    // z.sql (2 bytes) and a/b/c.txt (1 byte) pass before their turn; a/a.txt is last in
    // the archive and first of the files in the tree.
    assert_eq!(plan.spool_bytes, 3);
    assert_eq!(plan.content_bytes, 7);
    assert_eq!(plan.source, IMPORT_SOURCE);
    assert_eq!(plan.paths, ["a", "z.sql"]);
    assert_eq!(plan.tier, crate::archive::Tier::Weekly);
    assert_eq!(plan.tags[1], format!("{ARCHIVE_SHA_TAG}{}", plan.sha256));
    assert_eq!(plan.time, plan_name_time(&p));
}

fn plan_name_time(p: &Path) -> DateTime<Utc> {
    ArchiveName::parse(&file_name(p)).unwrap().utc()
}

#[test]
fn a_member_inside_a_file_and_a_renamed_archive_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = archive(dir.path(), &[("a", b"x"), ("a/b", b"y")]);
    let e = plan_import(&p, &ImportOptions::default(), &NoProgress).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("not a directory"), "{e}");
    let renamed = dir
        .path()
        .join("masclet_daily_20250316_0300_00000000.tar.gz");
    std::fs::rename(&p, &renamed).unwrap();
    let e = plan_import(&renamed, &ImportOptions::default(), &NoProgress).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::VerifyFailed);
    let other = dir.path().join("dump.tar.gz");
    std::fs::rename(&renamed, &other).unwrap();
    let e = plan_import(&other, &ImportOptions::default(), &NoProgress).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}
