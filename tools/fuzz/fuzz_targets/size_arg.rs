//! `cargo +nightly fuzz run size_arg --features libfuzzer`: see src/lib.rs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| masclet_fuzz::size_arg(data));
