//! `personctl query` (reads the read models `serve` maintains) and `personctl project
//! --rebuild` (builds them from scratch out of the chains).

use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::json;

use personctl_domain::{PersonId, Persons, Projections};
use personctl_ledger::Ledger;
use serde_json::Value;

use crate::args::{ProjectArgs, QueryCommand};
use crate::config::{person_arg, Config};
use crate::nats;
use crate::output::{plural, time, Out};
use crate::EXIT_OK;
use personctl_ledger::jetstream::Link;

fn person_id(text: &str) -> Result<PersonId> {
    person_arg("", text)
}

/// One answer record: its type, its JSON data, and its human line.
pub(crate) type Record = (String, Value, String);

pub(crate) fn query(config: &Config, command: &QueryCommand, out: &mut Out) -> Result<u8> {
    // With --nats, a running `serve` answers (it holds the read models open); without one, or
    // without --nats, this home's read models are read directly.
    let records = match nats::connect(config)? {
        Some(link) => match link.block_on(ask(&link, command))? {
            Some(records) => records,
            None => answer(&config.existing_projections()?, command)?,
        },
        None => answer(&config.existing_projections()?, command)?,
    };
    for (kind, data, line) in records {
        out.record(&kind, data, || line.clone())?;
    }
    Ok(EXIT_OK)
}

/// The subject `serve` answers queries on.
pub(crate) fn query_subject(link: &Link) -> String {
    format!("{}_query", link.backbone().settings().prefix)
}

/// The query as a request body.
fn request(command: &QueryCommand) -> Value {
    match command {
        QueryCommand::Summary { person } => json!({"query": "summary", "person": person}),
        QueryCommand::Search { text } => json!({"query": "search", "text": text}),
        QueryCommand::Timeline { person } => json!({"query": "timeline", "person": person}),
        QueryCommand::Skills { skill } => json!({"query": "skills", "skill": skill}),
        QueryCommand::Network { person } => json!({"query": "network", "person": person}),
    }
}

/// A request body as a query.
fn parse_request(body: &[u8]) -> Result<QueryCommand> {
    let v: Value = serde_json::from_slice(body).context("a query must be JSON")?;
    let text = |k: &str| -> Result<String> {
        v[k].as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("the query needs {k:?}"))
    };
    Ok(match v["query"].as_str().unwrap_or("") {
        "summary" => QueryCommand::Summary {
            person: v["person"].as_str().map(str::to_string),
        },
        "search" => QueryCommand::Search {
            text: text("text")?,
        },
        "timeline" => QueryCommand::Timeline {
            person: text("person")?,
        },
        "skills" => QueryCommand::Skills {
            skill: text("skill")?,
        },
        "network" => QueryCommand::Network {
            person: text("person")?,
        },
        other => bail!("unknown query {other:?}"),
    })
}

/// Asks a running `serve`; `None` if none answers.
async fn ask(link: &Link, command: &QueryCommand) -> Result<Option<Vec<Record>>> {
    let client = link.backbone().context().client();
    let body = request(command).to_string();
    let reply = match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        client.request(query_subject(link), body.into()),
    )
    .await
    {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => return Ok(None),
        Ok(Err(e)) => bail!("asking serve: {e}"),
        Err(_) => bail!("asking serve: no answer within 5 s"),
    };
    let v: Value = serde_json::from_slice(&reply.payload).context("serve's answer")?;
    if let Some(e) = v["error"].as_str() {
        bail!("{e}");
    }
    let records = v["records"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("serve's answer has no records"))?
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap_or_default().to_string(),
                r[1].clone(),
                r[2].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    Ok(Some(records))
}

/// The answer `serve` sends to a request body (an error is answered too).
pub(crate) fn respond(projections: &Projections, request: &[u8]) -> Vec<u8> {
    let body = match parse_request(request).and_then(|command| answer(projections, &command)) {
        Ok(records) => json!({"records": records
            .into_iter()
            .map(|(kind, data, line)| json!([kind, data, line]))
            .collect::<Vec<_>>()}),
        Err(e) => json!({"error": format!("{e:#}")}),
    };
    body.to_string().into_bytes()
}

