//! Everyday use: backup, list, ls, dump, restore, check, JSON output.

use super::*;

#[test]
fn backup_list_ls_dump_restore_check() {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    let id = env.ok(&[
        "backup",
        "--tag",
        "daily",
        "--tag",
        "manual",
        src.to_str().unwrap(),
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64);
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 1);
    let s = &snaps[0];
    assert_eq!(s["id"], id);
    assert_eq!(s["tags"], serde_json::json!(["daily", "manual"]));
    assert!(chrono_like(s["time"].as_str().unwrap()), "{}", s["time"]);
    assert_eq!(s["paths"][0], src.to_str().unwrap());
    let ls = env.ok(&["ls", &id[..8]]);
    assert_eq!(
        ls.lines().collect::<Vec<_>>(),
        vec![
            "src",
            "src/a.txt",
            "src/link",
            "src/sub",
            "src/sub/data.bin"
        ]
    );
    assert_eq!(env.ok(&["dump", "latest", "src/a.txt"]), "hola\n");
    let out = env.path("out");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    same_tree(&src, &out.join("src"));
    assert!(
        env.ok(&["check", "--read-data"])
            .contains("no problems found")
    );
    let check: serde_json::Value = serde_json::from_str(&env.ok(&["check", "--json"])).unwrap();
    assert_eq!(check["ok"], true);
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["backup", "--json", src.to_str().unwrap()])).unwrap();
    assert_eq!(
        json["new_raw_bytes"], 0,
        "unchanged tree adds no data: {json}"
    );
}

fn chrono_like(t: &str) -> bool {
    t.len() == 20 && t.ends_with('Z') && t.as_bytes()[10] == b'T'
}

#[test]
fn stdin_backup_with_time_and_dump() {
    let env = Env::new();
    let data = masclet_tests::golden_bytes(2_000_000, 9);
    let mut child = env
        .cmd(&[
            "backup",
            "--stdin",
            "--stdin-name",
            "masclet_imperi.sql",
            "--time",
            "2025-03-11T07:45:00Z",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &data).unwrap();
    drop(child.stdin.take());
    assert!(child.wait_with_output().unwrap().status.success());
    let snaps = env.snapshots();
    assert_eq!(snaps[0]["time"], "2025-03-11T07:45:00Z");
    assert_eq!(snaps[0]["source"], "stdin");
    let out = env.run(&["dump", "latest", "masclet_imperi.sql"]);
    assert!(out.status.success());
    assert_eq!(out.stdout, data);
    env.fails(&["dump", "latest", "nope.sql"], 1, "no file nope.sql");
    env.fails(
        &["restore", "ffff", "--target", "/tmp/x"],
        1,
        "no snapshot matches",
    );
    env.fails(&["backup", "--time", "yesterday", "--stdin"], 1, "RFC 3339");
}

/// The backup summary reports bytes stored against bytes read: a small change in a large
/// file, stored as a delta, costs a tiny share of what was read, even though the chunk
/// around it is new (counting new chunks' plaintext said ~94% "deduplicated").
#[test]
fn summary_reports_bytes_stored_against_bytes_read() {
    let env = Env::new();
    let f = env.path("dump.bin");
    let mut data = masclet_tests::golden_bytes(2_000_000, 9);
    std::fs::write(&f, &data).unwrap();
    env.ok(&["backup", f.to_str().unwrap()]);
    data[1_000_000..1_000_016].copy_from_slice(b"changed tonight!");
    std::fs::write(&f, &data).unwrap();
    let o = env.run(&["backup", "--force-read", f.to_str().unwrap()]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let pct: f64 = err
        .split("% of the bytes read")
        .next()
        .and_then(|h| h.rsplit('(').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no stored share in {err:?}"));
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["backup", "--json", "--force-read", f.to_str().unwrap()]))
            .unwrap();
    assert!(
        pct < 3.0,
        "a 16-byte change stored {pct}% of the bytes: {err}"
    );
    let ratio = json["stored_ratio"].as_f64().unwrap();
    let expect = json["bytes_added"].as_f64().unwrap() / json["bytes_read"].as_f64().unwrap();
    assert!((ratio - expect).abs() < 1e-9, "{json}");
}

/// Names with control characters (a newline, a terminal escape) are escaped in `ls`,
/// `ls -l` and `snapshots` text output, so a name cannot forge lines; JSON keeps them.
#[test]
fn text_output_escapes_control_characters_in_names() {
    let env = Env::new();
    let src = env.path("sr\nc");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("evil\nforged.txt"), b"x").unwrap();
    std::fs::write(src.join("esc\u{1b}[2J"), b"y").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let ls = env.ok(&["ls", "latest"]);
    assert_eq!(
        ls.lines().collect::<Vec<_>>(),
        vec!["sr\\nc", "sr\\nc/esc\\u{1b}[2J", "sr\\nc/evil\\nforged.txt"],
        "{ls:?}"
    );
    let long = env.ok(&["ls", "-l", "latest"]);
    assert_eq!(long.lines().count(), 3, "{long:?}");
    assert!(!long.contains('\u{1b}'), "{long:?}");
    let snaps = env.ok(&["snapshots"]);
    assert_eq!(
        snaps.lines().count(),
        3,
        "header, one snapshot, count: {snaps:?}"
    );
    assert!(snaps.contains("sr\\nc"), "{snaps:?}");
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["ls", "--json", "latest"])).unwrap();
    assert!(
        json.to_string().contains("evil\\nforged.txt"),
        "JSON keeps the name: {json}"
    );
}
