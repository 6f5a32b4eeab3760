//! The reader against archives built in memory: what it records of sound ones, and how
//! each kind of damage or excess is told apart.

use super::*;
use crate::progress::NoProgress;
use sha2::Digest;
use std::io::Write;

/// A tar stream of `(name, content)` files, with or without its end-of-archive blocks.
fn tar_of(files: &[(&str, &[u8])], end: bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o640);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    if end {
        b.into_inner().unwrap()
    } else {
        // The builder writes the end blocks on into_inner; cut them off again.
        let mut v = b.into_inner().unwrap();
        v.truncate(v.len() - 1024);
        v
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn scan_bytes(bytes: &[u8], limits: &Limits) -> Scan {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.tar.gz");
    std::fs::write(&p, bytes).unwrap();
    scan(&p, limits, &NoProgress).unwrap()
}

#[test]
fn a_sound_archive_gives_every_members_place_hash_and_the_files_hash() {
    let body = b"COPY animals FROM stdin;\n1\tBlanca\n\\.\n";
    let gz = gzip(&tar_of(
        &[("./dump/x.sql", body), ("MANIFEST.json", b"{}")],
        true,
    ));
    let s = scan_bytes(&gz, &Limits::default());
    assert!(s.structure_ok(), "{:?} {:?}", s.gzip_error, s.tar_error);
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(s.sha256, <[u8; 32]>::from(Sha256::digest(&gz)));
    assert_eq!(s.file_len, gz.len() as u64);
    let m = &s.members[0];
    assert_eq!(m.path, b"dump/x.sql");
    assert_eq!(m.mode, 0o640);
    assert_eq!(m.sha256, Some(<[u8; 32]>::from(Sha256::digest(body))));
    let tar = tar_of(&[("./dump/x.sql", body)], true);
    let at = usize::try_from(m.offset).unwrap();
    assert_eq!(
        &tar[at..at + body.len()],
        body,
        "the offset is the content's"
    );
    assert_eq!(s.manifest.as_deref(), Some(&b"{}"[..]));
}

#[test]
fn damage_is_told_apart_from_a_cut_tar_and_trailing_data() {
    let gz = gzip(&tar_of(&[("a.sql", &[7u8; 100_000])], true));
    // gzip cut short: gzip fails, tar says it was not read to its end; every byte hashed.
    let cut = &gz[..gz.len() / 2];
    let s = scan_bytes(cut, &Limits::default());
    assert!(s.gzip_error.is_some());
    assert!(
        s.tar_error.as_deref().unwrap().contains("gzip"),
        "{:?}",
        s.tar_error
    );
    assert_eq!(s.sha256, <[u8; 32]>::from(Sha256::digest(cut)));
    // A sound gzip of a tar without its end blocks.
    let s = scan_bytes(
        &gzip(&tar_of(&[("a.sql", b"x")], false)),
        &Limits::default(),
    );
    assert!(s.gzip_error.is_none());
    assert!(
        s.tar_error.as_deref().unwrap().contains("end-of-archive"),
        "{:?}",
        s.tar_error
    );
    // Data after the end blocks.
    let mut t = tar_of(&[("a.sql", b"x")], true);
    t.extend_from_slice(b"hidden payload");
    let s = scan_bytes(&gzip(&t), &Limits::default());
    assert!(
        s.tar_error.as_deref().unwrap().contains("after the end"),
        "{:?}",
        s.tar_error
    );
    // Not gzip at all.
    let s = scan_bytes(b"plain text, not gzip", &Limits::default());
    assert!(s.gzip_error.is_some() && !s.structure_ok());
}

#[test]
fn an_archive_expanding_past_its_ratio_stops_as_a_bomb() {
    let zeros = vec![0u8; 4 << 20];
    let gz = gzip(&tar_of(&[("zeros.sql", &zeros)], true));
    let tight = Limits {
        ratio: 10,
        floor: 0,
        ..Limits::default()
    };
    let s = scan_bytes(&gz, &tight);
    assert!(
        s.problems.iter().any(|p| p.contains("decompression bomb")),
        "{:?}",
        s.problems
    );
    assert!(!s.structure_ok());
    assert!(s.expanded <= tight.expanded(gz.len() as u64));
    // The default floor lets it through.
    let s = scan_bytes(&gz, &Limits::default());
    assert!(s.problems.is_empty() && s.structure_ok());
}

#[test]
fn a_pax_global_header_is_no_member() {
    let mut b = tar::Builder::new(Vec::new());
    let comment = b"52 comment=0123456789012345678901234567890123456789\n";
    let mut g = tar::Header::new_ustar();
    g.set_entry_type(tar::EntryType::XGlobalHeader);
    g.set_size(comment.len() as u64);
    b.append_data(&mut g, "pax_global_header", &comment[..])
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(3);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "a.sql", &b"abc"[..]).unwrap();
    let s = scan_bytes(&gzip(&b.into_inner().unwrap()), &Limits::default());
    assert!(
        s.problems.is_empty() && s.structure_ok(),
        "{:?}",
        s.problems
    );
    assert_eq!(s.members.len(), 1);
    assert_eq!(s.members[0].path, b"a.sql");
}

#[test]
fn members_and_names_past_their_limits_are_refused() {
    let files: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("f{i:02}.sql"), vec![b'x']))
        .collect();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (n.as_str(), &d[..])).collect();
    let gz = gzip(&tar_of(&refs, true));
    let few = Limits {
        members: 10,
        ..Limits::default()
    };
    let s = scan_bytes(&gz, &few);
    assert!(
        s.problems
            .iter()
            .any(|p| p.contains("more than 10 members")),
        "{:?}",
        s.problems
    );
    let short = Limits {
        name_bytes: 50,
        ..Limits::default()
    };
    let s = scan_bytes(&gz, &short);
    assert!(
        s.problems.iter().any(|p| p.contains("member names add up")),
        "{:?}",
        s.problems
    );
    assert!(scan_bytes(&gz, &Limits::default()).problems.is_empty());
}

#[test]
fn a_sound_gzip_around_garbage_is_read_whole_and_the_tar_error_is_printable() {
    // Random-looking bytes with terminal escapes where a tar header's fields would be.
    let mut junk: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    junk[..8].copy_from_slice(b"\x1b[2J\x1b]0;");
    junk[148..156].copy_from_slice(b"\x1b[31m\x07\x00\xff");
    let s = scan_bytes(&gzip(&junk), &Limits::default());
    assert!(s.gzip_error.is_none(), "{:?}", s.gzip_error);
    assert_eq!(
        s.expanded,
        junk.len() as u64,
        "the gzip stream was not read whole"
    );
    let e = s.tar_error.expect("garbage passed as tar");
    assert!(!e.chars().any(char::is_control), "{e:?}");
    assert!(e.len() <= 210, "{e:?}");
}
