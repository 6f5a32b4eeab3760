//! Write a masclet_imperi-like plain `pg_dump` after a number of simulated nights.
//!
//! `dumpgen ANIMALS NIGHT OUT [SEED]` writes the dump as it looks after night NIGHT (night 0
//! is the initial database); every night changes about 1% of the rows. Same arguments, same
//! bytes: benchmarks and demos can regenerate any night.

use anyhow::{Context, Result, bail};
use masclet_tests::DumpModel;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        bail!("usage: dumpgen ANIMALS NIGHT OUT [SEED]  (about 250 bytes of dump per animal)");
    }
    let animals: u64 = args[0].parse().context("ANIMALS")?;
    let night: u32 = args[1].parse().context("NIGHT")?;
    let seed: u64 = args.get(3).map_or(Ok(7), |s| s.parse()).context("SEED")?;
    let mut model = DumpModel::new(animals, seed);
    for _ in 0..night {
        model.night(0.01);
    }
    let out = &args[2];
    std::fs::write(out, model.render()).with_context(|| format!("writing {out}"))?;
    Ok(())
}
