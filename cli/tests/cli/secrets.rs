//! Passphrases, key slots and file permissions: a wrong passphrase writes nothing and has
//! its own exit code, KDF parameters are checked before the KDF runs, files are private
//! whatever the umask, and a damaged config is not mistaken for a wrong passphrase.

use super::*;

#[test]
fn wrong_passphrase_writes_nothing_and_has_its_own_exit_code() {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    let before = tree_state(&env.repo);
    for cmd in [
        &["snapshots"][..],
        &["backup", src.to_str().unwrap()],
        &["check"],
        &["repair", "index"],
    ] {
        let o = env
            .cmd(cmd)
            .env("MASCLET_PASSWORD", "wrong")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(3), "{cmd:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("wrong passphrase"));
    }
    assert_eq!(
        tree_state(&env.repo),
        before,
        "a wrong passphrase wrote to the repository"
    );
    assert!(
        std::fs::read_dir(env.repo.join("locks"))
            .unwrap()
            .next()
            .is_none(),
        "lock left behind"
    );
}

#[test]
fn passphrase_file_rules() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let pwfile = dir.path().join("pw");
    std::fs::write(&pwfile, b"file pass\n").unwrap();
    std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = |args: &[&str], pw: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_masclet"));
        c.args(args)
            .env("MASCLET_REPO", &repo)
            .env("MASCLET_INSECURE_FAST_KDF", "1")
            .env_remove("MASCLET_PASSWORD")
            .stdin(Stdio::null());
        match pw {
            Some(p) => c
                .env("MASCLET_PASSWORD", p)
                .env_remove("MASCLET_PASSWORD_FILE"),
            None => c.env("MASCLET_PASSWORD_FILE", &pwfile),
        };
        c.output().unwrap()
    };
    let o = run(&["init"], None);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("insecure permissions"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!repo.exists());
    std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(run(&["init"], None).status.success());
    // One trailing newline is not part of the passphrase.
    assert!(run(&["snapshots"], Some("file pass")).status.success());
    assert_eq!(
        run(&["snapshots"], Some("file pass\n")).status.code(),
        Some(3)
    );
    // Without any source of passphrase and no terminal, say what to do.
    let o = Command::new(env!("CARGO_BIN_EXE_masclet"))
        .args(["snapshots"])
        .env("MASCLET_REPO", &repo)
        .env_remove("MASCLET_PASSWORD")
        .env_remove("MASCLET_PASSWORD_FILE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("MASCLET_PASSWORD_FILE"), "{err}");
    let empty = dir.path().join("repo2");
    let o = Command::new(env!("CARGO_BIN_EXE_masclet"))
        .args(["init"])
        .env("MASCLET_REPO", &empty)
        .env("MASCLET_PASSWORD", "")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("empty passphrase"));
}

/// Out-of-bounds KDF parameters make an unreadable key slot: exit 3 as the README's table
/// says, with the message naming the bounds, and refused before the KDF runs.
#[test]
fn tampered_kdf_parameters_are_refused_before_the_kdf() {
    let env = Env::new();
    let key = std::fs::read_dir(env.repo.join("keys"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let orig = std::fs::read(&key).unwrap();
    for m_kib in [1u32, 64 * 1024 * 1024] {
        let mut b = orig.clone();
        b[13..17].copy_from_slice(&m_kib.to_le_bytes());
        std::fs::write(&key, &b).unwrap();
        let started = std::time::Instant::now();
        env.fails(&["snapshots"], 3, "KDF parameters out of bounds");
        assert!(started.elapsed().as_secs() < 20);
    }
    std::fs::write(&key, &orig).unwrap();
    env.ok(&["snapshots"]);
}

#[test]
fn private_permissions_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let src = dir.path().join("src");
    write_source(&src);
    let sh = format!(
        "umask 000; {bin} init && {bin} backup {src} >/dev/null",
        bin = env!("CARGO_BIN_EXE_masclet"),
        src = src.display()
    );
    let o = Command::new("sh")
        .arg("-c")
        .arg(sh)
        .env("MASCLET_REPO", &repo)
        .env("MASCLET_PASSWORD", "pw")
        .env("MASCLET_INSECURE_FAST_KDF", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut stack = vec![repo.clone()];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        assert_eq!(
            std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700,
            "{}",
            d.display()
        );
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files += 1;
                assert_eq!(
                    std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                    0o600,
                    "{}",
                    p.display()
                );
            }
        }
    }
    assert!(files >= 5);
}

