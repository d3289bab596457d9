//! `personctl serve`: keeps the read models current from JetStream. `personctl dlq list|retry`:
//! the messages it could not apply.
//!
//! Wiring only: the follower (consumer from the checkpoint, batches, retries, dead letters) is
//! the ledger's `jetstream::follow_log`, the person read models and policies are the domain's
//! `read_side::PersonProjector`. This module parses the options, answers queries with
//! `query::answer`, stops on SIGINT/SIGTERM and prints the summary.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::json;

use personctl_domain::policy::{Periods, DAY_US};
use personctl_domain::read_side::{PersonProjector, PersonUpdate, Policies};
use personctl_domain::AGGREGATE;
use personctl_ledger::jetstream::{dead_letters, follow_log, retry_dead_letter, Link};
use personctl_ledger::{BlockStore, Cid, Event, FollowOptions, Followed, Projector, Publisher};

use crate::args::{DlqCommand, ServeArgs};
use crate::config::Config;
use crate::nats;
use crate::output::Out;
use crate::EXIT_OK;

/// The read models' follower: its consumers' descriptions and the queries' queue group.
const CONSUMER: &str = "personctl-projections";

/// The policies `--policies` asks for, signed with this home's key (or `--identity`'s current
/// key).
fn policies(
    config: &Config,
    args: &ServeArgs,
    store: &personctl_ledger::SledStore,
) -> Result<Option<Policies>> {
    if !args.policies {
        return Ok(None);
    }
    let now_us = args.now.as_deref().map(parse_now).transpose()?;
    Ok(Some(Policies {
        signer: config
            .signer_over(store)
            .context("--policies signs the events of policies with this home's key")?,
        periods: Periods {
            unverified_email_us: args.unverified_email_days * DAY_US,
            inactive_us: args.inactive_days * DAY_US,
        },
        onboarding_us: args.onboarding_days * DAY_US,
        now_us,
        retention: args
            .retention
            .as_deref()
            .map(super::retention::load)
            .transpose()?,
    }))
}

/// `--now TIME` (RFC 3339) in microseconds since the Unix epoch.
pub(crate) fn parse_now(t: &str) -> Result<u64> {
    let at = humantime::parse_rfc3339_weak(t)
        .with_context(|| format!("--now {t:?} is not an RFC 3339 time"))?;
    let us = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| anyhow!("--now {t:?} lies before 1970"))?
        .as_micros();
    Ok(us as u64)
}

/// The follower's options from `serve`'s.
pub(crate) fn options(args: &ServeArgs, queries: Option<String>) -> FollowOptions {
    FollowOptions {
        max_attempts: args.max_attempts,
        retry_delay: Duration::from_millis(args.retry_delay_ms),
        until_caught_up: args.until_caught_up,
        idle_every: Duration::from_secs(args.sweep_seconds),
        queries,
        ..FollowOptions::new(AGGREGATE, CONSUMER)
    }
}

/// The person projector, answering `personctl query` from the read models it writes.
struct Serving<'a, S>(PersonProjector<'a, S>);

impl<S: BlockStore> Projector for Serving<'_, S> {
    type Update = PersonUpdate;
    type Error = personctl_domain::Error;

    fn checkpoint(&self) -> Result<u64, Self::Error> {
        self.0.checkpoint()
    }

    fn prepare(&mut self, event: &Event) -> Result<PersonUpdate, Self::Error> {
        self.0.prepare(event)
    }

    fn commit(
        &mut self,
        last: Option<u64>,
        updates: Vec<(Cid, PersonUpdate)>,
    ) -> Result<(), Self::Error> {
        self.0.commit(last, updates)
    }

    fn idle(&mut self) -> Result<u64, Self::Error> {
        self.0.idle()
    }

    fn answer(&mut self, request: &[u8]) -> Option<Vec<u8>> {
        Some(super::query::respond(self.0.projections(), request))
    }
}

/// SIGINT and SIGTERM set `stop`: the follower finishes the current message, writes its
/// checkpoint and stops.
fn stop_on_signals(link: &Link) -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    link.block_on(async {
        for kind in [
            tokio::signal::unix::SignalKind::interrupt(),
            tokio::signal::unix::SignalKind::terminate(),
        ] {
            let mut signal =
                tokio::signal::unix::signal(kind).context("installing a signal handler")?;
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                signal.recv().await;
                stop.store(true, Ordering::SeqCst);
            });
        }
        anyhow::Ok(())
    })?;
    Ok(stop)
}

