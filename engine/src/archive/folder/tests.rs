use super::*;

#[test]
fn the_gzip_comment_round_trips_and_nothing_else_parses() {
    let (repo, id) = (RepoId([3; 32]), SnapshotId([7; 32]));
    let t = DateTime::parse_from_rfc3339("1969-07-20T20:17:40.5Z")
        .unwrap()
        .with_timezone(&Utc);
    let c = comment(&repo, &id, &t);
    let h = parse_comment(c.as_bytes()).unwrap();
    assert_eq!((h.repo, h.snapshot, h.time), (repo, id, t));
    assert!(parse_comment(b"masclet export 2 repo x").is_none());
    assert!(parse_comment(b"").is_none());
}