#[test]
fn init_writes_the_kdf_parameters_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let slot = |repo: &std::path::Path| {
        let key = std::fs::read_dir(repo.join("keys"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let b = std::fs::read(key).unwrap();
        let u = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        (u(13), u(17), u(21))
    };
    let init = |name: &str, extra: &[&str]| {
        let repo = dir.path().join(name);
        let o = Command::new(env!("CARGO_BIN_EXE_masclet"))
            .arg("init")
            .args(extra)
            .env("MASCLET_REPO", &repo)
            .env("MASCLET_PASSWORD", "pw")
            .env_remove("MASCLET_INSECURE_FAST_KDF")
            .output()
            .unwrap();
        (repo, o)
    };
    let (repo, o) = init("default", &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(slot(&repo), (19 * 1024, 2, 1), "OWASP's 19 MiB, 2 passes");
    let (repo, o) = init("strong", &["--kdf-memory", "32", "--kdf-passes", "3"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(slot(&repo), (32 * 1024, 3, 1));
    let o = Command::new(env!("CARGO_BIN_EXE_masclet"))
        .args(["snapshots"])
        .env("MASCLET_REPO", &repo)
        .env("MASCLET_PASSWORD", "pw")
        .output()
        .unwrap();
    assert!(o.status.success(), "the stronger slot opens");
    let (repo, o) = init("too-small", &["--kdf-memory", "4"]);
    assert_eq!(o.status.code(), Some(2), "usage error");
    assert!(String::from_utf8_lossy(&o.stderr).contains("kdf-memory"));
    assert!(!repo.exists(), "nothing created on a usage error");
}

/// A flipped byte in the config header's repository id fails every key slot like a wrong
/// passphrase; it is reported as a damaged config (exit 5), not "wrong passphrase" (3).
#[test]
fn a_damaged_config_repository_id_is_not_a_wrong_passphrase() {
    let env = Env::new();
    let config = env.repo.join("config");
    let mut b = std::fs::read(&config).unwrap();
    b[20] ^= 0x40;
    std::fs::write(&config, &b).unwrap();
    let err = env.fails(&["snapshots"], 5, "config is damaged");
    assert!(!err.contains("wrong passphrase"), "{err}");
    b[20] ^= 0x40;
    std::fs::write(&config, &b).unwrap();
    env.ok(&["snapshots"]);
}

/// The config header's version is plaintext: a flipped version must not make `check`
/// (or any reader) apply another format's rules and pass.
#[test]
fn a_flipped_config_version_fails_check_and_repair_keeps_the_true_one() {
    let env = Env::new();
    let config = env.repo.join("config");
    let mut b = std::fs::read(&config).unwrap();
    let version = u32::from_le_bytes(b[8..12].try_into().unwrap());
    assert_eq!(version, 3, "this build writes format 3");
    b[8..12].copy_from_slice(&2u32.to_le_bytes());
    std::fs::write(&config, &b).unwrap();
    let err = env.fails(&["check"], 5, "config header is damaged");
    assert!(err.contains("v2") && err.contains("v3"), "{err}");
    env.fails(&["snapshots"], 5, "config header is damaged");
    b[8..12].copy_from_slice(&3u32.to_le_bytes());
    std::fs::write(&config, &b).unwrap();
    env.ok(&["check"]);
    // A rebuilt index records the format again, so the check survives `repair index`.
    env.ok(&["repair", "index"]);
    b[8..12].copy_from_slice(&2u32.to_le_bytes());
    std::fs::write(&config, &b).unwrap();
    env.fails(&["check"], 5, "config header is damaged");
}
