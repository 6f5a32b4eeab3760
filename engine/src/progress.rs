//! Progress reporting: a trait the engine calls, with a silent default.
//!
//! The engine never draws anything; the CLI implements this with terminal bars when stderr
//! is a terminal and leaves it silent otherwise.

/// Receives progress of long operations. All methods have no-op defaults.
pub trait Progress: Send + Sync {
    /// A new phase starts; `total` is its size in `unit`s when known.
    fn start(&self, _phase: &str, _total: Option<u64>, _unit: Unit) {}
    /// `n` more units done.
    fn inc(&self, _n: u64) {}
    /// The current phase ended.
    fn finish(&self) {}
    /// A non-fatal problem worth telling the operator (a skipped special file, an orphan).
    fn warn(&self, _message: &str) {}
}

/// What a phase counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes.
    Bytes,
    /// Items (packs, snapshots, chunks).
    Items,
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Bytes for people, as every message of masclet writes them: `1.5 MB` (powers of 1000,
/// as `df -H`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
