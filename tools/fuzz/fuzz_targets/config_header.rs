//! `cargo +nightly fuzz run config_header --features libfuzzer`: see src/lib.rs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| masclet_fuzz::config_header(data));
