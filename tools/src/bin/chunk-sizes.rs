//! Measure repository growth per night for several chunk sizes on a dump-like workload.
//!
//! `cargo run --release -p masclet-tools --bin chunk-sizes -- [MB] [NIGHTS]`
//!
//! For each parameter set it chunks night 0, then each following night, and counts what a
//! repository would add: the zstd-3 size of chunks not seen before, 42 bytes of envelope
//! and 49 of pack trailer per new chunk, and 36 bytes per chunk reference in the tree.

use masclet_engine::ChunkerParams;
use masclet_engine::disk::chunker::Cutter;
use masclet_tests::DumpModel;
use std::collections::HashSet;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let mb = args.first().copied().unwrap_or(100);
    let nights = args.get(1).copied().unwrap_or(3);
    let mut model = DumpModel::new(mb * 1_000_000 / DumpModel::bytes_per_animal(), 7);
    let mut versions = vec![model.render()];
    for _ in 0..nights {
        model.night(0.01);
        versions.push(model.render());
    }
    println!(
        "dump size {:.1} MB, {nights} nights, ~1% of rows changed per night",
        versions[0].len() as f64 / 1e6
    );
    println!(
        "| avg | min | max | chunks/night | new chunks/night | new raw MB/night | added MB/night (compressed + metadata) | first backup MB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for avg in [4096u32, 8192, 16384, 32768, 65536] {
        let params = ChunkerParams {
            min_size: avg / 4,
            avg_size: avg,
            max_size: avg * 8,
            normalization: 1,
        };
        let cutter = Cutter::new(params, 0x5eed);
        let mut seen = HashSet::new();
        let (mut first, mut added, mut new_raw, mut new_n, mut total_n) =
            (0f64, 0f64, 0f64, 0u64, 0u64);
        for (night, data) in versions.iter().enumerate() {
            let mut bytes = 0usize;
            let ranges = cutter.cut(data, true, usize::MAX);
            let mut raw = 0usize;
            let mut n = 0u64;
            for r in &ranges {
                let c = &data[r.clone()];
                if seen.insert(blake3::hash(c)) {
                    bytes += zstd::bulk::compress(c, 3).unwrap().len().min(c.len()) + 42 + 49;
                    raw += c.len();
                    n += 1;
                }
            }
            bytes += ranges.len() * 36;
            if night == 0 {
                first = bytes as f64;
            } else {
                added += bytes as f64;
                new_raw += raw as f64;
                new_n += n;
                total_n += ranges.len() as u64;
            }
        }
        let k = nights as f64;
        println!(
            "| {} KiB | {} KiB | {} KiB | {} | {} | {:.2} | {:.2} | {:.1} |",
            avg / 1024,
            params.min_size / 1024,
            params.max_size / 1024,
            total_n / nights,
            new_n / nights,
            new_raw / k / 1e6,
            added / k / 1e6,
            first / 1e6
        );
    }
}
