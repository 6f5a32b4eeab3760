//! Garbage collection gives space back and never loses a kept snapshot.
//!
//! Forgotten data is reclaimed (deleted packs, repacked partly-live packs); a gc failing at
//! any storage mutation leaves a repository `check` accepts and a later gc finishes; an
//! interrupted gc cannot make a later backup reference deleted data; a missing referenced
//! pack makes gc refuse and change nothing; gc and backups exclude each other by lock.

use masclet_engine::disk::format::ObjectType;
use masclet_engine::{
    ErrorKind, FaultMode, FaultyStorage, Kind, LockMode, MemoryStorage, NoProgress, OpenOptions,
    Repo, Storage,
};
use masclet_tests::*;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn gc_reclaims_forgotten_data_and_repacks() {
    let r = LocalRepo::new();
    let mut repo = r.open();
    let shared = noise(6 << 20, 1);
    let only_a = noise(3 << 20, 2);
    let mut a_data = shared.clone();
    a_data.extend_from_slice(&only_a);
    let a = backup_bytes(&mut repo, "f", &a_data).unwrap();
    let b = backup_bytes(&mut repo, "f", &shared).unwrap();
    let c = backup_bytes(&mut repo, "g", &noise(2 << 20, 3)).unwrap();
    let before = pack_bytes(repo.storage());
    forget_ids(&repo, &[a, c]);
    let s = gc(&mut repo).unwrap();
    let after = pack_bytes(repo.storage());
    assert!(s.packs_deleted >= 1 && s.packs_repacked >= 1, "{s:?}");
    assert!(
        after + (4 << 20) < before,
        "before {before} after {after} {s:?}"
    );
    assert_eq!(s.bytes_freed, before - after);
    assert_eq!(dump(&repo, b, "f").unwrap(), shared);
    assert!(check_ok(&repo, true));
    // A second gc finds nothing to do.
    let again = gc(&mut repo).unwrap();
    assert_eq!(
        (again.packs_deleted, again.packs_repacked, again.bytes_freed),
        (0, 0, 0)
    );
    // Data that was forgotten is stored again, whole, by the next backup.
    let d = backup_bytes(&mut repo, "g", &noise(2 << 20, 3)).unwrap();
    assert_eq!(dump(&repo, d, "g").unwrap(), noise(2 << 20, 3));
    assert!(check_ok(&repo, true));
}

#[test]
fn gc_failing_at_every_mutation_loses_nothing_and_a_rerun_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let idx_dir = dir.path().join("idx");
    std::fs::create_dir_all(&idx_dir).unwrap();
    let (mem, index) = memory_repo(&idx_dir);
    let keep_data = noise(3 << 20, 7);
    let keep = {
        let mut repo = open(mem.clone() as Arc<dyn Storage>, &index).unwrap();
        let mut big = keep_data.clone();
        big.extend_from_slice(&noise(9 << 20, 8));
        let gone = backup_bytes(&mut repo, "f", &big).unwrap();
        let keep = backup_bytes(&mut repo, "f", &keep_data).unwrap();
        backup_bytes(&mut repo, "h", &noise(1 << 20, 9))
            .map(|id| forget_ids(&repo, &[gone, id]))
            .unwrap();
        keep
    };
    let image = mem.dump();
    let clean_size = {
        let run = dir.path().join("clean");
        copy_tree(&idx_dir, &run);
        let s = Arc::new(MemoryStorage::from_dump(image.clone()));
        let mut repo = open(s.clone() as Arc<dyn Storage>, &run.join("index.sqlite")).unwrap();
        gc(&mut repo).unwrap();
        pack_bytes(s.as_ref())
    };
    let counter = Arc::new(FaultyStorage::new(
        MemoryStorage::from_dump(image.clone()),
        u64::MAX,
        FaultMode::Fail,
    ));
    let run = dir.path().join("count");
    copy_tree(&idx_dir, &run);
    gc(&mut open(
        counter.clone() as Arc<dyn Storage>,
        &run.join("index.sqlite"),
    )
    .unwrap())
    .unwrap();
    let total = counter.mutations();
    assert!(total >= 5, "{total}");
    for n in 0..total {
        let run = dir.path().join(format!("run-{n}"));
        copy_tree(&idx_dir, &run);
        let idx = run.join("index.sqlite");
        let faulty = Arc::new(FaultyStorage::new(
            MemoryStorage::from_dump(image.clone()),
            n,
            FaultMode::Fail,
        ));
        if let Ok(mut repo) = open(faulty.clone() as Arc<dyn Storage>, &idx) {
            // The last mutation is the lock's removal, after the work is done.
            let result = gc(&mut repo);
            assert!(
                result.is_err() || n + 1 == total,
                "gc at fault {n} reported success"
            );
        }
        let mut durable = faulty.inner().dump();
        durable.retain(|(k, _), _| *k != Kind::Lock);
        let s = Arc::new(MemoryStorage::from_dump(durable));
        let mut repo = open(s.clone() as Arc<dyn Storage>, &idx).unwrap();
        assert_eq!(dump(&repo, keep, "f").unwrap(), keep_data, "fault {n}");
        assert!(check_ok(&repo, true), "fault {n}");
        gc(&mut repo).unwrap();
        assert_eq!(
            pack_bytes(s.as_ref()),
            clean_size,
            "fault {n}: the rerun did not finish the work"
        );
        assert_eq!(dump(&repo, keep, "f").unwrap(), keep_data);
        assert!(check_ok(&repo, true));
        drop(repo);
        std::fs::remove_dir_all(&run).unwrap();
    }
}

