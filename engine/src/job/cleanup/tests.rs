use super::*;
use crate::archive::name::{ArchiveName, Tier};
use crate::progress::NoProgress;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Set `path`'s modification time to `age` before `now`, links themselves not followed.
fn age(path: &Path, now: SystemTime, age: Duration) {
    let t = now - age;
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    let ts = rustix::fs::Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    };
    let times = rustix::fs::Timestamps {
        last_access: ts,
        last_modification: ts,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn opts(root: &Path) -> CleanupOptions {
    let mut o = CleanupOptions::new(Some(root.join("exports")));
    o.temp_dir = root.join("tmp");
    o.log_dir = Some(root.join("logs"));
    std::fs::create_dir_all(&o.temp_dir).unwrap();
    std::fs::create_dir_all(root.join("logs")).unwrap();
    o
}

fn listing(root: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.push((p, m.len()));
        }
    }
    out.sort();
    out
}

fn run(o: &CleanupOptions) -> (CleanupPlan, CleanupSummary) {
    let p = plan(None, o, &NoProgress).unwrap();
    let s = execute(None, &p, o).unwrap();
    (p, s)
}

#[test]
fn old_masclet_temp_files_go_young_ones_and_other_names_stay() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    let t = &o.temp_dir;
    for n in ["masclet_backup_old", "masclet_backup_young", "other_old"] {
        std::fs::write(t.join(n), vec![1u8; 1000]).unwrap();
    }
    age(
        &t.join("masclet_backup_old"),
        o.now,
        DAY + Duration::from_secs(60),
    );
    age(
        &t.join("masclet_backup_young"),
        o.now,
        DAY - Duration::from_secs(60),
    );
    age(&t.join("other_old"), o.now, 10 * DAY);
    let (p, s) = run(&o);
    assert_eq!(p.items.len(), 1, "{:?}", p.items);
    assert!(s.ok(), "{:?}", s.failed);
    assert!(!t.join("masclet_backup_old").exists());
    assert!(t.join("masclet_backup_young").exists());
    assert!(t.join("other_old").exists());
    assert_eq!(s.freed, 1000);
    assert_eq!(s.totals.len(), 1);
    assert_eq!(s.totals[0].category, Category::TempFile);
}

#[test]
fn a_symlinked_temp_goes_as_a_link_and_its_target_stays() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    let target = dir.path().join("precious");
    std::fs::write(&target, b"keep me").unwrap();
    age(&target, o.now, 100 * DAY);
    let link = o.temp_dir.join("masclet_backup_link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    age(&link, o.now, 2 * DAY);
    // A folder of ours holding a link to the same target: the link goes, not the target.
    let sub = o.temp_dir.join("masclet_backup_dir");
    std::fs::create_dir(&sub).unwrap();
    std::os::unix::fs::symlink(&target, sub.join("inner")).unwrap();
    age(&sub.join("inner"), o.now, 2 * DAY);
    age(&sub, o.now, 2 * DAY);
    let (p, s) = run(&o);
    assert_eq!(p.items.len(), 2);
    assert!(s.ok(), "{:?}", s.failed);
    assert!(std::fs::symlink_metadata(&link).is_err());
    assert!(!sub.exists());
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
}

#[test]
fn an_old_temp_folder_with_something_fresh_inside_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    let sub = o.temp_dir.join("masclet_backup_running");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("dump.sql"), b"being written").unwrap();
    age(&sub, o.now, 3 * DAY);
    let (p, _) = run(&o);
    assert!(p.items.is_empty(), "{:?}", p.items);
    assert!(sub.join("dump.sql").exists());
}

#[test]
fn old_logs_are_gzipped_beside_an_existing_gz_with_their_bytes_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    let logs = o.log_dir.clone().unwrap();
    let body = b"2025-01-01 backup ok\n".repeat(500);
    std::fs::write(logs.join("old.log"), &body).unwrap();
    std::fs::write(logs.join("old.log.gz"), b"an older copy").unwrap();
    std::fs::write(logs.join("backup.log"), b"fresh").unwrap();
    std::fs::write(logs.join("notes.txt"), b"not a log").unwrap();
    age(&logs.join("old.log"), o.now, 31 * DAY);
    age(&logs.join("notes.txt"), o.now, 31 * DAY);
    let (_, s) = run(&o);
    assert!(s.ok(), "{:?}", s.failed);
    assert_eq!(s.done.len(), 1);
    let gz = logs.join("old.log.1.gz");
    assert_eq!(s.done[0].to.as_deref(), Some(gz.as_path()));
    assert_eq!(
        std::fs::read(logs.join("old.log.gz")).unwrap(),
        b"an older copy"
    );
    assert!(!logs.join("old.log").exists());
    let mut back = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&gz).unwrap()),
        &mut back,
    )
    .unwrap();
    assert_eq!(back, body);
    let t = std::fs::metadata(&gz).unwrap().modified().unwrap();
    assert!(o.now.duration_since(t).unwrap() > 30 * DAY);
    assert_eq!(
        s.freed,
        body.len() as u64 - std::fs::metadata(&gz).unwrap().len()
    );
    assert!(logs.join("backup.log").exists() && logs.join("notes.txt").exists());
}

