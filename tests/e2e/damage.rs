//! Damage must not spread: a lost pack is healed by the next backup instead of being
//! deduplicated against, and `repair index` adopts every chunk it can still decode and
//! nothing it cannot.

use masclet_engine::{LockMode, OpenOptions, RepairReport};
use masclet_tests::*;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

fn pack_files(r: &LocalRepo) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for d in std::fs::read_dir(r.path.join("packs")).unwrap() {
        for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
            out.insert(f.unwrap().path());
        }
    }
    out
}

fn repair(r: &LocalRepo) -> RepairReport {
    let storage = Arc::new(masclet_engine::LocalStorage::open(&r.path).unwrap());
    let opts = OpenOptions::new("test", Some(LockMode::Exclusive));
    masclet_engine::repair_index(
        storage,
        &r.index_path(),
        PASSWORD,
        &opts,
        &masclet_engine::NoProgress,
    )
    .unwrap()
}

/// `data` with one byte changed every `every` bytes: each chunk changes a little, so a
/// backup after `data` stores its chunks as deltas.
fn touched(data: &[u8], every: usize) -> Vec<u8> {
    let mut out = data.to_vec();
    for i in (every / 2..out.len()).step_by(every) {
        out[i] ^= 0x55;
    }
    out
}

#[test]
fn a_backup_after_a_pack_is_lost_stores_its_chunks_again_and_restores() {
    let r = LocalRepo::small_chunks();
    let mut repo = r.open();
    let data = noise(400_000, 1);
    let first = backup_summary(&mut repo, "f", &data).unwrap();
    for p in pack_files(&r) {
        std::fs::remove_file(p).unwrap();
    }
    // Without the pack listing this backup deduplicated everything and could not restore.
    let second = backup_summary(&mut repo, "f", &data).unwrap();
    let h = second.healing;
    assert_eq!(h.missing_packs, 1, "{second:?}");
    assert_eq!(h.untrusted_chunks, first.stats.new_chunks, "{second:?}");
    // All but the old tree chunk (this stream's time differs) were read again.
    assert_eq!(h.stored_again + 1, h.untrusted_chunks, "{second:?}");
    assert_eq!(
        second.stats.new_chunks, first.stats.new_chunks,
        "{second:?}"
    );
    assert_eq!(dump(&repo, second.snapshot, "f").unwrap(), data);
    // Healed: the next backup finds nothing missing and stores nothing.
    let third = backup_summary(&mut repo, "f", &data).unwrap();
    assert_eq!(third.healing.missing_packs, 0);
    assert_eq!(third.stats.new_raw_bytes, 0, "{third:?}");
}

#[test]
fn deltas_whose_base_pack_is_lost_are_neither_deduplicated_nor_used_as_bases() {
    let r = LocalRepo::small_chunks();
    let mut repo = r.open();
    let data = noise(400_000, 2);
    backup_summary(&mut repo, "f", &data).unwrap();
    let first_packs = pack_files(&r);
    let changed = touched(&data, 20_000);
    let second = backup_summary(&mut repo, "f", &changed).unwrap();
    assert!(second.delta_chunks > 0, "{second:?}");
    // The deltas' pack stays; their bases' pack goes.
    for p in &first_packs {
        std::fs::remove_file(p).unwrap();
    }
    let third = backup_summary(&mut repo, "f", &changed).unwrap();
    assert_eq!(third.healing.missing_packs, 1, "{third:?}");
    assert!(
        third.healing.untrusted_chunks > first_packs.len() as u64 + second.delta_chunks - 1,
        "the deltas went with their bases: {third:?}"
    );
    assert_eq!(dump(&repo, third.snapshot, "f").unwrap(), changed);
    let fourth = backup_summary(&mut repo, "f", &touched(&changed, 30_000)).unwrap();
    assert_eq!(
        dump(&repo, fourth.snapshot, "f").unwrap(),
        touched(&changed, 30_000)
    );
}

