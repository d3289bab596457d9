//! `personctl serve`: keeps the read models current from JetStream. `personctl dlq list|retry`:
//! the messages it could not apply.
//!
//! A durable pull consumer (`personctl-projections`, on the person subjects) delivers the
//! notices; the consumer is created at start from the projections' checkpoint, which is the
//! truth: each message's effect and the checkpoint are written in one sled transaction, so a
//! restart resumes exactly where it stopped, and a message delivered twice is applied once.
//! For each notice the person's chain is pulled into the home's store (CIDs re-derived), the
//! person is folded (incrementally, from a cache) and what the read models derive is written.
//!
//! A failing message is retried with bounded exponential backoff; after the last attempt it goes
//! to the dead-letter stream (`<stream>_DLQ`, subject `<prefix>_dlq.projections`) with the
//! reason and the original sequence and CID, the checkpoint moves past it, and processing goes
//! on. SIGINT/SIGTERM finish the current message and stop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::stream::{Config as StreamConfig, StorageType};
use async_nats::jetstream::Context;
use futures_util::{FutureExt, StreamExt};
use serde_json::{json, Value};

use personctl_domain::policy::{self, Periods, Trigger, DAY_US};
use personctl_domain::read_model::{derive, Entry};
use personctl_domain::{onboarding, PersonId, Persons, Projections, Replayed, Update, AGGREGATE};
use personctl_ledger::jetstream::{Backbone, Notice};
use personctl_ledger::{BlockStore, Ledger, Signer, SledStore, TrustSet};

use crate::args::{DlqCommand, ServeArgs};
use crate::config::Config;
use crate::nats;
use crate::output::Out;
use crate::EXIT_OK;
use personctl_ledger::jetstream::Link;

const CONSUMER: &str = "personctl-projections";
/// How long `serve` waits for a message before it counts as idle.
const IDLE: Duration = Duration::from_millis(200);
/// Messages taken at once (their chains are pulled concurrently).
const BATCH: usize = 256;

fn dlq_stream(link: &Link) -> String {
    format!("{}_DLQ", link.backbone().settings().stream)
}

fn dlq_subject(link: &Link) -> String {
    format!("{}_dlq.projections", link.backbone().settings().prefix)
}

async fn ensure_dlq(js: &Context, name: &str, subject: &str, replicas: usize) -> Result<()> {
    js.get_or_create_stream(StreamConfig {
        name: name.to_string(),
        description: Some("personctl: messages the read models could not apply".into()),
        subjects: vec![subject.to_string()],
        storage: StorageType::File,
        num_replicas: replicas,
        ..StreamConfig::default()
    })
    .await
    .map(drop)
    .map_err(|e| anyhow!("creating the dead-letter stream {name}: {e}"))
}

/// What the policies need: the service's key, the periods, the clock.
pub(crate) struct PolicyRun {
    signer: Signer,
    periods: Periods,
    onboarding_us: u64,
    /// A fixed now (microseconds), or the system clock.
    now_us: Option<u64>,
}

impl PolicyRun {
    fn from_args(config: &Config, args: &ServeArgs) -> Result<Option<PolicyRun>> {
        if !args.policies {
            return Ok(None);
        }
        let now_us = args
            .now
            .as_deref()
            .map(|t| {
                let at = humantime::parse_rfc3339_weak(t)
                    .with_context(|| format!("--now {t:?} is not an RFC 3339 time"))?;
                let us = at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|_| anyhow!("--now {t:?} lies before 1970"))?
                    .as_micros();
                anyhow::Ok(us as u64)
            })
            .transpose()?;
        Ok(Some(PolicyRun {
            signer: config
                .signer()
                .context("--policies signs the events of policies with this home's key")?,
            periods: Periods {
                unverified_email_us: args.unverified_email_days * DAY_US,
                inactive_us: args.inactive_days * DAY_US,
            },
            onboarding_us: args.onboarding_days * DAY_US,
            now_us,
        }))
    }

    fn now(&self) -> u64 {
        self.now_us.unwrap_or_else(personctl_ledger::now_us)
    }
}

/// Applies notices to the read models (and runs the policies): the part of `serve` that
/// `dlq retry` shares.
struct Applier<'a> {
    backbone: &'a Backbone,
    store: &'a SledStore,
    persons: Persons<&'a SledStore>,
    projections: &'a Projections,
    cache: HashMap<PersonId, Replayed>,
    policies: Option<&'a PolicyRun>,
    /// Whose events the read models accept: the home's trusted keys.
    trust: &'a TrustSet,
    /// Events of the current batch, decoded, whose signatures were checked together.
    verified: HashMap<personctl_ledger::Cid, personctl_ledger::Event>,
}

