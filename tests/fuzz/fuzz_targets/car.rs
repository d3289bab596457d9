//! Fuzz target `car`: see `personctl_fuzz::car`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| personctl_fuzz::car(data));
