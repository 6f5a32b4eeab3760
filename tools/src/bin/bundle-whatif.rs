//! What-if: one night's deltas compressed as one frame instead of one frame per chunk.
//!
//! `cargo run --release -p masclet-tools --bin bundle-whatif -- PARENT.sql NIGHT.sql [WORK]`
//!
//! Cuts both dumps with the default chunker (seed 0), pairs every new chunk of `NIGHT` with
//! the parent chunk at its place (`masclet_tools::pair_changed`), and prints the sum of
//! per-chunk delta frames (zstd level 3, the base as a prefix: what masclet stores today)
//! beside one frame of all new chunks compressed with all
//! their bases as one prefix (`zstd -3 --long=27 --patch-from`, the `zstd` command): the
//! most a format that seals a night's deltas together could save on the frames alone.
//! Also frames of consecutive pairs whose bases stay under a cap (64 KiB to 16 MiB), in
//! process (level 3, window 2^27, long-distance matching): what bounded bundles would store.

use masclet_tools::{cut_default, pair_changed};
use std::path::PathBuf;
use std::process::Command;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(
        args.len() >= 2,
        "usage: bundle-whatif PARENT.sql NIGHT.sql [WORK]"
    );
    let work = PathBuf::from(args.get(2).map_or("/tmp/bundle-whatif", String::as_str));
    std::fs::create_dir_all(&work)?;
    let parent = std::fs::read(&args[0])?;
    let night = std::fs::read(&args[1])?;
    let (old, new) = (cut_default(&parent), cut_default(&night));
    let pairs = pair_changed(&old, &new);
    let mut per_chunk = 0usize;
    let mut cctx = zstd::zstd_safe::CCtx::create();
    for (base, c) in &pairs {
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(c.len()));
        cctx.compress_using_dict(&mut out, c, base, 3)
            .map_err(|e| anyhow::anyhow!("zstd error {e}"))?;
        per_chunk += out.len();
    }
    let changed = pairs.len();
    // Bundles of consecutive changed chunks, capped by the bytes of their bases: what a
    // format with bounded memory per bundle would store.
    for cap in [
        64usize << 10,
        256 << 10,
        1 << 20,
        4 << 20,
        16 << 20,
        usize::MAX,
    ] {
        let (mut total, mut frames, mut i) = (0usize, 0usize, 0usize);
        while i < pairs.len() {
            let start = i;
            let mut bsum = 0;
            while i < pairs.len() && (i == start || bsum + pairs[i].0.len() <= cap) {
                bsum += pairs[i].0.len();
                i += 1;
            }
            let b = pairs[start..i]
                .iter()
                .map(|p| p.0)
                .collect::<Vec<_>>()
                .concat();
            let n = pairs[start..i]
                .iter()
                .map(|p| p.1)
                .collect::<Vec<_>>()
                .concat();
            let mut c = zstd::zstd_safe::CCtx::create();
            use zstd::zstd_safe::CParameter as P;
            c.set_parameter(P::CompressionLevel(3)).unwrap();
            c.set_parameter(P::WindowLog(27)).unwrap();
            c.set_parameter(P::EnableLongDistanceMatching(true))
                .unwrap();
            c.ref_prefix(&b).unwrap();
            let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(n.len()));
            c.compress2(&mut out, &n)
                .map_err(|e| anyhow::anyhow!("zstd error {e}"))?;
            total += out.len();
            frames += 1;
        }
        println!(
            "bases cap {:>9}: {frames:5} frames, {:.3} MB ({:.2} of per-chunk)",
            if cap == usize::MAX {
                "none".to_string()
            } else {
                format!("{} KiB", cap >> 10)
            },
            total as f64 / 1e6,
            total as f64 / per_chunk.max(1) as f64
        );
    }
    let bases: Vec<u8> = pairs.iter().map(|p| p.0).collect::<Vec<_>>().concat();
    let news: Vec<u8> = pairs.iter().map(|p| p.1).collect::<Vec<_>>().concat();
    std::fs::write(work.join("bases.bin"), &bases)?;
    std::fs::write(work.join("new.bin"), &news)?;
    let out = work.join("new.bin.zst");
    let status = Command::new("zstd")
        .args(["-q", "-f", "-3", "--long=27", "--patch-from"])
        .arg(work.join("bases.bin"))
        .arg(work.join("new.bin"))
        .arg("-o")
        .arg(&out)
        .status()?;
    anyhow::ensure!(status.success(), "zstd --patch-from failed");
    let bundled = std::fs::metadata(&out)?.len();
    println!(
        "{changed} changed chunks of {} ({:.1} MB raw): per-chunk delta frames {:.3} MB ({:.0} B each), one frame for all {:.3} MB ({:.2} of per-chunk)",
        new.len(),
        news.len() as f64 / 1e6,
        per_chunk as f64 / 1e6,
        per_chunk as f64 / changed.max(1) as f64,
        bundled as f64 / 1e6,
        bundled as f64 / per_chunk.max(1) as f64
    );
    Ok(())
}
