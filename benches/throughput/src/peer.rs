//! The Hypercore peer: the same appends on Hypercore 11 (`benches/hypercore/peer.mjs`, run
//! with Node), batched and one entry per call, in the same run, each next to personctl's
//! stage that does the same work. Skipped, with the reason, when Node or the peer's packages
//! (`npm ci` in `benches/hypercore`) are missing: nothing else depends on it.

use std::path::Path;
use std::process::Command;

use crate::{Emit, Options, Record, Stage};

/// Bytes per entry: the side-by-side figures used 221-byte entries.
const ENTRY_BYTES: u64 = 221;

/// Entries the one-per-call stage appends (Hypercore's single appends are slow).
const SINGLE: u64 = 20_000;

/// (Hypercore's stage, personctl's stages doing the same work).
const PAIRS: &[(&str, &[&str])] = &[
    ("hypercore append, batched", &["append to sled, batched"]),
    (
        "hypercore append, 1 entry per call",
        &[
            "append to sled, 1 event per call, 32 writers",
            "append to sled, 1 event per call, 128 writers",
        ],
    ),
];

#[derive(serde::Deserialize)]
struct Line {
    stage: String,
    events: u64,
    seconds: f64,
}

/// Runs the peer in `dir` and emits each of its stages with personctl's matching ones from
/// `ours` (the stages this run measured).
pub fn hypercore(dir: &Path, options: &Options, ours: &[Stage], emit: Emit) -> crate::Result<()> {
    const STAGES: &str = "Hypercore peer (benches/hypercore)";
    if !dir.join("node_modules/hypercore").is_dir() {
        return emit(Record::Skipped {
            stages: STAGES,
            reason: "its packages are not installed: `npm ci` in benches/hypercore",
        });
    }
    let output = Command::new("node")
        .arg(dir.join("peer.mjs"))
        .args(["--events", &options.events.to_string()])
        .args(["--batch", &options.batch.to_string()])
        .args(["--size", &ENTRY_BYTES.to_string()])
        .args(["--single", &SINGLE.min(options.events).to_string()])
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return emit(Record::Skipped {
                stages: STAGES,
                reason: "no `node` on PATH",
            })
        }
        Err(e) => return Err(format!("running the Hypercore peer: {e}").into()),
    };
    if !output.status.success() {
        return Err(format!(
            "the Hypercore peer failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    for text in String::from_utf8_lossy(&output.stdout).lines() {
        let line: Line = serde_json::from_str(text)
            .map_err(|e| format!("the Hypercore peer printed {text:?}: {e}"))?;
        let theirs = line.events as f64 / line.seconds.max(1e-9);
        let against = PAIRS
            .iter()
            .find(|(name, _)| *name == line.stage)
            .map_or(&[][..], |(_, ours)| *ours);
        let matched: Vec<(String, f64)> = against
            .iter()
            .filter_map(|name| ours.iter().find(|s| s.stage == *name))
            .map(|s| (s.stage.clone(), s.rate() / theirs))
            .collect();
        emit(Record::Peer {
            stage: line.stage,
            events: line.events,
            seconds: line.seconds,
            entry_bytes: ENTRY_BYTES,
            ours: matched,
        })?;
    }
    Ok(())
}
