//! The command service stage of `personctl --nats URL bench`: person commands by NATS
//! request-reply to 1, 2 and 4 instances (each a thread with its own store and connection, as
//! `serve --commands` runs them, in one queue group), a client keeping 64 requests in flight;
//! requests/s and the latency from request to reply.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use personctl_domain::{requests, Persons};
use personctl_ledger::jetstream::{respond, Link, Settings};
use personctl_ledger::{Ledger, Publisher, Signer, SledStore};

use crate::{quantile, Emit, Record, Result, Stage};

/// Requests sent to each set of instances.
const REQUESTS: usize = 2_000;
/// Requests in flight at once.
const IN_FLIGHT: usize = 64;

/// Runs the stage against the server at `url`, on the bench's streams (`settings`), sending the
/// requests with `client` (connected with the URL's credentials).
pub(crate) fn run(
    url: &str,
    settings: &Settings,
    client: async_nats::Client,
    emit: Emit<'_>,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let subject = format!("{}_commands", settings.prefix);
    for instances in [1usize, 2, 4] {
        let stop = Arc::new(AtomicBool::new(false));
        let dirs: Vec<tempfile::TempDir> = (0..instances)
            .map(|_| tempfile::tempdir())
            .collect::<Result<_, _>>()?;
        let threads: Vec<_> = dirs
            .iter()
            .map(|dir| {
                let (url, settings, stop) = (url.to_string(), settings.clone(), Arc::clone(&stop));
                let (path, subject) = (dir.path().join("store"), format!("{subject}.>"));
                std::thread::spawn(move || -> Result<u64> {
                    let signer = Signer::from_seed([11; 32]);
                    let trust = [signer.author()].into_iter().collect();
                    let link = Link::connect(&url, settings)?.with_trust(trust);
                    let store = SledStore::open(path)?;
                    let persons = Persons::new(Ledger::new(&store));
                    let answered = respond(
                        &link,
                        &subject,
                        "personctl-commands",
                        &stop,
                        &mut |subject, body| {
                            let publisher = Some(&link as &dyn Publisher);
                            requests::answer(&persons, &signer, publisher, subject, body)
                        },
                    )?;
                    Ok(answered)
                })
            })
            .collect();
        // Every instance subscribed: a probe answered (an invalid request appends nothing),
        // and a moment for the rest.
        let probe = format!("{subject}.register");
        let ready = Instant::now();
        while runtime
            .block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(1),
                    client.request(probe.clone(), "{}".into()),
                )
                .await
            })
            .map_or(true, |r| r.is_err())
        {
            if ready.elapsed() > Duration::from_secs(30) {
                return Err("the bench's command service did not answer within 30 s".into());
            }
        }
        std::thread::sleep(Duration::from_millis(500));
        let started = Instant::now();
        let results: Vec<Result<(f64, bool), String>> = runtime.block_on(
            stream::iter((0..REQUESTS).map(|i| {
                let (client, probe) = (client.clone(), probe.clone());
                async move {
                    let body = serde_json::json!({
                        "id": uuid::Uuid::now_v7().to_string(),
                        "legal_name": format!("Bench Person {i}"),
                    });
                    let t = Instant::now();
                    let reply = client
                        .request(probe, serde_json::to_vec(&body).unwrap_or_default().into())
                        .await
                        .map_err(|e| e.to_string())?;
                    let ok = serde_json::from_slice::<serde_json::Value>(&reply.payload)
                        .map(|v| v["ok"] == true)
                        .unwrap_or(false);
                    Ok((t.elapsed().as_secs_f64() * 1e3, ok))
                }
            }))
            .buffer_unordered(IN_FLIGHT)
            .collect(),
        );
        let seconds = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::SeqCst);
        let mut answered = Vec::new();
        for t in threads {
            answered.push(t.join().map_err(|_| "a bench command service panicked")??);
        }
        let mut millis = Vec::with_capacity(results.len());
        for r in results {
            let (ms, ok) = r.map_err(|e| format!("a command request: {e}"))?;
            if !ok {
                return Err("a bench command was refused".into());
            }
            millis.push(ms);
        }
        millis.sort_by(f64::total_cmp);
        emit(Record::Stage(Stage {
            stage: format!("command service, {instances} instance(s)"),
            events: REQUESTS as u64,
            seconds,
            note: format!(
                "register by request-reply, {IN_FLIGHT} in flight, request to reply p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms; answered per instance {answered:?}",
                quantile(&millis, 0.5),
                quantile(&millis, 0.95),
                quantile(&millis, 0.99)
            ),
            ceiling: None,
        }))?;
    }
    Ok(())
}
