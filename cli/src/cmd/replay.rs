//! `personctl replay`, `personctl show` and `personctl states`: rebuilt persons and the lifecycle.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::json;

use personctl_domain::lifecycle::TRANSITIONS;
use personctl_domain::{At, Event, PersonId, PersonWorld, Persons};
use personctl_ledger::{Cid, Ledger, SledStore};

use crate::args::{ReplayArgs, ShowArgs};
use crate::config::{person_arg, Config};
use crate::nats::store_for_reading;
use crate::output::{person_json, person_text, plural, Out};
use crate::EXIT_OK;

fn person_id(text: &str) -> Result<PersonId> {
    person_arg("--person ", text)
}

/// The persons of the store; with `--nats`, `person` (or everyone) first pulled from JetStream.
fn persons(config: &Config, person: Option<PersonId>) -> Result<Persons<SledStore>> {
    let stream = person.map(|p| p.stream());
    Ok(Persons::new(Ledger::new(store_for_reading(
        config,
        stream.as_ref(),
    )?)))
}

/// The person's events that no key of this home's trust list signed (a reader marks them).
fn untrusted(config: &Config, persons: &Persons<SledStore>, id: PersonId) -> Result<Vec<Cid>> {
    let store = persons.ledger().store();
    let trust = config.trust(store)?;
    Ok(persons.ledger().untrusted(&id.stream(), &trust)?)
}

/// Adds the untrusted events to a person's JSON record.
fn mark(data: &mut serde_json::Value, untrusted: &[Cid]) {
    data["untrusted_events"] = untrusted.iter().map(|c| json!(c.to_string())).collect();
}

/// The text line that marks untrusted events (empty when there are none): events `verify`
/// fails for their author or grant (untrusted, revoked or rotated-out key, no grant).
fn warning(untrusted: &[Cid]) -> String {
    match untrusted.len() {
        0 => String::new(),
        n => format!(
            "\n  warning        {n} event{} signed by keys this home does not trust, for example {} (see `personctl verify`)",
            if n == 1 { " is" } else { "s are" },
            untrusted[0]
        ),
    }
}

pub(crate) fn replay(config: &Config, args: &ReplayArgs, out: &mut Out) -> Result<u8> {
    let persons = persons(config, args.person.as_deref().map(person_id).transpose()?)?;
    let Some(person) = &args.person else {
        let started = Instant::now();
        let store = persons.ledger().store();
        let judge = personctl_ledger::policy::Judge::of_store(store, &config.trust(store)?)?;
        let (mut world, events, faulted) = persons.replay_all_judged(&judge)?;
        let seconds = started.elapsed().as_secs_f64();
        let faulted: std::collections::HashMap<PersonId, Vec<Cid>> = faulted.into_iter().collect();
        let untrusted_events: usize = faulted.values().map(Vec::len).sum();
        for id in world.ids() {
            let p = world.get(id).expect("listed ids exist");
            let untrusted = faulted.get(&id).map_or(&[][..], Vec::as_slice);
            let mut data = person_json(&p);
            if !untrusted.is_empty() {
                mark(&mut data, untrusted);
            }
            out.record("person", data, || {
                let email = p
                    .contact
                    .as_ref()
                    .and_then(|c| c.emails.first())
                    .map_or("", |e| e.address.as_str());
                format!(
                    "{id}  {:<12} {:<28} {email}{}",
                    p.lifecycle.to_string(),
                    p.identity.legal_name,
                    warning(untrusted)
                )
            })?;
        }
        let counts = world.count_by_state();
        let by_state: serde_json::Map<String, serde_json::Value> = counts
            .iter()
            .map(|(s, n)| (s.to_string(), json!(n)))
            .collect();
        out.record(
            "summary",
            json!({"persons": world.len(), "events": events, "seconds": seconds, "by_state": by_state, "untrusted_events": untrusted_events}),
            || {
                let states: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
                let untrusted = match untrusted_events {
                    0 => String::new(),
                    n => format!("; {} by authors or grants `verify` fails", plural(n as u64, "event")),
                };
                format!("{} from {} in {seconds:.3}s ({}){untrusted}", plural(world.len() as u64, "person"), plural(events, "event"), states.join(", "))
            },
        )?;
        return Ok(EXIT_OK);
    };
    let id = person_id(person)?;
    let at = match &args.at {
        None => None,
        Some(text) => Some(match text.parse::<u64>() {
            Ok(h) => At::Height(h),
            Err(_) => At::Cid(
                text.parse::<Cid>()
                    .with_context(|| format!("--at {text:?} is neither a height nor a CID"))?,
            ),
        }),
    };
    let replayed = persons.replay(id, at)?;
    let (Some(p), Some(head)) = (replayed.person, replayed.head) else {
        bail!("no person {id} in the store at {}", config.home.display());
    };
    // The chain as read: heights and types stay after an erasure; values may be masked.
    let history: Vec<_> = persons
        .history(id)?
        .into_iter()
        .filter(|(h, _)| h.height <= head.height)
        .collect();
    let masked = history
        .iter()
        .filter(|(_, r)| matches!(r.event, Event::Masked { .. }))
        .count();
    let untrusted = untrusted(config, &persons, id)?;
    let mut data = person_json(&p);
    mark(&mut data, &untrusted);
    data["height"] = json!(head.height);
    data["cid"] = json!(head.cid.to_string());
    data["events"] = history
        .iter()
        .map(|(h, r)| {
            json!({
                "height": h.height,
                "type": r.event.type_name(),
                "cid": h.cid.to_string(),
                "masked": matches!(r.event, Event::Masked { .. }),
            })
        })
        .collect();
    out.record("person", data, || {
        let masked = if masked > 0 {
            let which: Vec<String> = history
                .iter()
                .filter(|(_, r)| matches!(r.event, Event::Masked { .. }))
                .map(|(h, r)| format!("{} {}", h.height, r.event.type_name()))
                .collect();
            format!(
                "; {masked} of its {} events have masked values\n  masked: {}",
                history.len(),
                which.join(", ")
            )
        } else {
            String::new()
        };
        format!(
            "{}\n  as of height {} ({}){masked}{}",
            person_text(&p),
            head.height,
            head.cid,
            warning(&untrusted)
        )
    })?;
    Ok(EXIT_OK)
}

