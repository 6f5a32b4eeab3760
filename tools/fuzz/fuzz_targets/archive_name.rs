//! `cargo +nightly fuzz run archive_name --features libfuzzer`: see src/lib.rs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| masclet_fuzz::archive_name(data));
