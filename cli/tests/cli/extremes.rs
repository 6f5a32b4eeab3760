//! No input panics the binary: every numeric option of every subcommand, found in the
//! binary's own help so that a new option is covered without editing this list, gets
//! extreme values.

use super::*;

/// Subcommand names from `masclet --help`.
fn subcommands(env: &Env) -> Vec<String> {
    let help = env.ok(&["--help"]);
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // Wrapped descriptions are indented further than the names.
        .filter(|l| !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

/// `--flag` of each option whose value is a number (SECONDS, N, MIB, PERCENT).
fn numeric_options(env: &Env, sub: &str) -> Vec<String> {
    let help = env.ok(&[sub, "--help"]);
    let mut out = vec![];
    for l in help.lines() {
        let words: Vec<&str> = l.split_whitespace().collect();
        for w in words.windows(2) {
            let numeric = ["<SECONDS>", "<N>", "<MIB>", "<PERCENT>"].contains(&w[1]);
            if w[0].starts_with("--") && numeric {
                out.push(w[0].to_string());
            }
        }
    }
    out
}

/// `--lock-wait 9223372036854775807 snapshots` panicked (Instant overflow). Now every
/// numeric flag of every subcommand, given 0, u64::MAX, i64::MAX, negatives, NaN,
/// infinities and a 400-digit number, exits without a panic (no exit 101, no "panicked").
#[test]
fn extreme_numeric_flag_values_never_panic() {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    let out = env.path("out");
    let huge = "9".repeat(400);
    let values = [
        "0",
        "18446744073709551615",
        "9223372036854775807",
        "-1",
        "-9223372036854775808",
        "NaN",
        "inf",
        "-inf",
        "1e308",
        huge.as_str(),
    ];
    let subs = subcommands(&env);
    assert!(subs.len() >= 10, "{subs:?}");
    let mut tried = 0;
    for sub in &subs {
        // Positional arguments that let each command get past parsing; destructive ones
        // run as dry runs.
        let positional: Vec<String> = match sub.as_str() {
            "backup" => vec![src.to_str().unwrap().into()],
            "restore" => vec![
                "latest".into(),
                "--target".into(),
                out.to_str().unwrap().into(),
            ],
            "dump" => vec!["latest".into(), "src/a.txt".into()],
            "ls" => vec!["latest".into()],
            "forget" | "gc" => vec!["--dry-run".into()],
            "repair" => vec!["index".into()],
            "completions" => vec!["bash".into()],
            "init" => vec![],
            _ => vec![],
        };
        for opt in numeric_options(&env, sub) {
            for v in values {
                let mut args: Vec<&str> = vec![sub.as_str()];
                args.extend(positional.iter().map(String::as_str));
                let flag = format!("{opt}={v}");
                args.push(&flag);
                let mut cmd = env.cmd(&args);
                if sub == "init" {
                    cmd.env("MASCLET_REPO", env.path(&format!("init-{tried}")));
                }
                let o = cmd.output().unwrap();
                let err = String::from_utf8_lossy(&o.stderr);
                assert_ne!(o.status.code(), Some(101), "{args:?}: {err}");
                assert!(
                    o.status.code().is_some(),
                    "{args:?} died of a signal: {err}"
                );
                assert!(!err.contains("panicked"), "{args:?}: {err}");
                tried += 1;
            }
        }
    }
    assert!(tried >= 100, "only {tried} runs: numeric options not found");
}
