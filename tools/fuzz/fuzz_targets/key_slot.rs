//! `cargo +nightly fuzz run key_slot --features libfuzzer`: see src/lib.rs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| masclet_fuzz::key_slot(data));
