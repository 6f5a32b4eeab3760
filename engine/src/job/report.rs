//! The HTML report (`masclet report --html`): one self-contained page a web server or a
//! mail client can show as it is, with charts over time of the repository's size, the
//! bytes each run added, run durations and test-restore results, and a table of the last
//! runs.
//!
//! Self-contained means no network and no scripts: inline CSS, charts as inline SVG drawn
//! by `plotters`' SVG backend. That backend lays text out with a crude width estimate and
//! leaves the glyphs to the browser, so no font files (and no fontconfig) are needed.
//! Every string that comes from a record (tier, host, step detail) is HTML-escaped here;
//! plotters escapes the chart labels itself.

use super::record::{RunRecord, Runs};
use super::status::TIERS;
use crate::error::{Error, ErrorKind, Result};
use crate::repository::index::verifications::Verification;
use crate::{Snapshot, SnapshotId};
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use plotters::prelude::*;
use std::fmt::Write;

/// How many runs the table at the end lists, newest first.
pub const TABLE_RUNS: usize = 30;

const WIDTH: u32 = 900;
const HEIGHT: u32 = 280;

/// What the report is drawn from.
#[derive(Clone, Copy)]
pub struct ReportInput<'a> {
    /// The run history.
    pub runs: &'a Runs,
    /// The repository's snapshots, oldest first: the table of tiers.
    pub snapshots: &'a [(SnapshotId, Snapshot)],
    /// Every recorded test restore, oldest first, with the snapshot's hex id.
    pub verifications: &'a [(String, Verification)],
    /// When the report is made.
    pub now: DateTime<Utc>,
}

/// The report as one HTML document.
///
/// # Errors
/// `Internal` if a chart cannot be drawn (it can only fail on its own arithmetic).
pub fn report_html(input: &ReportInput<'_>) -> Result<String> {
    let mut h = String::new();
    h.push_str(HEAD);
    let _ = write!(
        h,
        "<h1>masclet report</h1>\n<p>Made {}. {} runs recorded{}; {} snapshots; {} test restores.</p>\n",
        input.now.to_rfc3339_opts(SecondsFormat::Secs, true),
        input.runs.records.len(),
        if input.runs.unreadable > 0 {
            format!(" ({} unreadable lines skipped)", input.runs.unreadable)
        } else {
            String::new()
        },
        input.snapshots.len(),
        input.verifications.len(),
    );
    tiers(&mut h, input.snapshots);
    let runs: Vec<(f64, &RunRecord)> = input
        .runs
        .records
        .iter()
        .filter_map(|r| Some((timestamp(&r.finished)?, r)))
        .collect();
    if runs.is_empty() {
        h.push_str("<p class=\"empty\">No runs recorded yet: the charts appear after the first nightly run (<code>masclet run -t daily</code>).</p>\n");
    } else {
        let point = |f: fn(&RunRecord) -> f64| -> Vec<(f64, f64)> {
            runs.iter().map(|&(t, r)| (t, f(r))).collect()
        };
        chart(
            &mut h,
            "Repository size (MB)",
            &point(|r| r.metrics.repository_bytes as f64 / 1e6),
            Kind::Line,
        )?;
        chart(
            &mut h,
            "Bytes added per run (MB)",
            &point(|r| r.metrics.bytes_added as f64 / 1e6),
            Kind::Bars,
        )?;
        chart(
            &mut h,
            "Run duration (s, tiempo_total)",
            &point(|r| r.metrics.tiempo_total),
            Kind::Line,
        )?;
        let checks: Vec<(f64, f64)> = input
            .verifications
            .iter()
            .filter_map(|(_, v)| Some((timestamp(&v.time)?, f64::from(u8::from(v.ok)))))
            .chain(
                runs.iter()
                    .filter_map(|&(t, r)| Some((t, f64::from(u8::from(r.verified?))))),
            )
            .collect();
        chart(
            &mut h,
            "Verification results (1 = passed, 0 = failed)",
            &checks,
            Kind::Outcomes,
        )?;
        table(&mut h, input.runs);
    }
    h.push_str("</body>\n</html>\n");
    Ok(h)
}

const HEAD: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<title>masclet report</title>\n<style>\n\
body { font-family: sans-serif; margin: 2em; color: #222; background: #fff; }\n\
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 1.5em; }\n\
table { border-collapse: collapse; font-size: 0.9em; }\n\
td, th { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }\n\
.failed { color: #b00; font-weight: bold; } .warning { color: #a60; }\n\
.empty { font-style: italic; }\n\
</style>\n</head>\n<body>\n";

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Line,
    Bars,
    Outcomes,
}

/// Seconds since the epoch of an RFC 3339 time, as the charts' x axis.
fn timestamp(t: &str) -> Option<f64> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|d| d.timestamp() as f64)
}

