//! Restoring onto a target that already holds data: what is there is only replaced by
//! complete, verified content, never by something of another kind without --overwrite, and
//! a killed restore leaves nothing the next one does not clean up.

use super::*;
use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;

const TMP_PREFIX: &str = ".masclet-restore-";

#[test]
fn a_chunk_failing_authentication_leaves_the_existing_file_intact() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    // The dump's first 4 MB are stored by a first backup, the rest by a second, and only
    // the second's packs are damaged: the first damaged chunk comes after the first
    // restore batch (2 to 2.5 MB), when the file is already being written.
    let dump = masclet_tests::golden_bytes(10_000_000, 7);
    std::fs::write(src.join("db.dump"), &dump[..4_000_000]).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let first_packs = files_under(&env.repo.join("packs"));
    std::fs::write(src.join("db.dump"), &dump).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    for pack in files_under(&env.repo.join("packs")) {
        let mut b = std::fs::read(&pack).unwrap();
        // Data packs only: a damaged tree would stop the restore before it writes anything.
        if !first_packs.contains(&pack) && b.len() > 100_000 {
            let at = b.len() / 2;
            b[at] ^= 0x10;
            std::fs::write(&pack, b).unwrap();
        }
    }
    let target = env.path("target");
    std::fs::create_dir_all(target.join("src")).unwrap();
    let old = b"yesterday's dump, the only good copy".repeat(1000);
    std::fs::write(target.join("src/db.dump"), &old).unwrap();
    let err = env.fails(
        &["restore", "latest", "--target", target.to_str().unwrap()],
        5,
        "",
    );
    assert!(
        std::fs::read(target.join("src/db.dump")).unwrap() == old,
        "the existing file was changed or removed: {err}"
    );
    assert!(temporaries(&target).is_empty(), "{err}");
    // The same with --overwrite where the target holds a file in place of the snapshot's
    // directory src: the directory cannot be completed, so the file stays.
    let target = env.path("target2");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("src"), &old).unwrap();
    let t = target.to_str().unwrap();
    let err = env.fails(&["restore", "latest", "--target", t, "--overwrite"], 5, "");
    assert!(
        std::fs::read(target.join("src")).is_ok_and(|b| b == old),
        "the file in the directory's place was changed or removed: {err}"
    );
    assert!(temporaries(&target).is_empty(), "{err}");
}

#[test]
fn a_file_where_the_snapshot_has_a_dir_or_symlink_needs_overwrite() {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    // The target holds a regular file where the snapshot has the directory sub, then one
    // where it has the symlink link. Entries before the conflict in tree order are
    // restored; the one in the way is left as it was and named.
    let target = env.path("target");
    let t = target.to_str().unwrap();
    std::fs::create_dir_all(target.join("src")).unwrap();
    for (name, kind) in [("sub", "directory"), ("link", "symlink")] {
        let p = target.join("src").join(name);
        // The previous round restored entries before its conflict: clear this one's way.
        let _ = std::fs::remove_file(&p);
        std::fs::write(&p, b"the operator's file").unwrap();
        let err = env.fails(&["restore", "latest", "--target", t], 1, "--overwrite");
        assert!(
            err.contains(&format!("src/{name}")) && err.contains(kind),
            "{err}"
        );
        assert_eq!(std::fs::read(&p).unwrap(), b"the operator's file");
        assert!(std::fs::symlink_metadata(&p).unwrap().is_file());
        assert!(temporaries(&target).is_empty(), "{err}");
        std::fs::remove_file(&p).unwrap();
    }
    std::fs::write(target.join("src/sub"), b"the operator's file").unwrap();
    std::fs::write(target.join("src/link"), b"the operator's file").unwrap();
    env.ok(&["restore", "latest", "--target", t, "--overwrite"]);
    same_tree(&src, &target.join("src"));
    assert!(temporaries(&target).is_empty());
    // A directory is never replaced, --overwrite or not: it may hold anything.
    let other = env.path("other");
    std::fs::create_dir_all(other.join("src/a.txt")).unwrap();
    let o = other.to_str().unwrap();
    env.fails(
        &["restore", "latest", "--target", o, "--overwrite"],
        1,
        "directory",
    );
    assert!(other.join("src/a.txt").is_dir());
}