/// Answers a query from the read models.
pub(crate) fn answer(p: &Projections, command: &QueryCommand) -> Result<Vec<Record>> {
    let mut out: Vec<Record> = Vec::new();
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
                let line = format!(
                    "{}  {:<12} {:<28} {}",
                    s.person,
                    s.lifecycle,
                    s.legal_name,
                    s.primary_email.as_deref().unwrap_or("")
                );
                out.push(("summary".into(), serde_json::to_value(&s)?, line));
            }
        }
        QueryCommand::Search { text } => {
            for id in p.search(text)? {
                let s = p.summary(id)?;
                let line = match &s {
                    Some(s) => format!("{id}  {}", s.legal_name),
                    None => id.to_string(),
                };
                out.push((
                    "match".into(),
                    json!({"person": id.to_string(), "summary": s}),
                    line,
                ));
            }
        }
        QueryCommand::Timeline { person } => {
            let id = person_id(person)?;
            let entries = p.timeline(id)?;
            if entries.is_empty() {
                bail!("no timeline for person {id} in the read models (has `serve` seen it?)");
            }
            for e in entries {
                let line = format!(
                    "{:>6}  {}  {:<24} {}",
                    e.height,
                    time(e.time_us),
                    e.event_type,
                    e.cid
                );
                out.push((
                    "entry".into(),
                    json!({"height": e.height, "time": time(e.time_us), "type": e.event_type, "cid": e.cid}),
                    line,
                ));
            }
        }
        QueryCommand::Skills { skill } => {
            for (id, level) in p.skills(skill)? {
                out.push((
                    "skill".into(),
                    json!({"person": id.to_string(), "skill": skill.trim().to_lowercase(), "level": level}),
                    format!("{id}  level {level}"),
                ));
            }
        }
        QueryCommand::Network { person } => {
            let id = person_id(person)?;
            for link in p.network(id)? {
                let direction = if link.outgoing { "to" } else { "from" };
                out.push((
                    "link".into(),
                    json!({"person": id.to_string(), "other": link.other.to_string(), "kind": link.kind, "direction": direction}),
                    format!("{direction:<4} {}  {}", link.other, link.kind),
                ));
            }
        }
    }
    Ok(out)
}

pub(crate) fn project(config: &Config, args: &ProjectArgs, out: &mut Out) -> Result<u8> {
    // Without --rebuild, read models that exist are left as they are (and described); none
    // yet are built.
    if !args.rebuild && config.has_projections() {
        let projections = config.projections()?;
        let (persons, checkpoint) = (projections.summaries()?.len(), projections.checkpoint()?);
        out.record(
            "projections",
            json!({"persons": persons, "checkpoint": checkpoint}),
            || format!("read models of {} (checkpoint {checkpoint}); `personctl project --rebuild` builds them again from the chains", plural(persons as u64, "person")),
        )?;
        return Ok(EXIT_OK);
    }
    // With --nats: the store is brought level with JetStream first, and the checkpoint is set to
    // the stream's last sequence, so that `serve` goes on from there.
    let (store, last) = match nats::connect(config)? {
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
            nats::pull_all(&link, &store)?;
            (store, Some(last))
        }
        None => (config.open_for_reading()?, None),
    };
    let projections = config.projections()?;
    let started = Instant::now();
    let (updates, events) = Persons::new(Ledger::new(&store)).read_models()?;
    projections.rebuild(&updates, last)?;
    let seconds = started.elapsed().as_secs_f64();
    let rate = events as f64 / seconds.max(1e-9);
    out.record(
        "rebuilt",
        json!({"persons": updates.len(), "events": events, "checkpoint": last, "seconds": seconds, "events_per_second": rate.round()}),
        || format!("rebuilt the read models of {} from {} in {seconds:.3}s ({rate:.0} events/s)", plural(updates.len() as u64, "person"), plural(events, "event")),
    )?;
    Ok(EXIT_OK)
}
