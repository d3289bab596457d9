//! `personctl append`: person commands, from the command line or a JSON Lines file.
//!
//! Both forms become the same JSON object, `{"person": ID, "command": NAME, FIELD: VALUE...}`,
//! which the domain's `Command` deserialises (so field names and errors are the same in both).
//! On the command line `--legal-name X` is the field `legal_name`; `--level` and
//! `--confidence` are numbers; `--channels a,b` is a list.

use std::io::BufRead;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Map, Value};

use std::collections::HashSet;

use personctl_domain::{Command, Error as DomainError, PersonId, Persons};
use personctl_ledger::{Appended, Cid, Ledger, Signer, SledStore, StreamId};

use crate::args::AppendArgs;
use crate::config::Config;
use crate::nats::Link;
use crate::output::Out;
use crate::EXIT_OK;

const NUMBER_FIELDS: [&str; 2] = ["level", "confidence"];
const LIST_FIELDS: [&str; 1] = ["channels"];

/// `COMMAND --field value ...` as the command's JSON object.
fn args_to_json(args: &[String]) -> Result<Value> {
    let (name, rest) = args.split_first().ok_or_else(|| {
        anyhow!("append needs a command, for example `append register --legal-name NAME`")
    })?;
    let mut object = Map::new();
    object.insert("command".into(), Value::String(name.clone()));
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        let Some(field) = flag.strip_prefix("--") else {
            bail!("append {name}: expected --FIELD VALUE, found {flag:?}");
        };
        if matches!(field, "home" | "key") {
            bail!("append {name}: --{field} is a global option; give it before the command: personctl --{field} VALUE append {name} ...");
        }
        let field = field.replace('-', "_");
        let value = rest
            .next()
            .ok_or_else(|| anyhow!("append {name}: --{} needs a value", field.replace('_', "-")))?;
        let value = if NUMBER_FIELDS.contains(&field.as_str()) {
            let n: u64 = value.parse().with_context(|| {
                format!("append {name}: --{field} {value:?} is not a whole number")
            })?;
            json!(n)
        } else if LIST_FIELDS.contains(&field.as_str()) {
            Value::Array(
                value
                    .split(',')
                    .map(|s| Value::String(s.trim().to_string()))
                    .filter(|v| v != "")
                    .collect(),
            )
        } else {
            Value::String(value.clone())
        };
        if object.insert(field.clone(), value).is_some() {
            bail!("append {name}: --{} given twice", field.replace('_', "-"));
        }
    }
    Ok(Value::Object(object))
}

/// A command's JSON object as a person and a command. `register` without a person gets a new id.
fn parse(mut value: Value) -> Result<(PersonId, Command)> {
    let object = value
        .as_object_mut()
        .ok_or_else(|| anyhow!("expected a JSON object"))?;
    let person = match object.remove("person") {
        Some(Value::String(s)) => Some(
            s.parse::<PersonId>()
                .with_context(|| format!("person {s:?} is not a UUID"))?,
        ),
        Some(other) => bail!("person must be a UUID string, found {other}"),
        None => None,
    };
    let command: Command = serde_json::from_value(value).map_err(|e| anyhow!("{e}"))?;
    let person = match (person, &command) {
        (Some(p), _) => p,
        (None, Command::Register { .. }) => PersonId::new_v7(),
        (None, c) => bail!("{}: person is required (--person ID)", c.name()),
    };
    Ok((person, command))
}

pub(crate) fn run(config: &Config, args: &AppendArgs, out: &mut Out) -> Result<u8> {
    // `--json` after the command belongs to the global options.
    let mut words: Vec<String> = args.command.clone();
    if let Some(i) = words.iter().position(|w| w == "--json") {
        words.remove(i);
        out.set_json(true);
    }
    let (commands, bad_line) = match &args.file {
        Some(path) => read_file(path)?,
        None => {
            let value = args_to_json(&words)?;
            let name = words[0].clone();
            (
                vec![(1, parse(value).with_context(|| format!("append {name}"))?)],
                None,
            )
        }
    };
    let signer = config.signer()?;
    let store = config.open_or_create_store()?;
    let link = Link::connect_and_recover(config, &store)?;
    let persons = Persons::new(Ledger::new(&store));
    let lines: Vec<usize> = commands.iter().map(|(line, _)| *line).collect();
    let batch: Vec<(PersonId, Command)> = commands.into_iter().map(|(_, c)| c).collect();
    let location = |i: usize| match &args.file {
        Some(path) => format!("{}:{}", path.display(), lines[i]),
        None => format!("append {}", batch[i].1.name()),
    };
    let (appended, failure) = match &link {
        None => match persons.execute_batch(&signer, &batch) {
            Ok(appended) => (appended, None),
            Err(f) => (f.appended, Some((f.index, f.error))),
        },
        Some(link) => execute_published(link, &persons, &signer, &batch, &location)?,
    };
    for ((id, command), events) in batch.iter().zip(&appended) {
        report(out, *id, command, events)?;
    }
    if let Some((index, error)) = failure {
        out.flush()?;
        let what = if error.is_conflict() {
            " (another writer changed the person; reload and retry)"
        } else {
            ""
        };
        bail!(
            "{}: {error}{what}; nothing of it was appended",
            location(index)
        );
    }
    if let Some((line, error)) = bad_line {
        out.flush()?;
        let path = args
            .file
            .as_deref()
            .map(Path::display)
            .map(|d| d.to_string())
            .unwrap_or_default();
        bail!("{path}:{line}: {error:#}; the lines before it were appended, nothing of it");
    }
    Ok(EXIT_OK)
}

