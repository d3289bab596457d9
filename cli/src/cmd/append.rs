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

use personctl_domain::command;
use personctl_domain::lines::Lines;
use personctl_domain::{Command, PersonId, Persons};
use personctl_ledger::{Appended, Publisher, Retry};

use crate::args::AppendArgs;
use crate::config::Config;
use crate::nats;
use crate::output::Out;
use crate::EXIT_OK;

const NUMBER_FIELDS: [&str; 2] = ["level", "confidence"];
const LIST_FIELDS: [&str; 1] = ["channels"];

/// The lines of `append --help` that name `command`, under their heading.
fn command_help(command: &str) -> String {
    let mut lines = crate::args::COMMANDS_HELP.lines();
    let heading = lines.next().unwrap_or_default();
    let named: Vec<&str> = lines
        .filter(|l| {
            l.starts_with("  ")
                && l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                    .any(|w| w == command)
        })
        .collect();
    format!("{heading}\n{}", named.join("\n"))
}

/// The candidate closest to a mistyped `word`, when one is close enough to suggest.
fn closest<'a>(candidates: &[&'a str], word: &str) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(c, word), *c))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|(score, _)| *score > 0.8)
        .map(|(_, c)| c)
}

/// `COMMAND --field value ...` as the command's JSON object.
fn args_to_json(args: &[String]) -> Result<Value> {
    let (name, rest) = args.split_first().ok_or_else(|| {
        anyhow!("append needs a command, for example `append register --legal-name NAME`")
    })?;
    if !command::NAMES.contains(&name.as_str()) {
        let closest = closest(&command::NAMES, name)
            .map(|n| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
        bail!("append: unknown command {name:?}{closest} (`personctl append --help` lists every command)");
    }
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
    // An unknown or missing field is named as the flag the user would type.
    let (required, optional) = command::fields(name).unwrap_or_default();
    let flag = |field: &str| format!("--{}", field.replace('_', "-"));
    for key in object
        .keys()
        .filter(|k| !matches!(k.as_str(), "command" | "person"))
    {
        if !required.contains(&key.as_str()) && !optional.contains(&key.as_str()) {
            let fields: Vec<&str> = required.iter().chain(optional).copied().collect();
            let closest = closest(&fields, key)
                .map(|f| format!("; did you mean {}?", flag(f)))
                .unwrap_or_default();
            bail!(
                "append {name}: unknown flag {}{closest} (`personctl append {name} --help` lists its fields)",
                flag(key)
            );
        }
    }
    if let Some(field) = required.iter().find(|f| !object.contains_key(**f)) {
        bail!(
            "append {name}: {} is required (`personctl append {name} --help` lists its fields)",
            flag(field)
        );
    }
    Ok(Value::Object(object))
}

/// A command's JSON object as a person and a command. `register` without a person gets a new id.
fn parse(value: Value) -> Result<(PersonId, Command)> {
    let parsed = command::from_json_value(value)?;
    Ok(command::for_person(parsed)?)
}

/// Commands `append --file` decides and commits together: memory stays bounded whatever the
/// file's size.
const FILE_BATCH: usize = 1_000;

/// A JSON Lines file of commands, or standard input for `-`.
struct File {
    name: String,
    lines: Lines<Box<dyn BufRead>>,
}

impl File {
    fn open(path: &Path) -> Result<File> {
        if path.as_os_str() == "-" {
            let stdin: Box<dyn BufRead> = Box::new(std::io::BufReader::new(std::io::stdin()));
            return Ok(File {
                name: "<stdin>".into(),
                lines: Lines::new(stdin),
            });
        }
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(File {
            name: path.display().to_string(),
            lines: Lines::new(Box::new(std::io::BufReader::new(file))),
        })
    }
}

pub(crate) fn run(config: &Config, args: &AppendArgs, out: &mut Out) -> Result<u8> {
    // `--json` after the command belongs to the global options.
    let mut words: Vec<String> = args.command.clone();
    if let Some(i) = words.iter().position(|w| w == "--json") {
        words.remove(i);
        out.set_json(true);
    }
    // `append COMMAND --help`: that command's fields.
    if let (Some(name), true) = (
        words.first(),
        words.iter().any(|w| w == "--help" || w == "-h"),
    ) {
        println!("{}", command_help(name));
        return Ok(EXIT_OK);
    }
    let mut file = match &args.file {
        Some(path) => Some(File::open(path)?),
        None => None,
    };
    let mut single = match &file {
        Some(_) => None,
        None => {
            let value = args_to_json(&words)?;
            let name = words[0].clone();
            Some(vec![(
                1,
                parse(value).with_context(|| format!("append {name}"))?,
            )])
        }
    };
    let store = config.open_or_create_store()?;
    let signer = config.signer_over(&store)?;
    // With the server down, the events are stored here, pending: exit 2 says so.
    let (mut link, mut offline) = nats::connect_or_offline(config, &store)?;
    let persons = Persons::new(config.guarded(&store)?);
    let mut stored = 0usize;
    // A long file shows its progress on a terminal (stderr; never in the output).
    let bar = progress(file.is_some() && !out.is_json());
    loop {
        let (commands, bad_line) = match (&mut file, single.take()) {
            (Some(f), _) => f.lines.batch(FILE_BATCH),
            (None, Some(commands)) => (commands, None),
            (None, None) => break,
        };
        if commands.is_empty() && bad_line.is_none() {
            break;
        }
        let lines: Vec<usize> = commands.iter().map(|(line, _)| *line).collect();
        let batch: Vec<(PersonId, Command)> = commands.into_iter().map(|(_, c)| c).collect();
        let location = |i: usize| match &file {
            Some(f) => format!("{}:{}", f.name, lines[i]),
            None => format!("append {}", batch[i].1.name()),
        };
        let publisher = link.as_ref().map(|l| l as &dyn Publisher);
        let executed = persons
            .execute_published(&signer, &batch, publisher, Retry::default())
            .map_err(nats::untrusted_hint_domain)?;
        if let Some(e) = executed.unpublished {
            // Once JetStream failed, the rest of the file is stored here alone, pending.
            let url = link.take().map(|l| l.url().to_string()).unwrap_or_default();
            offline = Some(anyhow::Error::new(e).context(format!("JetStream at {url}")));
        }
        for ((id, command), events) in batch.iter().zip(&executed.appended) {
            stored += events.len();
            bar.inc(1);
            report(out, *id, command, events)?;
        }
        let failure = executed.failure.map(|(index, error)| {
            let what = if error.is_conflict() {
                " (another writer changed the person; reload and retry)"
            } else {
                ""
            };
            anyhow!(
                "{}: {error}{what}; nothing of it was appended",
                location(index)
            )
        });
        let bad_line = bad_line.map(|(line, error)| {
            let name = file.as_ref().map(|f| f.name.clone()).unwrap_or_default();
            anyhow!("{name}:{line}: {error:#}; the lines before it were appended, nothing of it")
        });
        out.flush()?;
        if let Some(e) = failure.or(bad_line) {
            bar.finish_and_clear();
            if let Some(why) = &offline {
                tracing::error!("{:#}", pending(why, stored));
            }
            return Err(e);
        }
    }
    bar.finish_and_clear();
    match offline {
        Some(why) => Err(pending(&why, stored)),
        None => Ok(EXIT_OK),
    }
}

/// A spinner counting commands, on stderr when it is a terminal (hidden otherwise).
fn progress(show: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !show || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} {pos} commands ({per_sec})")
    {
        bar.set_style(style);
    }
    bar
}

/// Why events are pending, and how to publish them.
fn pending(why: &anyhow::Error, stored: usize) -> anyhow::Error {
    nats::stored_offline(why, &format!("{stored} event(s) are"))
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
            "--language",
            "en",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            args_to_json(&words).unwrap(),
            json!({"command": "set-preferences", "channels": ["email", "sms"], "language": "en"})
        );
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let err = |w: &[&str]| args_to_json(&words(w)).unwrap_err().to_string();
        assert!(err(&["add-skill", "--level", "four"]).contains("not a whole number"));
        assert!(err(&["register", "--a"]).contains("needs a value"));
        assert!(err(&["register", "a"]).contains("expected --FIELD VALUE"));
        assert!(err(&["register", "--home", "/h"]).contains("global option"));
        // An unknown command, with the closest one when there is one.
        assert!(err(&["x"]).contains("unknown command \"x\" ("));
        assert!(err(&["add-skil"]).contains("did you mean `add-skill`?"));
        assert!(err(&["rename"]).contains("--legal-name is required"));
        assert!(err(&["add-skill", "--name", "Rust"]).contains("--level is required"));
        assert!(err(&["add-email", "--adress", "a@b.org"])
            .contains("unknown flag --adress; did you mean --address?"));
    }
}