/// Told of every event applied to the read models.
pub(crate) type Observer<'a> = &'a (dyn Fn(&personctl_ledger::Cid) + Sync);

impl<'a> Applier<'a> {
    fn new(
        backbone: &'a Backbone,
        store: &'a SledStore,
        projections: &'a Projections,
        policies: Option<&'a PolicyRun>,
        trust: &'a TrustSet,
    ) -> Self {
        Applier {
            backbone,
            store,
            persons: Persons::new(Ledger::new(store)),
            projections,
            cache: HashMap::new(),
            policies,
            trust,
            verified: Default::default(),
        }
    }

    /// Reads and decodes the stored events `cids`, checks their signatures in batches (about
    /// twice as fast as one by one) and keeps those that verify for `prepare`, which reads and
    /// checks any other alone.
    fn verify_batch(&mut self, cids: &[personctl_ledger::Cid]) {
        let mut items = Vec::new();
        for cid in cids {
            let Ok(Some(block)) = self.store.get(cid) else {
                continue;
            };
            let Ok(event) = personctl_ledger::Event::decode(&block) else {
                continue;
            };
            let Ok(message) = personctl_ledger::signing_message(block.bytes()) else {
                continue;
            };
            items.push((event, message));
        }
        for chunk in items.chunks(64) {
            let checks: Vec<personctl_ledger::SigCheck<'_>> = chunk
                .iter()
                .map(|(event, message)| personctl_ledger::SigCheck {
                    message,
                    signature: event.signature(),
                    author: event.author(),
                })
                .collect();
            let verdicts = personctl_ledger::verify_many(&checks);
            for ((event, _), ok) in chunk.iter().zip(verdicts) {
                if ok {
                    self.verified.insert(event.cid(), event.clone());
                }
            }
        }
    }

    /// Brings the chains a batch of messages touches up to date, all at once: the events that
    /// continue a local head in one commit, the other chains by concurrent pulls (applying
    /// then finds every event stored). Errors are left for `prepare`, which pulls again and
    /// reports them.
    async fn prefetch(&mut self, batch: &[async_nats::jetstream::Message]) {
        let checkpoint = self.projections.checkpoint().unwrap_or(0);
        let notices: Vec<(personctl_ledger::StreamId, Notice, u64)> = batch
            .iter()
            .filter_map(|m| {
                let sequence = m.info().ok()?.stream_sequence;
                let stream = self.backbone.settings().stream_of(&m.subject)?;
                let notice = Notice::decode(&m.payload).ok()?;
                (sequence > checkpoint).then_some((stream, notice, sequence))
            })
            .collect();
        let left = match self.backbone.fast_forward(self.store, &notices).await {
            Ok(left) => left,
            Err(e) => {
                tracing::debug!(error = %e, "fast-forward failed; pulling each chain");
                let mut all: Vec<_> = notices.iter().map(|(s, _, _)| s.clone()).collect();
                all.sort();
                all.dedup();
                all
            }
        };
        let pulls = left.iter().map(|s| self.backbone.pull(self.store, s));
        for (stream, result) in left.iter().zip(futures_util::future::join_all(pulls).await) {
            if let Err(e) = result {
                tracing::debug!(%stream, error = %e, "prefetch failed; applying will retry");
            }
        }
        self.verified.clear();
        let cids: Vec<_> = notices.iter().map(|(_, n, _)| n.cid).collect();
        self.verify_batch(&cids);
    }

    /// Publishes what the policies appended; a lost race is an error (the handler's retry
    /// decides again).
    async fn publish(&self, appended: &[personctl_ledger::Appended]) -> Result<()> {
        if appended.is_empty() {
            return Ok(());
        }
        let streams: Vec<_> = appended.iter().map(|a| a.stream.clone()).collect();
        let report = self.backbone.publish(self.store, Some(&streams)).await?;
        if let Some((stream, error)) = report.failures.first() {
            bail!("publishing what the policies appended to {stream}: {error}");
        }
        if let Some((stream, _)) = report.conflicts.first() {
            bail!("what the policies appended to {stream} lost a race and was withdrawn");
        }
        Ok(())
    }

