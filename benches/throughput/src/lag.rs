//! The read-side stages of `personctl --nats URL bench`: projection lag at a steady 5,000 events/s, and the
//! rebuild of every read model.
//!
//! The read side's follower (`serve`'s) runs on a thread of its own, with its own store and read models (as a
//! separate process would: it pulls every chain from JetStream and the bucket). A writer
//! registers 1,000 persons, then renames them at 5,000 events/s (50 every 10 ms, appended as
//! the domain writes them) for 3 s (`--events`, at most 15,000), publishing each batch. The projection lag of an event runs
//! from the publish's ack (the event is in JetStream) to its application to the read models;
//! the end-to-end lag from the start of its append.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use personctl_domain::read_side::PersonProjector;
use personctl_domain::{Command, PersonId, Persons, Projections, AGGREGATE};
use personctl_ledger::jetstream::{follow_log, Backbone, Settings};
use personctl_ledger::{
    Appended, Cid, Draft, FollowOptions, Ledger, Payload, Signer, SledStore, TrustSet,
};

use crate::Result;

/// What the read-side bench measured.
pub(crate) struct ReadSide {
    /// Sorted lags in milliseconds, from the publish's ack (the event is in JetStream) to its
    /// application.
    pub(crate) lags: Vec<f64>,
    /// Sorted lags in milliseconds from the start of the append (domain decide, sign, commit,
    /// publish) to the application.
    pub(crate) end_to_end: Vec<f64>,
    /// How long the writer took for the events (3 s for 15,000 at a steady 5,000/s).
    pub(crate) seconds: f64,
    /// Events the rebuild read, and its seconds.
    pub(crate) rebuild: (u64, f64),
}

const PERSONS: usize = 1_000;
/// The bench writer's key, which the bench's serve trusts.
const WRITER_SEED: [u8; 32] = [9; 32];

