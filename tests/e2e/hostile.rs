//! Restore treats a snapshot as hostile input: no path escapes the target, no symlink is
//! followed, and a file whose content does not match its recorded hash is not left behind.
//!
//! Snapshots crafted with the repository key hold `..`, absolute paths, empty components,
//! NUL bytes, duplicates, files under symlinks, directories in place of symlinks. Restore must
//! refuse them with "invalid path component" or a structural error, create nothing outside
//! the target, and never follow a symlink, whether the snapshot made it or the target held it.

use masclet_engine::disk::tree::{EntryMeta, Record};
use masclet_engine::{ErrorKind, RestoreOptions};
use masclet_tests::*;
use std::path::Path;

fn meta(p: &[u8], mode: u32) -> EntryMeta {
    EntryMeta {
        path: p.to_vec(),
        mode,
        mtime: 1_700_000_000,
        mtime_nsec: 0,
    }
}

fn file(repo: &mut masclet_engine::Repo, p: &[u8], content: &[u8]) -> Vec<Record> {
    let mut v = vec![Record::FileStart(meta(p, 0o644))];
    if !content.is_empty() {
        let id = masclet_engine::ops::hazmat::store_chunk(
            repo,
            masclet_engine::disk::format::ObjectType::Data,
            content,
        )
        .unwrap();
        v.push(Record::FileChunk(id, u32::try_from(content.len()).unwrap()));
    }
    v.push(Record::FileEnd {
        size: content.len() as u64,
        content_hash: *blake3::hash(content).as_bytes(),
    });
    v
}

fn snapshot_of(
    r: &LocalRepo,
    build: impl FnOnce(&mut masclet_engine::Repo) -> Vec<Record>,
) -> masclet_engine::SnapshotId {
    let mut repo = r.open();
    let records = build(&mut repo);
    masclet_engine::ops::hazmat::commit_records(&mut repo, &records, vec![]).unwrap()
}

fn restore_with(
    r: &LocalRepo,
    id: masclet_engine::SnapshotId,
    target: &Path,
    overwrite: bool,
) -> masclet_engine::Result<()> {
    let repo = r.open();
    let snap = masclet_engine::Snapshot::load(repo.storage(), repo.keys(), id).unwrap();
    masclet_engine::restore(
        &repo,
        &snap,
        target,
        &RestoreOptions::new(overwrite),
        &masclet_engine::NoProgress,
    )
    .map(|_| ())
}

#[test]
fn hostile_names_are_rejected_and_nothing_escapes() {
    let bad: [&[u8]; 9] = [
        b"..",
        b"../escape",
        b"/abs",
        b"",
        b"a/../../escape",
        b"a//b",
        b"a\0b",
        b".",
        b"./x",
    ];
    for name in bad {
        let r = LocalRepo::new();
        let outer = r.scratch("outer");
        let target = outer.join("target");
        let id = snapshot_of(&r, |repo| file(repo, name, b"pwned"));
        let before = digest(&outer);
        let err = restore_with(&r, id, &target, true).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{name:?}: {err}");
        assert!(
            err.to_string().contains("invalid path component"),
            "{name:?}: {err}"
        );
        let after = digest(&outer);
        // The target directory itself may be created; nothing else.
        let created: Vec<_> = after
            .keys()
            .filter(|k| !before.contains_key(*k) && k.as_slice() != b"target")
            .collect();
        assert!(created.is_empty(), "{name:?} created {created:?}");
        assert!(!r.dir.path().join("escape").exists());
        let report = masclet_engine::check(
            &r.open(),
            masclet_engine::CheckOptions::new(false),
            &masclet_engine::NoProgress,
        )
        .unwrap();
        assert!(
            report.damaged_snapshots.contains_key(&id.to_hex()),
            "{name:?}: check must flag the tree"
        );
    }
}

