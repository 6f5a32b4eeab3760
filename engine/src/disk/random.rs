//! Randomness from the operating system, for ids, salts and nonces.
//!
//! A module of its own so that ids (id.rs) and encryption (crypto.rs), which both need
//! fresh random bytes, do not depend on each other for it.

/// Fill an array from the operating system's CSPRNG.
///
/// # Panics
/// If the OS random source fails; there is no safe way to continue without it.
pub(crate) fn random_array<const N: usize>() -> [u8; N] {
    let mut a = [0u8; N];
    getrandom::getrandom(&mut a).expect("operating system random source failed");
    a
}
