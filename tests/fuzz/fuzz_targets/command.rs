//! Fuzz target `command`: see `personctl_fuzz::command`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| personctl_fuzz::command(data));
