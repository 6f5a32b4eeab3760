//! The failures that must leave no archive under a final name and no temporary behind:
//! damaged packs, a changed export, a read-only or full folder, kill -9, Ctrl-C, and two
//! exports of the same snapshot at once.

use super::*;

#[test]
fn an_existing_export_whose_bytes_changed_exits_5_and_is_left_alone() {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    let root = env.path("classic");
    let v = export(&env, "latest", "daily", &root);
    let path = PathBuf::from(v["path"].as_str().unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let r = root.to_str().unwrap();
    env.fails(
        &["export", "latest", "--tier", "daily", "--dir", r],
        5,
        "does not hold the bytes its name says",
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "left as it was");
    assert!(temporaries(&root.join("daily")).is_empty());
}

#[test]
fn a_read_only_folder_fails_clearly_and_leaves_nothing() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipping: needs root for a read-only bind mount");
        return;
    }
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    let root = env.path("classic");
    std::fs::create_dir_all(root.join("daily")).unwrap();
    let r = root.to_str().unwrap();
    let mount = |args: &[&str]| Command::new("mount").args(args).status().unwrap().success();
    if !mount(&["--bind", r, r]) {
        eprintln!("skipping: mount refused");
        return;
    }
    struct Unmount<'a>(&'a str);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _u = Unmount(r);
    assert!(mount(&["-o", "remount,ro,bind", r]));
    let err = env.fails(
        &["export", "latest", "--tier", "daily", "--dir", r],
        1,
        "Read-only file system",
    );
    assert!(
        err.contains(&root.join("daily").display().to_string()),
        "{err}"
    );
    assert!(names(&root.join("daily")).is_empty());
}

fn largest_pack(env: &Env) -> PathBuf {
    let mut packs = Vec::new();
    for d in std::fs::read_dir(env.repo.join("packs")).unwrap() {
        for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            packs.push((std::fs::metadata(&p).unwrap().len(), p));
        }
    }
    packs.sort();
    packs.pop().unwrap().1
}

#[test]
fn a_damaged_pack_exits_5_and_leaves_no_archive_and_no_temporary() {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    let pack = largest_pack(&env);
    let mut bytes = std::fs::read(&pack).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::set_permissions(&pack, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&pack, bytes).unwrap();
    let root = env.path("classic");
    env.fails(
        &[
            "export",
            "latest",
            "--tier",
            "daily",
            "--dir",
            root.to_str().unwrap(),
        ],
        5,
        "",
    );
    assert_eq!(names(&root.join("daily")), Vec::<String>::new());
}

/// A snapshot whose export takes a while: 48 MB that hardly compress.
fn big_snapshot(env: &Env) -> PathBuf {
    let src = env.path("big");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..4 {
        std::fs::write(
            src.join(format!("part{i}")),
            masclet_tests::golden_bytes(12_000_000, 40 + i),
        )
        .unwrap();
    }
    env.ok(&["backup", src.to_str().unwrap()]);
    src
}

/// Start an export of `latest` into `root`'s daily folder, and wait until its temporary
/// holds data.
fn export_started(env: &Env, root: &Path) -> std::process::Child {
    let mut child = env
        .cmd(&[
            "export",
            "latest",
            "--tier",
            "daily",
            "--dir",
            root.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let daily = root.join("daily");
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(60) {
        let started = temporaries(&daily)
            .iter()
            .any(|t| std::fs::metadata(daily.join(t)).is_ok_and(|m| m.len() > 1 << 20));
        if started {
            return child;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the export never started writing");
}

#[test]
fn kill_9_mid_export_leaves_no_final_name_and_the_next_export_cleans_up() {
    let env = Env::new();
    big_snapshot(&env);
    let root = env.path("classic");
    let mut child = export_started(&env, &root);
    child.kill().unwrap();
    child.wait().unwrap();
    let daily = root.join("daily");
    assert!(archives(&daily).is_empty(), "{:?}", names(&daily));
    assert_eq!(
        temporaries(&daily).len(),
        1,
        "the killed export's temporary is there"
    );
    let v = export(&env, "latest", "daily", &root);
    assert_eq!(v["already"], false);
    assert_eq!(v["leftovers_removed"], 1);
    assert!(temporaries(&daily).is_empty(), "{:?}", names(&daily));
    assert_eq!(archives(&daily).len(), 1);
}

#[test]
fn ctrl_c_mid_export_exits_130_and_removes_its_temporary() {
    let env = Env::new();
    big_snapshot(&env);
    let root = env.path("classic");
    let child = export_started(&env, &root);
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(names(&root.join("daily")), Vec::<String>::new());
}

#[test]
fn two_exports_at_once_both_succeed_and_leave_one_file() {
    let env = Env::new();
    big_snapshot(&env);
    let root = env.path("classic");
    let start = || {
        env.cmd(&[
            "export",
            "latest",
            "--tier",
            "yearly",
            "--dir",
            root.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let (a, b) = (start(), start());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for o in [&a, &b] {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(a.stdout, b.stdout, "both name the same file");
    let yearly = root.join("yearly");
    assert_eq!(archives(&yearly).len(), 1, "{:?}", names(&yearly));
    assert!(temporaries(&yearly).is_empty(), "{:?}", names(&yearly));
    let name = &archives(&yearly)[0];
    sh_ok("sha256sum", &["-c", &format!("{name}.sha256")], &yearly);
}

#[test]
fn a_full_disk_fails_clearly_and_leaves_nothing() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipping: needs root for a small tmpfs");
        return;
    }
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("noise"),
        masclet_tests::golden_bytes(4_000_000, 77),
    )
    .unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let disk = env.path("disk");
    std::fs::create_dir(&disk).unwrap();
    let d = disk.to_str().unwrap();
    if !Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs", d])
        .status()
        .unwrap()
        .success()
    {
        eprintln!("skipping: tmpfs mount refused");
        return;
    }
    let err = env.fails(
        &["export", "latest", "--tier", "daily", "--dir", d],
        1,
        "No space left",
    );
    let left = names(&disk.join("daily"));
    let _ = Command::new("umount").arg(d).status();
    assert!(err.contains(d), "{err}");
    assert_eq!(left, Vec::<String>::new());
}

#[test]
fn a_snapshot_with_its_own_top_level_manifest_is_refused_before_anything_is_named() {
    let env = Env::new();
    let file = env.path("MANIFEST.json");
    std::fs::write(&file, b"{\"mine\": true}\n").unwrap();
    env.ok(&["backup", file.to_str().unwrap()]);
    let root = env.path("classic");
    env.fails(
        &[
            "export",
            "latest",
            "--tier",
            "daily",
            "--dir",
            root.to_str().unwrap(),
        ],
        1,
        "top-level MANIFEST.json of its own",
    );
    assert_eq!(names(&root.join("daily")), Vec::<String>::new());
}

#[test]
fn a_latest_tar_gz_that_is_a_real_file_is_left_alone_with_a_warning() {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    let root = env.path("classic");
    std::fs::create_dir_all(root.join("daily")).unwrap();
    std::fs::write(root.join("daily/latest.tar.gz"), b"the old system's").unwrap();
    let o = env.run(&[
        "export",
        "latest",
        "--tier",
        "daily",
        "--dir",
        root.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("is not a symlink"), "{err}");
    assert_eq!(
        std::fs::read(root.join("daily/latest.tar.gz")).unwrap(),
        b"the old system's"
    );
    assert_eq!(archives(&root.join("daily")).len(), 1);
}