    /// Runs the policies and the onboarding on one person event.
    async fn react(
        &self,
        id: PersonId,
        event: &personctl_ledger::Event,
        person: Option<&personctl_domain::Person>,
    ) -> Result<()> {
        let Some(run) = self.policies else {
            return Ok(());
        };
        let recorded = self.persons.read_event(id, event)?;
        let trigger = Trigger {
            person: id,
            head: personctl_ledger::Head {
                cid: event.cid(),
                height: event.height(),
            },
            correlation: recorded.correlation,
            event: &recorded.event,
        };
        let mut appended = Vec::new();
        for r in policy::on_event(&trigger, person) {
            appended.extend(self.persons.react(&run.signer, &r)?);
        }
        if let Some(input) = onboarding::input_of(&recorded.event) {
            appended.extend(self.persons.onboard(
                &run.signer,
                id,
                input,
                event.cid(),
                recorded.correlation,
                run.onboarding_us,
            )?);
        }
        self.publish(&appended).await
    }

    /// Runs the time-based policies; returns how many events they appended.
    async fn sweep(&self) -> Result<usize> {
        let Some(run) = self.policies else {
            return Ok(0);
        };
        let appended =
            self.persons
                .sweep(&run.signer, run.now(), &run.periods, run.onboarding_us)?;
        self.publish(&appended).await?;
        Ok(appended.len())
    }

    /// Prepares what the message at `sequence` on `subject` does to the read models (pulling
    /// its chain if needed, running the policies): the update, the event's CID, and whether the
    /// event is an erasure (a tombstone: the read models are compacted after it).
    async fn prepare(
        &mut self,
        sequence: u64,
        subject: &str,
        body: &[u8],
    ) -> Result<(Update, personctl_ledger::Cid, bool)> {
        let notice = Notice::decode(body)
            .with_context(|| format!("message {sequence} on {subject} is not a notice"))?;
        let stream = self
            .backbone
            .settings()
            .stream_of(subject)
            .ok_or_else(|| anyhow!("message {sequence}: {subject} is not a ledger subject"))?;
        let id = PersonId::from_stream(&stream)
            .ok_or_else(|| anyhow!("message {sequence}: {stream} is not a person"))?;
        // A stored event has its whole chain below it stored (prefetched, or pulled before).
        if !self.store.contains(&notice.cid)? {
            self.backbone
                .pull(self.store, &stream)
                .await
                .with_context(|| format!("message {sequence}: pulling {stream}"))?;
        }
        // Only what trusted keys signed reaches the read models (and the policies).
        let event = match self.verified.remove(&notice.cid) {
            Some(event) => event,
            None => {
                let block = self.store.get(&notice.cid)?.ok_or_else(|| {
                    anyhow!("message {sequence}: event {} is not stored", notice.cid)
                })?;
                let event = personctl_ledger::Event::decode(&block)
                    .with_context(|| format!("message {sequence}: event {}", notice.cid))?;
                if !event.verify_signature(&block)? {
                    bail!(
                        "message {sequence}: event {}: signature does not verify",
                        notice.cid
                    );
                }
                event
            }
        };
        if event.stream() != &stream {
            bail!(
                "message {sequence}: event {} belongs to {}, not {stream}",
                notice.cid,
                event.stream()
            );
        }
        if !self.trust.contains(event.author()) {
            bail!(
                "message {sequence}: event {}: author {} is not trusted here (`personctl trust add`)",
                notice.cid,
                event.author()
            );
        }
        let base = self.cache.remove(&id).unwrap_or(Replayed {
            person: None,
            head: None,
            events: 0,
        });
        let replayed = self.persons.advance(id, base)?;
        // Policies first: a crash before the checkpoint runs them again, and they append only
        // what they have not appended before.
        self.react(id, &event, replayed.person.as_ref()).await?;
        let update = Update {
            person: id,
            derived: derive(replayed.person.as_ref()),
            entries: vec![Entry {
                height: event.height(),
                time_us: event.time_us(),
                event_type: event.event_type().to_string(),
                cid: event.cid().to_string(),
            }],
        };
        self.cache.insert(id, replayed);
        let erases = event.event_type() == personctl_ledger::TOMBSTONE_TYPE;
        Ok((update, notice.cid, erases))
    }
}

/// A batch's updates, one per person (the newest state, every timeline entry).
#[derive(Default)]
struct Pending {
    updates: Vec<Update>,
    index: HashMap<PersonId, usize>,
    cids: Vec<personctl_ledger::Cid>,
    /// Whether an event of the batch is an erasure (the read models are compacted after it).
    erases: bool,
}

