//! The read-side runtime: [`follow_log`] keeps a [`Projector`] current from JetStream, and
//! [`dead_letters`] / [`retry_dead_letter`] handle the messages it could not apply.
//!
//! A pull consumer on the aggregate's subjects delivers the notices; it is created at start
//! (and again whenever the server loses it) from the projector's checkpoint, which is the
//! truth: each batch's updates and its last sequence are committed together, so a restart
//! resumes exactly where it stopped and a message delivered twice is applied once. For each batch the chains it touches are brought
//! level first (one commit for the events that continue a local head, concurrent pulls for the
//! rest), the events are verified together ([`crate::verify_events`]: CIDs, signatures in
//! batches, authors and grants judged in the shared log by [`super::Backbone::judge`]), and
//! each is handed to the projector.
//!
//! A failing message is retried with bounded exponential backoff ([`crate::backoff`]); after
//! the last attempt it goes to the dead-letter stream (`<stream>_DLQ`, subject
//! `<prefix>_dlq.projections`) with the reason and the original sequence and CID, the
//! checkpoint moves past it, and processing goes on. A set `stop` flag finishes the current
//! message and stops; unacknowledged messages of a batch cut short are delivered again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::stream::{Config as StreamConfig, StorageType};
use futures_util::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};

use super::{Link, Notice};
use crate::follow::{backoff, FollowOptions, Followed, Projector};
use crate::{BlockStore, Cid, Error, Event, StreamId, TrustSet};

/// How long the follower waits for a message before it counts as idle.
const IDLE: Duration = Duration::from_millis(200);

/// How long the server keeps a follower's consumer that nobody pulls from.
const INACTIVE: Duration = Duration::from_secs(300);

/// A message the read models could not apply, as the dead-letter stream holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The original message's stream sequence.
    pub sequence: u64,
    /// Its subject.
    pub subject: String,
    /// The event it names, when its body was a notice.
    pub cid: Option<String>,
    /// Why it failed, at the last attempt.
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was dead-lettered (microseconds since the Unix epoch).
    pub time_us: u64,
}

/// The dead-letter stream's name for `link`'s settings.
pub fn dead_letter_stream(link: &Link) -> String {
    format!("{}_DLQ", link.backbone().settings().stream)
}

fn dead_letter_subject(link: &Link) -> String {
    format!("{}_dlq.projections", link.backbone().settings().prefix)
}

fn nats(context: impl std::fmt::Display) -> impl FnOnce(String) -> Error {
    let context = context.to_string();
    move |reason| Error::Nats { context, reason }
}

