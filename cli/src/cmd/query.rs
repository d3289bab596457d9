//! `personctl query` (reads the read models `serve` maintains) and `personctl project
//! --rebuild` (builds them from scratch out of the chains).

use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::json;

use personctl_domain::{PersonId, Persons};
use personctl_ledger::Ledger;

use crate::args::{ProjectArgs, QueryCommand};
use crate::cmd::serve::projections;
use crate::config::Config;
use crate::nats::Link;
use crate::output::{time, Out};
use crate::EXIT_OK;

fn person_id(text: &str) -> Result<PersonId> {
    text.parse()
        .with_context(|| format!("{text:?} is not a person id (a UUID)"))
}

pub(crate) fn query(config: &Config, command: &QueryCommand, out: &mut Out) -> Result<u8> {
    let p = projections(config)?;
    match command {
        QueryCommand::Summary { person } => {
            let summaries = match person {
                Some(id) => {
                    let id = person_id(id)?;
                    match p.summary(id)? {
                        Some(s) => vec![s],
                        None => bail!("no person {id} in the read models (has `serve` seen it?)"),
                    }
                }
                None => p.summaries()?,
            };
            for s in summaries {
                out.record("summary", serde_json::to_value(&s)?, || {
                    format!(
                        "{}  {:<12} {:<28} {}",
                        s.person,
                        s.lifecycle,
                        s.legal_name,
                        s.primary_email.as_deref().unwrap_or("")
                    )
                })?;
            }
        }
        QueryCommand::Search { text } => {
            for id in p.search(text)? {
                let s = p.summary(id)?;
                out.record(
                    "match",
                    json!({"person": id.to_string(), "summary": s}),
                    || match &s {
                        Some(s) => format!("{id}  {}", s.legal_name),
                        None => id.to_string(),
                    },
                )?;
            }
        }
        QueryCommand::Timeline { person } => {
            let id = person_id(person)?;
            let entries = p.timeline(id)?;
            if entries.is_empty() {
                bail!("no timeline for person {id} in the read models (has `serve` seen it?)");
            }
            for e in entries {
                out.record(
                    "entry",
                    json!({"height": e.height, "time": time(e.time_us), "type": e.event_type, "cid": e.cid}),
                    || format!("{:>6}  {}  {:<24} {}", e.height, time(e.time_us), e.event_type, e.cid),
                )?;
            }
        }
        QueryCommand::Skills { skill } => {
            for (id, level) in p.skills(skill)? {
                out.record(
                    "skill",
                    json!({"person": id.to_string(), "skill": skill.trim().to_lowercase(), "level": level}),
                    || format!("{id}  level {level}"),
                )?;
            }
        }
        QueryCommand::Network { person } => {
            let id = person_id(person)?;
            for link in p.network(id)? {
                let direction = if link.outgoing { "to" } else { "from" };
                out.record(
                    "link",
                    json!({"person": id.to_string(), "other": link.other.to_string(), "kind": link.kind, "direction": direction}),
                    || format!("{direction:<4} {}  {}", link.other, link.kind),
                )?;
            }
        }
    }
    Ok(EXIT_OK)
}

pub(crate) fn project(config: &Config, args: &ProjectArgs, out: &mut Out) -> Result<u8> {
    if !args.rebuild {
        bail!(
            "project needs --rebuild (the only action: rebuild every read model from the chains)"
        );
    }
    // With --nats: the store is brought level with JetStream first, and the checkpoint is set to
    // the stream's last sequence, so that `serve` goes on from there.
    let (store, last) = match Link::connect(config)? {
        Some(link) => {
            let store = config.open_or_create_store()?;
            let last = link.block_on(async {
                let js = link.backbone().context();
                let name = &link.backbone().settings().stream;
                let mut stream = js
                    .get_stream(name)
                    .await
                    .map_err(|e| anyhow::anyhow!("opening the stream {name}: {e}"))?;
                let info = stream
                    .info()
                    .await
                    .map_err(|e| anyhow::anyhow!("reading the stream {name}: {e}"))?;
                anyhow::Ok(info.state.last_sequence)
            })?;
            link.pull_all(&store)?;
            (store, Some(last))
        }
        None => (config.open_existing_store()?, None),
    };
    let projections = projections(config)?;
    let started = Instant::now();
    let (updates, events) = Persons::new(Ledger::new(&store)).read_models()?;
    projections.rebuild(&updates, last)?;
    let seconds = started.elapsed().as_secs_f64();
    let rate = events as f64 / seconds.max(1e-9);
    out.record(
        "rebuilt",
        json!({"persons": updates.len(), "events": events, "checkpoint": last, "seconds": seconds, "events_per_second": rate.round()}),
        || format!("rebuilt the read models of {} persons from {events} events in {seconds:.3}s ({rate:.0} events/s)", updates.len()),
    )?;
    Ok(EXIT_OK)
}
