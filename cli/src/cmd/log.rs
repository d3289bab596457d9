//! `personctl log`: a stream's audit trail, genesis first, with a verdict per event.
//!
//! A tombstone's line says what was erased and why (its scope and reason) and how many payloads
//! it masks; an event whose payload a tombstone masks names that tombstone.
//!
//! The verdict of an event is `ok` when its CID re-derives, its signature verifies strictly, its
//! author is trusted and it links to the previous height. Exit 1 when any verdict is not `ok`.

use anyhow::{bail, Result};
use serde_json::json;

use std::collections::HashMap;

use personctl_ledger::{BlockStore, Cid, Event, Ledger, Problem, StreamId, Tombstone};

use crate::args::StreamArgs;
use crate::config::{stream_of, Config};
use crate::nats::store_for_reading;
use crate::output::{time, Out};
use crate::{EXIT_NEGATIVE, EXIT_OK};

pub(crate) fn run(config: &Config, args: &StreamArgs, out: &mut Out) -> Result<u8> {
    let Some(stream) = stream_of(&args.select)? else {
        bail!("log needs --stream TYPE/ID or --person ID")
    };
    let store = store_for_reading(config, Some(&stream))?;
    let trust = config.trust(&store)?;
    let ledger = Ledger::new(store);
    if ledger.store().head(&stream)?.is_none() {
        bail!(
            "no stream {stream} in the store at {}",
            config.home.display()
        );
    }
    let judged = ledger.judged(&stream, &trust)?;
    let authors: HashMap<Cid, Problem> = judged
        .iter()
        .filter_map(|j| j.problem.clone().map(|p| (j.cid, p)))
        .collect();
    let signers: HashMap<Cid, StreamId> = judged
        .into_iter()
        .filter_map(|j| j.identity.map(|i| (j.cid, i)))
        .collect();
    // Walk back as far as the chain holds, then print genesis first.
    let mut events = Vec::new();
    let mut broken = None;
    for item in ledger.walk_back(&stream)? {
        match item {
            Ok(event) => events.push(event),
            Err(e) => {
                broken = Some(e);
                break;
            }
        }
    }
    events.reverse();
    let mut all_ok = broken.is_none();
    if let Some(e) = &broken {
        out.record(
            "broken",
            json!({"stream": stream.to_string(), "message": e.to_string()}),
            || format!("chain broken below the first line: {e}"),
        )?;
    }
    let masks = if broken.is_none() {
        ledger.masks(&stream)?
    } else {
        Default::default()
    };
    let mut prev: Option<&Event> = None;
    out.heading(&format!(
        "{:>6}  {:<27}  {:<24} {:<10}  {:<59}  verdict",
        "height", "time (UTC)", "type", "author", "cid"
    ))?;
    for event in &events {
        let verdict = verdict(&ledger, &authors, event, prev);
        all_ok &= verdict == "ok";
        let masked_by = event.payload().and_then(|p| masks.get(&p)).copied();
        let tombstone = match Tombstone::of(ledger.store(), event) {
            Ok(t) => t,
            Err(e) => {
                all_ok = false;
                out.record(
                    "broken",
                    json!({"stream": stream.to_string(), "message": e.to_string()}),
                    || format!("unreadable tombstone: {e}"),
                )?;
                None
            }
        };
        let note = match (&tombstone, masked_by) {
            (Some(t), _) => format!(
                "  erased {} by {}: {:?} ({} payloads masked)",
                t.scope,
                event.author().short(),
                t.reason,
                t.masks.len()
            ),
            (None, Some(t)) => format!("  payload masked by {t}"),
            (None, None) => String::new(),
        };
        out.record(
            "event",
            json!({
                "height": event.height(),
                "time": time(event.time_us()),
                "type": event.event_type(),
                "schema": event.schema(),
                "author": event.author().to_string(),
                "identity": signers.get(&event.cid()).map(|i| i.to_string()),
                "cid": event.cid().to_string(),
                "payload": event.payload().map(|p| p.to_string()),
                "causes": event.causes().iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                "masked_by": masked_by.map(|t| t.to_string()),
                "erasure": tombstone.as_ref().map(|t| json!({
                    "scope": t.scope,
                    "reason": t.reason,
                    "masks": t.masks.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                })),
                "verdict": verdict,
            }),
            || {
                format!(
                    "{:>6}  {}  {:<24} {}  {}  {}{note}",
                    event.height(),
                    time(event.time_us()),
                    format!("{} v{}", event.event_type(), event.schema()),
                    signers
                        .get(&event.cid())
                        .map_or_else(|| event.author().short().to_string(), |i| i.to_string()),
                    event.cid(),
                    verdict
                )
            },
        )?;
        prev = Some(event);
    }
    Ok(if all_ok { EXIT_OK } else { EXIT_NEGATIVE })
}

fn verdict<S: BlockStore>(
    ledger: &Ledger<S>,
    authors: &HashMap<Cid, Problem>,
    event: &Event,
    prev: Option<&Event>,
) -> String {
    let block = match ledger.store().get(&event.cid()) {
        Ok(Some(b)) => b,
        Ok(None) => return "missing".into(),
        Err(e) => return format!("unreadable: {e}"),
    };
    match event.verify_signature(&block) {
        Ok(true) => {}
        _ => return "bad signature".into(),
    }
    if let Some(problem) = authors.get(&event.cid()) {
        return match problem {
            Problem::UntrustedAuthor { .. } => "untrusted author".into(),
            other => other.to_string(),
        };
    }
    let linked = match prev {
        None => event.height() == 0,
        Some(p) => event.prev() == Some(p.cid()) && event.height() == p.height() + 1,
    };
    if !linked {
        return "not linked to the previous height".into();
    }
    "ok".into()
}
