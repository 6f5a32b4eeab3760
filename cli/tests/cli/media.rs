//! Repositories on read-only media and on a full disk: read-only commands work on the
//! first, and the second is reported as a full disk, never as a damaged index.
//! These need mounts: they run as root and skip, saying why, elsewhere.

use super::*;

/// A mount made for a test, undone when dropped (also when an assertion fails).
pub(crate) struct Mount(pub(crate) PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

pub(crate) fn run_mount(args: &[&str]) -> bool {
    Command::new("mount")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub(crate) fn root_or_skip(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    eprintln!("skipping {test}: it needs root to mount a read-only bind mount or a small tmpfs");
    false
}

/// `dir` bind-mounted onto itself read-only, or `None` (with the reason printed) when this
/// process may not mount.
fn read_only_bind(dir: &Path) -> Option<Mount> {
    let d = dir.to_str().unwrap();
    if !run_mount(&["--bind", d, d]) {
        eprintln!("skipping: `mount --bind` refused (no CAP_SYS_ADMIN here)");
        return None;
    }
    let m = Mount(dir.to_path_buf());
    if !run_mount(&["-o", "remount,ro,bind", d]) {
        eprintln!("skipping: remounting read-only refused");
        return None;
    }
    Some(m)
}

/// On read-only media `snapshots`, `ls`, `dump`, `check --read-data` and `restore` work
/// (with a note that no lock was taken) instead of exit 6 "index database corrupt"; a
/// backup fails as a storage error (exit 1), not as a damaged index.
#[test]
fn read_only_repository_serves_read_only_commands() {
    if !root_or_skip("read_only_repository_serves_read_only_commands") {
        return;
    }
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    let Some(_ro) = read_only_bind(&env.repo) else {
        return;
    };
    assert!(
        std::fs::write(env.repo.join("probe"), b"x").is_err(),
        "mount is read-only"
    );
    let before = tree_state(&env.repo);
    assert_eq!(env.snapshots().len(), 1);
    let o = env.run(&["snapshots"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("without a lock"),
        "the operator is told no lock was taken: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(env.ok(&["ls", "latest"]).contains("a.txt"));
    assert_eq!(env.ok(&["dump", "latest", "src/a.txt"]), "hola\n");
    env.ok(&["check", "--read-data"]);
    let out = env.path("out");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    same_tree(&src, &out.join("src"));
    let err = env.fails(
        &["backup", src.to_str().unwrap()],
        1,
        "read-only filesystem",
    );
    assert!(!err.contains("repair index"), "{err}");
    assert_eq!(tree_state(&env.repo), before);
}

/// With the repository's disk 100% full, commands fail with a storage error (exit 1) that
/// says the disk is full and names the path, not exit 6 "run repair index".
#[test]
fn full_disk_is_a_storage_error_naming_the_disk() {
    if !root_or_skip("full_disk_is_a_storage_error_naming_the_disk") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    if !run_mount(&[
        "-t",
        "tmpfs",
        "-o",
        "size=8m",
        "tmpfs",
        disk.to_str().unwrap(),
    ]) {
        eprintln!("skipping full_disk_is_a_storage_error_naming_the_disk: tmpfs mount refused");
        return;
    }
    let _m = Mount(disk.clone());
    let env = Env {
        dir,
        repo: disk.join("repo"),
    };
    env.ok(&["init"]);
    let src = env.path("src");
    write_source(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    // Fill the disk to the last block.
    let mut filler = std::fs::File::create(disk.join("filler")).unwrap();
    let block = vec![0xa5u8; 64 << 10];
    while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    while std::io::Write::write_all(&mut filler, &block[..512]).is_ok() {}
    drop(filler);
    let out = env.path("out");
    for cmd in [
        &["snapshots"][..],
        &["check"],
        &["restore", "latest", "--target", out.to_str().unwrap()],
        &["backup", src.to_str().unwrap()],
    ] {
        let err = env.fails(cmd, 1, "full disk");
        assert!(!err.contains("repair index"), "{cmd:?}: {err}");
        assert!(
            err.contains(disk.to_str().unwrap()),
            "{cmd:?} names the disk: {err}"
        );
    }
}

/// A restore target that fills mid-way: a failure naming the full disk, every file under a
/// final name either its old content or the snapshot's whole, and a rerun into a roomier
/// target restores everything.
#[test]
fn a_restore_target_that_fills_fails_cleanly_and_no_final_name_holds_half_a_file() {
    let test = "a_restore_target_that_fills_fails_cleanly_and_no_final_name_holds_half_a_file";
    if !root_or_skip(test) {
        return;
    }
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    for (i, name) in ["a.bin", "b.bin", "c.bin"].iter().enumerate() {
        std::fs::write(
            src.join(name),
            masclet_tests::golden_bytes(2 << 20, 40 + i as u64),
        )
        .unwrap();
    }
    env.ok(&["backup", src.to_str().unwrap()]);
    let disk = env.path("target");
    std::fs::create_dir(&disk).unwrap();
    if !run_mount(&[
        "-t",
        "tmpfs",
        "-o",
        "size=3m",
        "tmpfs",
        disk.to_str().unwrap(),
    ]) {
        eprintln!("skipping {test}: tmpfs mount refused");
        return;
    }
    let _m = Mount(disk.clone());
    // An older copy already in the target: it must survive whole or be replaced whole.
    std::fs::create_dir(disk.join("src")).unwrap();
    let old = b"yesterday's animals\n".repeat(100);
    std::fs::write(disk.join("src/b.bin"), &old).unwrap();
    let err = env.fails(
        &["restore", "latest", "--target", disk.to_str().unwrap()],
        1,
        "",
    );
    assert!(
        err.contains("No space left") || err.contains("full"),
        "the error does not name the full disk: {err}"
    );
    for name in ["a.bin", "b.bin", "c.bin"] {
        let path = disk.join("src").join(name);
        let Ok(got) = std::fs::read(&path) else {
            continue;
        };
        let whole = std::fs::read(src.join(name)).unwrap();
        assert!(
            got == whole || (name == "b.bin" && got == old),
            "{name} under its final name holds {} bytes that are neither the old nor the snapshot's",
            got.len()
        );
    }
    // Once there is room the same restore completes.
    let roomy = env.path("roomy");
    env.ok(&["restore", "latest", "--target", roomy.to_str().unwrap()]);
    same_tree(&src, &roomy.join("src"));
}