/// Keeps `projector` current from JetStream until `stop` is set (or, with
/// [`FollowOptions::until_caught_up`], until nothing is left). Events are stored in `store` on
/// the way; only those `trust`'s authors signed reach the projector. Between batches it answers
/// queries ([`Projector::answer`]) and, when the log is idle, runs [`Projector::idle`].
pub fn follow_log<P: Projector>(
    link: &Link,
    store: &dyn BlockStore,
    trust: &TrustSet,
    projector: &mut P,
    options: &FollowOptions,
    stop: &AtomicBool,
) -> Result<Followed, P::Error> {
    // The consumer's message stream needs the runtime's timers even between `block_on`s.
    let _runtime = link.enter();
    let backbone = link.backbone();
    let js = backbone.context();
    let settings = backbone.settings();
    let dlq = dead_letter_stream(link);
    let dlq_subject = dead_letter_subject(link);
    let (mut consumer, mut messages) = link.block_on(async {
        js.get_or_create_stream(StreamConfig {
            name: dlq.clone(),
            description: Some("personctl: messages the read models could not apply".into()),
            subjects: vec![dlq_subject.clone()],
            storage: StorageType::File,
            num_replicas: settings.replicas,
            ..StreamConfig::default()
        })
        .await
        .map_err(|e| nats(format!("creating the dead-letter stream {dlq}"))(e.to_string()))?;
        Ok::<_, P::Error>(open_feed(link, options, projector.checkpoint()?).await?)
    })?;
    let client = js.client();
    let mut queries = match &options.queries {
        Some(subject) => Some(
            link.block_on(client.queue_subscribe(subject.clone(), options.consumer.clone()))
                .map_err(|e| nats(format!("answering queries on {subject}"))(e.to_string()))?,
        ),
        None => None,
    };
    let mut done = Followed::default();
    let mut last_idle: Option<Instant> = None;
    let mut last_report = Instant::now();
    // What the consumer delivered: a message (`Ok(Ok)`), or why it is gone (`Ok(Err)`).
    let delivered = |m: Option<Result<async_nats::jetstream::Message, pull::MessagesError>>| match m
    {
        Some(Ok(m)) => Ok(Ok(m)),
        Some(Err(e)) if e.kind() == pull::MessagesErrorKind::ConsumerDeleted => {
            Ok(Err(e.to_string()))
        }
        Some(Err(e)) => Err(nats(format!("consuming from {}", options.consumer))(
            e.to_string(),
        )),
        None => Ok(Err("it stopped delivering".to_string())),
    };
    let mut reopened_idle = false;
    while !stop.load(Ordering::SeqCst) {
        // Wait a little for the next message (so that the stop flag and idle work are seen),
        // then take whatever else has arrived, up to a batch. Queries are answered between
        // batches.
        enum Next {
            /// Messages, and whether the consumer was lost after them.
            Messages(Vec<async_nats::jetstream::Message>, Option<String>),
            Query(async_nats::Message),
            Idle,
        }
        let next = link.block_on(async {
            let query = async {
                match queries.as_mut() {
                    Some(q) => q.next().await,
                    None => std::future::pending().await,
                }
            };
            let first = tokio::select! {
                m = messages.next() => match delivered(m)? {
                    Ok(m) => m,
                    Err(lost) => return Ok(Next::Messages(Vec::new(), Some(lost))),
                },
                Some(q) = query => return Ok(Next::Query(q)),
                _ = tokio::time::sleep(IDLE) => return Ok(Next::Idle),
            };
            let mut batch = vec![first];
            while batch.len() < options.batch {
                let Some(m) = messages.next().now_or_never() else {
                    break;
                };
                match delivered(m)? {
                    Ok(m) => batch.push(m),
                    Err(lost) => return Ok(Next::Messages(batch, Some(lost))),
                }
            }
            Ok(Next::Messages(batch, None))
        })?;
        let (batch, lost) = match next {
            Next::Messages(batch, lost) => (batch, lost),
            Next::Query(q) => {
                if let (Some(reply), Some(answer)) = (q.reply, projector.answer(&q.payload)) {
                    if let Err(e) = link.block_on(client.publish(reply, answer.into())) {
                        tracing::warn!(error = %e, "answering a query");
                    }
                }
                continue;
            }
            Next::Idle => (Vec::new(), None),
        };
        let got = batch.len();
        if got > 0 {
            apply_batch(
                link,
                store,
                trust,
                projector,
                options,
                &dlq_subject,
                batch,
                stop,
                &mut done,
            )?;
        }
        // Unacknowledged messages of a batch cut short are delivered again next time (the
        // consumer is recreated from the checkpoint).
        if stop.load(Ordering::SeqCst) {
            break;
        }
        if let Some(reason) = lost {
            // The consumer is gone (deleted, or the server forgot it): a new one from the
            // checkpoint misses nothing and applies nothing twice. One that is lost again
            // before anything is applied is an error, not a loop.
            if got == 0 && reopened_idle {
                return Err(nats(format!("the consumer {}", options.consumer))(format!(
                    "lost again right after it was recreated: {reason}"
                ))
                .into());
            }
            tracing::warn!(%reason, consumer = %options.consumer, "the consumer was lost; recreating it from the checkpoint");
            (consumer, messages) =
                link.block_on(open_feed(link, options, projector.checkpoint()?))?;
            done.reopened += 1;
            reopened_idle = true;
            continue;
        }
        if got > 0 {
            reopened_idle = false;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            let lag = lag(link, &mut consumer, options)?;
            tracing::info!(
                applied = done.applied,
                dead_lettered = done.dead_lettered,
                lag,
                "following"
            );
            last_report = Instant::now();
        }
        if got == 0 {
            // Idle: time for the time-based work (whenever caught up with until_caught_up,
            // else every idle_every).
            let due = last_idle.is_none_or(|t| t.elapsed() >= options.idle_every);
            if options.until_caught_up || due {
                last_idle = Some(Instant::now());
                let n = projector.idle()?;
                done.swept += n;
                if n > 0 {
                    continue; // their messages come next
                }
            }
            if options.until_caught_up && lag(link, &mut consumer, options)? == 0 {
                break;
            }
        }
    }
    done.checkpoint = projector.checkpoint()?;
    done.lag = lag(link, &mut consumer, options)?;
    Ok(done)
}

