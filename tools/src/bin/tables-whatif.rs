//! What-if: per-chunk delta frames whose dictionary is the base *plus entropy tables*
//! trained on an earlier night's deltas, against the base alone as a prefix.
//!
//! `cargo run --release -p masclet-tools --bin tables-whatif -- N0.sql N1.sql N2.sql`
//!
//! Pairs changed chunks with the parent chunk at their place (as `bundle-whatif`), trains
//! zstd entropy tables (`ZDICT_finalizeDictionary`) on night 1's changed chunks against their
//! bases, then compresses night 2's changed chunks each with `tables ‖ base` as a zstd
//! dictionary: what sharing tables repository-wide, without bundling deltas, could save.

use masclet_tools::{cut_default as cut, pair_changed as pairs};
use zstd::zstd_safe::{CCtx, CParameter as P};

fn frame(dict: &[u8], prefix: bool, data: &[u8]) -> usize {
    let mut cctx = CCtx::create();
    cctx.reset(zstd::zstd_safe::ResetDirective::SessionAndParameters)
        .unwrap();
    cctx.set_parameter(P::CompressionLevel(3)).unwrap();
    cctx.set_parameter(P::DictIdFlag(false)).unwrap();
    cctx.set_parameter(P::ChecksumFlag(false)).unwrap();
    if prefix {
        cctx.ref_prefix(dict).unwrap();
    } else {
        cctx.load_dictionary(dict).unwrap();
    }
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(data.len()));
    cctx.compress2(&mut out, data).unwrap();
    out.len()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(args.len() == 3, "usage: tables-whatif N0.sql N1.sql N2.sql");
    let d: Vec<Vec<u8>> = args.iter().map(std::fs::read).collect::<Result<_, _>>()?;
    let c: Vec<Vec<&[u8]>> = d.iter().map(|x| cut(x)).collect();
    let train = pairs(&c[0], &c[1]);
    let eval = pairs(&c[1], &c[2]);
    let content: Vec<u8> = train.iter().flat_map(|(b, _)| b.iter().copied()).collect();
    let samples: Vec<u8> = train.iter().flat_map(|(_, n)| n.iter().copied()).collect();
    let sizes: Vec<usize> = train.iter().map(|(_, n)| n.len()).collect();
    let cap = content.len() + (1 << 20);
    let mut dict = vec![0u8; cap];
    let params = zstd_sys::ZDICT_params_t {
        compressionLevel: 3,
        notificationLevel: 0,
        dictID: 1,
    };
    // SAFETY: buffers are valid for the lengths given; zstd writes at most `cap` bytes.
    let n = unsafe {
        zstd_sys::ZDICT_finalizeDictionary(
            dict.as_mut_ptr().cast(),
            cap,
            content.as_ptr().cast(),
            content.len(),
            samples.as_ptr().cast(),
            sizes.as_ptr(),
            sizes.len() as u32,
            params,
        )
    };
    anyhow::ensure!(
        unsafe { zstd_sys::ZDICT_isError(n) } == 0,
        "finalize failed"
    );
    let tables = dict[..n - content.len()].to_vec();
    let (mut plain, mut with_tables) = (0usize, 0usize);
    let mut both = Vec::new();
    for (b, x) in &eval {
        plain += frame(b, true, x);
        both.clear();
        both.extend_from_slice(&tables);
        both.extend_from_slice(b);
        with_tables += frame(&both, false, x);
    }
    println!(
        "{} changed chunks; tables {} B; base as prefix {:.3} MB ({:.0} B each); tables + base {:.3} MB ({:.2})",
        eval.len(),
        tables.len(),
        plain as f64 / 1e6,
        plain as f64 / eval.len() as f64,
        with_tables as f64 / 1e6,
        with_tables as f64 / plain as f64
    );
    Ok(())
}
