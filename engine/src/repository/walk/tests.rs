use super::*;
use crate::disk::chunker::{ChunkerParams, Cutter};
use crate::disk::tree::TreeWriter;
use crate::error::ErrorKind;
use crate::{
    BackupOptions, KdfParams, LocalStorage, LockMode, NoProgress, OpenOptions, RepoConfig, Source,
    backup, init,
};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// Deterministic bytes that do not compress (so a file spans several chunks).
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

/// A repository in `dir` holding one snapshot of a known directory `src`.
fn known_snapshot(dir: &Path) -> (Repo, Snapshot) {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("a/big"), noise(3 << 20, 7)).unwrap();
    std::fs::write(src.join("a/x"), b"hello").unwrap();
    std::os::unix::fs::symlink("x", src.join("a/l")).unwrap();
    std::fs::write(src.join("e"), b"").unwrap();
    let storage = LocalStorage::create(&dir.join("repo")).unwrap();
    let index = storage.index_path();
    let config = RepoConfig::new_default();
    init(&storage, &index, b"pw", config, KdfParams::FAST_INSECURE).unwrap();
    let opts = OpenOptions::new("test", Some(LockMode::Shared));
    let mut repo = Repo::open(Arc::new(storage), &index, b"pw", &opts).unwrap();
    let source = Source::Paths(vec![src]);
    backup(&mut repo, source, &BackupOptions::default(), &NoProgress).unwrap();
    let (mut snaps, _) = repo.snapshots().unwrap();
    let snap = snaps.pop().unwrap().1;
    (repo, snap)
}

/// What a file entry says: path, chunks, size.
fn files(entries: &[Entry]) -> Vec<(Vec<u8>, Vec<ChunkRef>, u64)> {
    let mut out: Vec<(Vec<u8>, Vec<ChunkRef>, u64)> = Vec::new();
    for e in entries {
        if let Entry::File(p) = e {
            if p.first {
                out.push((p.meta.path.clone(), Vec::new(), 0));
            }
            let last = out.last_mut().unwrap();
            assert_eq!(last.0, p.meta.path, "parts of one file are consecutive");
            last.1.extend_from_slice(&p.chunks);
            if let Some(end) = p.end {
                last.2 = end.size;
            }
        }
    }
    out
}

#[test]
fn walk_yields_the_files_and_chunks_of_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, snap) = known_snapshot(dir.path());
    let entries: Vec<Entry> = repo.walk(&snap).collect::<Result<_>>().unwrap();
    let kinds: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|e| match e {
            Entry::Dir(m) => ("dir", m.path.as_slice()),
            Entry::Symlink(m, _) => ("symlink", m.path.as_slice()),
            Entry::File(p) => ("file", p.meta.path.as_slice()),
        })
        .collect();
    let expected: Vec<(&str, &[u8])> = vec![
        ("dir", b"src"),
        ("dir", b"src/a"),
        ("file", b"src/a/big"),
        ("symlink", b"src/a/l"),
        ("file", b"src/a/x"),
        ("file", b"src/e"),
    ];
    assert_eq!(kinds, expected);
    assert!(
        matches!(&entries[3], Entry::Symlink(_, t) if t == b"x"),
        "{:?}",
        entries[3]
    );
    let files = files(&entries);
    let src = dir.path().join("src");
    for (path, chunks, size) in &files {
        let name = std::str::from_utf8(&path[4..]).unwrap();
        let want = std::fs::read(src.join(name)).unwrap();
        assert_eq!(*size, want.len() as u64, "{name}");
        let ids: Vec<ChunkId> = chunks.iter().map(|c| c.id).collect();
        let data = repo.load_chunks(&ids, ObjectType::Data).unwrap();
        for (c, d) in chunks.iter().zip(&data) {
            assert_eq!(c.len as usize, d.len());
        }
        assert_eq!(data.concat(), want, "{name}");
    }
    assert!(files[0].1.len() > 3, "the big file spans several chunks");
    assert!(files[2].1.is_empty(), "an empty file has no chunks");

    // Small parts give the same files, the first part marked and only the last ended.
    let walk = TreeWalk::with_part_chunks(
        tree_ids(&snap),
        |id| repo.load_chunk(id, ObjectType::Tree),
        2,
    );
    let parts: Vec<Entry> = walk.collect::<Result<_>>().unwrap();
    assert!(parts.len() > entries.len());
    assert_eq!(self::files(&parts), files);
    // The flat helper gives every file chunk in order.
    let flat: Vec<ChunkRef> = repo.file_chunks(&snap).collect::<Result<_>>().unwrap();
    let all: Vec<ChunkRef> = files.iter().flat_map(|f| f.1.clone()).collect();
    assert_eq!(flat, all);
}