#[test]
fn the_age_in_days_decides_and_rotated_logs_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    let logs = o.log_dir.clone().unwrap();
    for n in ["ten.log", "ten.log.3", "ten.log.gz", "forty.log"] {
        std::fs::write(logs.join(n), b"x").unwrap();
        age(
            &logs.join(n),
            o.now,
            if n == "forty.log" { 40 * DAY } else { 10 * DAY },
        );
    }
    let names = |p: &CleanupPlan| -> Vec<String> {
        p.items
            .iter()
            .map(|i| i.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    let thirty = plan(None, &o, &NoProgress).unwrap();
    assert_eq!(names(&thirty), ["forty.log"]);
    o.log_age_days = 7;
    let seven = plan(None, &o, &NoProgress).unwrap();
    assert_eq!(names(&seven), ["forty.log", "ten.log", "ten.log.3"]);
    o.log_age_days = 0;
    let e = plan(None, &o, &NoProgress).unwrap_err();
    assert!(e.to_string().contains("-a 1"), "{e}");
}

#[test]
fn planning_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    std::fs::write(o.temp_dir.join("masclet_backup_x"), b"x").unwrap();
    age(&o.temp_dir.join("masclet_backup_x"), o.now, 2 * DAY);
    std::fs::write(dir.path().join("logs/a.log"), b"x").unwrap();
    age(&dir.path().join("logs/a.log"), o.now, 40 * DAY);
    let before = listing(dir.path());
    let p = plan(None, &o, &NoProgress).unwrap();
    assert_eq!(p.items.len(), 2);
    assert_eq!(listing(dir.path()), before);
}

/// A classic archive of `tier` in `root` whose name matches `bytes`.
fn archive(root: &Path, tier: Tier, bytes: &[u8]) -> PathBuf {
    let sha: [u8; 32] = Sha256::digest(bytes).into();
    let dir = root.join(tier.name());
    std::fs::create_dir_all(&dir).unwrap();
    let name = ArchiveName::new(tier, chrono::Utc::now(), &sha).file_name();
    std::fs::write(dir.join(&name), bytes).unwrap();
    let line = format!("{}  {name}\n", crate::disk::id::to_hex(&sha));
    std::fs::write(dir.join(format!("{name}.sha256")), line).unwrap();
    dir.join(name)
}

#[test]
fn a_damaged_export_is_quarantined_with_its_sidecar_and_a_sound_one_stays() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    let root = o.export_root.clone().unwrap();
    let good = archive(&root, Tier::Daily, b"sound bytes");
    let bad = archive(&root, Tier::Weekly, b"bytes to damage");
    let mut b = std::fs::read(&bad).unwrap();
    b[3] ^= 0x40;
    std::fs::write(&bad, b).unwrap();
    let (p, s) = run(&o);
    assert!(s.ok(), "{:?}", s.failed);
    assert_eq!(p.items.len(), 1);
    assert_eq!(p.items[0].category, Category::CorruptExport);
    let name = bad.file_name().unwrap();
    let moved = o.quarantine.join(name);
    assert!(moved.exists() && !bad.exists());
    let mut side = name.to_os_string();
    side.push(".sha256");
    assert!(o.quarantine.join(side).exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&o.quarantine)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    assert!(good.exists());
    // A second damaged export of the same name does not replace the first.
    std::fs::write(&bad, b"other damage").unwrap();
    let (_, s) = run(&o);
    assert!(s.ok(), "{:?}", s.failed);
    let stem = name.to_str().unwrap().strip_suffix(".tar.gz").unwrap();
    assert!(o.quarantine.join(format!("{stem}.1.tar.gz")).exists());
}

#[test]
fn a_quarantine_inside_a_tier_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.quarantine = o.export_root.clone().unwrap().join("daily/q");
    let e = plan(None, &o, &NoProgress).unwrap_err();
    assert_eq!(e.kind(), crate::error::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("QUARANTINE_DIR"), "{e}");
}

