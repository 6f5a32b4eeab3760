use super::*;
use crate::job::record::{Metrics, RECORD_VERSION, StepOutcome, StepRecord};

fn run(day: u32, outcome: StepOutcome, detail: &str) -> RunRecord {
    RunRecord {
        version: RECORD_VERSION,
        tier: "daily".into(),
        host: "granja".into(),
        started: format!("2026-11-{day:02}T02:00:00Z"),
        finished: format!("2026-11-{day:02}T02:03:00Z"),
        outcome,
        exit_code: u8::from(outcome == StepOutcome::Failed),
        snapshot: None,
        verified: Some(outcome != StepOutcome::Failed),
        steps: vec![StepRecord {
            name: "backup".into(),
            outcome,
            duration_secs: 170.0,
            detail: detail.into(),
        }],
        metrics: Metrics {
            tiempo_total: 180.0 + f64::from(day),
            bytes_added: u64::from(day) * 1_000_000,
            repository_bytes: u64::from(day) * 50_000_000,
            ..Metrics::default()
        },
        alerts: vec![],
    }
}

fn make(runs: &Runs) -> String {
    report_html(&ReportInput {
        runs,
        snapshots: &[],
        verifications: &[(
            "ab".repeat(32),
            Verification {
                time: "2026-11-03T04:00:00Z".into(),
                ok: false,
                report: "{}".into(),
            },
        )],
        now: Utc::now(),
    })
    .unwrap()
}

#[test]
fn four_charts_no_external_reference_and_escaped_details() {
    let runs = Runs {
        records: vec![
            run(1, StepOutcome::Ok, ""),
            run(2, StepOutcome::Ok, "a & b"),
            run(3, StepOutcome::Failed, "<script>alert(1)</script>"),
        ],
        unreadable: 1,
    };
    let html = make(&runs);
    assert_eq!(html.matches("<svg").count(), 4, "{html}");
    let outside_xmlns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!outside_xmlns.contains("http"), "an external reference");
    assert!(!html.contains("<script"), "a script got through");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("a &amp; b"));
    assert!(html.contains("1 unreadable lines skipped"));
    // The axes carry dates, the points are drawn.
    assert!(html.contains("2026-11-0"), "no date labels");
    assert!(html.contains("<circle"), "no points");
    assert!(html.contains("<rect"), "no bars");
}

#[test]
fn an_empty_history_says_so() {
    let html = make(&Runs::default());
    assert!(html.contains("No runs recorded yet"));
    assert!(!html.contains("<svg"));
    assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
}

#[test]
fn a_single_run_gets_an_axis_around_it() {
    let runs = Runs {
        records: vec![run(5, StepOutcome::Ok, "")],
        unreadable: 0,
    };
    assert_eq!(make(&runs).matches("<svg").count(), 4);
    assert_eq!(escape("'\"<>&"), "&#39;&quot;&lt;&gt;&amp;");
}