/// A new consumer for `options`' aggregate from `checkpoint` + 1, and its messages.
///
/// The consumer is ephemeral: the projector's checkpoint, not the server, remembers where it
/// is, so every follower (one per home, several homes on one stream) has a consumer of its own
/// that nobody else recreates or deletes, and one left behind by a crash goes away by itself
/// after [`INACTIVE`].
async fn open_feed(
    link: &Link,
    options: &FollowOptions,
    checkpoint: u64,
) -> crate::Result<(PullConsumer, pull::Stream)> {
    let settings = link.backbone().settings();
    let stream = link
        .backbone()
        .context()
        .get_stream(&settings.stream)
        .await
        .map_err(|e| nats(format!("opening the stream {}", settings.stream))(e.to_string()))?;
    let consumer: PullConsumer = stream
        .create_consumer(pull::Config {
            description: Some(format!(
                "{}: a read side from sequence {}",
                options.consumer,
                checkpoint + 1
            )),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: checkpoint + 1,
            },
            ack_policy: AckPolicy::Explicit,
            filter_subject: format!("{}.{}.>", settings.prefix, options.aggregate),
            ack_wait: Duration::from_secs(60),
            inactive_threshold: INACTIVE,
            ..Default::default()
        })
        .await
        .map_err(|e| {
            nats(format!("creating a consumer for {}", options.consumer))(e.to_string())
        })?;
    let messages = consumer
        .messages()
        .await
        .map_err(|e| nats(format!("consuming from {}", options.consumer))(e.to_string()))?;
    tracing::info!(checkpoint, consumer = %options.consumer, "following the log");
    Ok((consumer, messages))
}

/// Applies one batch: brings its chains level, verifies its events, prepares each (with
/// retries and dead letters), commits the updates with the last sequence, acknowledges.
#[allow(clippy::too_many_arguments)] // the follower's state, passed down once per batch
fn apply_batch<P: Projector>(
    link: &Link,
    store: &dyn BlockStore,
    trust: &TrustSet,
    projector: &mut P,
    options: &FollowOptions,
    dlq_subject: &str,
    batch: Vec<async_nats::jetstream::Message>,
    stop: &AtomicBool,
    done: &mut Followed,
) -> Result<(), P::Error> {
    let checkpoint = projector.checkpoint()?;
    let mut verified = prefetch(link, store, trust, &batch, checkpoint)?;
    let mut updates = Vec::new();
    let mut last = checkpoint;
    let mut taken = Vec::with_capacity(batch.len());
    // When each applied message was stored in JetStream, for the lag metric.
    let mut applied_at = Vec::with_capacity(batch.len());
    for message in batch {
        let (sequence, stored) = message
            .info()
            .map(|i| (i.stream_sequence, i.published))
            .map_err(|e| nats("a message without JetStream info")(e.to_string()))?;
        taken.push(message);
        if sequence <= checkpoint {
            done.skipped += 1;
            continue;
        }
        last = last.max(sequence);
        let message = taken.last().expect("just pushed");
        let subject = message.subject.to_string();
        // One span per message applied; the event's ids join it to the command's trace.
        let span = tracing::info_span!(
            "apply",
            sequence,
            %subject,
            cid = tracing::field::Empty,
            correlation = tracing::field::Empty,
            causation = tracing::field::Empty,
        );
        let _entered = span.enter();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = event_of(
                link,
                store,
                trust,
                &mut verified,
                sequence,
                &subject,
                &message.payload,
            )
            .map_err(P::Error::from)
            .and_then(|event| {
                span.record("cid", tracing::field::display(event.cid()));
                span.record(
                    "correlation",
                    tracing::field::display(event.body().correlation),
                );
                span.record("causation", tracing::field::display(event.body().causation));
                Ok((event.cid(), projector.prepare(&event)?))
            });
            match result {
                Ok(update) => {
                    updates.push(update);
                    done.applied += 1;
                    applied_at.push(stored);
                }
                Err(e) if attempt < options.max_attempts => {
                    metrics::counter!(crate::metrics::PROJECTION_RETRIES).increment(1);
                    tracing::warn!(sequence, attempt, error = %e, "applying failed; retrying");
                    std::thread::sleep(backoff(options.retry_delay, attempt));
                    continue;
                }
                Err(e) => {
                    let reason = e.to_string();
                    tracing::error!(sequence, attempts = attempt, %reason, "dead-lettered");
                    let letter = DeadLetter {
                        sequence,
                        subject: subject.clone(),
                        cid: Notice::decode(&message.payload)
                            .ok()
                            .map(|n| n.cid.to_string()),
                        reason,
                        attempts: attempt,
                        time_us: crate::now_us(),
                    };
                    let body = serde_json::to_vec(&letter)
                        .map_err(|e| Error::codec("a dead letter", e))?;
                    // The checkpoint passes it with the batch: later events are applied.
                    let dead = nats(format!("dead-lettering message {sequence}"));
                    link.block_on(async {
                        link.backbone()
                            .context()
                            .publish(dlq_subject.to_string(), body.into())
                            .await
                            .map_err(|e| e.to_string())?
                            .await
                            .map_err(|e| e.to_string())
                    })
                    .map_err(dead)?;
                    done.dead_lettered += 1;
                    metrics::counter!(crate::metrics::DEAD_LETTERS).increment(1);
                }
            }
            break;
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
    }
    if last > checkpoint {
        projector.commit(Some(last), updates)?;
    }
    metrics::counter!(crate::metrics::PROJECTION_APPLIED).increment(applied_at.len() as u64);
    let now_ns = crate::now_us() as i128 * 1_000;
    for stored in applied_at {
        let lag = (now_ns - stored.unix_timestamp_nanos()).max(0) as f64 / 1e9;
        metrics::histogram!(crate::metrics::PROJECTION_LAG_SECONDS).record(lag);
    }
    for message in &taken {
        link.block_on(message.ack())
            .map_err(|e| nats("acknowledging a message")(e.to_string()))?;
    }
    Ok(())
}

