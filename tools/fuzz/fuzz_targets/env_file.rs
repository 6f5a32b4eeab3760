//! `cargo +nightly fuzz run env_file --features libfuzzer`: see src/lib.rs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| masclet_fuzz::env_file(data));
