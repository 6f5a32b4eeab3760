//! `cargo +nightly fuzz run pg_manifest --features libfuzzer`: see src/lib.rs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| masclet_fuzz::pg_manifest(data));
