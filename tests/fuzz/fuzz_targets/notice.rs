//! Fuzz target `notice`: see `personctl_fuzz::notice`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| personctl_fuzz::notice(data));