impl Pending {
    fn add(&mut self, update: Update, cid: personctl_ledger::Cid, erases: bool) {
        self.cids.push(cid);
        self.erases |= erases;
        match self.index.get(&update.person) {
            Some(&i) => {
                let u = &mut self.updates[i];
                u.derived = update.derived;
                u.entries.extend(update.entries);
            }
            None => {
                self.index.insert(update.person, self.updates.len());
                self.updates.push(update);
            }
        }
    }
}

/// The delay before retry `attempt` (1-based): `base`, doubling, at most 5 s.
fn backoff(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(Duration::from_secs(5))
}

pub(crate) fn serve(config: &Config, args: &ServeArgs, out: &mut Out) -> Result<u8> {
    let store = config.open_or_create_store()?;
    let Some(link) = nats::connect(config)? else {
        bail!("serve reads JetStream: give --nats URL (or PERSONCTL_NATS)");
    };
    let projections = config.projections()?;
    let policies = PolicyRun::from_args(config, args)?;
    let trust = config.trust(&store)?;
    if trust.is_empty() {
        bail!(
            "serve applies only events signed by this home's trusted keys, and it trusts none: `personctl trust add DID`"
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let summary = link.block_on(run(
        &link,
        &store,
        &projections,
        &trust,
        policies.as_ref(),
        args,
        &stop,
        None,
    ))?;
    projections.flush()?;
    out.record("serve", summary.clone(), || {
        format!(
            "applied {} messages ({} already applied, {} dead-lettered); checkpoint {}, {} behind the stream",
            summary["applied"], summary["skipped"], summary["dead_lettered"], summary["checkpoint"], summary["lag"]
        )
    })?;
    Ok(EXIT_OK)
}

#[allow(clippy::too_many_arguments)] // one call site per use: serve, and the benchmark
pub(crate) async fn run(
    link: &Link,
    store: &SledStore,
    projections: &Projections,
    trust: &TrustSet,
    policies: Option<&PolicyRun>,
    args: &ServeArgs,
    stop: &Arc<AtomicBool>,
    observer: Option<Observer<'_>>,
) -> Result<Value> {
    // SIGINT and SIGTERM: finish the current message, write its checkpoint, stop.
    for kind in [
        tokio::signal::unix::SignalKind::interrupt(),
        tokio::signal::unix::SignalKind::terminate(),
    ] {
        let mut signal =
            tokio::signal::unix::signal(kind).context("installing a signal handler")?;
        let stop = Arc::clone(stop);
        tokio::spawn(async move {
            signal.recv().await;
            stop.store(true, Ordering::SeqCst);
        });
    }
    let backbone = link.backbone();
    let js = backbone.context();
    let settings = backbone.settings();
    ensure_dlq(js, &dlq_stream(link), &dlq_subject(link), settings.replicas).await?;
    let stream = js
        .get_stream(&settings.stream)
        .await
        .map_err(|e| anyhow!("opening the stream {}: {e}", settings.stream))?;
    // The checkpoint is the truth: the consumer starts right after it.
    let checkpoint = projections.checkpoint()?;
    let _ = stream.delete_consumer(CONSUMER).await;
    let mut consumer: PullConsumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(CONSUMER.into()),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: checkpoint + 1,
            },
            ack_policy: AckPolicy::Explicit,
            filter_subject: format!("{}.{AGGREGATE}.>", settings.prefix),
            ack_wait: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("creating the consumer {CONSUMER}: {e}"))?;
    tracing::info!(checkpoint, "serving read models");
    let mut applier = Applier::new(backbone, store, projections, policies, trust);
    let (mut applied, mut skipped, mut dead, mut swept) = (0u64, 0u64, 0u64, 0u64);
    let mut last_sweep: Option<Instant> = None;
    let retry_base = Duration::from_millis(args.retry_delay_ms);
    let mut last_report = Instant::now();
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| anyhow!("consuming from {CONSUMER}: {e}"))?;
    // `personctl --nats URL query` asks here while this process holds the read models.
    let client = js.client();
    let mut queries = client
        .queue_subscribe(super::query::query_subject(link), "personctl-serve".into())
        .await
        .map_err(|e| anyhow!("answering queries: {e}"))?;
    'serve: while !stop.load(Ordering::SeqCst) {
        // Wait a little for the next message (so that signals and sweeps are seen when idle),
        // then take whatever else has arrived, up to a batch.
        // Queries are answered between batches.
        let mut batch = Vec::new();
        tokio::select! {
            m = messages.next() => match m {
                Some(m) => batch.push(m.map_err(|e| anyhow!("consuming from {CONSUMER}: {e}"))?),
                None => bail!("the consumer {CONSUMER} stopped delivering"),
            },
            Some(q) = queries.next() => {
                respond(&client, projections, q).await;
                continue;
            }
            _ = tokio::time::sleep(IDLE) => {}
        }
        while !batch.is_empty() && batch.len() < BATCH {
            match messages.next().now_or_never() {
                Some(Some(m)) => {
                    batch.push(m.map_err(|e| anyhow!("consuming from {CONSUMER}: {e}"))?)
                }
                _ => break,
            }
        }
        let got = batch.len();
        applier.prefetch(&batch).await;
        // Everything the batch does goes into one transaction with its last sequence.
        let checkpoint = projections.checkpoint()?;
        let mut pending = Pending::default();
        let mut last = checkpoint;
        let mut taken = Vec::with_capacity(batch.len());
        for message in batch {
            let sequence = message
                .info()
                .map_err(|e| anyhow!("a message without JetStream info: {e}"))?
                .stream_sequence;
            taken.push(message);
            if sequence <= checkpoint {
                skipped += 1;
                continue;
            }
            last = last.max(sequence);
            let message = taken.last().expect("just pushed");
            let subject = message.subject.to_string();
            let mut attempt = 0;
            loop {
                attempt += 1;
                match applier.prepare(sequence, &subject, &message.payload).await {
                    Ok((update, cid, erases)) => {
                        pending.add(update, cid, erases);
                        applied += 1;
                    }
                    Err(e) if attempt < args.max_attempts => {
                        tracing::warn!(sequence, attempt, error = %format!("{e:#}"), "applying failed; retrying");
                        tokio::time::sleep(backoff(retry_base, attempt)).await;
                        continue;
                    }
                    Err(e) => {
                        let reason = format!("{e:#}");
                        tracing::error!(sequence, attempts = attempt, %reason, "dead-lettered");
                        let cid = Notice::decode(&message.payload)
                            .ok()
                            .map(|n| n.cid.to_string());
                        let body = json!({
                            "sequence": sequence,
                            "subject": subject,
                            "cid": cid,
                            "reason": reason,
                            "attempts": attempt,
                            "time": crate::output::time(personctl_ledger::now_us()),
                        });
                        // The checkpoint passes it with the batch: later events are applied.
                        js.publish(dlq_subject(link), body.to_string().into())
                            .await
                            .map_err(|e| anyhow!("dead-lettering message {sequence}: {e}"))?
                            .await
                            .map_err(|e| anyhow!("dead-lettering message {sequence}: {e}"))?;
                        dead += 1;
                    }
                }
                break;
            }
            if stop.load(Ordering::SeqCst) {
                break;
            }
        }
        if last > checkpoint {
            projections.apply(Some(last), &pending.updates)?;
            // An erasure's values leave the trees here; compaction takes them off the disk.
            if pending.erases {
                projections.compact()?;
            }
            if let Some(observe) = observer {
                pending.cids.iter().for_each(observe);
            }
        }
        for message in &taken {
            message
                .ack()
                .await
                .map_err(|e| anyhow!("acknowledging a message: {e}"))?;
        }
        // Unacknowledged messages of a batch cut short by a signal are redelivered next time
        // (the consumer is recreated from the checkpoint).
        if stop.load(Ordering::SeqCst) {
            break 'serve;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            let lag = lag(&mut consumer).await?;
            tracing::info!(applied, dead_lettered = dead, lag, "serving");
            last_report = Instant::now();
        }
        if got == 0 {
            // Idle: time for the time-based policies (whenever caught up with
            // --until-caught-up, else every --sweep-seconds).
            let due =
                last_sweep.is_none_or(|t| t.elapsed() >= Duration::from_secs(args.sweep_seconds));
            if policies.is_some() && (args.until_caught_up || due) {
                last_sweep = Some(Instant::now());
                let n = applier.sweep().await?;
                swept += n as u64;
                if n > 0 {
                    continue; // their messages come next
                }
            }
            if args.until_caught_up && lag(&mut consumer).await? == 0 {
                break;
            }
        }
    }
    let checkpoint = projections.checkpoint()?;
    let lag = lag(&mut consumer).await?;
    Ok(json!({
        "applied": applied,
        "skipped": skipped,
        "dead_lettered": dead,
        "swept": swept,
        "checkpoint": checkpoint,
        "lag": lag,
    }))
}