#[test]
fn an_unreadable_log_fails_alone_and_the_rest_is_done() {
    if rustix::process::getuid().is_root() {
        eprintln!("skipped: root reads a file of mode 000");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    let logs = o.log_dir.clone().unwrap();
    for n in ["a.log", "b.log"] {
        std::fs::write(logs.join(n), b"line\n").unwrap();
        age(&logs.join(n), o.now, 40 * DAY);
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(logs.join("a.log"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let (_, s) = run(&o);
    assert!(!s.ok());
    assert_eq!(s.failed.len(), 1, "{:?}", s.failed);
    assert!(s.failed[0].1.contains("read access"), "{:?}", s.failed);
    assert!(logs.join("b.log.gz").exists() && !logs.join("b.log").exists());
    assert!(logs.join("a.log").exists() && !logs.join("a.log.gz").exists());
}

/// A repository in `dir` holding one small snapshot, opened with `mode`.
fn repo(dir: &Path, mode: crate::LockMode) -> Repo {
    let storage = crate::LocalStorage::open(&dir.join("repo"))
        .or_else(|_| {
            let s = crate::LocalStorage::create(&dir.join("repo"))?;
            let config = crate::RepoConfig::new_default();
            crate::init(
                &s,
                &s.index_path(),
                b"pw",
                config,
                crate::KdfParams::FAST_INSECURE,
            )?;
            Ok::<_, crate::Error>(s)
        })
        .unwrap();
    let index = storage.index_path();
    let opts = crate::OpenOptions::new("test", Some(mode));
    Repo::open(std::sync::Arc::new(storage), &index, b"pw", &opts).unwrap()
}

/// Every pack file under the repository.
fn pack_files(dir: &Path) -> Vec<PathBuf> {
    listing(&dir.join("repo/packs"))
        .into_iter()
        .filter(|(p, _)| p.is_file())
        .map(|(p, _)| p)
        .collect()
}

#[test]
fn an_orphaned_pack_goes_only_under_the_exclusive_lock() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), b"datos").unwrap();
    {
        let mut r = repo(dir.path(), crate::LockMode::Shared);
        let opts = crate::BackupOptions::default();
        crate::backup(&mut r, crate::Source::Paths(vec![src]), &opts, &NoProgress).unwrap();
    }
    let live = pack_files(dir.path());
    let name = "5e".repeat(32);
    std::fs::create_dir_all(dir.path().join("repo/packs/5e")).unwrap();
    let orphan = dir.path().join("repo/packs/5e").join(&name);
    std::fs::copy(&live[0], &orphan).unwrap();

    let shared = repo(dir.path(), crate::LockMode::Shared);
    let p = plan(Some(&shared), &o, &NoProgress).unwrap();
    let packs: Vec<&Item> = p
        .items
        .iter()
        .filter(|i| i.category == Category::OrphanPack)
        .collect();
    assert_eq!(packs.len(), 1, "{:?}", p.items);
    assert!(packs[0].path.ends_with(&name));
    let s = execute(Some(&shared), &p, &o).unwrap();
    assert!(
        !s.ok() && s.failed[0].1.contains("exclusive lock"),
        "{:?}",
        s.failed
    );
    assert!(orphan.exists());
    drop(shared);

    let exclusive = repo(dir.path(), crate::LockMode::Exclusive);
    let p = plan(Some(&exclusive), &o, &NoProgress).unwrap();
    let s = execute(Some(&exclusive), &p, &o).unwrap();
    assert!(s.ok(), "{:?}", s.failed);
    assert!(!orphan.exists());
    assert_eq!(pack_files(dir.path()), live, "a live pack was touched");
}

#[test]
fn a_damaged_export_is_copied_into_a_quarantine_on_another_filesystem() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let shm = Path::new("/dev/shm");
    let other = std::fs::metadata(shm)
        .is_ok_and(|m| m.dev() != std::fs::metadata(dir.path()).unwrap().dev());
    if !other {
        eprintln!("skipped: /dev/shm is not another filesystem here");
        return;
    }
    let q = tempfile::tempdir_in(shm).unwrap();
    let mut o = opts(dir.path());
    o.quarantine = q.path().join("quarantine");
    let bad = archive(
        &o.export_root.clone().unwrap(),
        Tier::Monthly,
        b"to be damaged",
    );
    std::fs::write(&bad, b"damaged bytes").unwrap();
    let (_, s) = run(&o);
    assert!(s.ok(), "{:?}", s.failed);
    let moved = o.quarantine.join(bad.file_name().unwrap());
    assert_eq!(std::fs::read(moved).unwrap(), b"damaged bytes");
    assert!(!bad.exists());
    let left: Vec<_> = std::fs::read_dir(&o.quarantine)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".masclet-cleanup-"))
        .collect();
    assert!(left.is_empty(), "temporaries left: {left:?}");
}

#[test]
fn a_killed_cleanups_temporary_is_removed_and_a_running_ones_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    // No process has a pid above the kernel's pid_max (4194304 at most); this one is alive.
    let dead = logs.join(".masclet-cleanup-2147483646-aB3dE.tmp");
    let live = logs.join(format!(".masclet-cleanup-{}-xYz12.tmp", std::process::id()));
    std::fs::write(&dead, vec![1u8; 4096]).unwrap();
    std::fs::write(&live, b"in progress").unwrap();
    let mut opts = CleanupOptions::new(None);
    opts.temp_dir = dir.path().join("tmp");
    opts.log_dir = Some(logs.clone());
    let plan = plan(None, &opts, &crate::progress::NoProgress).unwrap();
    let s = execute(None, &plan, &opts).unwrap();
    assert!(s.ok(), "{:?}", s.failed);
    assert!(!dead.exists(), "the killed cleanup's temporary stayed");
    assert!(live.exists(), "a running cleanup's temporary was removed");
    assert_eq!(s.freed, 4096);
}
