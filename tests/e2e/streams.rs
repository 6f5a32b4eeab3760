//! A source of several named streams (a database snapshot's dump, roles and manifest): the
//! snapshot commits only when every producer succeeded, names are checked before anything
//! is written, and a second backup of the same source walks beside the first.

use masclet_engine::ops::backup::{StreamContent, StreamEntry};
use masclet_engine::{BackupOptions, ErrorKind, NoProgress, Source};
use masclet_tests::{LocalRepo, dump, noise};

fn entry(name: &str, content: StreamContent) -> StreamEntry {
    StreamEntry {
        name: name.as_bytes().to_vec(),
        content,
    }
}

fn source(entries: Vec<StreamEntry>) -> Source {
    Source::Streams {
        source: "postgres".into(),
        paths: vec![b"masclet_imperi".to_vec()],
        entries,
    }
}

fn produced(data: Vec<u8>, ok: bool) -> StreamContent {
    StreamContent::Produced {
        reader: Box::new(std::io::Cursor::new(data)),
        done: Box::new(move || {
            if ok {
                Ok(())
            } else {
                Err(masclet_engine::Error::new(
                    ErrorKind::Io,
                    "the producer failed",
                ))
            }
        }),
    }
}

#[test]
fn every_stream_is_stored_in_name_order_and_restores_byte_identical() {
    let lr = LocalRepo::new();
    let mut repo = lr.open();
    let dump_bytes = noise(3 << 20, 1);
    let src = source(vec![
        entry("pg-manifest.json", StreamContent::Bytes(b"{}".to_vec())),
        entry("masclet_imperi.sql", produced(dump_bytes.clone(), true)),
        entry(
            "pg-globals.sql",
            StreamContent::Bytes(b"CREATE ROLE x;".to_vec()),
        ),
    ]);
    let s = masclet_engine::backup(&mut repo, src, &BackupOptions::default(), &NoProgress).unwrap();
    assert_eq!(s.stats.files, 3);
    assert_eq!(
        dump(&repo, s.snapshot, "masclet_imperi.sql").unwrap(),
        dump_bytes
    );
    assert_eq!(
        dump(&repo, s.snapshot, "pg-globals.sql").unwrap(),
        b"CREATE ROLE x;"
    );
    let (snaps, _) = repo.snapshots().unwrap();
    assert_eq!(snaps[0].1.source, "postgres");
    assert_eq!(snaps[0].1.paths, vec![b"masclet_imperi".to_vec()]);
}

#[test]
fn a_failed_producer_commits_no_snapshot() {
    let lr = LocalRepo::new();
    let mut repo = lr.open();
    let src = source(vec![
        entry("masclet_imperi.sql", produced(noise(1 << 20, 2), false)),
        entry("pg-manifest.json", StreamContent::Bytes(b"{}".to_vec())),
    ]);
    let e =
        masclet_engine::backup(&mut repo, src, &BackupOptions::default(), &NoProgress).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(
        e.to_string().contains("producing masclet_imperi.sql"),
        "{e}"
    );
    assert!(repo.snapshots().unwrap().0.is_empty());
}

#[test]
fn duplicate_bad_or_missing_names_are_refused_before_anything_is_written() {
    let lr = LocalRepo::new();
    let mut repo = lr.open();
    let bytes = || StreamContent::Bytes(b"x".to_vec());
    for (entries, needle) in [
        (
            vec![entry("a.sql", bytes()), entry("a.sql", bytes())],
            "both named",
        ),
        (vec![entry("../a.sql", bytes())], "single file name"),
        (vec![entry("dir/a.sql", bytes())], "single file name"),
        (vec![], "at least one stream"),
    ] {
        let e = masclet_engine::backup(
            &mut repo,
            source(entries),
            &BackupOptions::default(),
            &NoProgress,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains(needle), "{e}");
    }
    assert!(repo.snapshots().unwrap().0.is_empty());
}

#[test]
fn a_second_backup_of_the_same_source_stores_only_the_change() {
    let lr = LocalRepo::new();
    let mut repo = lr.open();
    let mut data = noise(8 << 20, 3);
    let run = |repo: &mut masclet_engine::Repo, data: &[u8]| {
        let src = source(vec![entry(
            "masclet_imperi.sql",
            produced(data.to_vec(), true),
        )]);
        masclet_engine::backup(repo, src, &BackupOptions::default(), &NoProgress).unwrap()
    };
    let first = run(&mut repo, &data);
    data[4 << 20] ^= 0xff;
    let second = run(&mut repo, &data);
    assert!(
        second.stats.bytes_added * 20 < first.stats.bytes_added,
        "{} then {}",
        first.stats.bytes_added,
        second.stats.bytes_added
    );
}
