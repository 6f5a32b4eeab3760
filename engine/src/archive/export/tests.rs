use super::*;
use crate::disk::chunker::ChunkerParams;
use crate::{
    BackupOptions, KdfParams, LocalStorage, LockMode, NoProgress, OpenOptions, RepoConfig, Source,
    backup, init,
};
use std::io::Read;
use std::sync::Arc;

fn noise(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed.to_le_bytes()[0]
        })
        .collect()
}

/// A repository with the smallest chunks the format allows, holding one snapshot of a
/// tree whose big file is more chunks than a walk hands out in one part.
fn repo_with_long_file(dir: &Path) -> (Repo, SnapshotId, Snapshot, Vec<u8>) {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    let big = noise(6 << 20, 5);
    std::fs::write(src.join("d/big"), &big).unwrap();
    std::fs::write(src.join("small"), b"hola\n").unwrap();
    std::os::unix::fs::symlink("small", src.join("link")).unwrap();
    let storage = LocalStorage::create(&dir.join("repo")).unwrap();
    let index = storage.index_path();
    let mut config = RepoConfig::new_default();
    config.chunker = ChunkerParams {
        min_size: 256,
        avg_size: 1024,
        max_size: 4096,
        normalization: 1,
    };
    init(&storage, &index, b"pw", config, KdfParams::FAST_INSECURE).unwrap();
    let opts = OpenOptions::new("test", Some(LockMode::Shared));
    let mut repo = Repo::open(Arc::new(storage), &index, b"pw", &opts).unwrap();
    backup(
        &mut repo,
        Source::Paths(vec![src]),
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let (mut snaps, _) = repo.snapshots().unwrap();
    let (id, snap) = snaps.pop().unwrap();
    (repo, id, snap, big)
}

#[test]
fn a_file_of_several_walk_parts_exports_whole_and_identically_on_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, id, snap, big) = repo_with_long_file(dir.path());
    let parts = repo
        .walk(&snap)
        .filter(|e| matches!(e, Ok(Entry::File(p)) if p.meta.path == b"src/d/big"))
        .count();
    assert!(parts > 1, "the file comes in {parts} part(s)");
    let mut bytes = Vec::new();
    for threads in [1, 3] {
        let root = dir.path().join(format!("t{threads}"));
        let e = export(
            &repo,
            id,
            &snap,
            &root,
            Tier::Daily,
            &ExportOptions::with_threads(threads),
            &NoProgress,
        )
        .unwrap();
        assert!(!e.already);
        bytes.push(std::fs::read(&e.path).unwrap());
    }
    assert!(bytes[0] == bytes[1], "thread counts give other bytes");
    // Read back: the long file whole, the manifest last with its SHA-256.
    let gz = flate2::read::GzDecoder::new(&bytes[0][..]);
    let mut archive = tar::Archive::new(gz);
    let mut seen = Vec::new();
    let mut manifest = None;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path_bytes().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if path == b"src/d/big" {
            assert!(data == big, "the long file's content");
        }
        if path == ARCHIVE_MANIFEST.as_bytes() {
            manifest = Some(ArchiveManifest::parse(&data).unwrap());
        }
        seen.push(path);
    }
    assert_eq!(seen.last().unwrap(), ARCHIVE_MANIFEST.as_bytes());
    let m = manifest.unwrap();
    assert_eq!(m.snapshot, id.to_hex());
    let member = m
        .members
        .iter()
        .find(|x| x.path.as_deref() == Some("src/d/big"))
        .unwrap();
    let sha: [u8; 32] = Sha256::digest(&big).into();
    assert_eq!(member.sha256, Some(crate::disk::id::to_hex(&sha)));
    assert_eq!(member.size, big.len() as u64);
}

#[test]
fn a_damaged_chunk_is_corrupt_and_leaves_the_tier_folder_empty() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, id, snap, _) = repo_with_long_file(dir.path());
    // Flip a byte in the middle of every pack: some chunk of the big file fails.
    let packs = dir.path().join("repo/packs");
    for d in std::fs::read_dir(&packs).unwrap() {
        for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            let mut b = std::fs::read(&p).unwrap();
            let mid = b.len() / 2;
            b[mid] ^= 0x20;
            std::fs::write(&p, b).unwrap();
        }
    }
    let root = dir.path().join("classic");
    let e = export(
        &repo,
        id,
        &snap,
        &root,
        Tier::Weekly,
        &ExportOptions::default(),
        &NoProgress,
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    let left: Vec<_> = std::fs::read_dir(root.join("weekly")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}
