//! Regenerate the golden vectors and the `repo-v1` fixture in `tests/fixtures/`.
//!
//! `cargo run -p masclet-tools --bin gen-vectors -- tests/fixtures`
//!
//! Run it only for a deliberate format change (with a version bump in format-spec.md): the
//! tests compare today's code against these files, so regenerating them hides a format break.

use anyhow::{Context, Result};
use masclet_engine::disk::crypto::{Keys, MasterKey, aad};
use masclet_engine::disk::format::ObjectType;
use masclet_engine::disk::keys::{KdfParams, KeySlot};
use masclet_engine::{
    ChunkerParams, KeyId, RepoId, disk::chunker::chunk_lengths, disk::id::to_hex,
};
use masclet_tests::{fixture_tree, golden_bytes};
use std::path::PathBuf;

/// Master key, repository id and passphrase of every vector.
pub const MASTER: [u8; 32] = [0x42; 32];
const REPO: [u8; 32] = [0x17; 32];

fn main() -> Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).context("usage: gen-vectors DIR")?);
    let vectors = out.join("vectors");
    std::fs::create_dir_all(&vectors)?;
    let keys = Keys::derive(&MasterKey::from_bytes(MASTER), RepoId(REPO));

    let input = golden_bytes(4 << 20, 2026);
    let mut chunker = serde_json::Map::new();
    chunker.insert("input".into(), serde_json::json!({"generator": "golden_bytes", "len": input.len(), "seed": 2026, "blake3": blake3::hash(&input).to_hex().to_string()}));
    for (name, params, seed) in [
        ("default_seed0", ChunkerParams::DEFAULT, 0u64),
        ("default_keyed", ChunkerParams::DEFAULT, keys.chunker_seed()),
        (
            "avg16k_seed0",
            ChunkerParams {
                min_size: 4096,
                avg_size: 16384,
                max_size: 131_072,
                normalization: 1,
            },
            0,
        ),
    ] {
        chunker.insert(name.into(), serde_json::json!({"params": params, "seed": seed, "lengths": chunk_lengths(&input, params, seed)}));
    }
    std::fs::write(
        vectors.join("chunker.json"),
        serde_json::to_string_pretty(&chunker)? + "\n",
    )?;

    let mut ids = vec![];
    for len in [0usize, 1, 1023, 1024, 2048, 8192, 65_536, 65_537] {
        let data = golden_bytes(len, len as u64);
        ids.push(
            serde_json::json!({"len": len, "seed": len, "chunk_id": keys.chunk_id(&data).to_hex()}),
        );
    }
    let plain = b"masclet golden envelope".to_vec();
    let id = keys.chunk_id(&plain);
    let sealed_raw = keys.seal(ObjectType::Data, &id.0, &plain, None);
    let big = golden_bytes(0, 0)
        .into_iter()
        .chain(std::iter::repeat_n(b'a', 5000))
        .collect::<Vec<u8>>();
    let big_id = keys.chunk_id(&big);
    let sealed_zstd = keys.seal(ObjectType::Data, &big_id.0, &big, Some(3));
    let delta_base = golden_bytes(8000, 11);
    let delta_base_id = keys.chunk_id(&delta_base);
    let mut delta_plain = delta_base.clone();
    delta_plain[4000..4007].copy_from_slice(b"masclet");
    let delta_id = keys.chunk_id(&delta_plain);
    let sealed_delta = keys
        .seal_delta(
            ObjectType::Data,
            &delta_id,
            &delta_plain,
            &delta_base_id,
            &delta_base,
            3,
        )
        .context("delta")?;
    let crypto = serde_json::json!({
        "master_key": to_hex(&MASTER),
        "repo_id": to_hex(&REPO),
        "chunker_seed": keys.chunker_seed(),
        "chunk_ids": ids,
        "aad_data_chunk": to_hex(&aad(RepoId(REPO), ObjectType::Data, &id.0, [1, 0])),
        "envelope_raw": {"plaintext": to_hex(&plain), "id": id.to_hex(), "sealed": to_hex(&sealed_raw)},
        "envelope_zstd": {"plaintext_repeat_a": big.len(), "id": big_id.to_hex(), "sealed": to_hex(&sealed_zstd)},
        "envelope_delta": {
            "base_seed": 11, "base_len": 8000, "changed_at": 4000, "change": "masclet",
            "base_id": delta_base_id.to_hex(), "id": delta_id.to_hex(), "sealed": to_hex(&sealed_delta),
        },
    });
    std::fs::write(
        vectors.join("crypto.json"),
        serde_json::to_string_pretty(&crypto)? + "\n",
    )?;

    let key_id = KeyId([0x33; 32]);
    let slot = KeySlot::create(
        &MasterKey::from_bytes(MASTER),
        b"golden passphrase",
        KdfParams::FAST_INSECURE,
        RepoId(REPO),
        key_id,
    )?;
    let keyslot = serde_json::json!({"key_id": key_id.to_hex(), "repo_id": to_hex(&REPO), "passphrase": "golden passphrase", "slot": to_hex(&slot.encode())});
    std::fs::write(
        vectors.join("keyslot.json"),
        serde_json::to_string_pretty(&keyslot)? + "\n",
    )?;

    // A whole repository of the current format, made through the real pipeline.
    let repo_dir = out.join(format!(
        "repo-v{}",
        masclet_engine::disk::format::FORMAT_VERSION
    ));
    let _ = std::fs::remove_dir_all(&repo_dir);
    let src_root = tempdir()?;
    let src = src_root.join("font");
    fixture_tree(&src)?;
    let storage = masclet_engine::LocalStorage::create(&repo_dir)?;
    let index = storage.index_path();
    masclet_engine::init(
        &storage,
        &index,
        b"golden passphrase",
        masclet_engine::RepoConfig::new_default(),
        KdfParams::FAST_INSECURE,
    )?;
    let opts =
        masclet_engine::OpenOptions::new("gen-vectors", Some(masclet_engine::LockMode::Exclusive));
    let mut repo = masclet_engine::Repo::open(
        std::sync::Arc::new(storage),
        &index,
        b"golden passphrase",
        &opts,
    )?;
    let time =
        chrono::DateTime::parse_from_rfc3339("2025-03-11T07:45:00Z")?.with_timezone(&chrono::Utc);
    masclet_engine::backup(
        &mut repo,
        masclet_engine::Source::Paths(vec![src.clone()]),
        &masclet_engine::BackupOptions::new(vec!["daily".into()], Some(time)),
        &masclet_engine::NoProgress,
    )?;
    let dump = golden_bytes(300_000, 7);
    let stream = masclet_engine::Source::Stream {
        name: b"masclet_imperi.sql".to_vec(),
        reader: Box::new(std::io::Cursor::new(dump)),
    };
    masclet_engine::backup(
        &mut repo,
        stream,
        &masclet_engine::BackupOptions::new(
            vec!["weekly".into()],
            Some(time + chrono::Duration::days(1)),
        ),
        &masclet_engine::NoProgress,
    )?;
    // Nights later, a few rows changed each night: the changed chunks are stored as deltas
    // (format 2), whose bases are themselves deltas (format 3).
    let mut model = masclet_tests::DumpModel::new(2000, 3);
    let mut nights = vec![model.render()];
    for _ in 0..3 {
        model.night(0.01);
        nights.push(model.render());
    }
    for (i, night) in nights.iter().enumerate() {
        let stream = masclet_engine::Source::Stream {
            name: b"dump.sql".to_vec(),
            reader: Box::new(std::io::Cursor::new(night.clone())),
        };
        let t = time + chrono::Duration::days(2 + i as i64);
        let opts = masclet_engine::BackupOptions::new(vec!["daily".into()], Some(t));
        masclet_engine::backup(&mut repo, stream, &opts, &masclet_engine::NoProgress)?;
    }
    drop(repo);
    std::fs::remove_dir_all(&src_root)?;
    for sub in ["tmp", "locks"] {
        std::fs::write(repo_dir.join(sub).join(".keep"), b"")?;
    }
    println!("wrote {}", out.display());
    Ok(())
}

fn tempdir() -> Result<PathBuf> {
    let p = std::env::temp_dir().join(format!("masclet-gen-{}", std::process::id()));
    std::fs::create_dir_all(&p)?;
    Ok(p)
}
