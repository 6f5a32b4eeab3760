//! `cargo +nightly fuzz run archive --features libfuzzer`: see src/lib.rs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| masclet_fuzz::archive(data));
