//! A short run of every fuzz target in the test suite: the targets' bodies
//! (`tests/fuzz/src/lib.rs`, shared with the libFuzzer targets) on each seed and on seeds
//! mutated by proptest (bytes flipped, inserted, removed, the input cut). Coverage-guided runs
//! are `cargo fuzz` (tests/fuzz/README.md); this keeps every property checked on every CI run.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code, unreachable_pub)]
mod bodies;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Applies edits `(position, byte, kind)` to a copy of `seed`.
fn mutate(seed: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for &(at, byte, kind) in edits {
        let len = out.len();
        match kind {
            0 if len > 0 => out[at % len] ^= byte | 1,
            1 => out.insert(at % (len + 1), byte),
            2 if len > 0 => {
                out.remove(at % len);
            }
            3 => out.truncate(at % (len + 1)),
            _ => out.push(byte),
        }
    }
    out
}

fn run(target: &str, cases: u32) {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let seeds = bodies::seeds(target, &fixtures);
    assert!(!seeds.is_empty(), "{target}: no seeds");
    for seed in &seeds {
        bodies::run(target, seed);
    }
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        0..seeds.len(),
        vec((any::<usize>(), any::<u8>(), 0u8..5), 1..8),
    );
    let started = std::time::Instant::now();
    runner
        .run(&strategy, |(i, edits)| {
            bodies::run(target, &mutate(&seeds[i], &edits));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("fuzz target {target}: {e}"));
    eprintln!(
        "fuzz {target}: {cases} mutated inputs in {:.2} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn fuzz_block_decoding() {
    run("block", 30_000);
}

#[test]
fn fuzz_car_reading() {
    run("car", 5_000);
}

#[test]
fn fuzz_notices() {
    run("notice", 30_000);
}

#[test]
fn fuzz_command_json() {
    run("command", 30_000);
}

#[test]
fn fuzz_store_open_and_recovery() {
    run("store", 1_000);
}
