//! `masclet notify`: alerts through the configured channels.

use crate::args::{Cli, NotifyArgs};
use anyhow::{Result, bail};

pub fn notify(_cli: &Cli, _a: &NotifyArgs) -> Result<u8> {
    bail!("masclet notify is not built yet")
}