#[test]
fn interrupted_gc_does_not_poison_dedup() {
    let dir = tempfile::tempdir().unwrap();
    let (mem, index) = memory_repo(dir.path());
    let unique = noise(1 << 20, 42);
    {
        let mut repo = open(mem.clone() as Arc<dyn Storage>, &index).unwrap();
        backup_bytes(&mut repo, "keep", b"something else").unwrap();
        let id = backup_bytes(&mut repo, "u", &unique).unwrap();
        forget_ids(&repo, &[id]);
    }
    // Fail at the first pack deletion: the index sweep has run, the pack file is still there.
    let faulty = Arc::new(FaultyStorage::new(
        MemoryStorage::from_dump(mem.dump()),
        1,
        FaultMode::Fail,
    ));
    {
        let mut repo = open(faulty.clone() as Arc<dyn Storage>, &index).unwrap();
        let plan = masclet_engine::ops::gc::plan(
            &repo,
            &masclet_engine::GcOptions::default(),
            &masclet_engine::NoProgress,
        )
        .unwrap();
        assert!(!plan.delete.is_empty());
        assert!(
            masclet_engine::ops::gc::execute(&mut repo, &plan, &masclet_engine::NoProgress)
                .is_err()
        );
    }
    let mut durable = faulty.inner().dump();
    durable.retain(|(k, _), _| *k != Kind::Lock);
    let s = Arc::new(MemoryStorage::from_dump(durable));
    let mut repo = open(s.clone() as Arc<dyn Storage>, &index).unwrap();
    // Simulate the pack's later deletion (the next gc deletes it as an orphan).
    gc(&mut repo).unwrap();
    let again = backup_bytes(&mut repo, "u", &unique).unwrap();
    let snap = masclet_engine::Snapshot::load(repo.storage(), repo.keys(), again).unwrap();
    assert!(
        snap.stats.new_raw_bytes >= unique.len() as u64,
        "the chunks were not stored again: {:?}",
        snap.stats
    );
    assert_eq!(dump(&repo, again, "u").unwrap(), unique);
    assert!(check_ok(&repo, true));
}

#[test]
fn missing_referenced_pack_makes_gc_refuse_and_change_nothing() {
    let r = a_forgotten_b_kept((500_000, 1), (500_000, 2));
    // Delete the newest pack (snapshot b's data).
    let mut packs: Vec<_> = walk(&r.path.join("packs"));
    packs.sort_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap());
    std::fs::remove_file(packs.last().unwrap()).unwrap();
    let before = state(&r.path);
    let mut repo = r.open();
    let err = gc(&mut repo).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(
        err.to_string().contains("refusing to delete anything"),
        "{err}"
    );
    drop(repo);
    assert_eq!(
        state(&r.path),
        before,
        "gc changed the repository while refusing"
    );
}

