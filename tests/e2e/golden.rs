//! The format is locked: chunk cut points of a fixed input, keyed ids, the envelope
//! and key-slot layouts, and whole repositories written by formats 1, 2 and 3 must keep
//! opening, checking and restoring. Vectors live in `tests/fixtures/`, made by
//! `cargo run -p masclet-tools --bin gen-vectors -- tests/fixtures` from the same inputs
//! (`masclet_tests::golden_bytes`, `masclet_tests::fixture_tree`).

use masclet_engine::disk::crypto::{Keys, MasterKey, aad};
use masclet_engine::disk::format::ObjectType;
use masclet_engine::disk::id::to_hex;
use masclet_engine::disk::keys::KeySlot;
use masclet_engine::{
    ChunkId, ChunkerParams, ErrorKind, KeyId, RepoId, disk::chunker::chunk_lengths,
};
use masclet_tests::golden_bytes;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn load(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixtures().join("vectors").join(name)).unwrap()).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn keys() -> Keys {
    Keys::derive(&MasterKey::from_bytes([0x42; 32]), RepoId([0x17; 32]))
}

#[test]
fn chunker_cut_points_are_fixed() {
    let v = load("chunker.json");
    let input = golden_bytes(
        v["input"]["len"].as_u64().unwrap() as usize,
        v["input"]["seed"].as_u64().unwrap(),
    );
    assert_eq!(
        blake3::hash(&input).to_hex().as_str(),
        v["input"]["blake3"].as_str().unwrap(),
        "input generator changed"
    );
    for name in ["default_seed0", "default_keyed", "avg16k_seed0"] {
        let p = &v[name]["params"];
        let params = ChunkerParams {
            min_size: p["min_size"].as_u64().unwrap() as u32,
            avg_size: p["avg_size"].as_u64().unwrap() as u32,
            max_size: p["max_size"].as_u64().unwrap() as u32,
            normalization: p["normalization"].as_u64().unwrap() as u8,
        };
        let expect: Vec<usize> = v[name]["lengths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(
            chunk_lengths(&input, params, v[name]["seed"].as_u64().unwrap()),
            expect,
            "{name}"
        );
    }
    assert_eq!(
        v["default_keyed"]["seed"].as_u64().unwrap(),
        keys().chunker_seed()
    );
}

#[test]
fn keyed_ids_aad_and_envelopes_are_fixed() {
    let v = load("crypto.json");
    let k = keys();
    for c in v["chunk_ids"].as_array().unwrap() {
        let data = golden_bytes(
            c["len"].as_u64().unwrap() as usize,
            c["seed"].as_u64().unwrap(),
        );
        assert_eq!(k.chunk_id(&data).to_hex(), c["chunk_id"].as_str().unwrap());
    }
    let plain = unhex(v["envelope_raw"]["plaintext"].as_str().unwrap());
    let id = ChunkId::from_hex(v["envelope_raw"]["id"].as_str().unwrap()).unwrap();
    assert_eq!(
        to_hex(&aad(RepoId([0x17; 32]), ObjectType::Data, &id.0, [1, 0])),
        v["aad_data_chunk"].as_str().unwrap()
    );
    let sealed = unhex(v["envelope_raw"]["sealed"].as_str().unwrap());
    assert_eq!(sealed.len(), 26 + plain.len() + 16, "envelope layout");
    assert_eq!(&sealed[..2], &[1, 0]);
    assert_eq!(
        k.open_chunk(ObjectType::Data, &id, &sealed, 1 << 20)
            .unwrap(),
        plain
    );
    let zid = ChunkId::from_hex(v["envelope_zstd"]["id"].as_str().unwrap()).unwrap();
    let zsealed = unhex(v["envelope_zstd"]["sealed"].as_str().unwrap());
    assert_eq!(zsealed[1], 1, "zstd compression byte");
    let n = v["envelope_zstd"]["plaintext_repeat_a"].as_u64().unwrap() as usize;
    assert_eq!(
        k.open_chunk(ObjectType::Data, &zid, &zsealed, 1 << 20)
            .unwrap(),
        vec![b'a'; n]
    );
    // Format 2: a delta envelope names its base and decodes only against it.
    let d = &v["envelope_delta"];
    let base = golden_bytes(8000, 11);
    let base_id = ChunkId::from_hex(d["base_id"].as_str().unwrap()).unwrap();
    assert_eq!(k.chunk_id(&base), base_id);
    let mut plain = base.clone();
    plain[4000..4007].copy_from_slice(b"masclet");
    let id = ChunkId::from_hex(d["id"].as_str().unwrap()).unwrap();
    let sealed = unhex(d["sealed"].as_str().unwrap());
    assert_eq!(sealed[1], 2, "delta compression byte");
    assert!(
        sealed.len() < 26 + 32 + 100 + 16,
        "a 7-byte change costs little: {}",
        sealed.len()
    );
    let resolve = |b: &ChunkId| -> masclet_engine::Result<Vec<u8>> {
        assert_eq!(*b, base_id);
        Ok(base.clone())
    };
    assert_eq!(
        k.open_chunk_with(ObjectType::Data, &id, &sealed, 1 << 20, Some(&resolve))
            .unwrap(),
        plain
    );
    assert!(
        k.open_chunk(ObjectType::Data, &id, &sealed, 1 << 20)
            .is_err(),
        "a delta needs its base"
    );
}

