//! A missing or damaged index makes every command but `repair index` refuse until it is
//! rebuilt, and damage found by `check` exits 5.

use super::*;

fn damage_index(env: &Env, how: &str) {
    let idx = env.repo.join("index/index.sqlite");
    match how {
        "delete" => std::fs::remove_file(&idx).unwrap(),
        "truncate" => {
            let len = std::fs::metadata(&idx).unwrap().len();
            std::fs::File::options()
                .write(true)
                .open(&idx)
                .unwrap()
                .set_len(len / 2 + 100)
                .unwrap();
        }
        _ => {
            let mut b = std::fs::read(&idx).unwrap();
            for (i, x) in b.iter_mut().take(4096).enumerate() {
                *x = (i * 7 + 3) as u8;
            }
            std::fs::write(&idx, b).unwrap();
        }
    }
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(env.repo.join(format!("index/index.sqlite{suffix}")));
    }
}

#[test]
fn damaged_index_makes_commands_refuse_until_repair() {
    for how in ["delete", "truncate", "garbage"] {
        let env = Env::new();
        let src = env.path("src");
        write_source(&src);
        env.ok(&["backup", src.to_str().unwrap()]);
        std::fs::write(
            src.join("more.bin"),
            masclet_tests::golden_bytes(300_000, 77),
        )
        .unwrap();
        env.ok(&["backup", src.to_str().unwrap()]);
        damage_index(&env, how);
        let before = tree_state(&env.repo);
        for cmd in [
            &["snapshots"][..],
            &["backup", src.to_str().unwrap()],
            &["check"],
            &["restore", "latest", "--target", "/tmp/never"],
        ] {
            env.fails(cmd, 6, "run `masclet repair index`");
        }
        assert_eq!(
            tree_state(&env.repo),
            before,
            "{how}: a refused command wrote to the repository"
        );
        assert!(env.ok(&["repair", "index"]).contains("index rebuilt: "));
        assert!(
            env.ok(&["check", "--read-data"])
                .contains("no problems found"),
            "{how}"
        );
        let out = env.path("out");
        env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
        same_tree(&src, &out.join("src"));
        assert_eq!(env.snapshots().len(), 2);
    }
}

#[test]
fn check_reports_damage_with_exit_5() {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    let packs = env.repo.join("packs");
    let sub = std::fs::read_dir(&packs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let pack = std::fs::read_dir(sub)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut b = std::fs::read(&pack).unwrap();
    b[100] ^= 0x40;
    std::fs::write(&pack, b).unwrap();
    let o = env.run(&["check", "--read-data"]);
    assert_eq!(o.status.code(), Some(5));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("authentication failed"), "{out}");
    assert!(out.contains("cannot be fully restored"), "{out}");
}
