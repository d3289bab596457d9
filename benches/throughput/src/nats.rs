//! The JetStream stages of `personctl --nats URL bench`: throughput, personctl next to its raw ceiling, in one
//! run against the same server, on streams of its own (deleted afterwards).
//!
//! - raw ceiling: async publish of messages of a notice's size, many acks in flight, one per
//!   event; the same with three messages per event (notice and two blocks, of their sizes); and
//!   those three shaped as personctl sends them (each block on a subject of its own, the bucket
//!   being keyed by CID, and every message with a message id), which costs the server more;
//! - personctl append with JetStream: signed events with salted payloads, appended in batches to
//!   a fresh sled store (durable), blocks to the bucket, notices to the stream, every ack awaited;
//! - append-to-visible latency: events appended at a steady 5,000/s (a batch every 10 ms) while
//!   an ordered consumer (what `tail` uses) follows the stream; p50/p95/p99 from append start to
//!   delivery.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};

use personctl_ledger::jetstream::{follow, Backbone, Notice, Settings};
use personctl_ledger::{BlockStore, Cid, Draft, Ledger, Signer, SledStore, StreamId};

use crate::lag::{wait_for_tick, PER_TICK};
use crate::{rate, Emit, Options as BenchArgs, Record, Result, Stage};

/// The raw ceiling with personctl's own message shape.
const RAW_SHAPED: &str = "raw publish, personctl's messages";

/// Runs the JetStream stages against the server at `url`, on streams of their own (deleted
/// afterwards).
pub fn run(url: &str, base: &Settings, args: &BenchArgs, emit: Emit<'_>) -> Result<()> {
    // The random tail of a UUIDv7 keeps concurrent bench runs apart.
    let tag = uuid::Uuid::now_v7().simple().to_string()[24..].to_string();
    let settings = Settings {
        stream: format!("PERSONCTL_BENCH_{tag}"),
        prefix: format!("bench_{tag}"),
        bucket: format!("PERSONCTL_BENCH_{tag}_BLOCKS"),
        replicas: base.replicas,
    };
    // One worker thread runs the consumer while the main thread signs and commits.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let backbone = Arc::new(
        runtime
            .block_on(Backbone::connect(url, settings.clone()))
            .map_err(|e| format!("--nats {}: {e}", personctl_ledger::jetstream::redact(url)))?,
    );
    let result = stages(&runtime, &backbone, url, args, emit);
    // Clean up the bench streams whatever happened.
    runtime.block_on(async {
        let js = backbone.context();
        let _ = js.delete_stream(&settings.stream).await;
        let _ = js.delete_stream(format!("KV_{}", settings.bucket)).await;
        let _ = js.delete_stream(format!("{}_RAW", settings.stream)).await;
        let _ = js.delete_stream(format!("{}_DLQ", settings.stream)).await;
    });
    result
}

/// Publishes `messages` (subject, message id, body), 4,096 acknowledgements in flight, and
/// waits for every one.
pub(crate) async fn publish_acked(
    js: &async_nats::jetstream::Context,
    messages: impl IntoIterator<Item = (String, Option<String>, Vec<u8>)>,
) -> std::result::Result<(), String> {
    let results: Vec<_> =
        stream::iter(messages.into_iter().map(|(subject, id, body)| async move {
            let mut message =
                async_nats::jetstream::message::PublishMessage::build().payload(body.into());
            if let Some(id) = id {
                message = message.message_id(id);
            }
            js.send_publish(subject, message)
                .await
                .map_err(|e| e.to_string())?
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }))
        .buffer_unordered(4096)
        .collect()
        .await;
    results.into_iter().collect()
}

