//! Deterministic inputs of the golden vectors and the `repo-v1` fixture, shared by the
//! tests that check them and `tools/src/bin/gen-vectors.rs`, which writes them: one
//! definition, so the generator and the tests cannot drift apart.

/// Deterministic bytes for golden vectors: SplitMix64, little-endian words.
pub fn golden_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The source tree stored in the `repo-v1` fixture: fixed names, contents, modes, times.
pub fn fixture_tree(root: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let t = |secs: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    std::fs::create_dir_all(root.join("dades"))?;
    std::fs::write(
        root.join("dades/animals.csv"),
        b"id,nom,genere\n1,Blanca,F\n2,Mora,F\n",
    )?;
    std::fs::write(root.join("dades/random.bin"), golden_bytes(200_000, 1))?;
    std::fs::write(root.join("buit"), b"")?;
    std::os::unix::fs::symlink("dades/animals.csv", root.join("enllac"))?;
    std::fs::set_permissions(
        root.join("dades/animals.csv"),
        std::fs::Permissions::from_mode(0o640),
    )?;
    for (p, secs) in [
        ("dades/animals.csv", 1_741_678_000),
        ("dades/random.bin", 1_600_000_000),
        ("buit", 1_500_000_000),
    ] {
        std::fs::File::options()
            .write(true)
            .open(root.join(p))?
            .set_modified(t(secs))?;
    }
    std::fs::File::open(root.join("dades"))?.set_modified(t(1_741_678_100))?;
    Ok(())
}