#[test]
fn referenced_chunk_missing_from_the_index_makes_gc_refuse() {
    let r = a_forgotten_b_kept((500_000, 1), (500_000, 2));
    // Drop one chunk row of snapshot b (its pack stays): the live set names a chunk the
    // index does not have.
    let db = rusqlite::Connection::open(r.index_path()).unwrap();
    let victim: Vec<u8> = db
        .query_row(
            "SELECT id FROM chunks WHERE type = 2 ORDER BY pack DESC, offset LIMIT 1",
            [],
            |row| row.get(0),
        )
        .unwrap();
    db.execute("DELETE FROM chunks WHERE id = ?1", [&victim])
        .unwrap();
    drop(db);
    let before = state(&r.path);
    let mut repo = r.open();
    let err = gc(&mut repo).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    let msg = err.to_string();
    assert!(msg.contains("1 referenced chunks missing"), "{msg}");
    assert!(
        msg.contains(&masclet_engine::disk::id::to_hex(&victim[..4])),
        "{msg}"
    );
    drop(repo);
    assert_eq!(
        state(&r.path),
        before,
        "gc changed the repository while refusing"
    );
}

/// A repository (closed) holding snapshot `b` of noise (length, seed), after snapshot `a`
/// was backed up first and forgotten.
fn a_forgotten_b_kept(a: (usize, u64), b: (usize, u64)) -> LocalRepo {
    let r = LocalRepo::small_chunks();
    let mut repo = r.open();
    let first = backup_bytes(&mut repo, "a", &noise(a.0, a.1)).unwrap();
    backup_bytes(&mut repo, "b", &noise(b.0, b.1)).unwrap();
    forget_ids(&repo, &[first]);
    r
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn state(root: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = walk(root)
        .into_iter()
        .filter(|p| !p.starts_with(root.join("index")))
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn gc_and_backups_exclude_each_other() {
    let r = LocalRepo::new();
    let storage =
        || Arc::new(masclet_engine::LocalStorage::open(&r.path).unwrap()) as Arc<dyn Storage>;
    let short =
        |mode, op: &str| OpenOptions::new(op, Some(mode)).lock_wait(Duration::from_millis(300));
    let backup = Repo::open(
        storage(),
        &r.index_path(),
        PASSWORD,
        &short(LockMode::Shared, "backup"),
    )
    .unwrap();
    let err = Repo::open(
        storage(),
        &r.index_path(),
        PASSWORD,
        &short(LockMode::Exclusive, "gc"),
    )
    .err()
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::Locked);
    assert!(err.to_string().contains("backup"), "{err}");
    drop(backup);
    let gc_repo = Repo::open(
        storage(),
        &r.index_path(),
        PASSWORD,
        &short(LockMode::Exclusive, "gc"),
    )
    .unwrap();
    let err = Repo::open(
        storage(),
        &r.index_path(),
        PASSWORD,
        &short(LockMode::Shared, "backup"),
    )
    .err()
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::Locked);
    assert!(err.to_string().contains("gc, exclusive"), "{err}");
    drop(gc_repo);
}

/// gc copies live chunks of a repacked pack only after authenticating them: damage in a
/// pack it rewrites must stop it before anything is written or deleted, not be carried
/// into a fresh pack whose trailer would vouch for it.
/// Back up `shared` followed by `extra` bytes, then `shared` alone, and forget the first:
/// the packs holding `extra` are left partly live. Returns the kept snapshot and `shared`.
fn partly_forgotten(
    repo: &mut Repo,
    seed: u64,
    shared_len: usize,
    extra_len: usize,
) -> (masclet_engine::SnapshotId, Vec<u8>) {
    let shared = noise(shared_len, seed);
    let mut a_data = shared.clone();
    a_data.extend_from_slice(&noise(extra_len, seed + 1));
    let a = backup_bytes(repo, "f", &a_data).unwrap();
    let b = backup_bytes(repo, "f", &shared).unwrap();
    forget_ids(repo, &[a]);
    (b, shared)
}

