//! Retention against a simple reference: for random histories with gaps, equal
//! times, daylight-saving changes and future times, the plan keeps exactly the newest
//! snapshot of each of the N most recent buckets per rule, tags each kept snapshot with
//! exactly its tiers, always keeps the newest snapshot, and is idempotent.

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use chrono_tz::Europe::Madrid;
use masclet_engine::SnapshotId;
use masclet_engine::ops::retention::{KeepPolicy, SnapshotRef, TIERS, plan};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// The obvious algorithm: group by bucket, take the N newest buckets, keep the newest
/// snapshot (latest time, then highest id) of each.
fn reference<Tz: TimeZone>(
    snaps: &[SnapshotRef],
    policy: &KeepPolicy,
    tz: &Tz,
) -> BTreeMap<SnapshotId, BTreeSet<&'static str>> {
    let mut kept: BTreeMap<SnapshotId, BTreeSet<&'static str>> = BTreeMap::new();
    let key = |rule: usize, t: &DateTime<Utc>| -> (i32, u32, u32) {
        let l = t.with_timezone(tz);
        match rule {
            0 => (l.year(), l.month(), l.day()),
            1 => (l.iso_week().year(), l.iso_week().week(), 0),
            2 => (l.year(), l.month(), 0),
            _ => (l.year(), 0, 0),
        }
    };
    for (rule, n) in [policy.daily, policy.weekly, policy.monthly, policy.yearly]
        .into_iter()
        .enumerate()
    {
        let mut buckets: BTreeMap<(i32, u32, u32), &SnapshotRef> = BTreeMap::new();
        for s in snaps {
            let e = buckets.entry(key(rule, &s.time)).or_insert(s);
            if (s.time, s.id) > (e.time, e.id) {
                *e = s;
            }
        }
        for (_, s) in buckets.iter().rev().take(n as usize) {
            kept.entry(s.id).or_default().insert(TIERS[rule]);
        }
    }
    let mut by_time: Vec<&SnapshotRef> = snaps.iter().collect();
    by_time.sort_by_key(|s| std::cmp::Reverse((s.time, s.id)));
    for s in by_time.iter().take(policy.last as usize) {
        kept.entry(s.id).or_default();
    }
    for s in snaps {
        if s.tags.iter().any(|t| policy.tags.contains(t)) {
            kept.entry(s.id).or_default();
        }
    }
    kept
}

fn history() -> impl Strategy<Value = Vec<SnapshotRef>> {
    // Offsets in minutes over ~6 years around the DST changes of Europe/Madrid; repeated
    // offsets give equal times; some land in the future.
    let start = Utc.with_ymd_and_hms(2021, 1, 1, 0, 0, 0).unwrap();
    proptest::collection::vec((0i64..6 * 366 * 24 * 60, any::<bool>(), 0u8..4), 1..120).prop_map(
        move |v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (m, dense, tag))| {
                    // Dense snapshots cluster in late March/October (DST) of 2026 and near now.
                    let time = if dense {
                        Utc.with_ymd_and_hms(2026, 3, 28, 22, 0, 0).unwrap()
                            + Duration::minutes(m % (10 * 24 * 60))
                    } else {
                        start + Duration::minutes(m)
                    };
                    let mut id = [0u8; 32];
                    id[..8].copy_from_slice(&(i as u64).to_be_bytes());
                    let tags = match tag {
                        0 => vec!["daily".to_string()],
                        1 => vec!["pinned".to_string()],
                        2 => vec!["manual".to_string(), "weekly".to_string()],
                        _ => vec![],
                    };
                    SnapshotRef {
                        id: SnapshotId(id),
                        time,
                        tags,
                    }
                })
                .collect()
        },
    )
}

fn policy() -> impl Strategy<Value = KeepPolicy> {
    (0u32..3, 0u32..10, 0u32..6, 0u32..14, 0u32..7, any::<bool>()).prop_map(
        |(last, daily, weekly, monthly, yearly, pin)| KeepPolicy {
            last,
            daily,
            weekly,
            monthly,
            yearly,
            tags: if pin { vec!["pinned".into()] } else { vec![] },
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]
    #[test]
    fn plan_matches_the_reference(snaps in history(), policy in policy()) {
        let p = plan(&snaps, &policy, &Madrid);
        let expect = reference(&snaps, &policy, &Madrid);
        let got: BTreeMap<SnapshotId, BTreeSet<&str>> = p
            .kept()
            .map(|d| (d.id, d.tags_after.iter().filter_map(|t| TIERS.iter().find(|x| **x == t.as_str()).copied()).collect()))
            .collect();
        prop_assert_eq!(&got, &expect);
        // Non-tier tags survive; tier tags are exactly the rules'.
        for d in p.kept() {
            let others_before: Vec<_> = d.tags_before.iter().filter(|t| !TIERS.contains(&t.as_str())).collect();
            let others_after: Vec<_> = d.tags_after.iter().filter(|t| !TIERS.contains(&t.as_str())).collect();
            prop_assert_eq!(others_before, others_after);
        }
        // The newest snapshot is kept whenever a daily or last rule exists.
        if policy.daily > 0 || policy.last > 0 {
            prop_assert!(p.decisions[0].keep);
        }
        // Idempotent: planning again over what was kept forgets nothing more.
        let kept: Vec<SnapshotRef> = snaps.iter().filter(|s| expect.contains_key(&s.id)).cloned().map(|mut s| {
            s.tags = p.decisions.iter().find(|d| d.id == s.id).unwrap().tags_after.clone();
            s
        }).collect();
        let again = plan(&kept, &policy, &Madrid);
        prop_assert_eq!(again.removed().count(), 0);
        prop_assert!(again.decisions.iter().all(|d| d.tags_after == d.tags_before));
    }
}

#[test]
fn dst_days_are_calendar_days() {
    // 2026-03-29 is 23 hours long in Madrid; 2026-10-25 is 25 hours long. Snapshots at local
    // 00:30 and 23:30 of those days fall in one bucket each.
    let at = |y, mo, d, h, mi| {
        Madrid
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .unwrap()
            .with_timezone(&Utc)
    };
    let snaps: Vec<SnapshotRef> = [
        at(2026, 3, 29, 0, 30),
        at(2026, 3, 29, 23, 30),
        at(2026, 10, 25, 0, 30),
        at(2026, 10, 25, 23, 30),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, time)| SnapshotRef {
        id: SnapshotId([i as u8; 32]),
        time,
        tags: vec![],
    })
    .collect();
    let p = plan(
        &snaps,
        &KeepPolicy {
            daily: 10,
            ..Default::default()
        },
        &Madrid,
    );
    let kept: Vec<u8> = p.kept().map(|d| d.id.0[0]).collect();
    assert_eq!(kept, vec![3, 1]);
    // In UTC the same instants spread over other days.
    assert_eq!(
        plan(
            &snaps,
            &KeepPolicy {
                daily: 10,
                ..Default::default()
            },
            &Utc
        )
        .kept()
        .count(),
        4
    );
}
