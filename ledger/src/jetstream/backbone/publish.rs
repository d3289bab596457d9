//! Publishing pending events: blocks to the bucket first, then the notices, in order per
//! subject and pipelined across subjects, each carrying the previous acknowledgement's
//! sequence; a lost race withdraws the stream's losing events (and those that name them).

use std::collections::{HashMap, HashSet};

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use tokio::sync::watch;
use tracing::instrument;

use super::{Backbone, Report};
use crate::jetstream::{nats, retry, Notice};
use crate::store::{BlockStore, Commit, Head, HeadUpdate, Published};
use crate::{Block, Cid, Error, Event, Result, StreamId};

/// How many bucket writes are in flight at once.
const BLOCK_WINDOW: usize = 2048;

/// One pending event, ready to publish.
struct Pending {
    head: Head,
    notice: Notice,
    blocks: Vec<Block>,
}

/// How a pending event ended, for events of other streams that name it as a cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Accepted,
    Withdrawn,
    Unsettled,
}

impl Backbone {
    /// Publishes every pending event of `streams` (all streams when `None`; a stream may be
    /// named more than once): their blocks to
    /// the bucket first, then their notices, one at a time per subject (each carries the
    /// sequence of the previous one's ack) and all subjects at once. Returns when every ack is
    /// in. A stream that lost a race is pulled level with JetStream and its losing events are
    /// withdrawn ([`Report::conflicts`]); an event naming a withdrawn cause is withdrawn too.
    #[instrument(skip_all)]
    pub async fn publish<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        streams: Option<&[StreamId]>,
    ) -> Result<Report> {
        let started = std::time::Instant::now();
        let heads: Vec<(StreamId, Head)> = match streams {
            None => store.heads()?,
            Some(list) => {
                // A stream named twice is published once.
                let mut list = list.to_vec();
                list.sort();
                list.dedup();
                let mut out = Vec::new();
                for s in list {
                    if let Some(h) = store.head(&s)? {
                        out.push((s, h));
                    }
                }
                out
            }
        };
        let mut work = Vec::new();
        for (stream, head) in heads {
            let mark = store.published(&stream)?;
            if mark.map(|m| m.head) != Some(head) {
                let pending = pending(store, &stream, head, mark)?;
                work.push((stream, mark, pending));
            }
        }
        let mut report = Report::default();
        // Key and policy chains first, acknowledged before anything else goes out: an event
        // signed by a rotated-in key or allowed by a new grant never comes before that key
        // event or grant in the shared log (the order `verify --nats` judges by). If one of
        // them fails, the rest stays pending.
        let (rules, rest): (Vec<_>, Vec<_>) = work
            .into_iter()
            .partition(|(s, _, _)| super::pull::is_rule_chain(s));
        for phase in [rules, rest] {
            if !report.failures.is_empty() {
                for (stream, _, _) in phase {
                    report.failures.push((
                        stream.clone(),
                        Error::NotPublished {
                            streams: 1,
                            first: stream,
                            reason: "a key or policy chain was not published first".into(),
                        },
                    ));
                }
                continue;
            }
            self.publish_phase(store, phase, &mut report).await?;
        }
        report.conflicts.sort_by(|a, b| a.0.cmp(&b.0));
        metrics::counter!(crate::metrics::EVENTS_PUBLISHED).increment(report.published);
        metrics::counter!(crate::metrics::PUBLISH_WITHDRAWN)
            .increment(report.withdrawn().len() as u64);
        metrics::histogram!(crate::metrics::PUBLISH_SECONDS)
            .record(started.elapsed().as_secs_f64());
        tracing::debug!(
            published = report.published,
            duplicates = report.duplicates,
            conflicts = report.conflicts.len(),
            failures = report.failures.len(),
            "published"
        );
        Ok(report)
    }

    /// Publishes `work` (streams with their marks and pending events) concurrently, into
    /// `report`.
    async fn publish_phase<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        work: Vec<(StreamId, Option<Published>, Vec<Pending>)>,
        report: &mut Report,
    ) -> Result<()> {
        if work.is_empty() {
            return Ok(());
        }
        // Blocks first, so that a reader who sees a notice finds its blocks.
        let blocks: Vec<&Block> = work
            .iter()
            .flat_map(|(_, _, p)| p.iter().flat_map(|e| e.blocks.iter()))
            .collect();
        self.put_blocks(&blocks).await?;
        // A gate for every pending event that another pending event names as a cause.
        let pending_cids: HashSet<Cid> = work
            .iter()
            .flat_map(|(_, _, p)| p.iter().map(|e| e.notice.cid))
            .collect();
        let gates: HashMap<Cid, watch::Sender<Option<Fate>>> = work
            .iter()
            .flat_map(|(_, _, p)| p.iter().flat_map(|e| e.notice.causes.iter()))
            .filter(|c| pending_cids.contains(c))
            .map(|c| (*c, watch::channel(None).0))
            .collect();
        let tasks = work.into_iter().map(|(stream, mark, pending)| {
            let gates = &gates;
            async move {
                let outcome = self
                    .publish_stream(store, &stream, mark, &pending, gates)
                    .await;
                // Whatever was not settled stays pending; tell any event waiting on it.
                for e in &pending {
                    if let Some(g) = gates.get(&e.notice.cid) {
                        g.send_if_modified(|fate| {
                            let open = fate.is_none();
                            if open {
                                *fate = Some(Fate::Unsettled);
                            }
                            open
                        });
                    }
                }
                (stream, outcome)
            }
        });
        for (stream, outcome) in futures_util::future::join_all(tasks).await {
            match outcome {
                Ok(o) => {
                    report.published += o.published;
                    report.duplicates += o.duplicates;
                    report.fetched += o.fetched;
                    if !o.withdrawn.is_empty() {
                        report.conflicts.push((stream, o.withdrawn));
                    }
                }
                Err(e) => report.failures.push((stream, e)),
            }
        }
        Ok(())
    }

    /// Publishes one stream's pending events in order, then records how far JetStream
    /// acknowledged them (once: a mark lost in a crash only makes events pending again).
    async fn publish_stream<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        stream: &StreamId,
        start: Option<Published>,
        pending: &[Pending],
        gates: &HashMap<Cid, watch::Sender<Option<Fate>>>,
    ) -> Result<StreamOutcome> {
        let mut mark = start;
        let outcome = self
            .publish_events(store, stream, &mut mark, pending, gates)
            .await;
        if let Some(m) = mark.filter(|_| mark != start) {
            store.set_published(stream, m)?;
        }
        outcome
    }

    async fn publish_events<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        stream: &StreamId,
        mark: &mut Option<Published>,
        pending: &[Pending],
        gates: &HashMap<Cid, watch::Sender<Option<Fate>>>,
    ) -> Result<StreamOutcome> {
        let subject = self.settings.subject(stream);
        let mut out = StreamOutcome::default();
        let settle = |cid: &Cid, fate: Fate| {
            if let Some(g) = gates.get(cid) {
                g.send_replace(Some(fate));
            }
        };
        let mut i = 0;
        while i < pending.len() {
            let event = &pending[i];
            for cause in &event.notice.causes {
                let Some(gate) = gates.get(cause) else {
                    continue;
                };
                let fate = *gate
                    .subscribe()
                    .wait_for(Option::is_some)
                    .await
                    .expect("the gate's sender outlives every waiter");
                match fate {
                    Some(Fate::Accepted) => {}
                    Some(Fate::Withdrawn) => {
                        // Built on a cause that lost its race: withdraw it and what follows.
                        let back_to = if i == 0 {
                            mark.map(|m| m.head)
                        } else {
                            Some(pending[i - 1].head)
                        };
                        let withdrawn = withdraw(store, stream, &pending[i..], back_to)?;
                        for e in &pending[i..] {
                            settle(&e.notice.cid, Fate::Withdrawn);
                        }
                        out.withdrawn.extend(withdrawn);
                        return Ok(out);
                    }
                    _ => {
                        return Err(Error::Nats {
                            context: format!("publishing {} on {subject}", event.notice.cid),
                            reason: format!("its cause {cause} is not published yet"),
                        })
                    }
                }
            }
            let expected = mark.map_or(0, |m| m.sequence);
            match self.publish_one(&subject, &event.notice, expected).await {
                Ok((sequence, duplicate)) => {
                    *mark = Some(Published {
                        head: event.head,
                        sequence,
                    });
                    settle(&event.notice.cid, Fate::Accepted);
                    if duplicate {
                        out.duplicates += 1;
                    } else {
                        out.published += 1;
                    }
                    i += 1;
                }
                Err(Error::SubjectMoved { .. }) => {
                    let before = mark.map(|m| m.head.height);
                    // `pull` starts from the stored mark.
                    if let Some(m) = *mark {
                        store.set_published(stream, m)?;
                    }
                    let pulled = self.pull(store, stream).await?;
                    out.fetched += pulled.fetched;
                    out.duplicates += pulled.acknowledged;
                    *mark = store.published(stream)?;
                    let reached = mark.map(|m| m.head.height);
                    for e in &pending[i..] {
                        if pulled.withdrawn.contains(&e.notice.cid) {
                            settle(&e.notice.cid, Fate::Withdrawn);
                        } else if reached.is_some_and(|h| e.head.height <= h) {
                            settle(&e.notice.cid, Fate::Accepted);
                        }
                    }
                    if !pulled.withdrawn.is_empty() {
                        out.withdrawn = pulled.withdrawn;
                        return Ok(out);
                    }
                    if reached <= before {
                        return Err(Error::Nats {
                            context: format!("publishing {} on {subject}", event.notice.cid),
                            reason: format!(
                                "JetStream refused sequence {expected} as stale, yet its chain ends where the local mark does"
                            ),
                        });
                    }
                    // JetStream had some of ours already: carry on above them.
                    while i < pending.len() && reached.is_some_and(|h| pending[i].head.height <= h)
                    {
                        i += 1;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Publishes one notice and waits for its ack, retrying transient failures (timeouts, a
    /// lost connection) with bounded backoff. A retry is safe: the message id deduplicates, and
    /// the expected sequence refuses a second copy.
    async fn publish_one(
        &self,
        subject: &str,
        notice: &Notice,
        expected: u64,
    ) -> Result<(u64, bool)> {
        let body = notice.encode()?;
        let context = || format!("publishing {} on {subject}", notice.cid);
        retry(|| async {
            let message = PublishMessage::build()
                .payload(body.clone().into())
                .message_id(notice.cid.to_string())
                .expected_last_subject_sequence(expected);
            let ack = self
                .js
                .send_publish(subject.to_string(), message)
                .await
                .map_err(|e| nats(context())(e.to_string()))?;
            match ack.await {
                Ok(a) => Ok((a.sequence, a.duplicate)),
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    Err(Error::SubjectMoved {
                        subject: subject.to_string(),
                        expected_sequence: expected,
                    })
                }
                Err(e) => Err(nats(context())(e.to_string())),
            }
        })
        .await
    }

    /// Writes blocks to the bucket, many in flight.
    async fn put_blocks(&self, blocks: &[&Block]) -> Result<()> {
        // The futures are made up front (not polled yet): a closure here would make the
        // publish future not `Send` for every lifetime, and so not spawnable.
        let puts: Vec<_> = blocks.iter().map(|b| self.blocks.put(b)).collect();
        stream::iter(puts)
            .buffer_unordered(BLOCK_WINDOW)
            .try_collect::<()>()
            .await
    }
}

#[derive(Default)]
struct StreamOutcome {
    published: u64,
    duplicates: u64,
    fetched: u64,
    withdrawn: Vec<Cid>,
}

/// The pending events of a stream, oldest first: from its head back to the mark.
fn pending<S: BlockStore + ?Sized>(
    store: &S,
    stream: &StreamId,
    head: Head,
    mark: Option<Published>,
) -> Result<Vec<Pending>> {
    let stop = mark.map(|m| m.head.cid);
    let mut out = Vec::new();
    let mut at = Some(head.cid);
    while let Some(cid) = at {
        if Some(cid) == stop {
            break;
        }
        let block = store.get(&cid)?.ok_or(Error::MissingBlock(cid))?;
        let event = Event::decode(&block)?;
        if event.stream() != stream {
            return Err(Error::InvalidEvent(format!(
                "event {cid} on the chain of {stream} belongs to {}",
                event.stream()
            )));
        }
        if let Some(m) = mark {
            if event.height() <= m.head.height {
                return Err(Error::InvalidEvent(format!(
                    "the local chain of {stream} does not hold {}, the event JetStream acknowledged at height {}",
                    m.head.cid, m.head.height
                )));
            }
        }
        let mut blocks = vec![block];
        if let Some(p) = event.payload() {
            blocks.push(store.get(&p)?.ok_or(Error::MissingBlock(p))?);
        }
        out.push(Pending {
            head: Head {
                cid,
                height: event.height(),
            },
            notice: Notice::of(&event),
            blocks,
        });
        at = event.prev();
    }
    out.reverse();
    Ok(out)
}

/// Moves a stream's head back to `back_to` and removes the withdrawn events' blocks.
fn withdraw<S: BlockStore + ?Sized>(
    store: &S,
    stream: &StreamId,
    events: &[Pending],
    back_to: Option<Head>,
) -> Result<Vec<Cid>> {
    let Some(back_to) = back_to else {
        return Err(Error::InvalidEvent(format!(
            "the first event of {stream} names a cause JetStream refused; it stays pending (a stream cannot be emptied)"
        )));
    };
    store.commit(&Commit {
        blocks: Vec::new(),
        heads: vec![HeadUpdate {
            stream: stream.clone(),
            expected: events.last().map(|e| e.head),
            new: back_to,
        }],
    })?;
    for e in events {
        for b in &e.blocks {
            store.remove(&b.cid())?;
        }
    }
    Ok(events.iter().map(|e| e.notice.cid).collect())
}