#[test]
fn repair_leaves_out_dead_deltas_whose_base_gc_deleted() {
    let r = LocalRepo::small_chunks();
    let mut repo = r.open();
    let a = noise(300_000, 3);
    let b = noise(3_000_000, 4);
    let first = backup_summary(&mut repo, "f", &a).unwrap();
    // The deltas of `a` share their pack with `b`, which a third snapshot keeps alive.
    let mut ab = touched(&a, 20_000);
    ab.extend_from_slice(&b);
    let second = backup_summary(&mut repo, "f", &ab).unwrap();
    assert!(second.delta_chunks > 0, "{second:?}");
    let third = backup_summary(&mut repo, "g", &b).unwrap();
    forget_ids(&repo, &[first.snapshot, second.snapshot]);
    gc(&mut repo).unwrap();
    assert!(check_ok(&repo, true));
    drop(repo);
    // The pack of `b` was kept with the dead deltas in it; their bases are gone.
    let report = repair(&r);
    assert!(
        report.undecodable_chunks >= second.delta_chunks,
        "{report:?}"
    );
    let repo = r.open();
    assert!(check_ok(&repo, true), "repair adopted undecodable deltas");
    assert_eq!(dump(&repo, third.snapshot, "g").unwrap(), b);
}

#[test]
fn repair_salvages_the_chunks_of_a_pack_whose_magic_is_damaged() {
    let r = LocalRepo::small_chunks();
    let mut repo = r.open();
    let data = noise(400_000, 5);
    let snap = backup_summary(&mut repo, "f", &data).unwrap();
    drop(repo);
    let packs = pack_files(&r);
    assert_eq!(packs.len(), 1);
    let pack = packs.into_iter().next().unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[0] ^= 0x01;
    std::fs::write(&pack, bytes).unwrap();
    assert_eq!(dump(&r.open(), snap.snapshot, "f").unwrap(), data);
    let report = repair(&r);
    assert!(report.damaged_packs.is_empty(), "{report:?}");
    assert_eq!(report.salvaged_packs.len(), 1, "{report:?}");
    assert_eq!(report.salvaged_packs[0].lost, 0, "{report:?}");
    assert_eq!(report.chunks, snap.stats.new_chunks, "{report:?}");
    assert!(report.incomplete_snapshots.is_empty(), "{report:?}");
    assert_eq!(dump(&r.open(), snap.snapshot, "f").unwrap(), data);
}

#[test]
fn repair_salvage_leaves_out_chunks_that_fail_authentication() {
    let r = LocalRepo::small_chunks();
    let mut repo = r.open();
    let data = noise(400_000, 6);
    let snap = backup_summary(&mut repo, "f", &data).unwrap();
    drop(repo);
    let pack = pack_files(&r).into_iter().next().unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[1] ^= 0x01; // the magic
    bytes[100] ^= 0x01; // the first chunk's body
    std::fs::write(&pack, bytes).unwrap();
    let report = repair(&r);
    assert_eq!(report.salvaged_packs.len(), 1, "{report:?}");
    assert_eq!(report.salvaged_packs[0].lost, 1, "{report:?}");
    assert_eq!(report.chunks, snap.stats.new_chunks - 1, "{report:?}");
    assert_eq!(report.incomplete_snapshots.len(), 1, "{report:?}");
}

/// A snapshot whose file `f` holds `content` in one chunk, its records changed by `edit`.
fn crafted(
    r: &LocalRepo,
    content: &[u8],
    edit: impl FnOnce(&mut Vec<masclet_engine::disk::tree::Record>),
) -> masclet_engine::SnapshotId {
    use masclet_engine::disk::tree::{EntryMeta, Record};
    let mut repo = r.open();
    let id = masclet_engine::ops::hazmat::store_chunk(
        &mut repo,
        masclet_engine::disk::format::ObjectType::Data,
        content,
    )
    .unwrap();
    let len = u32::try_from(content.len()).unwrap();
    let mut records = vec![
        Record::FileStart(EntryMeta {
            path: b"f".to_vec(),
            mode: 0o644,
            mtime: 1_700_000_000,
            mtime_nsec: 0,
        }),
        Record::FileChunk(id, len),
        Record::FileEnd {
            size: u64::from(len),
            content_hash: *blake3::hash(content).as_bytes(),
        },
    ];
    edit(&mut records);
    masclet_engine::ops::hazmat::commit_records(&mut repo, &records, vec![]).unwrap()
}

