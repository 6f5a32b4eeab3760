//! Black-box tests of the `masclet` binary: real processes, real files, exit codes and
//! messages as an operator sees them. One test binary; the modules group the scenarios.

mod archive_roundtrip;
mod archive_verify;
mod archives;
mod cleanup;
mod config;
mod crash;
mod damage;
mod export;
mod extremes;
mod flow;
mod import;
mod index;
mod input;
mod media;
mod notify;
mod ops;
mod pg_backup;
mod pg_verify;
mod producer;
mod restore;
mod retention;
mod run;
mod run_pg;
mod secrets;
mod servers;
mod status;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Env {
    dir: tempfile::TempDir,
    repo: PathBuf,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let env = Self { dir, repo };
        env.ok(&["init"]);
        env
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_masclet"));
        c.args(args)
            .env("MASCLET_REPO", &self.repo)
            .env("MASCLET_PASSWORD", "s3cret pass")
            .env("MASCLET_INSECURE_FAST_KDF", "1")
            .env_remove("MASCLET_PASSWORD_FILE")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "masclet {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn fails(&self, args: &[&str], code: i32, needle: &str) -> String {
        let o = self.run(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(code), "masclet {args:?}: {err}");
        assert!(
            err.contains(needle),
            "masclet {args:?}: {err:?} lacks {needle:?}"
        );
        err
    }

    fn snapshots(&self) -> Vec<serde_json::Value> {
        serde_json::from_str::<serde_json::Value>(&self.ok(&["snapshots", "--json"]))
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

/// Every file under `root` with its content hash, except the index cache.
fn tree_state(root: &Path) -> Vec<(PathBuf, String)> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.to_string_lossy().contains("/index/") {
                out.push((
                    p.clone(),
                    blake3::hash(&std::fs::read(&p).unwrap())
                        .to_hex()
                        .to_string(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn write_source(root: &Path) {
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("a.txt"), b"hola\n").unwrap();
    std::fs::write(
        root.join("sub/data.bin"),
        masclet_tests::golden_bytes(500_000, 5),
    )
    .unwrap();
    std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
}

fn same_tree(a: &Path, b: &Path) {
    let o = Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "trees differ: {}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// Kill `child` after a pseudo-random share (up to `scale`) of `full`; `seed` advances.
fn kill_at_random(
    mut child: std::process::Child,
    full: std::time::Duration,
    seed: &mut u64,
    scale: f64,
) -> bool {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    std::thread::sleep(full.mul_f64((*seed % 1000) as f64 / 1000.0 * scale));
    let _ = child.kill();
    child.wait().unwrap().success()
}
