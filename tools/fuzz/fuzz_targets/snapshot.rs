//! `cargo +nightly fuzz run snapshot --features libfuzzer`: see src/lib.rs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| masclet_fuzz::snapshot(data));
