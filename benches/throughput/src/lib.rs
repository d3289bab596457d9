//! The stages of `personctl bench`: throughput on this machine, each stage of the real path
//! next to the raw primitive that bounds it (its ceiling). `embedded` runs the primitives, the
//! embedded store's append and `verify`, and the domain's commands and replays; `nats` (with
//! a server) raw JetStream publishing next to personctl's, the append-to-visible latency, and
//! with `lag` the read side's projection lag and rebuild.
//!
//! The stages hand their results to the caller as [`Record`]s and print nothing: `personctl`
//! picks the output format. A benchmark harness, not a library for other domains.

mod capacity;
mod embedded;
mod identity;
mod lag;
mod nats;
mod peer;
mod service;
mod tlog;

use std::path::PathBuf;

pub use crate::capacity::subjects;
pub use crate::embedded::run as embedded;
pub use crate::nats::run as with_nats;
pub use crate::peer::hypercore;

/// Errors of a bench run, with what failed in words.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Result alias of the bench.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Events to append and verify.
    pub events: u64,
    /// Streams to spread them over.
    pub streams: u64,
    /// Events per batch (one durable write each).
    pub batch: u64,
    /// Concurrent writers of the batched stage (`personctl bench` defaults to the core count).
    pub writers: u64,
    /// Where the embedded store goes (a new directory; `None`: a temporary one).
    pub dir: Option<PathBuf>,
}

/// One stage's throughput.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    /// The stage's name.
    pub stage: String,
    /// Events it handled.
    pub events: u64,
    /// Seconds it took.
    pub seconds: f64,
    /// How it ran.
    pub note: String,
    /// The ceiling it is compared with, and its rate as a share of the ceiling's.
    pub ceiling: Option<(String, f64)>,
}

impl Stage {
    /// Events per second.
    pub fn rate(&self) -> f64 {
        rate(self.events, self.seconds)
    }
}

/// A result of the run.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// A stage's throughput.
    Stage(Stage),
    /// The process's peak resident memory, in bytes (when the system tells).
    PeakRss(Option<u64>),
    /// The embedded store on disk: its bytes, the events it holds, and the bytes of their
    /// event and payload blocks.
    Disk {
        /// Bytes on disk.
        bytes: u64,
        /// Events stored.
        events: u64,
        /// Bytes of their blocks.
        block_bytes: u64,
    },
    /// Stages that did not run, and why.
    Skipped {
        /// Which.
        stages: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A stage of the Hypercore peer, and personctl's stages doing the same work with their
    /// rate as a multiple of the peer's.
    Peer {
        /// The peer's stage.
        stage: String,
        /// Entries it appended.
        events: u64,
        /// Seconds it took.
        seconds: f64,
        /// Bytes per entry.
        entry_bytes: u64,
        /// (personctl's stage, its rate / the peer's).
        ours: Vec<(String, f64)>,
    },
    /// What a layout of messages cost nats-server ([`subjects`]).
    Subjects {
        /// The layout.
        layout: &'static str,
        /// Subjects the stream holds.
        subjects: u64,
        /// Messages it holds.
        messages: u64,
        /// Messages published.
        published: u64,
        /// Seconds publishing took (acknowledged).
        seconds: f64,
        /// The stream's bytes.
        stream_bytes: u64,
        /// The server's resident memory before, in bytes (`None`: unknown).
        memory_before: Option<u64>,
        /// And after.
        memory_after: Option<u64>,
    },
    /// personctl's JetStream rate as a share (percent) of the raw ceilings.
    Ratio {
        /// Of one raw message per event.
        of_raw_1_message: f64,
        /// Of three raw messages per event.
        of_raw_3_messages: f64,
        /// Of the same messages as personctl sends them, sent raw.
        of_raw_shaped: f64,
    },
    /// An inclusion proof's size and the time to check a proof bundle.
    Proof {
        /// Leaves of the tree the inclusion proof is in.
        leaves: u64,
        /// Its hashes.
        inclusion_hashes: u64,
        /// Its bytes (32 per hash).
        inclusion_bytes: u64,
        /// Leaves of the log the bundle is from.
        bundle_leaves: u64,
        /// The bundle's bytes as JSON (checkpoint, proof, event and payload).
        bundle_bytes: u64,
        /// Microseconds to check the bundle (signatures, CIDs, the proof).
        check_micros: f64,
    },
    /// A latency distribution.
    Latency {
        /// Its record type (`latency`, `projection_lag`, `append_to_projection`).
        kind: &'static str,
        /// What is measured.
        what: &'static str,
        /// The rate events were written at.
        rate: f64,
        /// The latencies, in milliseconds, sorted.
        millis: Vec<f64>,
        /// What the events were.
        detail: &'static str,
    },
}

/// Where the stages send their records.
pub type Emit<'a> = &'a mut dyn FnMut(Record) -> Result<()>;

/// The stages that need a server, for a run without one.
pub const NEEDS_NATS: &str =
    "append + JetStream, raw publish, append-to-visible latency, projection lag, command service";

fn rate(events: u64, seconds: f64) -> f64 {
    events as f64 / seconds.max(1e-9)
}

/// The value at quantile `p` of sorted `values` (NaN when empty).
pub fn quantile(values: &[f64], p: f64) -> f64 {
    let i = ((values.len() as f64 - 1.0) * p).round() as usize;
    values.get(i).copied().unwrap_or(f64::NAN)
}
