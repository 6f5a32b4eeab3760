//! Retention: which snapshots to keep, as a pure function (no I/O) returning a plan.
//!
//! Semantics (restic's, written down in docs/retention.md): walk the snapshots from newest to
//! oldest; for each rule with count N, keep a snapshot when it is the first one met in a
//! calendar bucket that rule has not used yet, until N buckets are used. Buckets are the
//! calendar day, the ISO 8601 week, the month and the year in the given time zone. So each
//! rule keeps the newest snapshot of each of its N most recent buckets that hold one. A
//! snapshot kept by several rules is kept once and carries the tier tag of every rule
//! keeping it; `--keep-last` and `--keep-tag` keep without a tier tag.

use crate::disk::id::SnapshotId;
use chrono::{DateTime, Datelike, TimeZone, Utc};

/// The tier tags retention manages; every other tag is left alone.
pub const TIERS: [&str; 4] = ["daily", "weekly", "monthly", "yearly"];

/// How many restore points to keep.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeepPolicy {
    /// The N newest snapshots, whatever their time.
    pub last: u32,
    /// The newest snapshot of each of the N most recent days that have one.
    pub daily: u32,
    /// ... of each of the N most recent ISO weeks.
    pub weekly: u32,
    /// ... of each of the N most recent months.
    pub monthly: u32,
    /// ... of each of the N most recent years.
    pub yearly: u32,
    /// Snapshots carrying any of these tags are always kept (pinned).
    pub tags: Vec<String>,
}

impl KeepPolicy {
    /// The original design's policy: 7 daily, 4 weekly, 12 monthly, 5 yearly restore
    /// points. The CLI's `--keep-*` defaults are these fields.
    pub const ORIGINAL: Self = Self {
        last: 0,
        daily: 7,
        weekly: 4,
        monthly: 12,
        yearly: 5,
        tags: Vec::new(),
    };

    /// Whether the policy keeps nothing at all (refused: it would forget everything).
    pub fn is_empty(&self) -> bool {
        self.last == 0
            && self.daily == 0
            && self.weekly == 0
            && self.monthly == 0
            && self.yearly == 0
            && self.tags.is_empty()
    }
}

/// What retention needs to know of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRef {
    /// Its id.
    pub id: SnapshotId,
    /// Its time.
    pub time: DateTime<Utc>,
    /// Its tags.
    pub tags: Vec<String>,
}

/// The decision for one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// The snapshot.
    pub id: SnapshotId,
    /// Its time (RFC 3339, UTC).
    pub time: String,
    /// Kept or forgotten.
    pub keep: bool,
    /// Why: the rules and buckets keeping it, or why nothing does.
    pub reasons: Vec<String>,
    /// Its tags now.
    pub tags_before: Vec<String>,
    /// Its tags after the plan runs (kept snapshots only).
    pub tags_after: Vec<String>,
}

/// The outcome of retention, newest snapshot first.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ForgetPlan {
    /// One decision per snapshot.
    pub decisions: Vec<Decision>,
}

impl ForgetPlan {
    /// Decisions that keep.
    pub fn kept(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| d.keep)
    }

    /// Decisions that forget.
    pub fn removed(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| !d.keep)
    }
}

/// The calendar bucket of `t` for rule `rule` (0 daily, 1 weekly, 2 monthly, 3 yearly), and
/// its label for people.
pub fn bucket<Tz: TimeZone>(rule: usize, t: &DateTime<Utc>, tz: &Tz) -> (i64, String) {
    let local = t.with_timezone(tz);
    let (y, m, d) = (
        i64::from(local.year()),
        i64::from(local.month()),
        i64::from(local.day()),
    );
    match rule {
        0 => (y * 10_000 + m * 100 + d, format!("{y:04}-{m:02}-{d:02}")),
        1 => {
            let w = local.iso_week();
            (
                i64::from(w.year()) * 100 + i64::from(w.week()),
                format!("{:04}-W{:02}", w.year(), w.week()),
            )
        }
        2 => (y * 100 + m, format!("{y:04}-{m:02}")),
        _ => (y, format!("{y:04}")),
    }
}

/// Order snapshots newest first; equal times by id, so the plan is deterministic.
pub fn newest_first(snaps: &mut [SnapshotRef]) {
    snaps.sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
}

