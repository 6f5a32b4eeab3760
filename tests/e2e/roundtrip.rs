//! Backups restore byte-identical, with modes, times, links and odd names; boundary sizes
//! round-trip; unchanged data deduplicates; a 1% nightly change adds a small fraction.

use masclet_engine::{BackupOptions, ChunkerParams, NoProgress, Repo, Source};
use masclet_tests::*;
use proptest::prelude::*;

#[test]
fn files_restore_identically() {
    let r = LocalRepo::new();
    let src = r.scratch("src");
    sample_tree(&src);
    let mut repo = r.open();
    let id = backup_paths(&mut repo, &[&src]).unwrap();
    let out = r.scratch("out");
    restore(&repo, id, &out).unwrap();
    assert_eq!(digest(&out.join("src")), digest(&src));
    assert!(check_ok(&repo, true));
    // Restoring again over the first restore replaces files and gives the same tree.
    restore(&repo, id, &out).unwrap();
    assert_eq!(digest(&out.join("src")), digest(&src));
    let leftovers: Vec<_> = walk_names(&out)
        .into_iter()
        .filter(|n| n.contains(".masclet-restore-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk_names(root: &std::path::Path) -> Vec<String> {
    digest(root)
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect()
}

#[test]
fn boundary_sizes_round_trip() {
    let r = LocalRepo::new();
    let p = ChunkerParams::DEFAULT;
    let (min, avg, max) = (
        p.min_size as usize,
        p.avg_size as usize,
        p.max_size as usize,
    );
    let mut repo = r.open();
    for (i, size) in [
        0,
        1,
        min - 1,
        min,
        min + 1,
        avg,
        max - 1,
        max,
        max + 1,
        3 * max + 7,
    ]
    .into_iter()
    .enumerate()
    {
        let data = noise(size, i as u64);
        // An empty stream is refused unless asked for (a failed producer gives one).
        let src = Source::Stream {
            name: b"s".to_vec(),
            reader: Box::new(std::io::Cursor::new(data.clone())),
        };
        let opts = BackupOptions::default().allow_empty(size == 0);
        let id = masclet_engine::backup(&mut repo, src, &opts, &NoProgress)
            .unwrap()
            .snapshot;
        assert_eq!(dump(&repo, id, "s").unwrap(), data, "size {size}");
    }
    assert!(check_ok(&repo, true));
}

#[test]
fn zeros_collapse_to_few_chunks() {
    let r = LocalRepo::new();
    let mut repo = r.open();
    let zeros = vec![0u8; 64 << 20];
    let id = backup_bytes(&mut repo, "zeros", &zeros).unwrap();
    let snap = masclet_engine::Snapshot::load(repo.storage(), repo.keys(), id).unwrap();
    // A handful of distinct data chunks whatever the chunker seed: most seeds cut zeros at
    // the maximum size, but a seed whose gear hash of a zero run meets the mask cuts them at
    // the minimum, 125 k references to one 512-byte chunk (then the tree, not the data,
    // takes a few more new chunks). Either way next to nothing is stored.
    let max = u64::from(repo.config().chunker.max_size);
    assert!(snap.stats.new_raw_bytes <= 4 * max, "{:?}", snap.stats);
    assert!(snap.stats.bytes_added < 100_000, "{:?}", snap.stats);
    assert_eq!(dump(&repo, id, "zeros").unwrap(), zeros);
}

#[test]
fn nightly_change_adds_a_small_fraction() {
    let r = LocalRepo::new();
    let mut repo = r.open();
    let mut model = dump_model();
    let night0 = model.render();
    let a = backup_bytes(&mut repo, "dump.sql", &night0).unwrap();
    model.night(0.01);
    let night1 = model.render();
    let b = backup_bytes(&mut repo, "dump.sql", &night1).unwrap();
    let first = masclet_engine::Snapshot::load(repo.storage(), repo.keys(), a)
        .unwrap()
        .stats;
    let second = masclet_engine::Snapshot::load(repo.storage(), repo.keys(), b)
        .unwrap()
        .stats;
    assert!(
        second.bytes_added * 4 < first.bytes_added,
        "first {first:?} second {second:?}"
    );
    // An unchanged night adds only the tree.
    let c = backup_bytes(&mut repo, "dump.sql", &night1).unwrap();
    let third = masclet_engine::Snapshot::load(repo.storage(), repo.keys(), c)
        .unwrap()
        .stats;
    assert_eq!(third.new_raw_bytes, 0);
    assert_eq!(dump(&repo, a, "dump.sql").unwrap(), night0);
    assert_eq!(dump(&repo, b, "dump.sql").unwrap(), night1);
}

fn dump_model() -> masclet_tests::DumpModel {
    masclet_tests::DumpModel::new(40_000, 11)
}

#[test]
fn second_backup_of_same_tree_adds_no_data() {
    let r = LocalRepo::new();
    let src = r.scratch("src");
    sample_tree(&src);
    let mut repo = r.open();
    backup_paths(&mut repo, &[&src]).unwrap();
    let id = backup_paths(&mut repo, &[&src]).unwrap();
    let s = masclet_engine::Snapshot::load(repo.storage(), repo.keys(), id).unwrap();
    assert_eq!(s.stats.new_raw_bytes, 0, "{:?}", s.stats);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]
    /// Any byte string (but `/` and NUL) survives as a name, byte for byte.
    #[test]
    fn arbitrary_names_survive(names in proptest::collection::btree_set(
        proptest::collection::vec(any::<u8>().prop_filter("no / or NUL", |b| *b != b'/' && *b != 0), 1..60), 1..12)) {
        use std::os::unix::ffi::OsStrExt;
        let r = LocalRepo::new();
        let src = r.scratch("src");
        let names: Vec<Vec<u8>> = names.into_iter().filter(|n| n != b"." && n != b"..").collect();
        for (i, n) in names.iter().enumerate() {
            std::fs::write(src.join(std::ffi::OsStr::from_bytes(n)), i.to_string()).unwrap();
        }
        let mut repo = r.open();
        let id = backup_paths(&mut repo, &[&src]).unwrap();
        let out = r.scratch("out");
        restore(&repo, id, &out).unwrap();
        prop_assert_eq!(digest(&out.join("src")), digest(&src));
    }
}

/// A file the parent snapshot records with the same modification time, mode and size is
/// listed from the parent without being read; any of those changing makes the backup read
/// it; `force_read` reads everything. Restores are exact either way.
#[test]
fn unchanged_files_are_listed_from_the_parent_without_reading() {
    let r = LocalRepo::new();
    let mut repo = r.open();
    let src = r.scratch("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    let files = ["a.rs", "b.rs", "d/c.rs"];
    for (i, f) in files.iter().enumerate() {
        std::fs::write(src.join(f), noise(20_000 + i * 777, i as u64)).unwrap();
    }
    let run = |repo: &mut Repo, force: bool| {
        let opts = BackupOptions::default().force_read(force);
        masclet_engine::backup(repo, Source::Paths(vec![src.clone()]), &opts, &NoProgress).unwrap()
    };
    let first = run(&mut repo, false);
    assert_eq!(first.unchanged_files, 0);
    let second = run(&mut repo, false);
    assert_eq!(second.unchanged_files, 3, "{second:?}");
    assert_eq!(second.stats.bytes_read, 0, "nothing read");
    // Same size, the modification time set back (`touch -r`, `cp -p`): the inode change
    // time gives it away and the file is read, so the change is kept.
    let b = src.join("b.rs");
    let mtime = std::fs::metadata(&b).unwrap().modified().unwrap();
    let mut changed = std::fs::read(&b).unwrap();
    changed[100] ^= 1;
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&b, &changed).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&b)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let third = run(&mut repo, false);
    assert_eq!(third.unchanged_files, 2);
    assert_eq!(dump(&repo, third.snapshot, "src/b.rs").unwrap(), changed);
    // Forced, everything is read.
    let forced = run(&mut repo, true);
    assert_eq!(forced.unchanged_files, 0);
    assert_eq!(dump(&repo, forced.snapshot, "src/b.rs").unwrap(), changed);
    // A new modification time makes the next backup read the file; b.rs, whose ctime
    // stays past its mtime, is read every time.
    std::fs::write(src.join("a.rs"), b"edited").unwrap();
    let fifth = run(&mut repo, false);
    assert_eq!(fifth.unchanged_files, 1);
    assert_eq!(dump(&repo, fifth.snapshot, "src/a.rs").unwrap(), b"edited");
    let target = r.scratch("out");
    restore(&repo, fifth.snapshot, &target).unwrap();
    assert_eq!(digest(&target.join("src")), digest(&src));
    assert!(check_ok(&repo, true));
}

