//! Power loss or a crash at every durable step of a backup (simulated).
//!
//! Each mutation of storage (pack put, snapshot put, lock put/delete) is a point where the
//! process can die. For every such point N, a backup runs against storage that fails from
//! the Nth mutation on; then the repository is reopened from what had become durable. The
//! new snapshot must be absent or complete, the earlier ones must restore byte-identical,
//! `check` must pass, and the next backup must work. `Torn` additionally leaves half an
//! object under its final name, as a store without atomic writes could.

use masclet_engine::{FaultMode, FaultyStorage, Kind, MemoryStorage, Storage};
use masclet_tests::*;
use std::collections::BTreeMap;
use std::sync::Arc;

type Image = BTreeMap<(Kind, String), Vec<u8>>;

fn without_locks(mut image: Image) -> Image {
    // The crashed process is gone; its lock would be cleared as stale by the next opener.
    image.retain(|(k, _), _| *k != Kind::Lock);
    image
}

#[test]
fn crash_at_every_mutation_of_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let idx_dir = dir.path().join("idx");
    std::fs::create_dir_all(&idx_dir).unwrap();
    let (mem, index) = memory_repo(&idx_dir);
    let base = noise(3 << 20, 1);
    let mut next = base.clone();
    next[1_000_000..1_100_000].copy_from_slice(&noise(100_000, 2));
    next.extend_from_slice(&noise(10 << 20, 3));
    let baseline = {
        let mut repo = open(mem.clone() as Arc<dyn Storage>, &index).unwrap();
        let a = backup_bytes(&mut repo, "db.dump", &base).unwrap();
        let b = backup_bytes(&mut repo, "db.dump", &base[..2_000_000]).unwrap();
        vec![(a, base.clone()), (b, base[..2_000_000].to_vec())]
    };
    let image: Image = mem.dump();

    let run_dir = dir.path().join("count");
    copy_tree(&idx_dir, &run_dir);
    let counter = Arc::new(FaultyStorage::new(
        MemoryStorage::from_dump(image.clone()),
        u64::MAX,
        FaultMode::Fail,
    ));
    {
        let mut repo = open(
            counter.clone() as Arc<dyn Storage>,
            &run_dir.join("index.sqlite"),
        )
        .unwrap();
        backup_bytes(&mut repo, "db.dump", &next).unwrap();
    }
    let total = counter.mutations();
    assert!(
        total >= 4,
        "expected lock, packs, snapshot and unlock; got {total}"
    );

    for mode in [FaultMode::Fail, FaultMode::Torn] {
        for n in 0..total {
            let run = dir.path().join(format!("run-{mode:?}-{n}"));
            copy_tree(&idx_dir, &run);
            let idx = run.join("index.sqlite");
            let faulty = Arc::new(FaultyStorage::new(
                MemoryStorage::from_dump(image.clone()),
                n,
                mode,
            ));
            let committed = match open(faulty.clone() as Arc<dyn Storage>, &idx) {
                Ok(mut repo) => backup_bytes(&mut repo, "db.dump", &next).ok(),
                Err(_) => None,
            };
            // Reopen from the durable image.
            let durable = Arc::new(MemoryStorage::from_dump(without_locks(
                faulty.inner().dump(),
            )));
            let mut repo = open(durable.clone() as Arc<dyn Storage>, &idx)
                .unwrap_or_else(|e| panic!("{mode:?} at {n}: reopen failed: {e}"));
            let (snaps, unreadable) = repo.snapshots().unwrap();
            let ids: Vec<_> = snaps.iter().map(|(id, _)| *id).collect();
            for (id, data) in &baseline {
                assert!(ids.contains(id), "{mode:?} at {n}: baseline snapshot lost");
                assert_eq!(
                    &dump(&repo, *id, "db.dump").unwrap(),
                    data,
                    "{mode:?} at {n}"
                );
            }
            if let Some(new) = committed {
                // The fault hit after the commit point (the unlock): the snapshot is whole.
                assert_eq!(
                    dump(&repo, new, "db.dump").unwrap(),
                    next,
                    "{mode:?} at {n}"
                );
            } else {
                assert_eq!(
                    ids.len(),
                    baseline.len(),
                    "{mode:?} at {n}: a failed backup left a snapshot"
                );
            }
            if mode == FaultMode::Fail {
                assert!(unreadable.is_empty());
                assert!(check_ok(&repo, true), "{mode:?} at {n}");
            } else {
                // A torn snapshot object is detected and reported, never listed as a snapshot.
                assert!(unreadable.len() <= 1);
            }
            let again = backup_bytes(&mut repo, "db.dump", &next).unwrap();
            assert_eq!(
                dump(&repo, again, "db.dump").unwrap(),
                next,
                "{mode:?} at {n}: next backup"
            );
            drop(repo);
            std::fs::remove_dir_all(&run).unwrap();
        }
    }
}

