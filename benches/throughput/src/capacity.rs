//! The capacity inputs of `docs/JETSTREAM.md`: what a subject costs nats-server. The same
//! messages are published twice to a stream of their own, laid out like the block bucket (one
//! message kept per subject): once on a subject each (personctl's block layout, a subject per
//! CID) and once spread over 1,000 subjects. The server's memory (from its monitoring
//! endpoint, when given) and the stream's bytes after each, and the publish rate, give the
//! per-subject memory and the per-message disk of the model.

use std::time::Instant;

use async_nats::jetstream::stream::{Config, DiscardPolicy, StorageType};

use crate::{Emit, Record, Result};

/// Bytes per message: about a block (event blocks ~236 B, payload blocks ~221 B).
const MESSAGE_BYTES: usize = 230;

/// Subjects of the grouped layout.
const GROUPED: u64 = 1_000;

/// The server's resident memory in bytes, from its monitoring endpoint `monitor`
/// (`http://HOST:PORT` of `nats-server -m PORT`); `None` without one.
fn memory(monitor: Option<&str>) -> Result<Option<u64>> {
    let Some(monitor) = monitor else {
        return Ok(None);
    };
    let varz = format!("{}/varz", monitor.trim_end_matches('/'));
    let text = ureq::get(&varz)
        .call()
        .map_err(|e| format!("--monitor {varz}: {e}"))?
        .into_string()
        .map_err(|e| format!("--monitor {varz}: {e}"))?;
    let body: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("--monitor {varz}: {e}"))?;
    Ok(body["mem"].as_u64())
}

/// Publishes `messages` in each layout to the server at `url`, reading its memory from
/// `monitor` when given.
pub fn subjects(url: &str, messages: u64, monitor: Option<&str>, emit: Emit<'_>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let client = runtime
        .block_on(async_nats::connect(url))
        .map_err(|e| format!("--nats {}: {e}", personctl_ledger::jetstream::redact(url)))?;
    let _entered = runtime.enter();
    let js = async_nats::jetstream::new(client);
    let tag = uuid::Uuid::now_v7().simple().to_string()[24..].to_string();
    for (layout, subjects) in [
        ("a subject per message", messages),
        ("1,000 subjects", GROUPED),
    ] {
        let name = format!("PERSONCTL_CAPACITY_{tag}");
        let prefix = format!("capacity_{tag}");
        runtime
            .block_on(js.create_stream(Config {
                name: name.clone(),
                subjects: vec![format!("{prefix}.>")],
                storage: StorageType::File,
                max_messages_per_subject: 1,
                discard: DiscardPolicy::Old,
                ..Config::default()
            }))
            .map_err(|e| format!("creating {name}: {e}"))?;
        let before = memory(monitor)?;
        let started = Instant::now();
        let body = vec![7u8; MESSAGE_BYTES];
        // A CID's length (59 characters), as the bucket's keys are; made as they go out.
        let all = (0..messages).map(|i| {
            let subject = format!("{prefix}.bafyr4i{:052x}", i % subjects);
            (subject, None, body.clone())
        });
        let published = runtime.block_on(crate::nats::publish_acked(&js, all));
        published.map_err(|e| format!("publishing to {name}: {e}"))?;
        let seconds = started.elapsed().as_secs_f64();
        let after = memory(monitor)?;
        let state = runtime
            .block_on(async {
                let mut stream = js.get_stream(&name).await.map_err(|e| e.to_string())?;
                let info = stream.info().await.map_err(|e| e.to_string())?;
                Ok::<_, String>(info.state.clone())
            })
            .map_err(|e| format!("reading {name}: {e}"))?;
        emit(Record::Subjects {
            layout,
            subjects: state.subjects_count,
            messages: state.messages,
            published: messages,
            seconds,
            stream_bytes: state.bytes,
            memory_before: before,
            memory_after: after,
        })?;
        runtime
            .block_on(js.delete_stream(&name))
            .map_err(|e| format!("deleting {name}: {e}"))?;
    }
    Ok(())
}