fn stages(
    runtime: &tokio::runtime::Runtime,
    backbone: &Arc<Backbone>,
    url: &str,
    args: &BenchArgs,
    emit: Emit<'_>,
) -> Result<()> {
    let signer = Signer::from_seed([7; 32]);
    let dir = tempfile::tempdir()?;
    let store = SledStore::open(dir.path().join("store"))?;
    let streams: Vec<StreamId> = (0..args.streams)
        .map(|i| StreamId::new("bench", format!("s{i}")).expect("valid"))
        .collect();

    // personctl append with JetStream, end to end: batch k+1 is signed and committed while
    // batch k is published (at most one publish in flight, so a stream's events go out in order).
    let started = Instant::now();
    let mut done = 0;
    let mut sizes = (0u64, 0u64, 0u64);
    let mut in_flight: Option<tokio::task::JoinHandle<personctl_ledger::Result<_>>> = None;
    let store = Arc::new(store);
    let ledger = Ledger::new(&*store);
    let (mut append_s, mut wait_s) = (0.0, 0.0);
    while done < args.events {
        let t = Instant::now();
        let n = args.batch.min(args.events - done);
        let drafts: Vec<Draft> = (done..done + n)
            .map(|i| {
                Draft::new(
                    streams[(i % args.streams) as usize].clone(),
                    "PersonRenamed",
                    1,
                )
                .with_data(crate::embedded::sample_data(i))
            })
            .collect::<Result<_, _>>()?;
        let appended = ledger.append_batch(&signer, drafts)?;
        if done == 0 {
            // Message sizes, from the first event.
            let a = &appended[0];
            let event = ledger.event(&a.cid)?;
            sizes.0 = Notice::of(&event).encode()?.len() as u64;
            sizes.1 = store.get(&a.cid)?.map_or(0, |b| b.bytes().len() as u64);
            sizes.2 = a
                .payload
                .and_then(|p| store.get(&p).ok().flatten())
                .map_or(0, |b| b.bytes().len() as u64);
        }
        append_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        if let Some(previous) = in_flight.take() {
            settle(runtime.block_on(previous)??)?;
        }
        wait_s += t.elapsed().as_secs_f64();
        let touched: Vec<StreamId> = appended.iter().map(|a| a.stream.clone()).collect();
        let (b, s) = (Arc::clone(backbone), Arc::clone(&store));
        in_flight = Some(runtime.spawn(async move { b.publish(&*s, Some(&touched)).await }));
        done += n;
    }
    if let Some(previous) = in_flight.take() {
        settle(runtime.block_on(previous)??)?;
    }
    let personctl_s = started.elapsed().as_secs_f64();

    // The raw ceilings, on the same server, with messages of the same sizes.
    let raw_subject = |i: u64| format!("{}_raw.s{}", backbone.settings().prefix, i % args.streams);
    runtime.block_on(async {
        backbone
            .context()
            .create_stream(async_nats::jetstream::stream::Config {
                name: format!("{}_RAW", backbone.settings().stream),
                subjects: vec![format!("{}_raw.>", backbone.settings().prefix)],
                storage: async_nats::jetstream::stream::StorageType::File,
                num_replicas: backbone.settings().replicas,
                ..Default::default()
            })
            .await
            .map(drop)
            .map_err(|e| crate::Error::from(format!("creating the raw bench stream: {e}")))
    })?;
    // `shaped`: as personctl sends them: the notice on its stream's subject, each block on a
    // subject of its own (the bucket's key is the CID), every message with a message id.
    let raw = |per_event: &[u64], shaped: bool| -> Result<f64> {
        let prefix = &backbone.settings().prefix;
        let messages: Vec<(String, Option<String>, Vec<u8>)> = (0..args.events)
            .flat_map(|i| {
                per_event.iter().enumerate().map(move |(k, &len)| {
                    let subject = if shaped && k > 0 {
                        format!("{prefix}_raw.block.e{i}b{k}")
                    } else {
                        raw_subject(i)
                    };
                    let id = shaped.then(|| format!("e{i}m{k}"));
                    (subject, id, vec![7u8; len as usize])
                })
            })
            .collect();
        let started = Instant::now();
        runtime
            .block_on(publish_acked(backbone.context(), messages))
            .map_err(|e| crate::Error::from(format!("raw publish: {e}")))?;
        Ok(started.elapsed().as_secs_f64())
    };
    let raw1_s = raw(&[sizes.0], false)?;
    let raw3_s = raw(&[sizes.0, sizes.1, sizes.2], false)?;
    let shaped_s = raw(&[sizes.0, sizes.1, sizes.2], true)?;

    // Append-to-visible latency at 5,000 events/s.
    let total = steady_events(args);
    let latencies = latency(
        runtime,
        backbone,
        &Ledger::new(&*store),
        &signer,
        &streams,
        total,
    )?;
    let read_side = crate::lag::read_side(runtime, backbone, url, backbone.settings(), total)?;

    let rows = [
        (
            "raw publish, 1 message/event",
            args.events,
            raw1_s,
            format!("ceiling: {} B messages, 4096 acks in flight", sizes.0),
        ),
        (
            "raw publish, 3 messages/event",
            args.events,
            raw3_s,
            format!(
                "ceiling: {} + {} + {} B (notice, event, payload)",
                sizes.0, sizes.1, sizes.2
            ),
        ),
        (
            RAW_SHAPED,
            args.events,
            shaped_s,
            "ceiling: the same 3 messages as personctl sends them: blocks on a subject each (by CID), every message with a message id".into(),
        ),
        (
            "personctl append + JetStream",
            args.events,
            personctl_s,
            format!(
                "batches of {}, signing+committing one while the last is published: {append_s:.2}s appending, {wait_s:.2}s waiting for publishes",
                args.batch
            ),
        ),
    ];
    for (stage, events, seconds, note) in rows {
        emit(Record::Stage(Stage {
            stage: stage.to_string(),
            events,
            seconds,
            note,
            ceiling: None,
        }))?;
    }
    let share = |raw_s: f64| rate(args.events, personctl_s) / rate(args.events, raw_s) * 100.0;
    emit(Record::Ratio {
        of_raw_1_message: share(raw1_s),
        of_raw_3_messages: share(raw3_s),
        of_raw_shaped: share(shaped_s),
    })?;
    emit(Record::Latency {
        kind: "latency",
        what: "append-to-visible",
        rate: 5000.0,
        millis: latencies,
        detail: "events",
    })?;
    let rate_written = rate(read_side.lags.len() as u64, read_side.seconds);
    for (kind, millis, what) in [
        (
            "projection_lag",
            read_side.lags,
            "projection lag (JetStream ack to read models)",
        ),
        (
            "append_to_projection",
            read_side.end_to_end,
            "append to read models",
        ),
    ] {
        emit(Record::Latency {
            kind,
            what,
            rate: rate_written,
            millis,
            detail:
                "person commands; serve on its own store, pulling from JetStream and the bucket",
        })?;
    }
    let (events, seconds) = read_side.rebuild;
    emit(Record::Stage(Stage {
        stage: "rebuild read models".into(),
        events,
        seconds,
        note: "every projection from the chains".into(),
        ceiling: None,
    }))?;
    let client = backbone.context().client();
    crate::service::run(url, backbone.settings(), client, emit)?;
    Ok(())
}

