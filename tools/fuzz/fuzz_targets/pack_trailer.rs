//! `cargo +nightly fuzz run pack_trailer --features libfuzzer`: see src/lib.rs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| masclet_fuzz::pack_trailer(data));
