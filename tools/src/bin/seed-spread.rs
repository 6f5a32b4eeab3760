//! How much the chunker's seed moves chunk counts on a real input.
//!
//! `cargo run --release -p masclet-tools --bin seed-spread -- FILE [SEEDS [SEED_HEX]]`
//!
//! Each repository draws its own gear-table seed. On text with many repeated windows (a SQL
//! dump repeats column values row after row) a seed can make one such window a cut point,
//! and every row holding it then ends a chunk as soon as the minimum size allows. This
//! prints, per parameter set, the number of chunks and the mean chunk size over `SEEDS`
//! seeds, with the smallest and largest count; with `SEED_HEX`, for that one seed.

use masclet_engine::ChunkerParams;
use masclet_engine::disk::chunker::Cutter;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: seed-spread FILE [SEEDS [SEED_HEX]]");
    let seeds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(12);
    let fixed: Option<u64> = args
        .next()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok());
    let data = std::fs::read(&path).expect("reading the input");
    println!("{path}: {:.1} MB, {seeds} seeds", data.len() as f64 / 1e6);
    println!(
        "| min | avg | max | norm | chunks (min / median / max over seeds) | mean size at the median |"
    );
    println!("|---|---|---|---|---|---|");
    for (min, norm) in [(512u32, 0u8), (2048, 0), (4096, 0), (512, 1), (4096, 1)] {
        let params = ChunkerParams {
            min_size: min,
            avg_size: 16 * 1024,
            max_size: 128 * 1024,
            normalization: norm,
        };
        let mut counts: Vec<usize> = (0..seeds)
            .map(|s| {
                let seed = fixed.unwrap_or(s.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5eed);
                Cutter::new(params, seed).cut(&data, true, usize::MAX).len()
            })
            .collect();
        counts.sort_unstable();
        let median = counts[counts.len() / 2];
        println!(
            "| {min} | 16 KiB | 128 KiB | {norm} | {} / {median} / {} | {:.1} KiB |",
            counts[0],
            counts[counts.len() - 1],
            data.len() as f64 / median as f64 / 1024.0
        );
    }
}
