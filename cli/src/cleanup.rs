//! `masclet cleanup`: temporary files, old logs, orphans, damaged exports.

use crate::args::{CleanupArgs, Cli};
use anyhow::{Result, bail};

pub fn cleanup(_cli: &Cli, _a: &CleanupArgs) -> Result<u8> {
    bail!("masclet cleanup is not built yet")
}