fn settle(report: personctl_ledger::jetstream::Report) -> Result<()> {
    if let Some((s, e)) = report.failures.first() {
        return Err(format!("publishing {s}: {e}").into());
    }
    Ok(())
}

/// Events appended at a steady rate by the latency stages: `--events`, at most 15,000, in
/// whole ticks.
fn steady_events(args: &BenchArgs) -> usize {
    let n = usize::try_from(args.events)
        .unwrap_or(usize::MAX)
        .min(15_000);
    (n / PER_TICK).max(1) * PER_TICK
}

/// Appends `total` events at 5,000/s (50 every 10 ms) while a consumer follows; returns the
/// sorted latencies in milliseconds from the start of each event's append to its delivery.
fn latency(
    runtime: &tokio::runtime::Runtime,
    backbone: &Arc<Backbone>,
    ledger: &Ledger<&SledStore>,
    signer: &Signer,
    streams: &[StreamId],
    total: usize,
) -> Result<Vec<f64>> {
    let started: Arc<Mutex<HashMap<Cid, Instant>>> = Arc::default();
    let seen: Arc<Mutex<Vec<(Cid, Instant)>>> = Arc::default();
    let follower = {
        let backbone = Arc::clone(backbone);
        let seen = Arc::clone(&seen);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let task = runtime.spawn(async move {
            let messages = follow(&backbone, None).await;
            let _ = ready_tx.send(());
            let messages = messages?;
            futures_util::pin_mut!(messages);
            let mut n = 0;
            while let Some(m) = messages.next().await {
                let m = m?;
                seen.lock()
                    .expect("not poisoned")
                    .push((m.notice.cid, Instant::now()));
                n += 1;
                if n == total {
                    break;
                }
            }
            Ok::<_, personctl_ledger::Error>(())
        });
        ready_rx.recv().ok();
        task
    };
    let begin = Instant::now();
    for k in 0..total / PER_TICK {
        wait_for_tick(begin, k);
        let t = Instant::now();
        let drafts: Vec<Draft> = (0..PER_TICK)
            .map(|i| {
                let stream = streams[(k * PER_TICK + i) % streams.len()].clone();
                Draft::new(stream, "PersonRenamed", 1)
                    .with_data(crate::embedded::sample_data(i as u64))
            })
            .collect::<Result<_, _>>()?;
        let appended = ledger.append_batch(signer, drafts)?;
        {
            let mut started = started.lock().expect("not poisoned");
            for a in &appended {
                started.insert(a.cid, t);
            }
        }
        let touched: Vec<StreamId> = appended.iter().map(|a| a.stream.clone()).collect();
        runtime.block_on(backbone.publish(*ledger.store(), Some(&touched)))?;
    }
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(30), follower).await })
        .map_err(|_| crate::Error::from("the follower did not see every event within 30 s"))???;
    let started = started.lock().expect("not poisoned");
    let mut out: Vec<f64> = seen
        .lock()
        .expect("not poisoned")
        .iter()
        .filter_map(|(cid, at)| Some(at.duration_since(*started.get(cid)?).as_secs_f64() * 1e3))
        .collect();
    out.sort_by(f64::total_cmp);
    Ok(out)
}
