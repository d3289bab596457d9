//! The transparency log's stages: appending with the log's tree kept, the latency from an
//! append to a signed checkpoint covering it, rebuilding a tree of 1,000,000 leaves, and the
//! size and checking time of an inclusion proof bundle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use personctl_ledger::tlog::{AutoCheckpoint, Tree};
use personctl_ledger::{Cid, Ledger, Signer, SledStore, StreamId};

use crate::embedded::{drafts, timed, Row, APPEND_BATCHED};
use crate::{Record, Result};

/// The period of the automatic checkpoints in the latency stage.
const PERIOD: Duration = Duration::from_millis(250);
/// Leaves of the rebuilt tree and of the proof's tree.
const LEAVES: u64 = 1_000_000;
/// The stage compared with the batched append.
pub(crate) const APPEND_TREE: &str = "append to sled, batched, log tree kept";

/// Appends `events` events in batches of `batch` to `streams` streams, one writer; calls
/// `acked(log size after, when)` after each batch.
fn append_all(
    ledger: &Ledger<SledStore>,
    signer: &Signer,
    args: &crate::Options,
    mut acked: impl FnMut(u64, Instant),
) -> Result<()> {
    let streams: Vec<StreamId> = (0..args.streams)
        .map(|i| StreamId::new("person", format!("tlog-{i}")).expect("valid"))
        .collect();
    let all: Vec<u64> = (0..args.events).collect();
    for part in all.chunks(args.batch as usize) {
        ledger.append_batch(signer, drafts(&streams, part)?)?;
        acked(ledger.log_size()?, Instant::now());
    }
    Ok(())
}

/// The stages; rows go with the embedded ones, the other records are returned.
pub(crate) fn stages(
    args: &crate::Options,
    signer: &Signer,
    rows: &mut Vec<Row>,
) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    // Appending with the tree kept: the same batches as the plain batched stage, on a fresh
    // store whose tree is built first, so that every commit grows it.
    let tmp = tempfile::tempdir()?;
    let ledger = Ledger::new(SledStore::open(tmp.path().join("tree"))?);
    ledger.log_checkpoint("bench.example/tree")?;
    let writers = args.writers.max(1);
    let (result, s) = timed(|| crate::embedded::batched(&ledger, signer, args));
    result?;
    rows.push(Row {
        stage: APPEND_TREE,
        events: args.events,
        seconds: s,
        note: format!("as the batched stage ({writers} writers), the tree grown with each commit"),
        ceiling: Some(APPEND_BATCHED),
    });
    drop(ledger);

    // Checkpoint latency: one writer appends at full speed while a checkpointer signs a
    // checkpoint every PERIOD; an event's latency runs from its batch's acknowledgement to the
    // first checkpoint whose size covers it.
    let ledger = Ledger::new(SledStore::open(tmp.path().join("latency"))?);
    let acks: Mutex<Vec<(u64, Instant)>> = Mutex::new(Vec::new());
    let signed: Mutex<Vec<(u64, Instant)>> = Mutex::new(Vec::new());
    let done = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let checkpointer = scope.spawn(|| -> personctl_ledger::Result<()> {
            let mut auto = AutoCheckpoint::new("bench.example/latency", None, Some(PERIOD));
            loop {
                let finished = done.load(Ordering::Acquire);
                if let Some(c) = auto.tick(&ledger, signer)? {
                    signed
                        .lock()
                        .expect("lock")
                        .push((c.checkpoint.size, Instant::now()));
                }
                if finished {
                    // One more after the last append covers the tail.
                    let c = ledger.sign_checkpoint("bench.example/latency", signer)?;
                    signed
                        .lock()
                        .expect("lock")
                        .push((c.checkpoint.size, Instant::now()));
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let appended = append_all(&ledger, signer, args, |size, at| {
            acks.lock().expect("lock").push((size, at));
        });
        done.store(true, Ordering::Release);
        checkpointer.join().expect("the checkpointer")?;
        appended
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let signed = signed.into_inner().expect("lock");
    let acks = acks.into_inner().expect("lock");
    let mut millis = Vec::with_capacity(args.events as usize);
    let mut previous = 0;
    for (size, at) in acks {
        let covered = signed
            .iter()
            .find(|(s, _)| *s >= size)
            .map(|(_, t)| t.saturating_duration_since(at).as_secs_f64() * 1e3)
            .unwrap_or(f64::NAN);
        millis.extend(std::iter::repeat_n(covered, (size - previous) as usize));
        previous = size;
    }
    millis.sort_by(f64::total_cmp);
    records.push(Record::Latency {
        kind: "checkpoint_latency",
        what: "append to a signed checkpoint covering it",
        rate: args.events as f64 / elapsed,
        millis,
        detail: "events, checkpoints every 250 ms, 1 writer",
    });

    // A tree of LEAVES leaves rebuilt (as after an open), and an inclusion proof in it.
    let cids: Vec<Cid> = (0..LEAVES).map(|i| Cid::of(&i.to_le_bytes())).collect();
    let (tree, s) = timed(|| Tree::of(&cids));
    let tree = tree?;
    rows.push(Row {
        stage: "log tree rebuilt (1,000,000 leaves)",
        events: LEAVES,
        seconds: s,
        note: "SHA-256 leaf and node hashes, stored-hash layout".into(),
        ceiling: None,
    });
    // The longest proof: the leftmost leaf's (ceil(log2 n) hashes).
    let proof = tree.prove_inclusion(0, LEAVES)?;

    // A real bundle (from the latency store) and the time to check it, signatures included.
    let (last, size) = {
        let log = ledger.log()?;
        (*log.last().expect("events"), log.len() as u64)
    };
    let signed = ledger.sign_checkpoint("bench.example/latency", signer)?;
    let bundle = ledger.prove(&last, &signed)?;
    let json = serde_json::to_vec(&bundle)?;
    let rounds = 1_000;
    let (checked, s) = timed(|| (0..rounds).all(|_| bundle.check(&signed.key).is_ok()));
    if !checked {
        return Err("the benchmark's proof bundle does not check".into());
    }
    records.push(Record::Proof {
        leaves: LEAVES,
        inclusion_hashes: proof.len() as u64,
        inclusion_bytes: proof.len() as u64 * 32,
        bundle_leaves: size,
        bundle_bytes: json.len() as u64,
        check_micros: s / f64::from(rounds) * 1e6,
    });
    Ok(records)
}
