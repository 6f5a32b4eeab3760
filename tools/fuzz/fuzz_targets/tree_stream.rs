//! `cargo +nightly fuzz run tree_stream --features libfuzzer`: see src/lib.rs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| masclet_fuzz::tree_stream(data));
