//! Damage anywhere is detected, named, and confined.
//!
//! Flipped bits in chunk bodies, trailers, footers, snapshot objects, key slots and the
//! config; truncated packs; chunk ciphertexts swapped between slots; a pack renamed to
//! another's name; one snapshot's object put in another's place; type confusion. Every case
//! must fail with a typed error (never a panic, never wrong bytes), `check` must name the
//! damage and exit non-zero, and snapshots not touched must still restore.

use masclet_engine::{ErrorKind, Kind};
use masclet_tests::*;
use std::path::PathBuf;

struct Fixture {
    r: LocalRepo,
    a: masclet_engine::SnapshotId,
    b: masclet_engine::SnapshotId,
    data_a: Vec<u8>,
    data_b: Vec<u8>,
}

/// Two snapshots with no chunk in common, each in its own packs.
fn fixture() -> Fixture {
    let r = LocalRepo::new();
    let data_a = noise(300_000, 10);
    let data_b = noise(300_000, 20);
    let mut repo = r.open();
    let a = backup_bytes(&mut repo, "a", &data_a).unwrap();
    let b = backup_bytes(&mut repo, "b", &data_b).unwrap();
    Fixture {
        r,
        a,
        b,
        data_a,
        data_b,
    }
}

fn pack_paths(r: &LocalRepo) -> Vec<PathBuf> {
    let mut out = vec![];
    for d in std::fs::read_dir(r.path.join("packs")).unwrap() {
        for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out
}

/// The pack that holds snapshot `id`'s first data chunk.
fn pack_of(f: &Fixture, id: masclet_engine::SnapshotId) -> PathBuf {
    let repo = f.r.open();
    let snap = masclet_engine::Snapshot::load(repo.storage(), repo.keys(), id).unwrap();
    let mut reader = repo.tree_reader(&snap);
    while let Some(rec) = reader.next_record().unwrap() {
        if let masclet_engine::disk::tree::Record::FileChunk(cid, _) = rec {
            let loc = repo.index().locate(&cid).unwrap().unwrap();
            let hex = loc.pack.to_hex();
            return f.r.path.join("packs").join(&hex[..2]).join(hex);
        }
    }
    panic!("no data chunk")
}

fn flip(path: &PathBuf, offset: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[offset] ^= 0x10;
    std::fs::write(path, b).unwrap();
}

fn check_report(f: &Fixture, read_data: bool) -> masclet_engine::CheckReport {
    masclet_engine::check(
        &f.r.open(),
        masclet_engine::CheckOptions::new(read_data),
        &masclet_engine::NoProgress,
    )
    .unwrap()
}

#[test]
fn flipped_bits_in_a_pack_are_found_and_confined() {
    // Offsets: a chunk body, the trailer, the footer's length, the end magic.
    for place in ["body", "trailer", "footer-len", "footer-magic", "header"] {
        let f = fixture();
        let pack = pack_of(&f, f.a);
        let len = std::fs::metadata(&pack).unwrap().len() as usize;
        let off = match place {
            "body" => 12 + 40,
            "trailer" => len - 12 - 20,
            "footer-len" => len - 12,
            "footer-magic" => len - 3,
            _ => 2,
        };
        flip(&pack, off);
        let report = check_report(&f, true);
        assert!(!report.ok(), "{place}: check missed it");
        assert!(
            report.damaged_snapshots.contains_key(&f.a.to_hex()),
            "{place}: {report:?}"
        );
        assert!(
            !report.damaged_snapshots.contains_key(&f.b.to_hex()),
            "{place}: damage not confined"
        );
        let repo = f.r.open();
        let err = dump(&repo, f.a, "a").err();
        if place == "body" || place == "header" {
            // Reading through the index does not look at trailers; body damage is caught per chunk.
            if place == "body" {
                assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::Corrupt), "{place}");
            }
        }
        assert_eq!(dump(&repo, f.b, "b").unwrap(), f.data_b, "{place}");
    }
}

#[test]
fn truncated_packs_are_reported() {
    for cut in [0usize, 11, 500, usize::MAX] {
        let f = fixture();
        let pack = pack_of(&f, f.a);
        let len = std::fs::metadata(&pack).unwrap().len() as usize;
        let at = if cut == usize::MAX { len - 5 } else { cut };
        std::fs::File::options()
            .write(true)
            .open(&pack)
            .unwrap()
            .set_len(at as u64)
            .unwrap();
        let report = check_report(&f, false);
        assert!(!report.ok());
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.message.contains("truncated")
                    || p.message.contains("bytes, the index says")),
            "{report:?}"
        );
        assert!(report.damaged_snapshots.contains_key(&f.a.to_hex()));
        assert_eq!(dump(&f.r.open(), f.b, "b").unwrap(), f.data_b);
        // Reads through the index either fail as corrupt or, when only the footer was cut,
        // still return the right bytes; never anything else.
        match dump(&f.r.open(), f.a, "a") {
            Ok(d) => assert_eq!(d, f.data_a),
            Err(e) => assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}"),
        }
    }
}