/// Brings the chains a batch touches up to date, all at once: the events that continue a
/// local head in one commit, the other chains by concurrent pulls. Errors are left to
/// [`event_of`], which pulls again and reports them. Returns the batch's events that verified.
fn prefetch(
    link: &Link,
    store: &dyn BlockStore,
    trust: &TrustSet,
    batch: &[async_nats::jetstream::Message],
    checkpoint: u64,
) -> crate::Result<HashMap<Cid, Event>> {
    let backbone = link.backbone();
    let notices: Vec<(StreamId, Notice, u64)> = batch
        .iter()
        .filter_map(|m| {
            let sequence = m.info().ok()?.stream_sequence;
            let stream = backbone.settings().stream_of(&m.subject)?;
            let notice = Notice::decode(&m.payload).ok()?;
            (sequence > checkpoint).then_some((stream, notice, sequence))
        })
        .collect();
    let checked = link.block_on(async {
        let (left, checked) = match backbone.fast_forward_checked(store, &notices).await {
            Ok(done) => done,
            Err(e) => {
                tracing::debug!(error = %e, "fast-forward failed; pulling each chain");
                let mut all: Vec<_> = notices.iter().map(|(s, _, _)| s.clone()).collect();
                all.sort();
                all.dedup();
                (all, HashMap::new())
            }
        };
        let pulls = left.iter().map(|s| backbone.pull(store, s));
        for (stream, result) in left.iter().zip(futures_util::future::join_all(pulls).await) {
            if let Err(e) = result {
                tracing::debug!(%stream, error = %e, "prefetch failed; applying will retry");
            }
        }
        checked
    });
    // What the fast-forward stored under this very trust was verified and judged on the way
    // in (the same checks); the rest is verified here. Events not stored (a pull failed)
    // come back as missing and are left to `event_of`.
    let mut verified = if backbone.trust() == Some(trust) {
        checked
    } else {
        HashMap::new()
    };
    let cids: Vec<Cid> = notices
        .iter()
        .map(|(_, n, _)| n.cid)
        .filter(|c| !verified.contains_key(c))
        .collect();
    let judge = &mut |e: &Event| link.block_on(backbone.judge(store, trust, e));
    for (cid, result) in crate::verify_events(store, &cids, judge)? {
        match result {
            Ok(event) => {
                verified.insert(cid, event);
            }
            // Applying tries it again and names the problem (a retry, then a dead letter).
            Err(problem) => {
                tracing::debug!(%cid, %problem, "an event failed verification");
                metrics::counter!(crate::metrics::VERIFICATION_FAILURES).increment(1);
            }
        }
    }
    Ok(verified)
}

