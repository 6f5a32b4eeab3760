//! Throughput of each stage of the backup pipeline on generated dump-like data.
//!
//! `cargo bench -p masclet-benches` ; compare against a saved baseline with
//! `cargo bench -p masclet-benches -- --save-baseline before` then `--baseline before`.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use masclet_engine::disk::chunker::Cutter;
use masclet_engine::disk::crypto::{Keys, MasterKey};
use masclet_engine::disk::format::ObjectType;
use masclet_engine::disk::pack::PackBuilder;
use masclet_engine::{ChunkId, ChunkerParams, Index, PackId, RepoId};
use std::hint::black_box;
use std::time::Duration;

fn dump(bytes: usize) -> Vec<u8> {
    let mut d = masclet_tests::DumpModel::new(
        bytes as u64 / masclet_tests::DumpModel::bytes_per_animal() + 1,
        3,
    )
    .render();
    d.truncate(bytes);
    d
}

fn keys() -> Keys {
    Keys::derive(&MasterKey::from_bytes([9; 32]), RepoId([1; 32]))
}

fn chunks(data: &[u8]) -> Vec<&[u8]> {
    Cutter::new(ChunkerParams::DEFAULT, 7)
        .cut(data, true, usize::MAX)
        .into_iter()
        .map(|r| &data[r])
        .collect()
}

fn pipeline(c: &mut Criterion) {
    let data = dump(16 << 20);
    let k = keys();
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    g.throughput(Throughput::Bytes(data.len() as u64));
    let cutter = Cutter::new(ChunkerParams::DEFAULT, 7);
    g.bench_function("chunk fastcdc 128k (default params)", |b| {
        b.iter(|| black_box(cutter.cut(&data, true, usize::MAX).len()))
    });
    let cs = chunks(&data);

    g.bench_function("keyed blake3 ids", |b| {
        b.iter(|| {
            cs.iter()
                .map(|c| k.chunk_id(c).0[0])
                .fold(0u8, u8::wrapping_add)
        })
    });
    g.bench_function("seal zstd-3 + xchacha", |b| {
        b.iter(|| {
            cs.iter()
                .map(|c| k.seal(ObjectType::Data, &[0; 32], c, Some(3)).len())
                .sum::<usize>()
        })
    });
    g.bench_function("seal xchacha only", |b| {
        b.iter(|| {
            cs.iter()
                .map(|c| k.seal(ObjectType::Data, &[0; 32], c, None).len())
                .sum::<usize>()
        })
    });
    let sealed: Vec<(ChunkId, Vec<u8>, usize)> = cs
        .iter()
        .map(|c| {
            let id = k.chunk_id(c);
            (id, k.seal(ObjectType::Data, &id.0, c, Some(3)), c.len())
        })
        .collect();
    g.bench_function("open + verify id", |b| {
        b.iter(|| {
            sealed
                .iter()
                .map(|(id, s, _)| {
                    k.open_chunk(ObjectType::Data, id, s, 1 << 20)
                        .unwrap()
                        .len()
                })
                .sum::<usize>()
        })
    });
    g.bench_function("pack build 16 MiB", |b| {
        b.iter_batched(
            || sealed.clone(),
            |items| {
                let mut p = PackBuilder::new(usize::MAX);
                for (id, s, raw) in items {
                    p.add(ObjectType::Data, id, s, u32::try_from(raw).unwrap(), None);
                }
                black_box(p.finish(&k).len())
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn index(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let idx = Index::create(&dir.path().join("i.sqlite"), RepoId([1; 32])).unwrap();
    let n = 200_000u32;
    let ids: Vec<ChunkId> = (0..n)
        .map(|i| ChunkId(*blake3::hash(&i.to_le_bytes()).as_bytes()))
        .collect();
    for (p, part) in ids.chunks(1000).enumerate() {
        let entries: Vec<_> = part
            .iter()
            .enumerate()
            .map(|(i, id)| masclet_engine::disk::pack::PackEntry {
                ty: ObjectType::Data,
                id: *id,
                offset: 12 + i as u64 * 100,
                sealed_len: 100,
                raw_len: 80,
                base: None,
            })
            .collect();
        idx.add_pack(
            PackId(*blake3::hash(&(p as u64).to_le_bytes()).as_bytes()),
            1 << 20,
            &entries,
        )
        .unwrap();
    }
    let misses: Vec<ChunkId> = (n..n + 10_000)
        .map(|i| ChunkId(*blake3::hash(&i.to_le_bytes()).as_bytes()))
        .collect();
    let mut g = c.benchmark_group("index (200k chunks)");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("contains hit x10k", |b| {
        b.iter(|| {
            ids[..10_000]
                .iter()
                .filter(|id| idx.contains(id).unwrap())
                .count()
        })
    });
    g.bench_function("contains miss x10k", |b| {
        b.iter(|| misses.iter().filter(|id| idx.contains(id).unwrap()).count())
    });
    g.bench_function("locate x10k", |b| {
        b.iter(|| {
            ids[50_000..60_000]
                .iter()
                .filter_map(|id| idx.locate(id).unwrap())
                .count()
        })
    });
    g.finish();
}

criterion_group!(benches, pipeline, index);
criterion_main!(benches);