#[test]
fn gc_refuses_to_copy_damaged_live_chunks() {
    let r = LocalRepo::new();
    let mut repo = r.open();
    partly_forgotten(&mut repo, 11, 5 << 20, 3 << 20);
    let plan =
        masclet_engine::ops::gc::plan(&repo, &masclet_engine::GcOptions::default(), &NoProgress)
            .unwrap();
    let victim = plan
        .repack
        .first()
        .expect("a partly live pack")
        .pack
        .to_hex();
    let storage = repo.storage();
    let mut bytes = storage.get(Kind::Pack, &victim).unwrap();
    // One flipped byte in every data chunk, live ones included (tree chunks are left
    // alone: damage there stops gc earlier, while it marks, which other tests cover).
    let entries = masclet_engine::disk::pack::read_trailer(
        storage,
        repo.keys(),
        plan.repack[0].pack,
        bytes.len() as u64,
    )
    .unwrap();
    for e in entries.iter().filter(|e| e.ty == ObjectType::Data) {
        bytes[(e.offset + u64::from(e.sealed_len) / 2) as usize] ^= 0x40;
    }
    storage.delete(Kind::Pack, &victim).unwrap();
    storage.put(Kind::Pack, &victim, &bytes).unwrap();
    let before = storage.list(Kind::Pack).unwrap();
    let err = gc(&mut repo).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(
        err.to_string()
            .contains("only packs without a live chunk were deleted"),
        "{err}"
    );
    // Packs with no live chunk go first (a full disk must get their space back whatever
    // repacking meets); every other pack is as it was, and no pack was written.
    let dead: Vec<String> = plan.delete.iter().map(|p| p.pack.to_hex()).collect();
    let expected: Vec<_> = before
        .into_iter()
        .filter(|(name, _)| !dead.contains(name))
        .collect();
    assert_eq!(
        repo.storage().list(Kind::Pack).unwrap(),
        expected,
        "gc wrote packs, or deleted one holding live chunks"
    );
    assert!(
        repo.storage()
            .list(Kind::Pack)
            .unwrap()
            .iter()
            .any(|(n, _)| *n == victim),
        "the damaged pack was deleted"
    );
}

/// An index that places live chunks in a pack where its trailer has no such entries (here:
/// every data chunk row of a pack gc wants to repack, shifted by a byte) is reported by `check`, and
/// gc refuses to repack or delete anything until `repair index` rebuilt it from the trailers.
#[test]
fn gc_and_check_refuse_an_index_that_disagrees_with_a_trailer() {
    let r = LocalRepo::new();
    let mut repo = r.open();
    let (b, shared) = partly_forgotten(&mut repo, 21, 5 << 20, 3 << 20);
    let plan =
        masclet_engine::ops::gc::plan(&repo, &masclet_engine::GcOptions::default(), &NoProgress)
            .unwrap();
    let victim = plan.repack.first().expect("a partly live pack").pack;
    drop(repo);
    let db = rusqlite::Connection::open(r.index_path()).unwrap();
    let moved = db
        .execute(
            "UPDATE chunks SET offset = offset + 1 WHERE type = 2 AND pack = (SELECT rowid FROM packs WHERE id = ?1)",
            [&victim.0[..]],
        )
        .unwrap();
    assert!(moved > 0);
    drop(db);
    let mut repo = r.open();
    let report =
        masclet_engine::check(&repo, masclet_engine::CheckOptions::default(), &NoProgress).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.message.contains("index disagrees with the pack trailer")),
        "{:?}",
        report.problems
    );
    let before = repo.storage().list(Kind::Pack).unwrap();
    let err = gc(&mut repo).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("repair index"), "{err}");
    assert_eq!(
        repo.storage().list(Kind::Pack).unwrap(),
        before,
        "gc changed packs"
    );
    drop(repo);
    let storage = Arc::new(masclet_engine::LocalStorage::open(&r.path).unwrap());
    let opts = OpenOptions::new("test", Some(LockMode::Exclusive));
    masclet_engine::repair_index(storage, &r.index_path(), PASSWORD, &opts, &NoProgress).unwrap();
    let mut repo = r.open();
    gc(&mut repo).unwrap();
    assert_eq!(dump(&repo, b, "f").unwrap(), shared);
    assert!(check_ok(&repo, true));
}