pub(crate) fn read_side(
    runtime: &tokio::runtime::Runtime,
    backbone: &Backbone,
    url: &str,
    settings: &Settings,
    total: usize,
) -> Result<ReadSide> {
    let dir = tempfile::tempdir()?;
    let applied: Arc<Mutex<HashMap<Cid, Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let (url, settings) = (url.to_string(), settings.clone());
        let (applied, stop) = (Arc::clone(&applied), Arc::clone(&stop));
        let path = dir.path().to_path_buf();
        std::thread::spawn(move || -> Result<()> {
            let trust: TrustSet = [Signer::from_seed(WRITER_SEED).author()]
                .into_iter()
                .collect();
            // As `serve` links: adopting only what the trusted authors signed.
            let link = personctl_ledger::jetstream::Link::connect(&url, settings)?
                .with_trust(trust.clone());
            let store = SledStore::open(path.join("serve-store"))?;
            let projections = Projections::open(&path.join("projections"))?;
            let observe = move |cid: &Cid| {
                applied
                    .lock()
                    .expect("not poisoned")
                    .insert(*cid, Instant::now());
            };
            // As `serve` runs with its default options.
            let options = FollowOptions::new(AGGREGATE, "personctl-projections");
            let mut projector =
                PersonProjector::new(&store, &projections).observed(Box::new(observe));
            follow_log(&link, &store, &trust, &mut projector, &options, &stop)?;
            Ok(())
        })
    };

    let signer = Signer::from_seed(WRITER_SEED);
    let store = SledStore::open(dir.path().join("writer-store"))?;
    let persons = Persons::new(Ledger::new(&store));
    let ids: Vec<PersonId> = (0..PERSONS).map(|_| PersonId::new_v7()).collect();
    let publish = |appended: &[Appended]| -> Result<()> {
        let touched: Vec<_> = appended.iter().map(|a| a.stream.clone()).collect();
        let report = runtime.block_on(backbone.publish(&store, Some(&touched)))?;
        match report.failures.first() {
            Some((s, e)) => Err(crate::Error::from(format!("publishing {s}: {e}"))),
            None => Ok(()),
        }
    };
    let batch = |commands: Vec<(PersonId, Command)>| -> Result<Vec<Appended>> {
        let appended = persons
            .execute_batch(&signer, &commands)
            .map_err(|f| crate::Error::from(format!("bench command {}: {}", f.index, f.error)))?;
        Ok(appended.into_iter().flatten().collect())
    };
    // The persons first (not measured), and wait until they are applied.
    let registered = batch(
        ids.iter()
            .enumerate()
            .map(|(i, id)| {
                (
                    *id,
                    Command::Register {
                        legal_name: format!("Bench Person {i}"),
                    },
                )
            })
            .collect(),
    )?;
    publish(&registered)?;
    wait_for(&applied, registered.iter().map(|a| a.cid), &server)?;

    let started: Mutex<HashMap<Cid, Instant>> = Mutex::default();
    let published: Mutex<HashMap<Cid, Instant>> = Mutex::default();
    let begin = Instant::now();
    for k in 0..total / PER_TICK {
        wait_for_tick(begin, k);
        let t = Instant::now();
        // Renames as the domain writes them, appended directly: the writer's own cost (a
        // replay per person per command) would otherwise throttle the rate under test.
        let drafts = (0..PER_TICK)
            .map(|i| {
                let n = k * PER_TICK + i;
                let event = personctl_domain::Event::Renamed {
                    old: String::new(),
                    new: format!("Bench Person {n} renamed"),
                    reason: "bench".into(),
                };
                let mut d =
                    Draft::new(ids[n % PERSONS].stream(), event.type_name(), event.schema());
                d.payload = personctl_domain::event::encode_payload(&event)
                    .map(Payload::new)
                    .transpose()?;
                Ok(d)
            })
            .collect::<Result<Vec<Draft>>>()?;
        let appended = persons.ledger().append_batch(&signer, drafts)?;
        started
            .lock()
            .expect("not poisoned")
            .extend(appended.iter().map(|a| (a.cid, t)));
        publish(&appended)?;
        let visible = Instant::now();
        published
            .lock()
            .expect("not poisoned")
            .extend(appended.iter().map(|a| (a.cid, visible)));
    }
    let started = started.into_inner().expect("not poisoned");
    let published = published.into_inner().expect("not poisoned");
    let writing = begin.elapsed().as_secs_f64();
    wait_for(&applied, started.keys().copied(), &server)?;
    stop.store(true, Ordering::SeqCst);
    server
        .join()
        .map_err(|_| crate::Error::from("the serve thread panicked"))??;
    let applied = applied.lock().expect("not poisoned");
    let lags_from = |from: &HashMap<Cid, Instant>| -> Vec<f64> {
        let mut lags: Vec<f64> = from
            .iter()
            .filter_map(|(cid, t)| {
                applied
                    .get(cid)
                    .map(|a| a.saturating_duration_since(*t).as_secs_f64() * 1e3)
            })
            .collect();
        lags.sort_by(f64::total_cmp);
        lags
    };
    let lags = lags_from(&published);
    let end_to_end = lags_from(&started);

    // Rebuild every read model from the serve store (every chain is there now).
    let serve_store = SledStore::open(dir.path().join("serve-store"))?;
    let projections = Projections::open(&dir.path().join("projections"))?;
    let t = Instant::now();
    let (updates, events) = Persons::new(Ledger::new(&serve_store)).read_models()?;
    projections.rebuild(&updates, None)?;
    Ok(ReadSide {
        lags,
        end_to_end,
        seconds: writing,
        rebuild: (events, t.elapsed().as_secs_f64()),
    })
}

/// Waits until every CID in `cids` is applied (at most 60 s).
fn wait_for(
    applied: &Mutex<HashMap<Cid, Instant>>,
    cids: impl Iterator<Item = Cid>,
    server: &std::thread::JoinHandle<Result<()>>,
) -> Result<()> {
    let cids: Vec<Cid> = cids.collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = {
            let applied = applied.lock().expect("not poisoned");
            cids.iter().all(|c| applied.contains_key(c))
        };
        if done {
            return Ok(());
        }
        if server.is_finished() {
            return Err(crate::Error::from("the serve loop stopped early"));
        }
        if Instant::now() > deadline {
            return Err(crate::Error::from(
                "the read models did not catch up within 60 s",
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Events per 10 ms tick of the latency stages (5,000 events/s).
pub(super) const PER_TICK: usize = 50;

/// Sleeps until tick `k` (every 10 ms from `begin`): the pace of 5,000 events/s in ticks of 50.
pub(super) fn wait_for_tick(begin: Instant, k: usize) {
    let due = begin + Duration::from_millis(10) * k as u32;
    if let Some(wait) = due.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
}
