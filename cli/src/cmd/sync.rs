//! `personctl sync` and `personctl tail`: the JetStream side on demand.

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use serde_json::json;

use personctl_ledger::{BlockStore, Event};

use crate::args::{SyncArgs, TailArgs};
use crate::config::{stream_of, Config};
use crate::nats;
use crate::output::{plural, Out};
use crate::EXIT_OK;

fn link(config: &Config, command: &str) -> Result<()> {
    if config.nats.is_none() {
        bail!("{command} needs JetStream: give --nats URL (or set PERSONCTL_NATS)");
    }
    Ok(())
}

/// Publishes pending events, then pulls every stream (or one) from JetStream.
pub(crate) fn sync(config: &Config, args: &SyncArgs, out: &mut Out) -> Result<u8> {
    link(config, "sync")?;
    let only = stream_of(&args.select)?;
    let store = config.open_or_create_store()?;
    let link = nats::connect(config)?.expect("checked above");
    let mut code = EXIT_OK;
    if args.repair && repair(&link, &store, out)? > 0 {
        code = crate::EXIT_NEGATIVE;
    }
    let streams = only.as_ref().map(std::slice::from_ref);
    let report = link
        .publish_report(&store, streams)
        .and_then(|r| r.settled())
        .map_err(|e| nats::pending_error(&link, e))?;
    for (stream, withdrawn) in &report.conflicts {
        for cid in withdrawn {
            out.record(
                "withdrawn",
                json!({"stream": stream.to_string(), "cid": cid.to_string()}),
                || format!("withdrawn {stream} {cid}: another writer's event holds its height on JetStream"),
            )?;
        }
    }
    let (streams, fetched) = match &only {
        Some(s) => (1, nats::pull(&link, &store, s)?.fetched),
        None => nats::pull_all(&link, &store)?,
    };
    out.record(
        "synced",
        json!({
            "published": report.published,
            "duplicates": report.duplicates,
            "withdrawn": report.conflicts.iter().map(|(_, c)| c.len()).sum::<usize>(),
            "streams": streams,
            "fetched": fetched + report.fetched,
        }),
        || {
            format!(
                "published {} ({} JetStream had already); fetched {} over {}",
                plural(report.published, "pending event"),
                report.duplicates,
                plural(fetched + report.fetched, "event"),
                plural(streams, "stream")
            )
        },
    )?;
    Ok(code)
}

/// `sync --repair`: JetStream given back what it lost, each repair reported; returns how many
/// holes it left for a person (see [`personctl_ledger::jetstream::Gap`]).
fn repair(
    link: &personctl_ledger::jetstream::Link,
    store: &personctl_ledger::SledStore,
    out: &mut Out,
) -> Result<usize> {
    let repaired = link
        .repair(store)
        .map_err(|e| nats::pending_error(link, e))?;
    for lost in &repaired.lost {
        let kept = lost
            .kept
            .map_or("nothing".to_string(), |h| format!("height {h}"));
        out.record(
            "lost",
            json!({"stream": lost.stream.to_string(), "kept": lost.kept, "acknowledged": lost.acknowledged}),
            || format!("{}: JetStream had acknowledged up to height {} and kept {kept}; published again", lost.stream, lost.acknowledged),
        )?;
    }
    for (stream, cid) in &repaired.elsewhere {
        out.record(
            "elsewhere",
            json!({"stream": stream.to_string(), "cid": cid.to_string()}),
            || format!("{stream}: JetStream's subject ends on {cid}, which is not on this chain; left to the pull (never overwritten)"),
        )?;
    }
    let report = repaired.published.settled()?;
    out.record(
        "repaired",
        json!({"streams": repaired.lost.len(), "blocks": repaired.blocks, "republished": report.published}),
        || format!("repaired {} and {}: republished {}", plural(repaired.lost.len() as u64, "stream"), plural(repaired.blocks, "block"), plural(report.published, "event")),
    )?;
    for gap in &repaired.gaps {
        let missing = gap
            .heights
            .map_or("events".to_string(), |(a, b)| format!("heights {a} to {b}"));
        out.record(
            "gap",
            json!({"stream": gap.stream.to_string(), "sequence": gap.sequence, "cid": gap.cid.to_string(), "heights": gap.heights.map(|(a, b)| [a, b])}),
            || format!("{}: JetStream lost {missing} from the middle of the subject (message {} resumes with {}); their blocks are in the bucket, so readers rebuild the chain, but the subject's order cannot be mended in place: see docs/JETSTREAM.md (Holes)", gap.stream, gap.sequence, gap.cid),
        )?;
    }
    Ok(repaired.gaps.len())
}

/// Follows new events live: stream, height, type, CID.
pub(crate) fn tail(config: &Config, args: &TailArgs, out: &mut Out) -> Result<u8> {
    link(config, "tail")?;
    let only = stream_of(&args.select)?;
    let link = nats::connect(config)?.expect("checked above");
    // The local store, if there is one, saves a bucket read per event. Read-only: appends to
    // this home go on while tail runs.
    let store = config.open_read_only().ok();
    let backbone = link.backbone();
    link.block_on(async {
        let seen = personctl_ledger::jetstream::follow(backbone, only.as_ref()).await?;
        futures_util::pin_mut!(seen);
        let mut count = 0;
        while args.count.is_none_or(|n| count < n) {
            let Some(seen) = seen.next().await else { break };
            let seen = seen?;
            let cid = seen.notice.cid;
            let block = match store.as_ref().map(|s| s.get(&cid)).transpose()?.flatten() {
                Some(b) => Some(b),
                None => backbone.blocks().get(&cid).await?,
            };
            let event = block
                .map(|b| Event::decode(&b))
                .transpose()
                .with_context(|| format!("event {cid} of message {}", seen.sequence))?;
            let height = event.as_ref().map(Event::height);
            let ty = event.as_ref().map(|e| e.event_type().to_string());
            out.record(
                "event",
                json!({
                    "stream": seen.stream.to_string(),
                    "height": height,
                    "type": ty,
                    "cid": cid.to_string(),
                    "sequence": seen.sequence,
                }),
                || {
                    let height = height.map_or("?".into(), |h| h.to_string());
                    let ty = ty.clone().unwrap_or_else(|| "(block not found)".into());
                    format!("{}  {height:>4}  {ty:<22} {cid}", seen.stream)
                },
            )?;
            out.flush()?;
            count += 1;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(EXIT_OK)
}
