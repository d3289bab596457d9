//! Fuzz target `block`: see `personctl_fuzz::block`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| personctl_fuzz::block(data));
