//! The fuzz targets of masclet: one function per decoder of bytes that come from disk or
//! from users. Each must return for any input, never panic, never allocate without bound,
//! and keep the decoder's promises (what decodes encodes back the same; what a validator
//! accepts is well formed). `cargo fuzz` (nightly) drives them through `fuzz_targets/`;
//! the `replay` binary drives them on stable Rust through the committed corpus and a
//! simple mutator.

use masclet_engine::disk::format::Dec;
use masclet_engine::disk::tree::{Record, Validator};
use std::io::Write;

pub mod seeds;

/// A target: its name (the corpus folder) and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("snapshot", snapshot),
    ("key_slot", key_slot),
    ("config_header", config_header),
    ("pack_trailer", pack_trailer),
    ("tree_stream", tree_stream),
    ("env_file", env_file),
    ("size_arg", size_arg),
    ("archive_name", archive_name),
    ("archive_manifest", archive_manifest),
    ("pg_manifest", pg_manifest),
    ("archive", archive),
    ("archive_gz", archive_gz),
];

/// A snapshot object's plaintext: what decodes encodes back to the same bytes' meaning.
pub fn snapshot(data: &[u8]) {
    if let Ok(s) = masclet_engine::Snapshot::decode(data) {
        let again = masclet_engine::Snapshot::decode(&s.encode()).expect("re-encoded snapshot");
        assert_eq!(
            again.encode(),
            s.encode(),
            "snapshot encoding is not stable"
        );
    }
}

/// A key slot file (the passphrase is not needed to decode its layout).
pub fn key_slot(data: &[u8]) {
    if let Ok(k) = masclet_engine::disk::keys::KeySlot::decode(data) {
        let again = masclet_engine::disk::keys::KeySlot::decode(&k.encode()).expect("re-encoded");
        assert_eq!(again.encode(), k.encode());
    }
}

/// The config file's plaintext header.
pub fn config_header(data: &[u8]) {
    let _ = masclet_engine::RepoConfig::decode_header(data);
}

/// A pack trailer's plaintext, for each pack version; the first byte picks the version.
pub fn pack_trailer(data: &[u8]) {
    let Some((&v, rest)) = data.split_first() else {
        return;
    };
    let version = u32::from(v % 4);
    let start = rest.len() as u64 * 3;
    if let Ok(entries) = masclet_engine::disk::pack::decode_trailer(rest, start, version) {
        let again = masclet_engine::disk::pack::encode_trailer(&entries);
        let back = masclet_engine::disk::pack::decode_trailer(&again, start, version);
        assert_eq!(
            back.ok().as_deref(),
            Some(&entries[..]),
            "trailer round trip"
        );
    }
}

/// A tree stream: records decoded one after another and checked by the validator every
/// reader runs; a record that decodes encodes back to the bytes it came from.
pub fn tree_stream(data: &[u8]) {
    let mut d = Dec::new(data, "tree");
    let mut v = Validator::new();
    while d.remaining() > 0 {
        let before = d.remaining();
        let Ok(r) = Record::decode(&mut d) else {
            return;
        };
        let used = &data[data.len() - before..data.len() - d.remaining()];
        let mut out = Vec::new();
        r.encode(&mut out);
        assert_eq!(out, used, "a record does not encode back to its bytes");
        if v.check(&r).is_err() {
            return;
        }
    }
    let _ = v.finish();
}

/// The `.env` configuration file.
pub fn env_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = masclet_engine::config::ConfigFile::parse(std::path::Path::new(".env"), &text);
}

/// A size as flags and the `.env` take it (`5G`).
pub fn size_arg(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = masclet_engine::config::parse_size(s);
    }
}

/// A classic archive's file name, and a tier's.
pub fn archive_name(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        if masclet_engine::archive::ArchiveName::parse(s).is_ok() {
            assert!(s.ends_with(".tar.gz"), "{s:?} parsed as a classic name");
        }
        let _ = masclet_engine::archive::Tier::parse(s);
    }
}

/// An archive's MANIFEST.json.
pub fn archive_manifest(data: &[u8]) {
    let _ = masclet_engine::archive::ArchiveManifest::parse(data);
}

/// A database snapshot's manifest.
pub fn pg_manifest(data: &[u8]) {
    let _ = masclet_engine::pg::Manifest::parse(data);
}

/// A whole `.tar.gz` as `verify-archive` and `import` read it first: the bytes as given.
pub fn archive(data: &[u8]) {
    scan(data);
}

/// The same, with the bytes gzipped first, so that mutations reach the tar layer.
pub fn archive_gz(data: &[u8]) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("in memory");
    scan(&gz.finish().expect("in memory"));
}

fn scan(bytes: &[u8]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir
        .path()
        .join("masclet_daily_20260101_0000_00000000.tar.gz");
    std::fs::write(&path, bytes).expect("temp file");
    let limits = masclet_engine::archive::reader::Limits {
        ratio: 200,
        floor: 64 << 20,
        name_bytes: 1 << 20,
        members: 10_000,
    };
    let _ = masclet_engine::archive::reader::scan(&path, &limits, &masclet_engine::NoProgress);
}