fn date_label(x: &f64) -> String {
    Utc.timestamp_opt(*x as i64, 0)
        .single()
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// Append one titled chart of `points` (x in epoch seconds) as inline SVG.
fn chart(out: &mut String, title: &str, points: &[(f64, f64)], kind: Kind) -> Result<()> {
    let _ = writeln!(out, "<h2>{}</h2>", escape(title));
    if points.is_empty() {
        out.push_str("<p class=\"empty\">Nothing recorded yet.</p>\n");
        return Ok(());
    }
    let (mut x0, mut x1) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    // A single point (or one night) still needs an axis around it.
    let pad = ((x1 - x0) * 0.05).max(6.0 * 3600.0);
    (x0, x1) = (x0 - pad, x1 + pad);
    let top = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let y1 = if kind == Kind::Outcomes {
        1.2
    } else if top > 0.0 {
        top * 1.15
    } else {
        1.0
    };
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        area.fill(&WHITE).map_err(draw_err)?;
        let mut c = ChartBuilder::on(&area)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, 0.0..y1)
            .map_err(draw_err)?;
        c.configure_mesh()
            .x_labels(5)
            .y_labels(6)
            .x_label_formatter(&date_label)
            .y_label_formatter(&|y| format!("{y:.1}"))
            .draw()
            .map_err(draw_err)?;
        match kind {
            Kind::Line => {
                c.draw_series(LineSeries::new(
                    points.iter().copied(),
                    BLUE.stroke_width(2),
                ))
                .map_err(draw_err)?;
                c.draw_series(PointSeries::of_element(
                    points.iter().copied(),
                    3,
                    BLUE.filled(),
                    &|p, s, st| Circle::new(p, s, st),
                ))
                .map_err(draw_err)?;
            }
            Kind::Bars => {
                // A bar is an hour either side of its run: visible at a year's scale
                // too, as the axis pads at least six hours.
                let half = ((x1 - x0) / 200.0).max(1800.0);
                c.draw_series(points.iter().map(|&(x, y)| {
                    Rectangle::new([(x - half, 0.0), (x + half, y)], GREEN.mix(0.8).filled())
                }))
                .map_err(draw_err)?;
            }
            Kind::Outcomes => {
                c.draw_series(points.iter().map(|&(x, y)| {
                    let colour = if y > 0.5 { GREEN } else { RED };
                    Circle::new((x, y), 5, colour.filled())
                }))
                .map_err(draw_err)?;
            }
        }
        area.present().map_err(draw_err)?;
    }
    out.push_str(&svg);
    out.push('\n');
    Ok(())
}

fn draw_err<E: std::fmt::Debug>(e: E) -> Error {
    Error::new(ErrorKind::Internal, format!("cannot draw a chart: {e:?}"))
}

/// How many snapshots each tier keeps and when its newest was taken.
fn tiers(out: &mut String, snapshots: &[(SnapshotId, Snapshot)]) {
    out.push_str("<table>\n<tr><th>tier</th><th>snapshots</th><th>newest</th></tr>\n");
    for tier in TIERS {
        let tagged: Vec<&Snapshot> = snapshots
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.tags.iter().any(|t| t == tier))
            .collect();
        let newest = tagged.iter().map(|s| s.time).max().map_or_else(
            || "none".to_owned(),
            |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
        );
        let _ = writeln!(
            out,
            "<tr><td>{tier}</td><td>{}</td><td>{newest}</td></tr>",
            tagged.len()
        );
    }
    out.push_str("</table>\n");
}

/// The last [`TABLE_RUNS`] runs, newest first, their failed steps spelt out.
fn table(out: &mut String, runs: &Runs) {
    out.push_str("<h2>Last runs</h2>\n<table>\n<tr><th>started</th><th>tier</th><th>host</th><th>outcome</th><th>duration</th><th>added</th><th>verified</th><th>steps</th></tr>\n");
    for r in runs.records.iter().rev().take(TABLE_RUNS) {
        let steps: Vec<String> = r
            .steps
            .iter()
            .map(|s| {
                let detail = if s.detail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", escape(&s.detail))
                };
                format!(
                    "<span class=\"{o}\">{} {o}</span>{detail}",
                    escape(&s.name),
                    o = s.outcome.as_str()
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{o}\">{o}</td><td>{:.1} s</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.started),
            escape(&r.tier),
            escape(&r.host),
            r.metrics.tiempo_total,
            r.metrics.bytes_added,
            match r.verified {
                Some(true) => "passed",
                Some(false) => "<span class=\"failed\">failed</span>",
                None => "",
            },
            steps.join("<br>"),
            o = r.outcome.as_str(),
        );
    }
    out.push_str("</table>\n");
}

/// `s` safe as HTML text and attribute value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