pub(crate) fn show(config: &Config, args: &ShowArgs, out: &mut Out) -> Result<u8> {
    let persons = persons(config, args.person.as_deref().map(person_id).transpose()?)?;
    // Both lookups run against a World: of one replayed person, or of everyone.
    let (world, ids) = match (&args.person, &args.email) {
        (Some(person), _) => {
            let id = person_id(person)?;
            let Some(p) = persons.replay(id, None)?.person else {
                bail!("no person {id} in the store at {}", config.home.display());
            };
            let untrusted = untrusted(config, &persons, id)?;
            let world = PersonWorld::from_persons([p]);
            let p = world.get(id).expect("just added");
            let mut data = person_json(&p);
            mark(&mut data, &untrusted);
            out.record("person", data, || {
                format!("{}{}", person_text(&p), warning(&untrusted))
            })?;
            return Ok(EXIT_OK);
        }
        (None, Some(address)) => {
            let (world, _) = persons.replay_all()?;
            let ids = world.by_email(address);
            if ids.is_empty() {
                bail!(
                    "no person with the email address {address:?} in the store at {}",
                    config.home.display()
                );
            }
            (world, ids)
        }
        (None, None) => bail!("show needs --person ID or --email ADDRESS"),
    };
    for (i, id) in ids.iter().enumerate() {
        let p = world.get(*id).expect("found in the World");
        let gap = if i > 0 { "\n" } else { "" };
        out.record("person", person_json(&p), || {
            format!("{gap}{}", person_text(&p))
        })?;
    }
    Ok(EXIT_OK)
}

pub(crate) fn states(out: &mut Out) -> Result<u8> {
    for t in TRANSITIONS {
        out.record(
            "transition",
            json!({"from": t.from.to_string(), "action": t.action.to_string(), "to": t.to.to_string()}),
            || format!("{:<13} --{:-<14}--> {}", t.from.to_string(), t.action.to_string(), t.to),
        )?;
    }
    for (event_type, schema) in personctl_domain::event::schemas() {
        out.record(
            "schema",
            json!({"event": event_type, "schema": schema}),
            || format!("event {event_type:<24} schema v{schema}"),
        )?;
    }
    Ok(EXIT_OK)
}