/// Each snapshot restore refuses (a chunk length that differs from the chunk's, a content
/// hash that does not match, an invalid mode) is one `check --read-data` reports damaged;
/// the length and the mode are found without reading data too.
#[test]
fn check_refuses_every_snapshot_restore_refuses() {
    use masclet_engine::disk::tree::Record;
    type Edit = fn(&mut Vec<Record>);
    let cases: [(&str, Edit, bool); 3] = [
        (
            "chunk length",
            |v| {
                if let Record::FileChunk(_, len) = &mut v[1] {
                    *len += 1;
                }
                if let Record::FileEnd { size, .. } = &mut v[2] {
                    *size += 1;
                }
            },
            true,
        ),
        (
            "content hash",
            |v| {
                if let Record::FileEnd { content_hash, .. } = &mut v[2] {
                    content_hash[0] ^= 1;
                }
            },
            false,
        ),
        (
            "mode",
            |v| {
                if let Record::FileStart(m) = &mut v[0] {
                    m.mode = 0o100_644;
                }
            },
            true,
        ),
    ];
    for (what, edit, without_data) in cases {
        let r = LocalRepo::new();
        let id = crafted(&r, b"some content", edit);
        let repo = r.open();
        let target = r.scratch("t");
        assert!(
            restore(&repo, id, &target).is_err(),
            "{what}: restore accepted it"
        );
        assert!(
            !check_ok(&repo, true),
            "{what}: check --read-data passed it"
        );
        if without_data {
            assert!(!check_ok(&repo, false), "{what}: check passed it");
        }
    }
}

/// gc that cannot read a snapshot's tree because storage fails (a pack that reads as a
/// directory: EISDIR) refuses with a storage error, not with "corrupt": the kind decides
/// what the operator does next.
#[test]
fn gc_keeps_the_kind_of_a_failing_tree_read() {
    let r = LocalRepo::new();
    let mut repo = r.open();
    backup_summary(&mut repo, "f", &noise(100_000, 7)).unwrap();
    drop(repo);
    for p in pack_files(&r) {
        std::fs::remove_file(&p).unwrap();
        std::fs::create_dir(&p).unwrap();
    }
    let repo = r.open();
    let err = masclet_engine::ops::gc::plan(
        &repo,
        &masclet_engine::GcOptions::default(),
        &masclet_engine::NoProgress,
    )
    .unwrap_err();
    assert_eq!(err.kind(), masclet_engine::ErrorKind::Storage, "{err}");
    assert!(
        err.to_string().contains("refusing to delete anything"),
        "{err}"
    );
}

/// Temporary files of writes killed long ago (idle past the lock stale limit) are reported
/// by check and removed by gc; a recent one, which a live writer may still rename into
/// place, is left alone.
#[test]
fn gc_removes_temporary_files_of_killed_writes_and_check_reports_them() {
    let r = LocalRepo::new();
    let mut repo = r.open();
    backup_summary(&mut repo, "f", &noise(50_000, 8)).unwrap();
    let old = r
        .path
        .join("tmp")
        .join(format!("{}.0011aabb.tmp", "ab".repeat(32)));
    let recent = r
        .path
        .join("tmp")
        .join(format!("{}.ccdd0011.tmp", "cd".repeat(32)));
    std::fs::write(&old, vec![7u8; 100_000]).unwrap();
    std::fs::write(&recent, vec![7u8; 10]).unwrap();
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(4 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    let report = masclet_engine::check(
        &repo,
        masclet_engine::CheckOptions::new(false),
        &masclet_engine::NoProgress,
    )
    .unwrap();
    assert_eq!(report.leftovers, (1, 100_000));
    assert!(report.ok(), "leftovers are not damage");
    let summary = gc(&mut repo).unwrap();
    assert_eq!(summary.leftovers_removed, 1);
    assert!(!old.exists());
    assert!(recent.exists());
}
