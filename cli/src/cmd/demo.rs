//! `personctl demo`: a fresh sample ledger on the embedded store. A few people live through
//! their lifecycles (registration, contact details, a verified email, skills, an employment, a
//! suspension and reactivation, a death, an archive, a duplicate merged away); then the store is
//! verified and every person replayed.

use anyhow::{bail, Result};
use serde_json::json;

use personctl_domain::model::{Employment, Phone, Preferences, Relationship, Skill};
use personctl_domain::{Command, PersonId, Persons};
use personctl_ledger::{verify, Ledger, Signer, VerifyOptions};

use crate::args::DemoArgs;
use crate::config::{write_key, Config};
use crate::output::{person_text, plural, program, Out};
use crate::{EXIT_NEGATIVE, EXIT_OK};

fn date(s: &str) -> personctl_domain::model::Date {
    s.parse().expect("demo dates are valid")
}

/// The demo's commands, in order.
fn script(
    ada: PersonId,
    byron: PersonId,
    alan: PersonId,
    grace: PersonId,
    charles: PersonId,
) -> Vec<(PersonId, Command)> {
    let reason = |r: &str| r.to_string();
    vec![
        (
            ada,
            Command::Register {
                legal_name: "Ada Lovelace".into(),
            },
        ),
        (
            ada,
            Command::SetBirthDate {
                date: date("1815-12-10"),
            },
        ),
        (
            ada,
            Command::AddEmail {
                address: "ada@analytical.example".into(),
            },
        ),
        (
            ada,
            Command::VerifyEmail {
                address: "ada@analytical.example".into(),
            },
        ),
        (
            ada,
            Command::AddSkill(Skill {
                name: "Mathematics".into(),
                level: 5,
            }),
        ),
        (
            ada,
            Command::SetPreferences(Preferences {
                language: Some("en".into()),
                channels: vec!["email".into(), "post".into()],
            }),
        ),
        (
            byron,
            Command::Register {
                legal_name: "Augusta Ada Byron".into(),
            },
        ),
        (
            byron,
            Command::AddPhone(Phone {
                number: "+44 20 7946 0000".into(),
                kind: "home".into(),
            }),
        ),
        (
            alan,
            Command::Register {
                legal_name: "Alan Turing".into(),
            },
        ),
        (
            alan,
            Command::AddEmployment(Employment {
                id: "npl-1945".into(),
                organisation: "National Physical Laboratory".into(),
                role: "Scientific Officer".into(),
                start: date("1945-10-01"),
                end: Some(date("1947-09-30")),
            }),
        ),
        (
            alan,
            Command::AddSkill(Skill {
                name: "Cryptanalysis".into(),
                level: 5,
            }),
        ),
        (
            alan,
            Command::Suspend {
                reason: reason("sabbatical at Cambridge"),
            },
        ),
        (
            alan,
            Command::Reactivate {
                reason: reason("back at the NPL"),
            },
        ),
        (
            alan,
            Command::Archive {
                reason: reason("moved to Manchester"),
            },
        ),
        (
            grace,
            Command::Register {
                legal_name: "Grace Hopper".into(),
            },
        ),
        (
            grace,
            Command::AddRelationship(Relationship {
                other: ada,
                kind: "admirer".into(),
            }),
        ),
        (
            grace,
            Command::Rename {
                legal_name: "Grace Brewster Murray Hopper".into(),
                reason: reason("full legal name"),
            },
        ),
        (
            charles,
            Command::Register {
                legal_name: "Charles Babbage".into(),
            },
        ),
        (
            charles,
            Command::SetBirthDate {
                date: date("1791-12-26"),
            },
        ),
        (
            charles,
            Command::RecordDeath {
                date: date("1871-10-18"),
            },
        ),
        (byron, Command::Merge { into: ada }),
    ]
}

pub(crate) fn run(args: &DemoArgs, out: &mut Out) -> Result<u8> {
    let home = match &args.dir {
        Some(d) if d.exists() => bail!(
            "--dir {}: already exists; the demo needs a new directory",
            d.display()
        ),
        Some(d) => d.clone(),
        None => tempfile::Builder::new()
            .prefix("personctl-demo-")
            .tempdir()?
            .keep(),
    };
    let config = Config {
        key: home.join("keys/default.pem"),
        home: home.clone(),
        json: out.is_json(),
        nats: None,
        nats_monitor: Vec::new(),
        checkpoint_every: None,
        identity: None,
    };
    let signer = Signer::generate()?;
    write_key(&config.key, &signer)?;
    let store = config.open_or_create_store()?;
    store.trust_add(&signer.author(), "demo")?;
    let persons = Persons::new(Ledger::new(store));

    let ids: Vec<PersonId> = (0..5).map(|_| PersonId::new_v7()).collect();
    let commands = script(ids[0], ids[1], ids[2], ids[3], ids[4]);
    let appended = persons
        .execute_batch(&signer, &commands)
        .map_err(|f| f.error)?;
    let events: usize = appended.iter().map(Vec::len).sum();

    let trust = config.trust(persons.ledger().store())?;
    let report = verify(
        persons.ledger().store(),
        &trust,
        &VerifyOptions::default(),
        &|_| {},
    )?;
    let (mut world, replayed) = persons.replay_all()?;
    for id in world.ids() {
        let p = world.get(id).expect("listed ids exist");
        out.record("person", crate::output::person_json(&p), || {
            format!("{}\n", person_text(&p))
        })?;
    }
    let counts = world.count_by_state();
    out.record(
        "summary",
        json!({"home": home.display().to_string(), "ok": report.is_ok(), "commands": commands.len(), "events": events,
               "replayed": replayed, "persons": world.len(), "failures": report.findings.len()}),
        || {
            let states: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
            let p = program();
            format!(
                "{} appended {}; verify: {} ({}, {}); replay: {} ({})\n\
                 explore it:\n  export PERSONCTL_HOME={}\n  {p} verify\n  {p} replay\n  \
                 {p} log --person {}\n  {p} show --person {}",
                plural(commands.len() as u64, "command"),
                plural(events as u64, "signed event"),
                if report.is_ok() { "OK" } else { "FAILED" },
                plural(report.events, "event"),
                plural(report.payloads, "payload"),
                plural(world.len() as u64, "person"),
                states.join(", "),
                home.display(),
                ids[0],
                ids[0]
            )
        },
    )?;
    Ok(if report.is_ok() {
        EXIT_OK
    } else {
        EXIT_NEGATIVE
    })
}
