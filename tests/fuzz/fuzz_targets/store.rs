//! Fuzz target `store`: see `personctl_fuzz::store`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| personctl_fuzz::store(data));
