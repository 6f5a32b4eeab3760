//! What a backup accepts as input: the format's limits are enforced before anything is
//! written, and a snapshot an older writer left past them can still be forgotten.

use super::*;

/// The repository's files (index excluded), to show a refused backup wrote nothing.
fn repo_files(env: &Env) -> Vec<(PathBuf, String)> {
    tree_state(&env.repo)
}

/// Run a backup with `args` (and `USER` set to `user`), after writing `files` small files
/// into a fresh directory whose paths are appended to the arguments.
fn backup_with(env: &Env, args: &[&str], user: &str, files: usize) -> Output {
    let dir = env.path(&format!("src-{files}-{}", args.len()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut paths = vec![];
    for i in 0..files {
        let p = dir.join(format!("f{i:04}"));
        std::fs::write(&p, format!("file {i}\n")).unwrap();
        paths.push(p.to_str().unwrap().to_string());
    }
    let mut all: Vec<&str> = args.to_vec();
    all.extend(paths.iter().map(String::as_str));
    env.cmd(&all).env("USER", user).output().unwrap()
}

/// Generated input at and past each limit the binary can be driven to: the count of paths
/// and of tags, the bytes of a tag, of the user name and of a stream's name. At the limit
/// the backup succeeds and reads back; past it the backup exits 1 naming the limit, and the
/// repository is byte for byte as before (not even a lock or a pack is left).
#[test]
fn backup_refuses_input_past_each_limit_and_keeps_what_is_at_it() {
    let env = Env::new();
    let tags = |n: usize| -> Vec<String> {
        (0..n)
            .flat_map(|i| ["--tag".to_string(), format!("t{i}")])
            .collect()
    };
    let long = |n: usize| "x".repeat(n);
    // (what, arguments, USER, number of files, how the limit is named)
    let cases = |past: usize| -> Vec<(&str, Vec<String>, String, usize, String)> {
        vec![
            (
                "paths",
                vec![],
                "u".into(),
                1024 + past,
                format!("{} paths given; a snapshot holds at most 1024", 1024 + past),
            ),
            (
                "tags",
                tags(1024 + past),
                "u".into(),
                1,
                format!("{} tags given; a snapshot holds at most 1024", 1024 + past),
            ),
            (
                "tag bytes",
                vec!["--tag".into(), long(4096 + past)],
                "u".into(),
                1,
                format!("is {} bytes; a tag holds at most 4096", 4096 + past),
            ),
            (
                "user bytes",
                vec![],
                long(4096 + past),
                1,
                format!("is {} bytes; a snapshot records at most 4096", 4096 + past),
            ),
            (
                "stream name bytes",
                [
                    "--stdin-from-command",
                    "--stdin-name",
                    &long(4096 + past),
                    "--",
                    "echo",
                    "data",
                ]
                .map(String::from)
                .to_vec(),
                "u".into(),
                0,
                format!(
                    "is {} bytes; a snapshot records paths of at most 4096",
                    4096 + past
                ),
            ),
        ]
    };
    for (what, args, user, files, needle) in cases(1).into_iter().chain(cases(700)) {
        let before = repo_files(&env);
        let args: Vec<&str> = ["backup"]
            .into_iter()
            .chain(args.iter().map(String::as_str))
            .collect();
        let o = backup_with(&env, &args, &user, files);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{what}: {err}");
        assert!(
            err.contains(&needle) && err.contains("format-spec.md §9 limits"),
            "{what}: {err}"
        );
        assert_eq!(
            repo_files(&env),
            before,
            "{what}: the refused backup wrote something"
        );
    }
    assert!(env.snapshots().is_empty());
    for (what, args, user, files, _) in cases(0) {
        let args: Vec<&str> = ["backup"]
            .into_iter()
            .chain(args.iter().map(String::as_str))
            .collect();
        let o = backup_with(&env, &args, &user, files);
        assert!(
            o.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
        // Every reader takes it: ls reads the tree, restore (or dump, for a name no file
        // system takes) reads the content.
        let listed = env.ok(&["ls", &id]);
        if files > 0 {
            assert_eq!(listed.lines().count(), files, "{what}");
            env.ok(&[
                "restore",
                &id,
                "--target",
                env.path(&format!("out-{what}")).to_str().unwrap(),
            ]);
        } else {
            assert_eq!(env.ok(&["dump", &id, listed.trim()]), "data\n", "{what}");
        }
    }
    assert_eq!(env.snapshots().len(), 5);
    env.ok(&["check", "--read-data"]);
}

/// A snapshot written past the limits by an older version (crafted here with the engine's
/// hazmat module) cannot be read, so gc refuses to run; `forget <id>` must remove it by
/// name, after which gc runs and the repository checks clean.
#[test]
fn forget_removes_an_unreadable_over_limit_snapshot_and_gc_runs_again() {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    let good = env
        .ok(&["backup", src.to_str().unwrap()])
        .trim()
        .to_string();
    let bad = {
        use masclet_engine::{LocalStorage, LockMode, OpenOptions, Repo, SnapshotId};
        let storage = LocalStorage::open(&env.repo).unwrap();
        let index = storage.index_path();
        let repo = Repo::open(
            std::sync::Arc::new(storage),
            &index,
            b"s3cret pass",
            &OpenOptions::new("test", Some(LockMode::Shared)),
        )
        .unwrap();
        let id = SnapshotId::from_hex(&good).unwrap();
        let mut snap = masclet_engine::Snapshot::load(repo.storage(), repo.keys(), id).unwrap();
        snap.tags = (0..1100).map(|i| format!("t{i}")).collect();
        snap.time += chrono::Duration::seconds(1);
        masclet_engine::ops::hazmat::save_snapshot_unchecked(&repo, &snap)
            .unwrap()
            .to_hex()
    };
    env.fails(&["gc"], 5, "list too long");
    let o = env.run(&["snapshots"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains(&bad[..8]));
    let out = env.ok(&["forget", &bad[..12]]);
    assert!(out.contains(&format!("forget {}", &bad[..8])), "{out}");
    env.ok(&["gc"]);
    env.ok(&["check", "--read-data"]);
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["id"], good.as_str());
}

/// `forget ID` with a dry run changes nothing; an id nobody has is refused.
#[test]
fn forget_by_id_dry_run_and_unknown_id() {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    let id = env
        .ok(&["backup", src.to_str().unwrap()])
        .trim()
        .to_string();
    let out = env.ok(&["forget", "--dry-run", &id[..8]]);
    assert!(out.contains(&format!("would forget {}", &id[..8])), "{out}");
    assert_eq!(env.snapshots().len(), 1);
    env.fails(&["forget", "0000000000"], 1, "no snapshot matches");
}