/// Packs past the repack threshold are repacked only while the dead bytes left in kept
/// packs exceed the allowed share: a little dead data stays until more of its pack dies.
#[test]
fn gc_leaves_a_little_dead_data_in_place_within_the_unused_share() {
    let run = |max_unused: f64| {
        // Small chunks (at most 128 KiB), so that the forgotten 192 KiB tail holds at least
        // one dead chunk whatever the repository's chunker seed: with 512 KiB chunks it could
        // sit wholly inside the chunk where the shared bytes end, which the kept snapshot's
        // last chunk takes as its delta base (alive, then). 7 MiB puts the tail in a second
        // pack that also holds live chunks, so it is repacked, not deleted.
        let r = LocalRepo::small_chunks();
        let mut repo = r.open();
        let (b, shared) = partly_forgotten(&mut repo, 31, 7 << 20, 192 << 10);
        let opts = masclet_engine::GcOptions::new(0.01).max_unused(max_unused);
        let plan = masclet_engine::ops::gc::plan(&repo, &opts, &NoProgress).unwrap();
        let s = masclet_engine::ops::gc::execute(&mut repo, &plan, &NoProgress).unwrap();
        assert_eq!(dump(&repo, b, "f").unwrap(), shared);
        assert!(check_ok(&repo, true));
        s
    };
    // ~3% of the data died: within 5%, nothing is rewritten.
    let lenient = run(0.05);
    assert_eq!(lenient.packs_repacked, 0, "{lenient:?}");
    // With no dead share allowed, the pack holding it is repacked.
    let strict = run(0.0);
    assert!(strict.packs_repacked >= 1, "{strict:?}");
    assert!(strict.bytes_freed > 0, "{strict:?}");
}

#[test]
fn gc_refuses_a_plan_it_did_not_make() {
    // A default plan has no live set: carried out, it would take every chunk for dead.
    let r = LocalRepo::new();
    let mut repo = r.open();
    let id = backup_bytes(&mut repo, "a", &noise(300_000, 3)).unwrap();
    let plan = masclet_engine::GcPlan::default();
    let err = masclet_engine::ops::gc::execute(&mut repo, &plan, &NoProgress).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(check_ok(&repo, true));
    let out = r.scratch("out");
    restore(&repo, id, &out).unwrap();
}

#[test]
fn gc_refuses_an_index_that_fakes_a_chain_past_the_limit() {
    let r = a_forgotten_b_kept((600_000, 11), (300_000, 12));
    // Chain one of b's chunks through ten of a's (all dead now) in the index.
    let db = rusqlite::Connection::open(r.index_path()).unwrap();
    let ids: Vec<Vec<u8>> = db
        .prepare("SELECT id FROM chunks WHERE type = 2 ORDER BY pack, offset")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let live = ids.last().unwrap().clone();
    let mut link = live;
    for dead in ids.iter().take(10) {
        db.execute("UPDATE chunks SET base = ?1 WHERE id = ?2", [dead, &link])
            .unwrap();
        link = dead.clone();
    }
    drop(db);
    let mut repo = r.open();
    let err = gc(&mut repo).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(
        err.to_string().contains("delta chains longer than"),
        "{err}"
    );
}

#[test]
fn a_second_gc_right_after_the_first_finds_nothing_to_do() {
    // Twelve packs each ~15% dead once their snapshots go (a keeper snapshot holds the rest
    // of their content): the unused share must be met after gc, not just before it.
    let r = LocalRepo::new();
    let mut repo = r.open();
    let mut forgotten = vec![];
    let mut keep = vec![];
    for i in 0..12u64 {
        let kept = noise(200_000 + 7_000 * i as usize, 500 + i);
        let mut data = kept.clone();
        data.extend_from_slice(&noise(36_000, 900 + i));
        forgotten.push(backup_bytes(&mut repo, &format!("n{i}"), &data).unwrap());
        keep.push((format!("k{i}"), kept));
    }
    for (name, kept) in &keep {
        backup_bytes(&mut repo, name, kept).unwrap();
    }
    forget_ids(&repo, &forgotten);
    let opts = masclet_engine::GcOptions::new(0.10).max_unused(0.05);
    let first = masclet_engine::ops::gc::plan(&repo, &opts, &NoProgress).unwrap();
    assert!(!first.repack.is_empty(), "{first:?}");
    masclet_engine::ops::gc::execute(&mut repo, &first, &NoProgress).unwrap();
    let second = masclet_engine::ops::gc::plan(&repo, &opts, &NoProgress).unwrap();
    assert!(
        second.repack.is_empty() && second.delete.is_empty(),
        "{second:?}"
    );
    assert!(check_ok(&repo, true));
}

