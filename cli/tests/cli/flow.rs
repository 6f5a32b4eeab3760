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
    let data = masclet_tools::golden_bytes(2_000_000, 9);
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