/// Answers one query from the read models (an error is answered too).
async fn respond(client: &async_nats::Client, projections: &Projections, q: async_nats::Message) {
    let Some(reply) = q.reply else {
        return;
    };
    let body = match super::query::parse_request(&q.payload)
        .and_then(|command| super::query::answer(projections, &command))
    {
        Ok(records) => json!({"records": records
            .into_iter()
            .map(|(kind, data, line)| json!([kind, data, line]))
            .collect::<Vec<_>>()}),
        Err(e) => json!({"error": format!("{e:#}")}),
    };
    if let Err(e) = client.publish(reply, body.to_string().into()).await {
        tracing::warn!(error = %e, "answering a query");
    }
}

/// Person messages not applied yet: those the consumer has still to deliver, and those
/// delivered but not acknowledged.
async fn lag(consumer: &mut PullConsumer) -> Result<u64> {
    let info = consumer
        .info()
        .await
        .map_err(|e| anyhow!("reading the consumer {CONSUMER}: {e}"))?;
    Ok(info.num_pending + info.num_ack_pending as u64)
}

/// One dead letter: its sequence in the dead-letter stream, and its body.
async fn dead_letters(js: &Context, name: &str) -> Result<Vec<(u64, Value)>> {
    let Ok(mut stream) = js.get_stream(name).await else {
        return Ok(Vec::new());
    };
    let state = stream
        .info()
        .await
        .map_err(|e| anyhow!("reading {name}: {e}"))?
        .state
        .clone();
    let mut out = Vec::new();
    if state.messages == 0 {
        return Ok(out);
    }
    for seq in state.first_sequence..=state.last_sequence {
        let Ok(message) = stream.get_raw_message(seq).await else {
            continue; // deleted after a successful retry
        };
        let body: Value = serde_json::from_slice(&message.payload)
            .map_err(|e| anyhow!("{name} message {seq} is not JSON: {e}"))?;
        out.push((seq, body));
    }
    Ok(out)
}

