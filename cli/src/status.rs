//! `masclet status` and `masclet report --html`.

use crate::args::{Cli, ReportArgs};
use anyhow::{Result, bail};

pub fn status(_cli: &Cli) -> Result<u8> {
    bail!("masclet status is not built yet")
}

pub fn report(_cli: &Cli, _a: &ReportArgs) -> Result<u8> {
    bail!("masclet report is not built yet")
}
