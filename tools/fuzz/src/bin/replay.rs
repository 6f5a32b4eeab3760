//! The fuzz targets on stable Rust: every input of the committed corpus, then inputs made
//! from them by a simple mutator (bit flips, interesting integers, cuts, copies, splices)
//! for a fixed time per target. A panic is saved under `artifacts/<target>/` and fails the
//! run; so does an input that takes over a second.
//!
//!   replay [--seconds N] [--seed S] [--target NAME] [--corpus DIR] [--make-seeds]
//!
//! libFuzzer (`cargo fuzz`, nightly) finds more, guided by coverage; this keeps every
//! target exercised in CI where only stable Rust is installed.

use masclet_fuzz::TARGETS;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The slowest an input may be before it counts as a hang.
const SLOW: Duration = Duration::from_secs(1);

/// Inputs are kept below this size: decoders must handle more, but a mutator that grows
/// inputs without bound only fuzzes memcpy.
const MAX_LEN: usize = 1 << 16;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: plenty for choosing mutations, and the same seed replays a run.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: [u64; 10] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    u64::MAX,
];

/// One mutation of `input`, `other` for splicing.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(4) {
        let len = v.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = INTERESTING[rng.below(5)] as u8;
            }
            2 if len >= 4 => {
                let i = rng.below(len - 3);
                let x = INTERESTING[rng.below(INTERESTING.len())] as u32;
                let bytes = if rng.below(2) == 0 {
                    x.to_le_bytes()
                } else {
                    x.to_be_bytes()
                };
                v[i..i + 4].copy_from_slice(&bytes);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below(len - i) + 1;
                v.drain(i..i + n.min(16));
            }
            4 => {
                let i = rng.below(len + 1);
                let n = rng.below(16) + 1;
                let fill: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(i..i, fill);
            }
            5 if len > 0 => {
                let from = rng.below(len);
                let n = rng.below(len - from).min(64) + 1;
                let chunk = v[from..from + n].to_vec();
                let to = rng.below(len + 1);
                v.splice(to..to, chunk);
            }
            6 if !other.is_empty() => {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            7 => v.truncate(rng.below(len + 1)),
            _ => {}
        }
    }
    v.truncate(MAX_LEN);
    v
}

/// Run `f` on `data`; a panic or a hang is saved and reported.
fn exercise(name: &str, f: fn(&[u8]), data: &[u8], artifacts: &Path) -> bool {
    let start = Instant::now();
    let ok = std::panic::catch_unwind(|| f(data)).is_ok();
    let slow = start.elapsed() > SLOW;
    if ok && !slow {
        return true;
    }
    let dir = artifacts.join(name);
    let _ = std::fs::create_dir_all(&dir);
    let kind = if ok { "slow" } else { "crash" };
    let file = dir.join(format!("{kind}-{}", &blake3::hash(data).to_hex()[..16]));
    let _ = std::fs::write(&file, data);
    eprintln!(
        "{name}: {kind} ({} bytes, {:.2} s), saved as {}",
        data.len(),
        start.elapsed().as_secs_f64(),
        file.display()
    );
    false
}

fn corpus_of(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = arg(&args, "--corpus").map_or_else(|| root.join("corpus"), PathBuf::from);
    if args.iter().any(|a| a == "--make-seeds") {
        masclet_fuzz::seeds::write(&corpus);
        return;
    }
    let seconds: f64 = arg(&args, "--seconds").map_or(5.0, |s| s.parse().expect("--seconds N"));
    let seed: u64 = arg(&args, "--seed").map_or_else(
        || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        },
        |s| s.parse().expect("--seed N"),
    );
    let only = arg(&args, "--target");
    let artifacts = root.join("artifacts");
    // The targets' panics are reported by `exercise`, once, with the input saved.
    std::panic::set_hook(Box::new(|_| {}));
    println!("seed {seed}; {seconds} s per target");
    let mut failed = 0;
    for (name, f) in TARGETS {
        if only.as_deref().is_some_and(|o| o != *name) {
            continue;
        }
        let inputs = corpus_of(&corpus.join(name));
        let mut runs = 0u64;
        let mut bad = 0u64;
        for input in &inputs {
            runs += 1;
            bad += u64::from(!exercise(name, *f, input, &artifacts));
        }
        let mut rng = Rng(seed ^ blake3::hash(name.as_bytes()).as_bytes()[0] as u64 | 1);
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let empty = Vec::new();
        while Instant::now() < deadline && bad < 5 {
            let base = inputs.get(rng.below(inputs.len())).unwrap_or(&empty);
            let other = inputs.get(rng.below(inputs.len())).unwrap_or(&empty);
            let data = mutate(&mut rng, base, other);
            runs += 1;
            bad += u64::from(!exercise(name, *f, &data, &artifacts));
        }
        println!(
            "{name:<18} {:>4} corpus inputs, {runs:>8} runs, {bad} failures",
            inputs.len()
        );
        failed += bad;
    }
    if failed > 0 {
        eprintln!("{failed} failing inputs: see {}", artifacts.display());
        std::process::exit(1);
    }
}