/// A store whose disk is full: no pack can be written once `full` is set; everything else,
/// deletion included, works.
struct FullDisk {
    inner: MemoryStorage,
    full: std::sync::atomic::AtomicBool,
}

impl FullDisk {
    fn refuse(&self, kind: Kind) -> masclet_engine::Result<()> {
        if kind == Kind::Pack && self.full.load(std::sync::atomic::Ordering::SeqCst) {
            let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
            return Err(masclet_engine::Error::storage("writing a pack", full));
        }
        Ok(())
    }
}

impl Storage for FullDisk {
    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> masclet_engine::Result<()> {
        self.refuse(kind)?;
        self.inner.put(kind, name, data)
    }
    fn replace(&self, kind: Kind, name: &str, data: &[u8]) -> masclet_engine::Result<()> {
        self.refuse(kind)?;
        self.inner.replace(kind, name, data)
    }
    fn get(&self, kind: Kind, name: &str) -> masclet_engine::Result<Vec<u8>> {
        self.inner.get(kind, name)
    }
    fn get_range(
        &self,
        kind: Kind,
        name: &str,
        offset: u64,
        len: u64,
    ) -> masclet_engine::Result<Vec<u8>> {
        self.inner.get_range(kind, name, offset, len)
    }
    fn list(&self, kind: Kind) -> masclet_engine::Result<Vec<(String, u64)>> {
        self.inner.list(kind)
    }
    fn delete(&self, kind: Kind, name: &str) -> masclet_engine::Result<()> {
        self.inner.delete(kind, name)
    }
}

/// On a full disk repacking fails (it writes before it frees): the packs without a live
/// chunk must have given their space back before it started, and the next gc, once there
/// is room, finishes the work.
#[test]
fn gc_frees_packs_without_a_live_chunk_before_repacking_can_fail_on_a_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (mem, index) = memory_repo(dir.path());
    let disk = Arc::new(FullDisk {
        inner: MemoryStorage::from_dump(mem.dump()),
        full: std::sync::atomic::AtomicBool::new(false),
    });
    let mut repo = open(disk.clone() as Arc<dyn Storage>, &index).unwrap();
    let (keep, keep_data) = partly_forgotten(&mut repo, 31, 5 << 20, 12 << 20);
    let plan =
        masclet_engine::ops::gc::plan(&repo, &masclet_engine::GcOptions::default(), &NoProgress)
            .unwrap();
    assert!(
        !plan.delete.is_empty() && !plan.repack.is_empty(),
        "{plan:?}"
    );
    let before = pack_bytes(disk.as_ref());
    disk.full.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = masclet_engine::ops::gc::execute(&mut repo, &plan, &NoProgress).unwrap_err();
    assert_eq!(
        err.io_kind(),
        Some(std::io::ErrorKind::StorageFull),
        "{err}"
    );
    let dead: u64 = plan.delete.iter().map(|p| p.size).sum();
    assert_eq!(
        pack_bytes(disk.as_ref()),
        before - dead,
        "the dead packs stayed"
    );
    assert_eq!(dump(&repo, keep, "f").unwrap(), keep_data);
    assert!(check_ok(&repo, true));
    disk.full.store(false, std::sync::atomic::Ordering::SeqCst);
    let s = gc(&mut repo).unwrap();
    assert!(s.packs_repacked >= 1, "{s:?}");
    assert_eq!(dump(&repo, keep, "f").unwrap(), keep_data);
    assert!(check_ok(&repo, true));
}