#[test]
fn duplicates_and_orphans_are_rejected() {
    let r = LocalRepo::new();
    let target = r.scratch("t");
    let dup = snapshot_of(&r, |repo| {
        [file(repo, b"x", b"1"), file(repo, b"x", b"2")].concat()
    });
    assert!(
        restore_with(&r, dup, &target, false)
            .unwrap_err()
            .to_string()
            .contains("out of order or duplicated")
    );
    let orphan = snapshot_of(&r, |repo| file(repo, b"nodir/x", b"1"));
    assert!(
        restore_with(&r, orphan, &target, false)
            .unwrap_err()
            .to_string()
            .contains("no parent directory")
    );
}

#[test]
fn symlinks_in_the_snapshot_are_never_followed() {
    let r = LocalRepo::new();
    let victim = r.scratch("victimdir");
    std::fs::write(victim.join("passwd"), b"original").unwrap();
    let victim_s = victim.to_str().unwrap().as_bytes().to_vec();
    // (b) symlink d -> victimdir, then a file d/passwd: d is not a directory entry.
    let id = snapshot_of(&r, |repo| {
        let mut v = vec![Record::Symlink(meta(b"d", 0o777), victim_s.clone())];
        v.extend(file(repo, b"d/passwd", b"pwned"));
        v
    });
    let target = r.scratch("t1");
    assert!(restore_with(&r, id, &target, true).is_err());
    // (c) symlink l -> victimdir and a directory entry l with mode 0777.
    let id = snapshot_of(&r, |_| {
        vec![
            Record::Symlink(meta(b"l", 0o777), victim_s.clone()),
            Record::Dir(meta(b"l", 0o777)),
        ]
    });
    assert!(restore_with(&r, id, &r.scratch("t2"), true).is_err());
    assert_eq!(std::fs::read(victim.join("passwd")).unwrap(), b"original");
    use std::os::unix::fs::PermissionsExt;
    assert_ne!(
        std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777,
        0o777
    );
}

#[test]
fn symlinks_planted_in_the_target_are_not_written_through() {
    let r = LocalRepo::new();
    let victim = r.dir.path().join("victim");
    std::fs::write(&victim, b"original").unwrap();
    let victim_dir = r.scratch("victimdir");
    let id = snapshot_of(&r, |repo| {
        let mut v = vec![Record::Dir(meta(b"sub", 0o755))];
        v.extend(file(repo, b"sub/x", b"new"));
        v.extend(file(repo, b"x", b"new"));
        v
    });
    // (a) the target holds x -> victim, and sub -> victimdir.
    let target = r.scratch("target");
    std::os::unix::fs::symlink(&victim, target.join("x")).unwrap();
    std::os::unix::fs::symlink(&victim_dir, target.join("sub")).unwrap();
    let err = restore_with(&r, id, &target, false).unwrap_err();
    assert!(
        err.to_string().contains("refusing to replace the symlink"),
        "{err}"
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"original");
    assert!(std::fs::read_dir(&victim_dir).unwrap().next().is_none());
    // With --overwrite the links themselves are replaced; their targets stay untouched.
    restore_with(&r, id, &target, true).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"original");
    assert!(std::fs::read_dir(&victim_dir).unwrap().next().is_none());
    assert_eq!(std::fs::read(target.join("x")).unwrap(), b"new");
    assert_eq!(std::fs::read(target.join("sub/x")).unwrap(), b"new");
    assert!(
        !std::fs::symlink_metadata(target.join("sub"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn a_lying_content_hash_leaves_no_file_behind() {
    let r = LocalRepo::new();
    let id = snapshot_of(&r, |repo| {
        let mut v = file(repo, b"f", b"content");
        if let Some(Record::FileEnd { content_hash, .. }) = v.last_mut() {
            content_hash[0] ^= 1;
        }
        v
    });
    let target = r.scratch("t");
    let err = restore_with(&r, id, &target, false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(
        std::fs::read_dir(&target).unwrap().next().is_none(),
        "no file, no temp file"
    );
}
