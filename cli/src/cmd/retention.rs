//! `personctl retention show`: what a retention policy makes due now (or at `--now`). Loading a
//! policy file for it and for `serve --retention`. The rules and the dates are the domain's
//! (`personctl_domain::retention`).

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;

use personctl_domain::retention::Retention;
use personctl_domain::{Erasure, Persons};
use personctl_ledger::Ledger;

use crate::args::RetentionCommand;
use crate::config::Config;
use crate::output::{time, Out};
use crate::EXIT_OK;

/// Reads and parses a retention policy file, naming it in any error.
pub(crate) fn load(path: &Path) -> Result<Retention> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the retention policy {}", path.display()))?;
    Retention::from_json(&text).with_context(|| format!("the retention policy {}", path.display()))
}

pub(crate) fn run(config: &Config, command: &RetentionCommand, out: &mut Out) -> Result<u8> {
    let RetentionCommand::Show { retention, now } = command;
    let policy = load(retention)?;
    let now_us = match now {
        Some(t) => super::serve::parse_now(t)?,
        None => personctl_ledger::now_us(),
    };
    let persons = Persons::new(Ledger::new(config.open_for_reading()?));
    let due = persons.retention_due(&policy, now_us)?;
    for d in &due {
        let erase = match &d.erasure {
            Erasure::Person => "person".to_string(),
            Erasure::Component { kind, .. } => kind.command_name().to_string(),
        };
        let state = d.state.to_string().to_lowercase();
        out.record(
            "due",
            json!({"person": d.person.to_string(), "rule": d.rule + 1, "state": state, "since": time(d.since_us), "erase": erase}),
            || format!("{}  rule {}  {state} since {}  erase {erase}", d.person, d.rule + 1, time(d.since_us)),
        )?;
    }
    out.record(
        "summary",
        json!({"due": due.len(), "at": time(now_us)}),
        || format!("{} erasure(s) due at {}", due.len(), time(now_us)),
    )?;
    Ok(EXIT_OK)
}
