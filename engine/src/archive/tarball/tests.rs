use super::*;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;

fn meta(path: &[u8], mode: u32, mtime: i64) -> EntryMeta {
    EntryMeta {
        path: path.to_vec(),
        mode,
        mtime,
        mtime_nsec: 123,
    }
}

/// Entries read back with the `tar` crate: (path bytes, type, link bytes, mode, content).
#[allow(clippy::type_complexity)]
fn read_back(tar: &[u8]) -> Vec<(Vec<u8>, u8, Option<Vec<u8>>, u32, Vec<u8>)> {
    let mut a = tar::Archive::new(tar);
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path_bytes().into_owned();
        let link = e.link_name_bytes().map(|l| l.into_owned());
        let kind = e.header().entry_type().as_byte();
        let mode = e.header().mode().unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push((path, kind, link, mode, data));
    }
    out
}

#[test]
fn long_and_non_utf8_names_and_link_targets_come_back_byte_for_byte() {
    let long_dir: Vec<u8> = [b"d".repeat(150).as_slice(), b"\xff\xfe"].concat();
    let long_file: Vec<u8> = [long_dir.as_slice(), b"/", &b"\xe9".repeat(120)].concat();
    let odd_target = b"../x//y/./dir/".to_vec();
    let long_target = [b"/abs/".as_slice(), &b"t".repeat(200)].concat();
    let mut w = TarWriter::new(Vec::new());
    w.dir(&meta(&long_dir, 0o750, 1)).unwrap();
    w.file_start(&meta(&long_file, 0o4755, 2), 5, false)
        .unwrap();
    w.data(b"hola\n").unwrap();
    assert_eq!(w.file_end().unwrap(), None);
    w.symlink(&meta(b"short", 0o777, 3), &odd_target).unwrap();
    w.symlink(&meta(b"long", 0o777, 3), &long_target).unwrap();
    w.file_start(&meta(b"empty", 0o600, 4), 0, true).unwrap();
    assert_eq!(w.file_end().unwrap(), Some(Vec::new()));
    let members = w.members().to_vec();
    let tar = w.finish(b"{}\n", 5).unwrap();
    assert_eq!(tar.len() % 512, 0);
    let back = read_back(&tar);
    let names: Vec<_> = back.iter().map(|e| e.0.clone()).collect();
    assert_eq!(
        names,
        vec![
            [long_dir.as_slice(), b"/"].concat(),
            long_file.clone(),
            b"short".to_vec(),
            b"long".to_vec(),
            b"empty".to_vec(),
            b"MANIFEST.json".to_vec(),
        ]
    );
    assert_eq!(back[0].1, b'5');
    assert_eq!(back[0].3, 0o750);
    assert_eq!(
        (back[1].1, back[1].3, &back[1].4[..]),
        (b'0', 0o4755, &b"hola\n"[..])
    );
    assert_eq!(back[2].2.as_deref(), Some(&odd_target[..]));
    assert_eq!(back[3].2.as_deref(), Some(&long_target[..]));
    assert_eq!(back[5].4, b"{}\n");
    // The manifest's members: every entry but itself, files with their SHA-256.
    assert_eq!(members.len(), 5);
    assert_eq!(members[1].path_bytes(), long_file);
    let expect: [u8; 32] = Sha256::digest(b"hola\n").into();
    assert_eq!(
        members[1].sha256,
        Some(super::super::manifest::hex(&expect))
    );
    assert_eq!(
        members[0].path_bytes(),
        long_dir,
        "a directory is listed without its /"
    );
}

#[test]
fn every_header_has_owner_zero_without_names_and_the_snapshots_mtime() {
    let mut w = TarWriter::new(Vec::new());
    w.file_start(&meta(b"f", 0o640, 1_700_000_000), 1, false)
        .unwrap();
    w.data(b"x").unwrap();
    w.file_end().unwrap();
    let tar = w.finish(b"{}", 1_700_000_001).unwrap();
    let mut a = tar::Archive::new(&tar[..]);
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        assert_eq!(h.username_bytes(), Some(&b""[..]));
        assert_eq!(h.groupname_bytes(), Some(&b""[..]));
        assert!(h.mtime().unwrap() >= 1_700_000_000);
    }
}

#[test]
fn mtimes_before_1970_and_far_future_use_base_256_exactly() {
    let field = |t: i64| {
        let mut f = [0u8; 12];
        put_mtime(&mut f, t);
        f
    };
    assert_eq!(&field(0), b"00000000000\0");
    assert_eq!(&field(8), b"00000000010\0");
    assert_eq!(&field((1 << 33) - 1), b"77777777777\0");
    assert_eq!(field(1 << 33), [0x80, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0]);
    assert_eq!(field(-1), [0xff; 12]);
    assert_eq!(
        field(-86_400),
        [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xae, 0x80
        ]
    );
    assert_eq!(field(i64::MIN)[..5], [0xff, 0xff, 0xff, 0xff, 0x80]);
}

#[test]
fn content_longer_or_shorter_than_the_header_says_is_refused() {
    let mut w = TarWriter::new(Vec::new());
    w.file_start(&meta(b"f", 0o600, 0), 2, false).unwrap();
    assert!(w.data(b"abc").is_err());
    let mut w = TarWriter::new(Vec::new());
    w.file_start(&meta(b"f", 0o600, 0), 2, false).unwrap();
    w.data(b"a").unwrap();
    assert!(w.file_end().is_err());
}

#[test]
fn the_paths_the_tar_crate_reads_are_plain_bytes() {
    // A name of exactly 99 bytes fits the header; 100 takes a long-name entry.
    for len in [99usize, 100, 101] {
        let name = b"n".repeat(len);
        let mut w = TarWriter::new(Vec::new());
        let whole_second = EntryMeta {
            mtime_nsec: 0,
            ..meta(&name, 0o777, 0)
        };
        w.symlink(&whole_second, b"t").unwrap();
        let tar = w.finish(b"", 0).unwrap();
        let back = read_back(&tar);
        assert_eq!(std::ffi::OsStr::from_bytes(&back[0].0).len(), len);
        let headers = tar.len() / 512 - 2;
        assert_eq!(headers, if len >= 100 { 4 } else { 2 }, "length {len}");
    }
}

#[test]
fn sub_second_times_go_in_a_pax_header_in_decimal_also_before_1970() {
    assert_eq!(pax_time(1_700_000_000, 5), "1700000000.000000005");
    assert_eq!(pax_time(-2, 750_000_000), "-1.250000000");
    assert_eq!(pax_time(-1, 500_000_000), "-0.500000000");
    assert_eq!(pax_time(-7, 0), "-7.000000000");
    assert_eq!(pax_time(i64::MIN, 1), "-9223372036854775807.999999999");
    let mut w = TarWriter::new(Vec::new());
    w.dir(&meta(b"d", 0o755, -2)).unwrap();
    let tar = w.finish(b"", 0).unwrap();
    // The pax header, its record, then the directory's own header.
    assert_eq!(tar[156], b'x');
    assert_eq!(&tar[512..512 + 23], b"22 mtime=-1.999999877\n\0");
    assert_eq!(tar[1024 + 156], b'5');
}