#[test]
fn key_slot_layout_is_fixed() {
    let v = load("keyslot.json");
    let bytes = unhex(v["slot"].as_str().unwrap());
    assert_eq!(&bytes[..8], b"MASCLKEY");
    assert_eq!(bytes.len(), 41 + 26 + 32 + 16);
    let slot = KeySlot::decode(&bytes).unwrap();
    let key_id = KeyId::from_hex(v["key_id"].as_str().unwrap()).unwrap();
    let repo = RepoId([0x17; 32]);
    let master = slot
        .unlock(v["passphrase"].as_str().unwrap().as_bytes(), repo, key_id)
        .unwrap();
    let derived = Keys::derive(&master, repo);
    assert_eq!(derived.chunk_id(b"x"), keys().chunk_id(b"x"));
    assert_eq!(
        slot.unlock(b"wrong", repo, key_id).err().unwrap().kind(),
        ErrorKind::WrongPassword
    );
}

fn open_fixture(name: &str, dir: &Path) -> masclet_engine::Repo {
    let repo_dir = dir.join("repo");
    masclet_tests::copy_tree(&fixtures().join(name), &repo_dir);
    let storage = std::sync::Arc::new(masclet_engine::LocalStorage::open(&repo_dir).unwrap());
    let index = storage.index_path();
    let opts = masclet_engine::OpenOptions::new("test", Some(masclet_engine::LockMode::Shared));
    match masclet_engine::Repo::open(storage.clone(), &index, b"golden passphrase", &opts) {
        Ok(repo) => repo,
        // An index of an older schema is rebuilt from the packs, as `repair index` does.
        Err(e) if e.kind() == ErrorKind::IndexUnavailable => {
            masclet_engine::repair_index(
                storage.clone(),
                &index,
                b"golden passphrase",
                &opts,
                &masclet_engine::NoProgress,
            )
            .unwrap();
            masclet_engine::Repo::open(storage, &index, b"golden passphrase", &opts).unwrap()
        }
        Err(e) => panic!("{e}"),
    }
}

/// Both fixtures hold the same first two snapshots; format 2 adds two nights of a dump.
fn check_fixture(name: &str) -> (tempfile::TempDir, masclet_engine::Repo) {
    let dir = tempfile::tempdir().unwrap();
    let repo = open_fixture(name, dir.path());
    assert!(masclet_tests::check_ok(&repo, true), "{name}");
    let (snaps, bad) = repo.snapshots().unwrap();
    assert!(bad.is_empty());
    assert_eq!(snaps[0].1.tags, vec!["daily"]);
    assert_eq!(snaps[0].1.time.to_rfc3339(), "2025-03-11T07:45:00+00:00");
    let out = dir.path().join("out");
    masclet_engine::restore(
        &repo,
        &snaps[0].1,
        &out,
        &masclet_engine::RestoreOptions::default(),
        &masclet_engine::NoProgress,
    )
    .unwrap();
    let expect = dir.path().join("expect");
    masclet_tests::fixture_tree(&expect.join("font")).unwrap();
    let (mut got, mut want) = (masclet_tests::digest(&out), masclet_tests::digest(&expect));
    // The symlink's own mtime is when the fixture was made; compare everything else.
    for d in [&mut got, &mut want] {
        for p in [b"font/enllac".as_slice(), b"font".as_slice()] {
            if let Some(e) = d.get_mut(p) {
                e.2 = 0;
            }
        }
    }
    assert_eq!(got, want, "{name}");
    let mut dump = Vec::new();
    masclet_engine::dump(&repo, &snaps[1].1, b"masclet_imperi.sql", &mut dump).unwrap();
    assert_eq!(dump, golden_bytes(300_000, 7));
    (dir, repo)
}

