//! `forget` over a multi-year history keeps what the policy names and tags each kept
//! snapshot with its tiers; gc killed at random moments loses nothing.

use super::*;

const DAILY: [&str; 9] = [
    "2026-11-28",
    "2026-11-27",
    "2026-11-26",
    "2026-11-25",
    "2026-11-24",
    "2026-11-23",
    "2026-11-22",
    "2026-11-21",
    "2026-11-20",
];
const WEEKLY: [&str; 3] = ["2026-11-08", "2026-11-01", "2026-10-25"];
const MONTHLY: [&str; 13] = [
    "2026-09-15",
    "2026-08-15",
    "2026-07-15",
    "2026-06-15",
    "2026-05-15",
    "2026-04-15",
    "2026-03-15",
    "2026-02-15",
    "2026-01-15",
    "2025-12-15",
    "2025-11-15",
    "2025-10-15",
    "2025-09-15",
];
const YEARLY: [&str; 6] = [
    "2024-06-15",
    "2023-06-15",
    "2022-06-15",
    "2021-06-15",
    "2020-06-15",
    "2019-06-15",
];

fn expected_tags(day: &str) -> Option<&'static str> {
    Some(match day {
        "2026-11-28" => "daily,weekly,monthly,yearly",
        "2026-11-25" => "manual,daily",
        "2026-11-27" | "2026-11-26" | "2026-11-24" | "2026-11-23" => "daily",
        "2026-11-22" => "daily,weekly",
        "2026-11-08" | "2026-11-01" => "weekly",
        "2026-10-25" => "monthly",
        "2025-12-15" => "monthly,yearly",
        "2024-06-15" | "2023-06-15" | "2022-06-15" => "yearly",
        d if d.starts_with("2026-0") => "monthly",
        _ => return None,
    })
}

fn tags_by_day(env: &Env) -> std::collections::BTreeMap<String, String> {
    env.snapshots()
        .iter()
        .map(|s| {
            let tags: Vec<&str> = s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            (
                s["time"].as_str().unwrap()[..10].to_string(),
                tags.join(","),
            )
        })
        .collect()
}

#[test]
fn years_of_history_forget_down_to_the_policy_with_tier_tags() {
    let env = Env::new();
    let src = env.path("dump.sql");
    let all: Vec<&str> = DAILY
        .iter()
        .chain(&WEEKLY)
        .chain(&MONTHLY)
        .chain(&YEARLY)
        .copied()
        .collect();
    for (i, day) in all.iter().enumerate() {
        std::fs::write(&src, masclet_tests::golden_bytes(20_000, i as u64)).unwrap();
        let time = format!("{day}T02:00:00Z");
        let mut args = vec![
            "backup",
            "-t",
            "daily",
            "--time",
            &time,
            src.to_str().unwrap(),
        ];
        if *day == "2026-11-25" {
            args.extend(["--tag", "manual"]);
        }
        env.ok(&args);
    }
    assert_eq!(env.snapshots().len(), all.len());
    let forget = |extra: &[&str]| {
        let mut c = env.cmd(&[&["forget"], extra].concat());
        c.env("TZ", "Europe/Madrid");
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let plan: serde_json::Value = serde_json::from_str(&forget(&["--dry-run", "--json"])).unwrap();
    let decisions = plan["plan"]["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), all.len());
    let removed: Vec<&str> = decisions
        .iter()
        .filter(|d| d["keep"] == false)
        .map(|d| &d["time"].as_str().unwrap()[..10])
        .collect();
    assert_eq!(
        removed,
        vec![
            "2026-11-21",
            "2026-11-20",
            "2025-11-15",
            "2025-10-15",
            "2025-09-15",
            "2021-06-15",
            "2020-06-15",
            "2019-06-15"
        ]
    );
    assert!(
        decisions
            .iter()
            .all(|d| !d["reasons"].as_array().unwrap().is_empty()),
        "every decision says why"
    );
    assert_eq!(env.snapshots().len(), all.len(), "dry run changed nothing");
    let text = forget(&[]);
    assert!(text.contains("23 snapshots kept"), "{text}");
    let got = tags_by_day(&env);
    let want: std::collections::BTreeMap<String, String> = all
        .iter()
        .filter_map(|d| expected_tags(d).map(|t| ((*d).to_string(), t.to_string())))
        .collect();
    assert_eq!(got, want);
    // Idempotent: a second run keeps everything and changes no tag.
    let again: serde_json::Value = serde_json::from_str(&forget(&["--json"])).unwrap();
    assert_eq!(again["summary"]["removed"], 0);
    assert_eq!(again["summary"]["retagged"], 0);
    // gc gives the space of the forgotten snapshots back.
    let gc: serde_json::Value = serde_json::from_str(&env.ok(&["gc", "--json"])).unwrap();
    assert!(
        gc["summary"]["bytes_freed"].as_u64().unwrap() >= 8 * 20_000,
        "{gc}"
    );
    assert!(
        env.ok(&["check", "--read-data"])
            .contains("no problems found")
    );
    let out = env.run(&["dump", "latest", "dump.sql"]);
    assert_eq!(out.stdout, masclet_tests::golden_bytes(20_000, 0));
}

#[test]
fn kill_9_during_gc_loses_nothing() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut ids = vec![];
    for i in 0..6u64 {
        std::fs::write(
            src.join("base.bin"),
            masclet_tests::golden_bytes(6_000_000, 1),
        )
        .unwrap();
        std::fs::write(
            src.join("night.bin"),
            masclet_tests::golden_bytes(6_000_000, 100 + i),
        )
        .unwrap();
        ids.push(
            env.ok(&["backup", src.to_str().unwrap()])
                .trim()
                .to_string(),
        );
    }
    let kept: Vec<(String, Vec<u8>)> = ids
        .iter()
        .skip(3)
        .map(|id| (id.clone(), env.run(&["dump", id, "src/night.bin"]).stdout))
        .collect();
    env.ok(&[
        "forget",
        "--keep-last",
        "3",
        "--keep-daily",
        "0",
        "--keep-weekly",
        "0",
        "--keep-monthly",
        "0",
        "--keep-yearly",
        "0",
    ]);
    let pristine = env.path("pristine");
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(&env.repo)
            .arg(&pristine)
            .status()
            .unwrap()
            .success()
    );
    let started = std::time::Instant::now();
    env.ok(&["gc"]);
    let full = started.elapsed();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..6 {
        std::fs::remove_dir_all(&env.repo).unwrap();
        assert!(
            Command::new("cp")
                .arg("-a")
                .arg(&pristine)
                .arg(&env.repo)
                .status()
                .unwrap()
                .success()
        );
        let child = env
            .cmd(&["gc"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        kill_at_random(child, full, &mut seed, 1.0);
        let check = env.run(&["check", "--read-data"]);
        assert!(
            check.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&check.stdout)
        );
        for (id, data) in &kept {
            assert_eq!(
                &env.run(&["dump", id, "src/night.bin"]).stdout,
                data,
                "round {round}"
            );
        }
        env.ok(&["gc"]);
        let second: serde_json::Value =
            serde_json::from_str(&env.ok(&["gc", "--json", "--dry-run"])).unwrap();
        assert_eq!(
            second["plan"]["delete"].as_array().unwrap().len(),
            0,
            "round {round}: gc did not finish the work"
        );
        assert_eq!(second["plan"]["orphans"].as_array().unwrap().len(), 0);
        assert!(
            env.ok(&["check", "--read-data"])
                .contains("no problems found")
        );
    }
}