/// The event the message at `sequence` on `subject` names: stored (pulled if need be), of the
/// subject's stream, its signature verified and its author trusted.
fn event_of(
    link: &Link,
    store: &dyn BlockStore,
    trust: &TrustSet,
    verified: &mut HashMap<Cid, Event>,
    sequence: u64,
    subject: &str,
    body: &[u8],
) -> crate::Result<Event> {
    let invalid =
        |reason: String| Error::InvalidEvent(format!("message {sequence} on {subject}: {reason}"));
    let notice = Notice::decode(body).map_err(|e| invalid(format!("not a notice: {e}")))?;
    let stream = link
        .backbone()
        .settings()
        .stream_of(subject)
        .ok_or_else(|| invalid("not a ledger subject".into()))?;
    let event = match verified.remove(&notice.cid) {
        Some(event) => event,
        None => {
            // A stored event has its whole chain below it stored (prefetched, or pulled before).
            if !store.contains(&notice.cid)? {
                link.pull_stream(store, &stream)?;
            }
            let judge = &mut |e: &Event| link.block_on(link.backbone().judge(store, trust, e));
            let checked = crate::verify_events(store, &[notice.cid], judge)?;
            match checked.into_iter().next() {
                Some((_, Ok(event))) => event,
                Some((_, Err(problem))) => {
                    return Err(invalid(format!("event {}: {problem}", notice.cid)))
                }
                None => return Err(invalid(format!("event {} was not checked", notice.cid))),
            }
        }
    };
    if event.stream() != &stream {
        return Err(invalid(format!(
            "event {} belongs to {}, not {stream}",
            notice.cid,
            event.stream()
        )));
    }
    Ok(event)
}

/// Messages not applied yet: those the consumer has still to deliver, and those delivered but
/// not acknowledged.
fn lag(link: &Link, consumer: &mut PullConsumer, options: &FollowOptions) -> crate::Result<u64> {
    let info = link
        .block_on(consumer.info())
        .map_err(|e| nats(format!("reading the consumer {}", options.consumer))(e.to_string()))?;
    let lag = info.num_pending + info.num_ack_pending as u64;
    metrics::gauge!(crate::metrics::PROJECTION_LAG_MESSAGES).set(lag as f64);
    Ok(lag)
}

/// Every dead letter, with its sequence in the dead-letter stream (none when the stream does
/// not exist yet).
pub fn dead_letters(link: &Link) -> crate::Result<Vec<(u64, DeadLetter)>> {
    let name = dead_letter_stream(link);
    link.block_on(async {
        let js = link.backbone().context();
        let Ok(mut stream) = js.get_stream(&name).await else {
            return Ok(Vec::new());
        };
        let state = stream
            .info()
            .await
            .map_err(|e| nats(format!("reading {name}"))(e.to_string()))?
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
            let letter: DeadLetter = serde_json::from_slice(&message.payload)
                .map_err(|e| Error::codec(format!("{name} message {seq}"), e))?;
            out.push((seq, letter));
        }
        Ok(out)
    })
}

/// Applies a dead letter again, out of order (the checkpoint stays), and removes it from the
/// dead-letter stream when it applies.
pub fn retry_dead_letter<P: Projector>(
    link: &Link,
    store: &dyn BlockStore,
    trust: &TrustSet,
    projector: &mut P,
    dlq_sequence: u64,
    letter: &DeadLetter,
) -> Result<(), P::Error> {
    let sequence = letter.sequence;
    let (subject, payload) = link.block_on(async {
        let js = link.backbone().context();
        let stream = js
            .get_stream(&link.backbone().settings().stream)
            .await
            .map_err(|e| nats("opening the stream")(e.to_string()))?;
        let original = stream
            .get_raw_message(sequence)
            .await
            .map_err(|e| nats(format!("message {sequence}"))(e.to_string()))?;
        Ok::<_, Error>((original.subject.to_string(), original.payload))
    })?;
    let mut verified = HashMap::new();
    let event = event_of(
        link,
        store,
        trust,
        &mut verified,
        sequence,
        &subject,
        &payload,
    )?;
    let update = projector.prepare(&event)?;
    projector.commit(None, vec![(event.cid(), update)])?;
    let name = dead_letter_stream(link);
    link.block_on(async {
        link.backbone()
            .context()
            .get_stream(&name)
            .await
            .map_err(|e| nats(format!("opening {name}"))(e.to_string()))?
            .delete_message(dlq_sequence)
            .await
            .map_err(|e| nats(format!("removing dead letter {dlq_sequence}"))(e.to_string()))
    })?;
    Ok(())
}