#[test]
fn repository_v1_fixture_opens_checks_and_restores_read_only() {
    let (_dir, mut repo) = check_fixture("repo-v1");
    let err = masclet_tests::backup_bytes(&mut repo, "x", b"new data").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(
        err.to_string().contains("reads but no longer writes"),
        "{err}"
    );
}

#[test]
fn repository_v2_fixture_opens_checks_and_restores_deltas() {
    let (_dir, repo) = check_fixture("repo-v2");
    let (snaps, _) = repo.snapshots().unwrap();
    assert_eq!(snaps.len(), 4);
    let mut model = masclet_tests::DumpModel::new(2000, 3);
    let night0 = model.render();
    model.night(0.01);
    for (snap, want) in [(&snaps[2].1, night0), (&snaps[3].1, model.render())] {
        let mut got = Vec::new();
        masclet_engine::dump(&repo, snap, b"dump.sql", &mut got).unwrap();
        assert_eq!(got, want);
    }
    // The second night's changed chunks are deltas: the format-2 path is exercised.
    let mut reader = repo.tree_reader(&snaps[3].1);
    let mut deltas = 0;
    while let Some(r) = reader.next_record().unwrap() {
        if let masclet_engine::disk::tree::Record::FileChunk(id, _) = r {
            deltas += usize::from(repo.index().locate(&id).unwrap().unwrap().base.is_some());
        }
    }
    assert!(deltas > 0, "no delta chunk in the fixture");
}

#[test]
fn repository_v2_fixture_is_read_only() {
    let (_dir, mut repo) = check_fixture("repo-v2");
    let err = masclet_tests::backup_bytes(&mut repo, "x", b"new data").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
}

#[test]
fn repository_v3_fixture_restores_through_delta_chains() {
    let (_dir, repo) = check_fixture("repo-v3");
    let (snaps, _) = repo.snapshots().unwrap();
    assert_eq!(snaps.len(), 6);
    let mut model = masclet_tests::DumpModel::new(2000, 3);
    let mut want = vec![model.render()];
    for _ in 0..3 {
        model.night(0.01);
        want.push(model.render());
    }
    for (snap, want) in snaps[2..].iter().zip(want) {
        let mut got = Vec::new();
        masclet_engine::dump(&repo, &snap.1, b"dump.sql", &mut got).unwrap();
        assert_eq!(got, want);
    }
    // The last night's changed chunks are deltas whose bases are deltas too.
    let mut reader = repo.tree_reader(&snaps[5].1);
    let mut longest = 0;
    while let Some(r) = reader.next_record().unwrap() {
        if let masclet_engine::disk::tree::Record::FileChunk(id, _) = r {
            let mut links = 0;
            let mut cur = repo.index().locate(&id).unwrap().unwrap();
            while let Some(b) = cur.base {
                links += 1;
                cur = repo.index().locate(&b).unwrap().unwrap();
            }
            longest = longest.max(links);
        }
    }
    assert!(
        longest >= 2,
        "no delta chain in the fixture (longest {longest})"
    );
}

#[test]
fn unknown_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    masclet_tests::copy_tree(&fixtures().join("repo-v2"), &repo_dir);
    let config = repo_dir.join("config");
    let mut b = std::fs::read(&config).unwrap();
    b[8] = 9;
    std::fs::write(&config, b).unwrap();
    let err = masclet_engine::unlock(
        &masclet_engine::LocalStorage::open(&repo_dir).unwrap(),
        b"golden passphrase",
    )
    .err()
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(
        err.to_string()
            .contains("repository format v9 not supported"),
        "{err}"
    );
}