/// How many times commands whose events lost a race on JetStream are decided again.
const ROUNDS: usize = 10_000;

/// Executes the batch and publishes its events. Commands whose events lost a race on JetStream
/// (withdrawn, and the store pulled level with the winner) are decided again on the new state,
/// in their order, until every command is acknowledged or fails.
#[allow(clippy::type_complexity)]
fn execute_published(
    link: &Link,
    persons: &Persons<&SledStore>,
    signer: &Signer,
    batch: &[(PersonId, Command)],
    location: &dyn Fn(usize) -> String,
) -> Result<(Vec<Vec<Appended>>, Option<(usize, DomainError)>)> {
    let store = *persons.ledger().store();
    // Decide on the newest state: bring every person of the batch level with JetStream.
    let mut seen = HashSet::new();
    for (id, _) in batch {
        if seen.insert(*id) {
            link.pull(store, &id.stream())?;
        }
    }
    let mut results: Vec<Option<Vec<Appended>>> = vec![None; batch.len()];
    let mut todo: Vec<usize> = (0..batch.len()).collect();
    let mut failure = None;
    for round in 0.. {
        let commands: Vec<(PersonId, Command)> = todo.iter().map(|&i| batch[i].clone()).collect();
        let (appended, failed) = match persons.execute_batch(signer, &commands) {
            Ok(appended) => (appended, None),
            Err(f) => (f.appended, Some((f.index, f.error))),
        };
        let streams: Vec<StreamId> = appended
            .iter()
            .flatten()
            .map(|a| a.stream.clone())
            .collect();
        let report = link.publish(store, Some(&streams))?;
        let withdrawn: HashSet<Cid> = report
            .conflicts
            .iter()
            .flat_map(|(_, cids)| cids.iter().copied())
            .collect();
        let mut retry = Vec::new();
        for (k, events) in appended.iter().enumerate() {
            let i = todo[k];
            let lost = events.iter().filter(|a| withdrawn.contains(&a.cid)).count();
            if lost == 0 {
                results[i] = Some(events.clone());
            } else if lost == events.len() {
                retry.push(i);
            } else {
                bail!(
                    "{}: JetStream accepted only some of its events (another writer changed one of the persons at the same time); check it with `personctl replay`",
                    location(i)
                );
            }
        }
        match failed {
            Some((k, error)) if retry.is_empty() => {
                failure = Some((todo[k], error));
                break;
            }
            // Commands after a failed one were never run: they run again with the retried ones.
            Some((k, _)) => retry.extend_from_slice(&todo[k..]),
            None if retry.is_empty() => break,
            None => {}
        }
        if round + 1 >= ROUNDS {
            bail!(
                "{}: still losing races on JetStream after {ROUNDS} rounds",
                location(retry[0])
            );
        }
        tracing::debug!(
            round,
            retry = retry.len(),
            "lost races on JetStream; deciding again"
        );
        retry.sort_unstable();
        retry.dedup();
        todo = retry;
    }
    let done = results.iter().take_while(|r| r.is_some()).count();
    Ok((
        results.into_iter().take(done).map(Option::unwrap).collect(),
        failure,
    ))
}

fn report(out: &mut Out, id: PersonId, command: &Command, events: &[Appended]) -> Result<()> {
    if events.is_empty() {
        out.record(
            "unchanged",
            json!({"person": id.to_string(), "command": command.name()}),
            || format!("{} {id}: no change", command.name()),
        )?;
    }
    for a in events {
        let person = PersonId::from_stream(&a.stream).map(|p| p.to_string());
        out.record(
            "appended",
            json!({"person": person, "command": command.name(), "event": a.event_type, "height": a.height, "cid": a.cid.to_string()}),
            || format!("{}  {:>4}  {:<22} {}", a.stream, a.height, a.event_type, a.cid),
        )?;
    }
    Ok(())
}

/// Reads a JSON Lines file: the commands up to the first invalid line, and that line's error.
#[allow(clippy::type_complexity)]
fn read_file(
    path: &Path,
) -> Result<(
    Vec<(usize, (PersonId, Command))>,
    Option<(usize, anyhow::Error)>,
)> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut commands = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let number = i + 1;
        let line = line.with_context(|| format!("{}:{number}: reading", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<Value>(&line)
            .map_err(anyhow::Error::from)
            .and_then(parse);
        match parsed {
            Ok(c) => commands.push((number, c)),
            Err(e) => return Ok((commands, Some((number, e)))),
        }
    }
    Ok((commands, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_fields() {
        let words: Vec<String> = [
            "add-skill",
            "--person",
            "x",
            "--name",
            "Rust",
            "--level",
            "4",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            args_to_json(&words).unwrap(),
            json!({"command": "add-skill", "person": "x", "name": "Rust", "level": 4})
        );
        let words: Vec<String> = [
            "set-preferences",
            "--channels",
            "email, sms",
            "--legal-name",
            "A",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            args_to_json(&words).unwrap(),
            json!({"command": "set-preferences", "channels": ["email", "sms"], "legal_name": "A"})
        );
        assert!(args_to_json(&["x".into(), "--level".into(), "four".into()]).is_err());
        assert!(args_to_json(&["x".into(), "--a".into()]).is_err());
        assert!(args_to_json(&["x".into(), "a".into()]).is_err());
        let err = args_to_json(&["x".into(), "--home".into(), "/h".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("global option"), "{err}");
    }
}
