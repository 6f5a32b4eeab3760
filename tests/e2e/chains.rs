//! Delta chains (format 3): night after night of a changing dump, chains stay within the
//! writer's bound, every night restores byte for byte, and gc after forgetting the old
//! nights keeps every base a kept night still needs.

use masclet_engine::ChunkId;
use masclet_tests::*;

/// Links from `id` down to a chunk stored whole.
fn links(repo: &masclet_engine::Repo, id: &ChunkId) -> usize {
    let mut n = 0;
    let mut cur = repo.index().locate(id).unwrap().unwrap();
    while let Some(b) = cur.base {
        n += 1;
        assert!(n <= 8, "chain longer than the format allows");
        cur = repo.index().locate(&b).unwrap().unwrap();
    }
    n
}

fn longest_chain(repo: &masclet_engine::Repo, snap: masclet_engine::SnapshotId) -> usize {
    let snap = masclet_engine::Snapshot::load(repo.storage(), repo.keys(), snap).unwrap();
    let mut reader = repo.tree_reader(&snap);
    let mut longest = 0;
    while let Some(r) = reader.next_record().unwrap() {
        if let masclet_engine::disk::tree::Record::FileChunk(id, _) = r {
            longest = longest.max(links(repo, &id));
        }
    }
    longest
}

#[test]
fn nightly_deltas_chain_restore_and_survive_gc() {
    let r = LocalRepo::new();
    let mut repo = r.open();
    let mut model = masclet_tests::DumpModel::new(20_000, 11);
    let mut nights = Vec::new();
    for night in 0..8 {
        if night > 0 {
            model.night(0.01);
        }
        let dump = model.render();
        let id = backup_bytes(&mut repo, "masclet_imperi.sql", &dump).unwrap();
        nights.push((id, dump));
    }
    let longest = nights
        .iter()
        .map(|(id, _)| longest_chain(&repo, *id))
        .max()
        .unwrap();
    // The writer lets chains grow to 4 links, and on this history they do.
    assert!((2..=4).contains(&longest), "longest chain {longest}");
    for (id, dump) in &nights {
        assert_eq!(&dump_of(&repo, *id), dump);
    }
    // Forget all but the last night: its chains reach back into forgotten nights' chunks.
    let old: Vec<_> = nights[..7].iter().map(|(id, _)| *id).collect();
    forget_ids(&repo, &old);
    gc(&mut repo).unwrap();
    let (last, dump) = &nights[7];
    assert_eq!(&dump_of(&repo, *last), dump);
    assert!(check_ok(&repo, true));
}

fn dump_of(repo: &masclet_engine::Repo, id: masclet_engine::SnapshotId) -> Vec<u8> {
    dump(repo, id, "masclet_imperi.sql").unwrap()
}

/// A backup of `data` as the stream `name`, with the summary the engine returns.
fn chunk_ids(repo: &masclet_engine::Repo, snap: masclet_engine::SnapshotId) -> Vec<(ChunkId, u32)> {
    let snap = masclet_engine::Snapshot::load(repo.storage(), repo.keys(), snap).unwrap();
    let mut reader = repo.tree_reader(&snap);
    let mut out = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        if let masclet_engine::disk::tree::Record::FileChunk(id, len) = r {
            out.push((id, len));
        }
    }
    out
}

#[test]
fn a_change_that_erases_a_cut_point_does_not_store_the_next_chunk_again() {
    let r = LocalRepo::small_chunks();
    let mut repo = r.open();
    let data = noise(1 << 20, 5);
    let first = backup_bytes(&mut repo, "f", &data).unwrap();
    let before = chunk_ids(&repo, first);
    // Rewrite the last bytes of a chunk so that the cut point after it, which depends on
    // them, goes: plain content-defined chunking glues the changed chunk and the whole next
    // one into a single chunk (not every change does exactly that, so look for one that does).
    let (k, changed) = glue_chunks(&repo, &data, &before, 5, 0, false);
    let summary = backup_summary(&mut repo, "f", &changed).unwrap();
    let after = chunk_ids(&repo, summary.snapshot);
    // The following chunk is unchanged, so it is listed again, and only the changed chunk's
    // stretch is new data (beside one new tree chunk).
    assert!(
        after.contains(&before[k + 1]),
        "the following chunk was not cut off again"
    );
    let want = u64::from(before[k].1);
    assert_eq!(summary.stats.new_raw_bytes, want, "{:?}", summary.stats);
    assert_eq!(dump(&repo, summary.snapshot, "f").unwrap(), changed);
}

/// Rows of a dump-like table: a key, a random-looking name, a number and a date.
fn rows(keys: impl Iterator<Item = u64>) -> Vec<u8> {
    let mut out = Vec::new();
    for i in keys {
        let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i >> 7);
        out.extend_from_slice(
            format!(
                "{i}\tVaca {h:016x}\t{}\t{}\t2024-{:02}-{:02}\n",
                h % 997,
                h % 3 == 0,
                h % 12 + 1,
                h % 28 + 1
            )
            .as_bytes(),
        );
    }
    out
}