#[test]
fn kill_9_during_restore_never_leaves_an_existing_file_missing_or_partial() {
    let env = Env::new();
    // Two versions of the same tree: restores alternate between them, so every file in
    // the target must always hold one version or the other, whole.
    let src = env.path("src");
    let mut versions = vec![];
    for v in 0..2u64 {
        for i in 0..12u64 {
            let dir = src.join(format!("d{}", i % 3));
            std::fs::create_dir_all(&dir).unwrap();
            let data = masclet_tests::golden_bytes(400_000, 100 * v + i);
            std::fs::write(dir.join(format!("f{i}")), data).unwrap();
        }
        versions.push(
            env.ok(&["backup", src.to_str().unwrap()])
                .trim()
                .to_string(),
        );
    }
    let contents = |v: &str| {
        let out = env.path(&format!("v-{v}"));
        env.ok(&["restore", v, "--target", out.to_str().unwrap()]);
        files_under(&out)
            .into_iter()
            .map(|p| {
                let rel = p.strip_prefix(&out).unwrap().to_path_buf();
                (rel, std::fs::read(&p).unwrap())
            })
            .collect::<BTreeMap<_, _>>()
    };
    let (old, new) = (contents(&versions[0]), contents(&versions[1]));
    let target = env.path("target");
    let t = target.to_str().unwrap();
    let started = std::time::Instant::now();
    env.ok(&["restore", &versions[0], "--target", t]);
    let full = started.elapsed();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut round = 0;
    // At least 6 kills; then go on (bounded) until a kill leaves temporaries behind, so
    // the final restore has some to clean up.
    loop {
        let child = env
            .cmd(&["restore", &versions[(round + 1) % 2], "--target", t])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        kill_at_random(child, full, &mut seed, 1.0);
        for (rel, want_old) in &old {
            let got = std::fs::read(target.join(rel))
                .unwrap_or_else(|e| panic!("round {round}: {} is gone: {e}", rel.display()));
            assert!(
                got == *want_old || got == new[rel],
                "round {round}: {} holds neither version whole ({} bytes)",
                rel.display(),
                got.len()
            );
        }
        let left = temporaries(&target);
        for p in files_under(&target) {
            let rel = p.strip_prefix(&target).unwrap();
            assert!(
                old.contains_key(rel) || left.contains(&p),
                "stray {}",
                p.display()
            );
        }
        round += 1;
        if (round >= 6 && !left.is_empty()) || round >= 30 {
            assert!(
                !left.is_empty(),
                "no kill in {round} rounds hit a file being written"
            );
            break;
        }
    }
    let o = env.run(&["restore", &versions[1], "--target", t]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("of an interrupted restore"), "{err}");
    assert!(temporaries(&target).is_empty(), "{err}");
    for (rel, want) in &new {
        assert!(
            std::fs::read(target.join(rel)).unwrap() == *want,
            "{}",
            rel.display()
        );
    }
}

#[test]
fn the_next_restore_removes_a_killed_restores_temporaries_and_says_where() {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    let target = env.path("target");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    // What a killed run leaves: a half file at the top, a directory half built in place of
    // a file (made unwritable by its snapshot mode); beside them, names that only look
    // like ours and belong to the operator.
    let top = target.join(format!("{TMP_PREFIX}0123456789abcdef"));
    std::fs::write(&top, b"half a file").unwrap();
    let tree = target.join(format!("src/{TMP_PREFIX}00000000000000ab"));
    std::fs::create_dir_all(tree.join("deeper")).unwrap();
    std::fs::write(tree.join("deeper/x"), b"half").unwrap();
    std::fs::set_permissions(&tree, std::fs::Permissions::from_mode(0o555)).unwrap();
    let mine = [
        target.join(format!("{TMP_PREFIX}notours")),
        target.join(format!("src/{TMP_PREFIX}0123456789ABCDEF")),
    ];
    for p in &mine {
        std::fs::write(p, b"the operator's").unwrap();
    }
    let o = env.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let t = target.display();
    for line in [
        format!(
            "removed 1 leftover temporary of an interrupted restore ({TMP_PREFIX}*) from {t}\n"
        ),
        format!(
            "removed 1 leftover temporary of an interrupted restore ({TMP_PREFIX}*) from {t}/src\n"
        ),
    ] {
        assert!(err.contains(&line), "{err:?} lacks {line:?}");
    }
    assert!(
        err.contains("(2 leftovers of an interrupted restore removed)"),
        "{err}"
    );
    assert!(!top.exists() && !tree.exists(), "{err}");
    for p in &mine {
        assert_eq!(std::fs::read(p).unwrap(), b"the operator's");
        std::fs::remove_file(p).unwrap();
    }
    same_tree(&src, &target.join("src"));
}

/// Every non-directory under `root`, recursively (symlinks not followed).
fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else {
                assert!(!ft.is_fifo() && !ft.is_socket(), "{}", e.path().display());
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Entries under `root` (at any depth) named like a restore's temporaries.
fn temporaries(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                out.push(e.path());
            } else if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}