#[test]
fn a_damaged_tree_chunk_is_a_corrupt_item() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, snap) = known_snapshot(dir.path());
    let (tree_id, _) = snap.tree[0];
    let loc = repo.index().locate(&tree_id).unwrap().unwrap();
    let hex = loc.pack.to_hex();
    let pack = dir.path().join("repo/packs").join(&hex[..2]).join(&hex);
    let f = std::fs::OpenOptions::new().write(true).open(pack).unwrap();
    f.write_all_at(
        b"\xff\xff\xff\xff",
        loc.offset + u64::from(loc.sealed_len) / 2,
    )
    .unwrap();
    let mut walk = repo.walk(&snap);
    let e = walk.next().unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(walk.next().is_none(), "the walk stops at its error");
    let mut chunks = repo.file_chunks(&snap);
    assert_eq!(
        chunks.next().unwrap().unwrap_err().kind(),
        ErrorKind::Corrupt
    );
    assert!(chunks.next().is_none());
}

#[test]
fn chunks_read_before_an_error_come_before_it() {
    let meta = EntryMeta {
        path: b"f".to_vec(),
        mode: 0o644,
        mtime: 0,
        mtime_nsec: 0,
    };
    let params = ChunkerParams {
        min_size: 256,
        avg_size: 1024,
        max_size: 4096,
        normalization: 1,
    };
    let mut w = TreeWriter::new(Cutter::new(params, 1), 512);
    let mut stored = Vec::new();
    let mut push = |r: &Record| stored.extend(w.push(r));
    push(&Record::FileStart(meta));
    // More than the reader buffers ahead (`MAX_RECORD_LEN`), so records are handed out
    // before the last tree chunk is fetched.
    for i in 0..8000u32 {
        push(&Record::FileChunk(ChunkId([(i % 251) as u8; 32]), 1));
    }
    push(&Record::FileEnd {
        size: 8000,
        content_hash: [0; 32],
    });
    stored.extend(w.finish());
    let chunks: Vec<Vec<u8>> = stored
        .iter()
        .flat_map(|b| b.chunks.iter().map(|r| b.data[r.clone()].to_vec()))
        .collect();
    assert!(chunks.len() > 2);
    let ids: Vec<ChunkId> = (0..chunks.len())
        .map(|i| {
            let mut id = [0; 32];
            id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            ChunkId(id)
        })
        .collect();
    // The last tree chunk cannot be read.
    let last = *ids.last().unwrap();
    let fetch = |id: &ChunkId| {
        if *id == last {
            Err(Error::corrupt("damaged tree chunk"))
        } else {
            let i = u64::from_le_bytes(id.0[..8].try_into().unwrap());
            Ok(chunks[usize::try_from(i).unwrap()].clone())
        }
    };
    let items: Vec<Result<Entry>> = TreeWalk::new(ids, fetch).collect();
    let (last, parts) = items.split_last().unwrap();
    assert_eq!(last.as_ref().unwrap_err().kind(), ErrorKind::Corrupt);
    let mut read = 0;
    for (i, item) in parts.iter().enumerate() {
        let Ok(Entry::File(part)) = item else {
            panic!("parts of the file, then the error: {item:?}");
        };
        assert_eq!(part.first, i == 0);
        assert!(part.end.is_none() && !part.chunks.is_empty());
        read += part.chunks.len();
    }
    assert!(read > PART_CHUNKS && read < 8000, "{read}");
}