#[test]
fn new_rows_before_a_run_of_changed_chunks_do_not_cost_the_run_its_bases() {
    let r = LocalRepo::new();
    let mut repo = r.open();
    let old = rows(0..20_000);
    backup_bytes(&mut repo, "t.sql", &old).unwrap();
    // Night two: 140 KiB of new rows near the start, then one row in forty gone, so every
    // chunk after the new rows changes. The new rows' chunks take parent chunks by
    // position that they do not hold; the changed chunks after them must still find the
    // parent chunks they came from (behind the position), not be stored whole.
    let mut new = rows(0..500);
    new.extend(rows(1_000_000..1_003_000));
    new.extend(rows((500..20_000).filter(|i| i % 40 != 7)));
    let summary = backup_summary(&mut repo, "t.sql", &new).unwrap();
    let s = &summary.stats;
    let whole = s.new_chunks - summary.delta_chunks;
    let inserted = rows(1_000_000..1_003_000).len() as u64;
    assert!(
        s.new_raw_bytes > new.len() as u64 / 2,
        "the run of changed chunks is new: {s:?}"
    );
    // The new rows and the chunks around them (and a tree chunk) may be stored whole;
    // nothing else.
    assert!(
        whole <= inserted / 4096 + 4,
        "{whole} chunks stored whole, {} deltas: {s:?}",
        summary.delta_chunks
    );
    assert_eq!(dump(&repo, summary.snapshot, "t.sql").unwrap(), new);
}

/// `data` with the cut point after one of `before`'s chunks (k, from `first` on, both k and
/// k + 1 at least `min_len` long) erased, so that k and k + 1 are cut as one chunk; with
/// `edit_next`, the middle of chunk k + 1 changed too, so that the glued chunk joins two
/// changed parent chunks. Not every change erases a cut point, so look for one that does.
fn glue_chunks(
    repo: &masclet_engine::Repo,
    data: &[u8],
    before: &[(ChunkId, u32)],
    first: usize,
    min_len: usize,
    edit_next: bool,
) -> (usize, Vec<u8>) {
    let cutter = masclet_engine::disk::chunker::Cutter::new(
        repo.config().chunker,
        repo.keys().chunker_seed(),
    );
    (first..before.len() - 2)
        .find_map(|k| {
            let (a, b) = (before[k].1 as usize, before[k + 1].1 as usize);
            if a < min_len || b < min_len {
                return None;
            }
            let end: usize = before[..=k].iter().map(|c| c.1 as usize).sum();
            let mut changed = data.to_vec();
            for x in &mut changed[end - 8..end] {
                *x ^= 0x5a;
            }
            if edit_next {
                changed[end + b / 2] ^= 1;
            }
            let cuts = cutter.cut(&changed, true, usize::MAX);
            cuts.iter()
                .any(|c| c.start == end - a && c.end == end + b)
                .then_some((k, changed))
        })
        .expect("some change glues two chunks")
}

#[test]
fn a_glued_chunk_whose_parts_both_changed_is_cut_where_its_parent_chunk_ended() {
    let r = LocalRepo::small_chunks();
    let mut repo = r.open();
    let data = noise(1 << 20, 9);
    let first = backup_bytes(&mut repo, "f", &data).unwrap();
    let before = chunk_ids(&repo, first);
    // Neither parent chunk ends the glued one exactly. Cut at the length of the parent
    // chunk it starts like, each piece is a small delta against its own parent chunk.
    let (k, changed) = glue_chunks(&repo, &data, &before, 3, 4096, true);
    let summary = backup_summary(&mut repo, "f", &changed).unwrap();
    let after = chunk_ids(&repo, summary.snapshot);
    let at = |list: &[(ChunkId, u32)], i: usize| -> usize {
        list[..i].iter().map(|c| c.1 as usize).sum()
    };
    let start = at(&before, k);
    let j = (0..after.len())
        .find(|&j| at(&after, j) == start)
        .expect("a chunk starts where the changed parent chunk did");
    assert_eq!(after[j].1, before[k].1, "cut at the parent chunk's length");
    assert_eq!(after[j + 1].1, before[k + 1].1);
    // Both pieces (and the tree) are new; the data pieces are deltas of a few bytes.
    assert!(summary.delta_chunks >= 2, "{summary:?}");
    assert!(summary.stats.bytes_added < 4096, "{:?}", summary.stats);
    assert_eq!(dump(&repo, summary.snapshot, "f").unwrap(), changed);
}

#[test]
fn a_second_copy_of_a_chunk_cut_apart_in_the_same_batch_is_still_stored() {
    let r = LocalRepo::small_chunks();
    let mut repo = r.open();
    let data = noise(480_000, 13);
    let first = backup_bytes(&mut repo, "f", &data).unwrap();
    let before = chunk_ids(&repo, first);
    // The glued chunk appears twice in one read batch; the first copy is cut apart and
    // never stored whole, so the second must not count on it being stored.
    let (_, changed) = glue_chunks(&repo, &data, &before, 3, 4096, true);
    let twice = [changed.as_slice(), changed.as_slice()].concat();
    assert!(twice.len() < masclet_engine::ops::backup::BATCH_BYTES);
    let summary = backup_summary(&mut repo, "f", &twice).unwrap();
    assert_eq!(dump(&repo, summary.snapshot, "f").unwrap(), twice);
    assert!(check_ok(&repo, true));
}
