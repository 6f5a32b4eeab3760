//! Damage does not spread: a lost pack is stored again by the next backup, and a rebuilt
//! index holds only chunks that decode, however gc was interrupted before.

use super::*;

fn pack_files(env: &Env) -> Vec<PathBuf> {
    let mut out = vec![];
    for d in std::fs::read_dir(env.repo.join("packs")).unwrap() {
        for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}

#[test]
fn a_backup_after_a_lost_pack_warns_stores_the_data_again_and_restores() {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    for p in pack_files(&env) {
        std::fs::remove_file(p).unwrap();
    }
    let o = env.run(&["backup", "--force-read", src.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("packs listed in the index are missing from storage"),
        "{err}"
    );
    let id = String::from_utf8(o.stdout).unwrap().trim().to_string();
    let out = env.path("out");
    env.ok(&["restore", &id, "--target", out.to_str().unwrap()]);
    same_tree(&src, &out.join("src"));
}

/// `data` with its first half replaced by `fresh` (no delta can find a base for it).
fn replace_head(data: &[u8], fresh: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let half = out.len() / 2;
    out[..half].copy_from_slice(&fresh[..half]);
    out
}

/// The reproduction, as a loop: three nights (the second stores deltas of the
/// first, the third rewrites what they changed, so those deltas die while their pack stays
/// alive through a file added the second night), forget all but the last, gc killed five
/// times at random moments and then run to the end, the index truncated, `repair index`,
/// and `check --read-data` must pass: repair adopts no delta whose base gc deleted.
#[test]
fn repair_after_gc_killed_at_random_adopts_only_decodable_chunks() {
    let mut seed = 0x5851_f42d_4c95_7f2du64;
    for round in 0..3u64 {
        let env = Env::new();
        let src = env.path("src");
        std::fs::create_dir_all(&src).unwrap();
        let v1 = masclet_tests::golden_bytes(2_000_000, 10 + round);
        let mut v2 = v1.clone();
        for i in (1_000..v2.len() / 2).step_by(60_000) {
            v2[i] ^= 0x40;
        }
        let v3 = replace_head(&v1, &masclet_tests::golden_bytes(2_000_000, 50 + round));
        let stays = masclet_tests::golden_bytes(3_000_000, 90 + round);
        let night = |data: &[u8]| {
            std::fs::write(src.join("night.bin"), data).unwrap();
            let o = env.run(&["backup", "--json", src.to_str().unwrap()]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
        };
        night(&v1);
        std::fs::write(src.join("stays.bin"), &stays).unwrap();
        let second = night(&v2);
        assert!(second["delta_chunks"].as_u64().unwrap() > 0, "{second}");
        let third = night(&v3);
        let last = third["snapshot"].as_str().unwrap().to_string();
        env.ok(&[
            "forget",
            "--keep-last",
            "1",
            "--keep-daily",
            "0",
            "--keep-weekly",
            "0",
            "--keep-monthly",
            "0",
            "--keep-yearly",
            "0",
        ]);
        let started = std::time::Instant::now();
        env.ok(&["gc", "--dry-run"]);
        let full = started.elapsed() * 3;
        for _ in 0..5 {
            let child = env
                .cmd(&["gc"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            kill_at_random(child, full, &mut seed, 1.0);
        }
        env.ok(&["gc"]);
        let index = env.repo.join("index/index.sqlite");
        let len = std::fs::metadata(&index).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&index)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
        let repair = env.run(&["repair", "index"]);
        assert!(
            repair.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&repair.stdout)
        );
        let check = env.run(&["check", "--read-data"]);
        assert!(
            check.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&check.stdout)
        );
        assert_eq!(env.run(&["dump", &last, "src/night.bin"]).stdout, v3);
        assert_eq!(env.run(&["dump", &last, "src/stays.bin"]).stdout, stays);
    }
}
