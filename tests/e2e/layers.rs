//! The engine's layers call only the layers before them (engine/src/lib.rs, "The house,
//! bottom up"): a module that reaches up the stack, say the index importing from gc, would
//! make the house circular again, and this test names the line that does it.

use std::path::{Path, PathBuf};

/// The layers, bottom up. `error` and `progress` sit beside them and anyone may use them.
const LAYERS: [&str; 8] = [
    "config",
    "disk",
    "repository",
    "chunking",
    "write",
    "ops",
    "pg",
    "archive",
];

/// The one sanctioned upward call: packs and snapshots are read and written through the
/// storage trait.
const ALLOWED: [(&str, &str); 1] = [("disk", "crate::repository::storage::")];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The layer a file of engine/src belongs to: its first folder, or its own name for the
/// layer's module file (`disk.rs`).
fn layer_of(src: &Path, file: &Path) -> Option<usize> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    LAYERS.iter().position(|l| *l == name)
}

#[test]
fn engine_layers_call_only_the_layers_before_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 30,
        "engine sources not found at {}",
        src.display()
    );
    let mut upward = Vec::new();
    for file in &files {
        let Some(own) = layer_of(&src, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for (used, name) in LAYERS.iter().enumerate().skip(own + 1) {
                let path = format!("crate::{name}::");
                let Some(at) = line.find(&path) else {
                    continue;
                };
                let allowed = ALLOWED
                    .iter()
                    .any(|(from, prefix)| *from == LAYERS[own] && line[at..].starts_with(prefix));
                if !allowed {
                    upward.push(format!(
                        "{}:{}: {} uses {} ({})",
                        file.strip_prefix(&src).unwrap().display(),
                        n + 1,
                        LAYERS[own],
                        LAYERS[used],
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "calls up the engine's layers:\n{}",
        upward.join("\n")
    );
}
