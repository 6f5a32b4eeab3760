//! Terminal progress bars for the engine's `Progress` trait: drawn on stderr when it is a
//! terminal, never in `--json` or `--quiet` mode, and without colour.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use masclet_engine::{Progress, Unit};
use std::io::IsTerminal;
use std::sync::Mutex;

pub struct Bars {
    bar: Mutex<Option<ProgressBar>>,
    enabled: bool,
}

impl Bars {
    pub fn new(quiet: bool) -> Self {
        Self {
            bar: Mutex::new(None),
            enabled: !quiet && std::io::stderr().is_terminal(),
        }
    }
}

impl Progress for Bars {
    fn start(&self, phase: &str, total: Option<u64>, unit: Unit) {
        if !self.enabled {
            return;
        }
        let template = match (total.is_some(), unit) {
            (true, Unit::Bytes) => {
                "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
            }
            (true, Unit::Items) => "{msg:>12} [{bar:30}] {pos}/{len} eta {eta}",
            (false, Unit::Bytes) => "{msg:>12} {spinner} {bytes} {bytes_per_sec} {elapsed}",
            (false, Unit::Items) => "{msg:>12} {spinner} {pos} {elapsed}",
        };
        let bar = total.map_or_else(ProgressBar::new_spinner, ProgressBar::new);
        bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(5));
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(phase.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        *self.bar.lock().expect("poisoned") = Some(bar);
    }

    fn inc(&self, n: u64) {
        if let Some(b) = self.bar.lock().expect("poisoned").as_ref() {
            b.inc(n);
        }
    }

    fn finish(&self) {
        if let Some(b) = self.bar.lock().expect("poisoned").take() {
            b.finish_and_clear();
        }
    }

    fn warn(&self, message: &str) {
        match self.bar.lock().expect("poisoned").as_ref() {
            Some(b) => b.suspend(|| eprintln!("masclet: warning: {message}")),
            None => eprintln!("masclet: warning: {message}"),
        }
    }
}