/// Takes the repository lock away (as another process presuming it stale would) once a
/// backup has read `after` bytes, and notes which packs were durable at that moment.
struct Takeover {
    storage: Arc<MemoryStorage>,
    after: u64,
    read: std::sync::atomic::AtomicU64,
    durable_then: std::sync::Mutex<Option<Vec<String>>>,
}

impl masclet_engine::Progress for Takeover {
    fn inc(&self, n: u64) {
        use std::sync::atomic::Ordering;
        let read = self.read.fetch_add(n, Ordering::SeqCst) + n;
        let mut then = self.durable_then.lock().unwrap();
        if read >= self.after && then.is_none() {
            for (name, _) in self.storage.list(Kind::Lock).unwrap() {
                self.storage.delete(Kind::Lock, &name).unwrap();
            }
            let packs = self.storage.list(Kind::Pack).unwrap();
            *then = Some(packs.into_iter().map(|(name, _)| name).collect());
        }
    }
}

#[test]
fn a_backup_that_lost_its_lock_indexes_no_more_packs() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, index) = memory_repo(dir.path());
    let mut repo = open(storage.clone(), &index).unwrap();
    let takeover = Takeover {
        storage: storage.clone(),
        after: 2 << 20,
        read: 0.into(),
        durable_then: None.into(),
    };
    let src = masclet_engine::Source::Stream {
        name: b"big".to_vec(),
        reader: Box::new(std::io::Cursor::new(noise(40 << 20, 77))),
    };
    let err = masclet_engine::backup(
        &mut repo,
        src,
        &masclet_engine::BackupOptions::default(),
        &takeover,
    )
    .unwrap_err();
    assert_eq!(err.kind(), masclet_engine::ErrorKind::Locked, "{err}");
    // Whoever took over may delete packs that were not indexed when it looked (orphans),
    // so nothing the backup wrote may be indexed after the lock was gone.
    let then = takeover.durable_then.lock().unwrap().clone().unwrap();
    let indexed = repo.index().packs().unwrap();
    assert!(!indexed.is_empty() || then.is_empty());
    for (pack, _) in indexed {
        assert!(
            then.contains(&pack.to_hex()),
            "pack {pack} was indexed after the lock was lost"
        );
    }
}

/// A write that takes effect and then reports an error (an EIO from the directory fsync
/// after the rename), at every mutation of a backup: when the new snapshot is in the
/// repository the error says it is committed with durability unconfirmed, and otherwise
/// that nothing was committed; it never says one while the other is true.
#[test]
fn an_error_after_the_snapshot_is_in_place_says_it_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let idx_dir = dir.path().join("idx");
    std::fs::create_dir_all(&idx_dir).unwrap();
    let (mem, index) = memory_repo(&idx_dir);
    drop(open(mem.clone() as Arc<dyn Storage>, &index).unwrap());
    let image: Image = mem.dump();
    let data = noise(1 << 20, 9);
    let counter = Arc::new(FaultyStorage::new(
        MemoryStorage::from_dump(image.clone()),
        u64::MAX,
        FaultMode::Fail,
    ));
    let count_dir = dir.path().join("count");
    copy_tree(&idx_dir, &count_dir);
    let mut repo = open(
        counter.clone() as Arc<dyn Storage>,
        &count_dir.join("index.sqlite"),
    )
    .unwrap();
    backup_bytes(&mut repo, "db.dump", &data).unwrap();
    drop(repo);
    let mut saw_committed = false;
    for n in 0..counter.mutations() {
        let run = dir.path().join(format!("run-{n}"));
        copy_tree(&idx_dir, &run);
        let faulty = Arc::new(FaultyStorage::new(
            MemoryStorage::from_dump(image.clone()),
            n,
            FaultMode::Applied,
        ));
        let Ok(mut repo) = open(
            faulty.clone() as Arc<dyn Storage>,
            &run.join("index.sqlite"),
        ) else {
            continue;
        };
        let result = backup_bytes(&mut repo, "db.dump", &data);
        drop(repo);
        let stored = faulty.inner().list(Kind::Snapshot).unwrap().len();
        if let Err(e) = result {
            let msg = e.to_string();
            if stored == 1 {
                saw_committed = true;
                assert!(msg.contains("is committed"), "at {n}: {msg}");
                assert!(!msg.contains("nothing was committed"), "at {n}: {msg}");
            } else {
                assert!(!msg.contains("is committed"), "at {n}: {msg}");
            }
        }
        std::fs::remove_dir_all(&run).unwrap();
    }
    assert!(
        saw_committed,
        "the fault hit the snapshot's write at some point"
    );
}