pub(crate) fn serve(config: &Config, args: &ServeArgs, out: &mut Out) -> Result<u8> {
    let store = config.open_or_create_store()?;
    let Some(link) = nats::connect(config)? else {
        bail!("serve reads JetStream: give --nats URL (or PERSONCTL_NATS)");
    };
    let projections = config.projections()?;
    let trust = config.trust(&store)?;
    if trust.is_empty() {
        bail!(
            "serve applies only events signed by this home's trusted keys, and it trusts none: `personctl trust add DID`"
        );
    }
    let mut projector = PersonProjector::new(&store, &projections);
    if let Some(p) = policies(config, args, &store)? {
        // What the write policies in force refuse the policies' key is skipped, with a warning.
        projector = projector
            .with_policies(p, Some(&link as &dyn Publisher))
            .enforcing(trust.clone());
    }
    let stop = stop_on_signals(&link)?;
    let options = options(args, Some(super::query::query_subject(&link)));
    let (summary, commands) = std::thread::scope(|scope| -> Result<(Followed, Option<u64>)> {
        // The command service answers on a connection of its own, beside the follower.
        let commands = args.commands.then(|| {
            let (config, store, stop) = (config, &store, &stop);
            scope.spawn(move || {
                let answered = answer_commands(config, store, stop);
                // The follower stops with it, so that a failure is reported at once.
                stop.store(true, Ordering::SeqCst);
                answered
            })
        });
        let followed = follow_log(
            &link,
            &store,
            &trust,
            &mut Serving(projector),
            &options,
            &stop,
        );
        stop.store(true, Ordering::SeqCst);
        let answered = commands
            .map(|t| {
                t.join()
                    .map_err(|_| anyhow!("the command service panicked"))?
            })
            .transpose()?;
        Ok((followed?, answered))
    })?;
    projections.flush()?;
    let Followed {
        applied,
        skipped,
        dead_lettered,
        swept,
        checkpoint,
        lag,
        reopened,
    } = summary;
    out.record(
        "serve",
        json!({"applied": applied, "skipped": skipped, "dead_lettered": dead_lettered, "swept": swept, "checkpoint": checkpoint, "lag": lag, "reopened": reopened, "commands": commands}),
        || {
            let answered = commands.map(|n| format!("; answered {n} command requests")).unwrap_or_default();
            let reopened = if reopened > 0 { format!("; the consumer was lost and recreated {reopened} times") } else { String::new() };
            format!("applied {applied} messages ({skipped} already applied, {dead_lettered} dead-lettered); checkpoint {checkpoint}, {lag} behind the stream{reopened}{answered}")
        },
    )?;
    Ok(EXIT_OK)
}

/// The subjects person commands are requested on: `<prefix>_commands.<command>` (outside the
/// event stream's `<prefix>.>`, which would store the requests).
pub(crate) fn command_subject(link: &Link, command: &str) -> String {
    format!("{}_commands.{command}", link.backbone().settings().prefix)
}

/// `serve --commands`: answers person commands until `stop` ([`personctl_domain::requests`]),
/// each run at most once per command id, decided on the newest state, appended, published.
fn answer_commands(
    config: &Config,
    store: &personctl_ledger::SledStore,
    stop: &AtomicBool,
) -> Result<u64> {
    let link = nats::connect(config)?.ok_or_else(|| anyhow!("--commands needs --nats"))?;
    let signer = config
        .signer_over(store)
        .context("--commands signs the commands' events with this home's key")?;
    let persons = personctl_domain::Persons::new(config.guarded(store)?);
    let subject = command_subject(&link, ">");
    tracing::info!(%subject, "answering person commands");
    let answered = personctl_ledger::jetstream::respond(
        &link,
        &subject,
        "personctl-commands",
        stop,
        &mut |subject, body| {
            let publisher = Some(&link as &dyn Publisher);
            personctl_domain::requests::answer(&persons, &signer, publisher, subject, body)
        },
    )?;
    Ok(answered)
}

pub(crate) fn dlq(config: &Config, command: &DlqCommand, out: &mut Out) -> Result<u8> {
    let Some(link) = nats::connect(config)? else {
        bail!("the dead-letter stream is on JetStream: give --nats URL (or PERSONCTL_NATS)");
    };
    let letters = dead_letters(&link)?;
    match command {
        DlqCommand::List => {
            for (dlq_sequence, l) in &letters {
                out.record(
                    "dead-letter",
                    json!({
                        "dlq_sequence": dlq_sequence,
                        "sequence": l.sequence,
                        "subject": l.subject,
                        "cid": l.cid,
                        "reason": l.reason,
                        "attempts": l.attempts,
                        "time": crate::output::time(l.time_us),
                    }),
                    || {
                        format!(
                            "{dlq_sequence}: message {} on {} ({} attempts): {}",
                            l.sequence, l.subject, l.attempts, l.reason
                        )
                    },
                )?;
            }
        }
        DlqCommand::Retry => {
            let store = config.open_or_create_store()?;
            let projections = config.projections()?;
            let trust = config.trust(&store)?;
            let mut projector = PersonProjector::new(&store, &projections);
            for (dlq_sequence, letter) in &letters {
                let sequence = letter.sequence;
                let result =
                    retry_dead_letter(&link, &store, &trust, &mut projector, *dlq_sequence, letter);
                let (kind, reason) = match result {
                    Ok(()) => ("retried", None),
                    Err(e) => ("still-failing", Some(e.to_string())),
                };
                out.record(
                    kind,
                    json!({"dlq_sequence": dlq_sequence, "sequence": sequence, "reason": reason}),
                    || match &reason {
                        None => format!("{dlq_sequence}: message {sequence} applied"),
                        Some(r) => format!("{dlq_sequence}: message {sequence} still fails: {r}"),
                    },
                )?;
            }
            projections.flush()?;
        }
    }
    Ok(EXIT_OK)
}