/// A stream's next batch is planned while the one before it is still being sealed: content
/// repeated a batch later must find the first copy's chunks stored (once), not store them
/// again nor refer to chunks that never reach a pack.
#[test]
fn content_repeated_a_batch_later_is_stored_once() {
    let r = LocalRepo::small_chunks();
    let mut repo = r.open();
    let max = u64::from(repo.config().chunker.max_size);
    for (len, seed) in [(600_000, 41), (900_000, 42), (1_300_000, 43)] {
        let block = noise(len, seed);
        let data = [block.as_slice(), block.as_slice(), block.as_slice()].concat();
        let src = Source::Stream {
            name: format!("r{seed}").into_bytes(),
            reader: Box::new(std::io::Cursor::new(data.clone())),
        };
        let s =
            masclet_engine::backup(&mut repo, src, &BackupOptions::default(), &NoProgress).unwrap();
        // The second and third copies cost only the chunks around where they start and the
        // stream's last chunk.
        assert!(
            s.stats.new_raw_bytes <= len as u64 + 3 * max,
            "{len}: {:?}",
            s.stats
        );
        let out = r.scratch(&format!("out{seed}"));
        restore(&repo, s.snapshot, &out).unwrap();
        assert_eq!(std::fs::read(out.join(format!("r{seed}"))).unwrap(), data);
    }
    assert!(check_ok(&repo, true));
}

