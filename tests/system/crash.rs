//! Crash loops against the real binary: `kill -9` at arbitrary instants of appends (file
//! batches) and of store opens. After every kill the home must open, verify, and hold every
//! event the killed process acknowledged (printed as `appended`). Bounded: the rounds default
//! to a number CI affords; `PERSONCTL_CRASH_ROUNDS` raises them for a long run (the closing
//! note's figures come from `PERSONCTL_CRASH_ROUNDS=1000`).

use std::collections::HashMap;
use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::{commands, keyed, ok, Home};

fn rounds(default: usize) -> usize {
    std::env::var("PERSONCTL_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator of kill delays (xorshift).
struct Delays(u64);

impl Delays {
    fn next(&mut self, max_us: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_micros(self.0 % max_us)
    }
}

/// Runs `personctl args` in `home` and kills it (SIGKILL) after `delay`; returns whether it
/// had finished successfully, and what it printed on stdout until then.
fn run_and_kill(home: &Home, args: &[&str], delay: Duration) -> (bool, String) {
    let mut child = home
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let _ = child.kill();
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    (status.success(), stdout)
}

/// Every stream's head, from `streams --json`; the home must open.
fn heads(home: &Home) -> HashMap<String, String> {
    let run = home.run(&["--json", "streams"]);
    assert_eq!(run.code, 0, "the home does not open: {}", run.stderr);
    run.of_type("stream")
        .into_iter()
        .map(|d| {
            (
                d["stream"].as_str().unwrap().to_string(),
                d["head"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Homes are replaced every this many rounds, so that a long run does not slow down as the
/// store grows.
const ROUNDS_PER_HOME: usize = 25;

#[test]
fn kills_during_appends_and_opens_never_lose_an_acknowledged_event_nor_the_home() {
    let lines: Vec<_> = (0..2_500)
        .map(|i| json!({"command": "register", "legal_name": format!("Crash {i}")}))
        .collect();
    let mut delays = Delays(0x9e37_79b9_7f4a_7c15);
    let (mut killed, mut finished, mut open_kills, mut checked) = (0, 0, 0, 0);
    let rounds = rounds(30);
    let mut done = 0;
    while done < rounds {
        let (home, _) = keyed();
        // Three batches per run (append --file commits 1,000 lines at a time).
        let file = commands(&home, "many.jsonl", &lines);
        let mut acknowledged: HashMap<String, String> = HashMap::new();
        let here = ROUNDS_PER_HOME.min(rounds - done);
        for _ in 0..here {
            // Up to 1.5 s: some runs are killed before their first commit, some between
            // batches, some while writing, a few not at all.
            let (ok, stdout) = run_and_kill(
                &home,
                &["--json", "append", "--file", file.to_str().unwrap()],
                delays.next(1_500_000),
            );
            if ok {
                finished += 1;
            } else {
                killed += 1;
            }
            // Whole lines only: a line cut by the kill was never fully acknowledged.
            for line in stdout.lines() {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                if v["type"] == "appended" {
                    let d = &v["data"];
                    acknowledged.insert(
                        format!("person/{}", d["person"].as_str().unwrap()),
                        d["cid"].as_str().unwrap().to_string(),
                    );
                }
            }
            let now = heads(&home);
            for (stream, cid) in &acknowledged {
                assert_eq!(
                    now.get(stream),
                    Some(cid),
                    "acknowledged {cid} of {stream} lost"
                );
            }
            checked += acknowledged.len();
        }
        // Kills during open (a reading command and a writer's open).
        let before = heads(&home);
        for round in 0..here {
            let args: &[&str] = if round % 2 == 0 {
                &["verify"]
            } else {
                &["trust", "list"]
            };
            if !run_and_kill(&home, args, delays.next(30_000)).0 {
                open_kills += 1;
            }
            assert_eq!(heads(&home), before, "round {round}: the store changed");
        }
        ok(&home.run(&["verify"]));
        done += here;
    }
    eprintln!(
        "crash: {rounds} append runs ({killed} killed, {finished} finished), {rounds} opens ({open_kills} killed): every home opened; {checked} checks of an acknowledged event, none lost"
    );
    assert!(
        killed > 0,
        "no run was killed mid-way ({finished} finished)"
    );
    assert!(checked > 0, "no run was killed after an acknowledgement");
}