#[test]
fn swapped_chunks_renamed_packs_and_swapped_snapshots_fail_authentication() {
    // Chunk A's ciphertext over chunk B's slot (same length: both stored raw, same size).
    let r = LocalRepo::new();
    let mut repo = r.open();
    let block_a = noise(8192, 1);
    let block_b = noise(8192, 2);
    let ia = masclet_engine::ops::hazmat::store_chunk(
        &mut repo,
        masclet_engine::disk::format::ObjectType::Data,
        &block_a,
    )
    .unwrap();
    let ib = masclet_engine::ops::hazmat::store_chunk(
        &mut repo,
        masclet_engine::disk::format::ObjectType::Data,
        &block_b,
    )
    .unwrap();
    let la = repo.index().locate(&ia).unwrap().unwrap();
    let lb = repo.index().locate(&ib).unwrap().unwrap();
    assert_eq!(la.sealed_len, lb.sealed_len);
    let sealed_a = repo
        .storage()
        .get_range(
            Kind::Pack,
            &la.pack.to_hex(),
            la.offset,
            u64::from(la.sealed_len),
        )
        .unwrap();
    let pb = r
        .path
        .join("packs")
        .join(&lb.pack.to_hex()[..2])
        .join(lb.pack.to_hex());
    let mut bytes = std::fs::read(&pb).unwrap();
    bytes[lb.offset as usize..][..sealed_a.len()].copy_from_slice(&sealed_a);
    std::fs::write(&pb, bytes).unwrap();
    let err = repo
        .load_chunk(&ib, masclet_engine::disk::format::ObjectType::Data)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.to_string().contains("authentication failed"), "{err}");
    // Type confusion: a data chunk asked for as a tree chunk.
    assert_eq!(
        repo.load_chunk(&ia, masclet_engine::disk::format::ObjectType::Tree)
            .unwrap_err()
            .kind(),
        ErrorKind::Corrupt
    );
    drop(repo);

    // Snapshot S1's object in S2's place; and a pack under another pack's name.
    let f = fixture();
    let sa = f.r.path.join("snapshots").join(f.a.to_hex());
    let sb = f.r.path.join("snapshots").join(f.b.to_hex());
    std::fs::copy(&sa, &sb).unwrap();
    let repo = f.r.open();
    let (ok, bad) = repo.snapshots().unwrap();
    assert_eq!(ok.len(), 1);
    assert_eq!(bad.len(), 1);
    assert!(bad[0].1.to_string().contains("authentication failed"));
    drop(repo);
    assert!(!check_report(&f, false).ok());

    let f = fixture();
    let pa = pack_of(&f, f.a);
    let pb = pack_of(&f, f.b);
    std::fs::copy(&pb, &pa).unwrap();
    let report = check_report(&f, false);
    assert!(
        report.damaged_snapshots.contains_key(&f.a.to_hex()),
        "{report:?}"
    );
}

#[test]
fn snapshot_plaintext_stored_as_data_is_not_a_snapshot() {
    let f = fixture();
    let repo = f.r.open();
    let snap = masclet_engine::Snapshot::load(repo.storage(), repo.keys(), f.a).unwrap();
    // Seal a genuine snapshot plaintext as a data chunk, and plant it as a snapshot object.
    let fake_id = masclet_engine::SnapshotId::random();
    let sealed = repo.keys().seal(
        masclet_engine::disk::format::ObjectType::Data,
        &fake_id.0,
        &snap.encode(),
        None,
    );
    repo.storage()
        .put(Kind::Snapshot, &fake_id.to_hex(), &sealed)
        .unwrap();
    let (ok, bad) = repo.snapshots().unwrap();
    assert_eq!(ok.len(), 2);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].1.kind(), ErrorKind::Corrupt);
}

#[test]
fn damaged_key_slot_and_config_are_refused() {
    let f = fixture();
    let key = std::fs::read_dir(f.r.path.join("keys"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let orig = std::fs::read(&key).unwrap();
    flip(&key, orig.len() - 5);
    assert_eq!(
        f.r.try_open().err().unwrap().kind(),
        ErrorKind::WrongPassword
    );
    std::fs::write(&key, &orig).unwrap();
    let config = f.r.path.join("config");
    let len = std::fs::metadata(&config).unwrap().len() as usize;
    flip(&config, len - 3);
    assert_eq!(f.r.try_open().err().unwrap().kind(), ErrorKind::Corrupt);
}

#[test]
fn every_single_bit_flip_in_a_small_pack_is_detected() {
    // Exhaustive over one byte-position sample of every region; reads must never return
    // wrong bytes and never panic.
    let f = fixture();
    let pack = pack_of(&f, f.a);
    let orig = std::fs::read(&pack).unwrap();
    let mut rng_state = 12345u64;
    for _ in 0..100 {
        rng_state = rng_state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let off = (rng_state >> 33) as usize % orig.len();
        let mut b = orig.clone();
        b[off] ^= 1 << ((rng_state >> 20) % 8);
        std::fs::write(&pack, &b).unwrap();
        let repo = f.r.open();
        match dump(&repo, f.a, "a") {
            Ok(data) => assert_eq!(data, f.data_a, "flip at {off} returned wrong bytes"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::Corrupt, "flip at {off}: {e}"),
        }
        let report = masclet_engine::check(
            &repo,
            masclet_engine::CheckOptions::new(true),
            &masclet_engine::NoProgress,
        )
        .unwrap();
        assert!(!report.ok(), "flip at {off} not found by check --read-data");
    }
    std::fs::write(&pack, &orig).unwrap();
    let _ = pack_paths(&f.r);
}