pub(crate) fn dlq(config: &Config, command: &DlqCommand, out: &mut Out) -> Result<u8> {
    let Some(link) = nats::connect(config)? else {
        bail!("the dead-letter stream is on JetStream: give --nats URL (or PERSONCTL_NATS)");
    };
    let name = dlq_stream(&link);
    let js = link.backbone().context();
    let letters = link.block_on(dead_letters(js, &name))?;
    match command {
        DlqCommand::List => {
            for (dlq_sequence, body) in &letters {
                let mut data = body.clone();
                data["dlq_sequence"] = json!(dlq_sequence);
                out.record("dead-letter", data, || {
                    format!(
                        "{dlq_sequence}: message {} on {} ({} attempts): {}",
                        body["sequence"], body["subject"], body["attempts"], body["reason"]
                    )
                })?;
            }
        }
        DlqCommand::Retry => {
            let store = config.open_or_create_store()?;
            let projections = config.projections()?;
            let trust = config.trust(&store)?;
            let mut applier = Applier::new(link.backbone(), &store, &projections, None, &trust);
            for (dlq_sequence, body) in &letters {
                let sequence = body["sequence"].as_u64().unwrap_or(0);
                let result = link.block_on(async {
                    let stream = js
                        .get_stream(&link.backbone().settings().stream)
                        .await
                        .map_err(|e| anyhow!("opening the stream: {e}"))?;
                    let original = stream
                        .get_raw_message(sequence)
                        .await
                        .map_err(|e| anyhow!("message {sequence}: {e}"))?;
                    // Applied out of order: the checkpoint stays where it is.
                    let (update, _, erases) = applier
                        .prepare(sequence, &original.subject, &original.payload)
                        .await?;
                    projections.apply(None, &[update])?;
                    if erases {
                        projections.compact()?;
                    }
                    anyhow::Ok(())
                });
                let (kind, reason) = match result {
                    Ok(_) => {
                        link.block_on(async {
                            js.get_stream(&name)
                                .await
                                .map_err(|e| anyhow!("opening {name}: {e}"))?
                                .delete_message(*dlq_sequence)
                                .await
                                .map_err(|e| anyhow!("removing dead letter {dlq_sequence}: {e}"))
                        })?;
                        ("retried", None)
                    }
                    Err(e) => ("still-failing", Some(format!("{e:#}"))),
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
