//! `masclet run -t TIER`: the nightly job.

use crate::args::{Cli, RunArgs};
use crate::progress::Bars;
use anyhow::{Result, bail};

pub fn run(_cli: &Cli, a: &RunArgs, _bars: &Bars) -> Result<u8> {
    bail!("masclet run -t {} is not built yet", a.tier)
}