/// Decide which snapshots `policy` keeps, bucketing times in time zone `tz`.
pub fn plan<Tz: TimeZone>(snaps: &[SnapshotRef], policy: &KeepPolicy, tz: &Tz) -> ForgetPlan {
    let mut ordered = snaps.to_vec();
    newest_first(&mut ordered);
    let counts = [policy.daily, policy.weekly, policy.monthly, policy.yearly];
    let mut left = counts;
    let mut last_bucket: [Option<i64>; 4] = [None; 4];
    let mut last_left = policy.last;
    let decisions = ordered
        .into_iter()
        .map(|s| {
            let mut reasons = Vec::new();
            let mut tiers = Vec::new();
            if last_left > 0 {
                last_left -= 1;
                reasons.push(format!("last {}", policy.last - last_left));
            }
            for rule in 0..4 {
                let (key, label) = bucket(rule, &s.time, tz);
                if left[rule] > 0 && last_bucket[rule] != Some(key) {
                    last_bucket[rule] = Some(key);
                    left[rule] -= 1;
                    reasons.push(format!("{} {label}", TIERS[rule]));
                    tiers.push(TIERS[rule]);
                }
            }
            for t in &policy.tags {
                if s.tags.contains(t) {
                    reasons.push(format!("tag {t}"));
                }
            }
            let keep = !reasons.is_empty();
            if !keep {
                reasons.push("no rule keeps it".to_string());
            }
            let mut tags_after: Vec<String> = s
                .tags
                .iter()
                .filter(|t| !TIERS.contains(&t.as_str()))
                .cloned()
                .collect();
            if keep {
                tags_after.extend(tiers.iter().map(|t| (*t).to_string()));
            } else {
                tags_after.clear();
            }
            Decision {
                id: s.id,
                time: s.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                keep,
                reasons,
                tags_before: s.tags,
                tags_after,
            }
        })
        .collect();
    ForgetPlan { decisions }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(n: u8, t: &str, tags: &[&str]) -> SnapshotRef {
        SnapshotRef {
            id: SnapshotId([n; 32]),
            time: DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc),
            tags: tags.iter().map(|s| (*s).to_string()).collect(),
        }
    }

    #[test]
    fn newest_of_each_bucket_with_tier_tags() {
        let snaps = vec![
            snap(1, "2026-11-28T03:00:00Z", &["daily", "manual"]),
            snap(2, "2026-11-28T01:00:00Z", &["daily"]),
            snap(3, "2026-11-27T03:00:00Z", &[]),
            snap(4, "2026-11-20T03:00:00Z", &[]),
            snap(5, "2026-10-31T03:00:00Z", &[]),
            snap(6, "2025-06-01T03:00:00Z", &["keep"]),
        ];
        let policy = KeepPolicy {
            daily: 2,
            weekly: 2,
            monthly: 2,
            yearly: 1,
            tags: vec!["keep".into()],
            ..Default::default()
        };
        let p = plan(&snaps, &policy, &Utc);
        let kept: Vec<u8> = p.kept().map(|d| d.id.0[0]).collect();
        assert_eq!(kept, vec![1, 3, 4, 5, 6]);
        let d1 = &p.decisions[0];
        assert_eq!(
            d1.tags_after,
            vec!["manual", "daily", "weekly", "monthly", "yearly"]
        );
        assert_eq!(p.decisions[1].reasons, vec!["no rule keeps it"]);
        assert_eq!(p.decisions[2].tags_after, vec!["daily"]);
        assert_eq!(p.decisions[3].tags_after, vec!["weekly"]);
        assert_eq!(p.decisions[4].tags_after, vec!["monthly"]);
        assert_eq!(p.decisions[5].tags_after, vec!["keep"]);
        assert_eq!(p.decisions[5].reasons, vec!["tag keep"]);
    }

    #[test]
    fn iso_weeks_cross_years() {
        // 2026-12-31 (Thursday) and 2027-01-01 share ISO week 2026-W53.
        let snaps = vec![
            snap(1, "2027-01-01T12:00:00Z", &[]),
            snap(2, "2026-12-31T12:00:00Z", &[]),
        ];
        let p = plan(
            &snaps,
            &KeepPolicy {
                weekly: 5,
                ..Default::default()
            },
            &Utc,
        );
        assert_eq!(p.kept().count(), 1);
        assert_eq!(p.decisions[0].reasons, vec!["weekly 2026-W53"]);
    }
}