/// Small files are sealed while later files are read (one queue for the whole walk), so a
/// file's records wait behind the files before it: the tree must still list every entry in
/// order, a file repeating an earlier one (still being sealed) must refer to its chunks,
/// and a second backup that lists unchanged files from the parent between changed ones
/// must restore the same.
#[test]
fn many_small_files_interleaved_with_dirs_links_and_repeats_restore_identically() {
    let r = LocalRepo::new();
    let src = r.scratch("src");
    let mut unique = 0u64;
    for d in 0..6 {
        let dir = src.join(format!("d{d}"));
        std::fs::create_dir_all(dir.join("inner")).unwrap();
        for f in 0..60u64 {
            let seed = if f % 3 == 2 { f - 2 } else { 1000 * d + f };
            let body = noise(200 + (seed as usize * 997) % 40_000, seed);
            if f % 3 != 2 {
                unique += body.len() as u64;
            }
            std::fs::write(dir.join(format!("f{f:03}")), &body).unwrap();
            if f % 10 == 0 {
                std::os::unix::fs::symlink(format!("f{f:03}"), dir.join(format!("l{f:03}")))
                    .unwrap();
                std::fs::write(dir.join("inner").join(format!("g{f:03}")), b"small").unwrap();
            }
        }
    }
    let mut repo = r.open();
    let src_path = Source::Paths(vec![src.clone()]);
    let s = masclet_engine::backup(&mut repo, src_path, &BackupOptions::default(), &NoProgress)
        .unwrap();
    assert_eq!(s.stats.files, 6 * (60 + 6));
    // Repeats (every third file) and the identical small files cost nothing.
    assert!(s.stats.new_raw_bytes <= unique + 5, "{:?}", s.stats);
    let out = r.scratch("out");
    restore(&repo, s.snapshot, &out).unwrap();
    assert_eq!(digest(&out.join("src")), digest(&src));
    // Change a few files between unchanged ones; the rest is listed from the parent.
    for d in [1, 4] {
        for f in [7u64, 31, 58] {
            std::fs::write(src.join(format!("d{d}/f{f:03}")), noise(5_000, 77 + f)).unwrap();
        }
    }
    let s2 = masclet_engine::backup(
        &mut repo,
        Source::Paths(vec![src.clone()]),
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert!(s2.unchanged_files >= 6 * 66 - 6, "{s2:?}");
    let out2 = r.scratch("out2");
    restore(&repo, s2.snapshot, &out2).unwrap();
    assert_eq!(digest(&out2.join("src")), digest(&src));
    assert!(check_ok(&repo, true));
}

/// The engine refuses an empty stream by default, committing nothing, and past-limit tags
/// before reading anything; the same requests at the limits commit.
#[test]
fn engine_refuses_empty_streams_and_over_limit_tags() {
    let r = LocalRepo::new();
    let mut repo = r.open();
    let err = backup_bytes(&mut repo, "s", b"").unwrap_err();
    assert_eq!(err.kind(), masclet_engine::ErrorKind::InvalidInput, "{err}");
    let tags: Vec<String> = (0..1025).map(|i| format!("t{i}")).collect();
    let src = || Source::Stream {
        name: b"s".to_vec(),
        reader: Box::new(std::io::Cursor::new(b"rows".to_vec())),
    };
    let opts = BackupOptions::new(tags.clone(), None);
    let err = masclet_engine::backup(&mut repo, src(), &opts, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("1026 tags given"), "{err}");
    assert!(repo.snapshots().unwrap().0.is_empty());
    // 1023 tags and `unchecked-producer` make the 1024 a snapshot holds.
    let opts = BackupOptions::new(tags[..1023].to_vec(), None);
    let s = masclet_engine::backup(&mut repo, src(), &opts, &NoProgress).unwrap();
    assert_eq!(dump(&repo, s.snapshot, "s").unwrap(), b"rows");
}
