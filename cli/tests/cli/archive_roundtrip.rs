//! Export, verify-archive and import together: an archive `masclet export` writes passes
//! `verify-archive` with its manifest checked, and imports into another repository as a
//! snapshot that restores the original tree; the imported snapshot exports again to an
//! archive that passes too.

use super::*;
use std::os::unix::ffi::OsStrExt;

fn json(env: &Env, args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let o = env.cmd(args).output().unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (
        o.status.code(),
        v,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn export(env: &Env, tier: &str, dir: &Path) -> PathBuf {
    let (code, v, err) = json(
        env,
        &[
            "export",
            "latest",
            "--tier",
            tier,
            "--dir",
            dir.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(code, Some(0), "{v}\n{err}");
    PathBuf::from(v["path"].as_str().unwrap())
}

fn verify_archive_passes(env: &Env, f: &Path) {
    let (code, v, err) = json(
        env,
        &[
            "verify-archive",
            "--json",
            "--min-size",
            "0",
            f.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{v}\n{err}");
    let manifest = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "manifest")
        .cloned()
        .unwrap_or_default();
    assert_eq!(manifest["ok"], true, "the manifest was not checked: {v}");
    assert!(
        manifest["detail"]
            .as_str()
            .unwrap_or("")
            .contains("match MANIFEST.json exactly"),
        "an exported archive must carry its manifest: {v}"
    );
}

#[test]
fn an_exported_archive_verifies_imports_elsewhere_and_restores_the_original_tree() {
    let site = Env::new();
    let src = site.path("src");
    write_source(&src);
    std::fs::create_dir_all(src.join("nested/deeper")).unwrap();
    std::fs::write(src.join("nested/deeper/empty"), b"").unwrap();
    let long = format!("{}.sql", "n".repeat(140));
    std::fs::write(
        src.join("nested").join(long),
        masclet_tests::noise(300_000, 3),
    )
    .unwrap();
    std::fs::write(
        src.join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt")),
        b"latin-1\n",
    )
    .unwrap();
    site.ok(&[
        "backup",
        "--time",
        "2025-06-30T22:15:40Z",
        "--tag",
        "monthly",
        src.to_str().unwrap(),
    ]);
    let f = export(&site, "monthly", &site.path("classic"));
    verify_archive_passes(&site, &f);
    // The original `test-backup.sh /backups/daily/latest.tar.gz`: through the link, the
    // name and sidecar checked are the file's.
    let latest = f.parent().unwrap().join("latest.tar.gz");
    verify_archive_passes(&site, &latest);
    // A copy under the link's name has no checksum to show: that fails.
    let copy = site.path("latest.tar.gz");
    std::fs::copy(&f, &copy).unwrap();
    let (code, v, _) = json(
        &site,
        &[
            "verify-archive",
            "--json",
            "--min-size",
            "0",
            copy.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(8), "{v}");

    let elsewhere = Env::new();
    let (code, v, err) = json(&elsewhere, &["import", "--json", f.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{v}\n{err}");
    let snaps = elsewhere.snapshots();
    assert_eq!(snaps.len(), 1);
    // The name carries the minute, so that is the time the imported snapshot gets.
    assert_eq!(snaps[0]["time"], "2025-06-30T22:15:00Z");
    assert!(
        snaps[0]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "monthly"),
        "{}",
        snaps[0]
    );
    let restored = elsewhere.path("restored");
    elsewhere.ok(&["restore", "latest", "--target", restored.to_str().unwrap()]);
    let top = std::fs::read_dir(&restored).unwrap().count();
    // A files snapshot keeps its source path below the root; find the tree's copy.
    let copy = if top == 1 && !restored.join("a.txt").exists() {
        find_dir_with(&restored, "a.txt").expect("the restored tree")
    } else {
        restored.clone()
    };
    same_tree(&src, &copy);

    let (code, v, _) = json(&elsewhere, &["import", "--json", f.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(elsewhere.snapshots().len(), 1, "imported twice: {v}");

    let again = export(&elsewhere, "monthly", &elsewhere.path("classic"));
    verify_archive_passes(&elsewhere, &again);
}

/// The directory below `root` holding a file named `name`.
fn find_dir_with(root: &Path, name: &str) -> Option<PathBuf> {
    if root.join(name).is_file() {
        return Some(root.to_path_buf());
    }
    for e in std::fs::read_dir(root).ok()? {
        let p = e.ok()?.path();
        if p.is_dir()
            && !p.is_symlink()
            && let Some(found) = find_dir_with(&p, name)
        {
            return Some(found);
        }
    }
    None
}
