//! [`Backbone`]: a store kept level with JetStream. Publishing pending events (pipelined across
//! streams, in order within one), pulling what other writers published, and withdrawing local
//! events that lost a race.
//!
//! The local head may run ahead of JetStream: events above the stream's [`Published`] mark are
//! *pending*, durable locally and not yet acknowledged. Publishing moves the mark; a lost race
//! moves the head back onto JetStream's chain (see `docs/JETSTREAM.md`).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_nats::jetstream::context::{Context, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use tokio::sync::watch;
use tracing::instrument;

use super::{delay, nats, retry, Blocks, Notice, Settings};
use crate::store::{BlockStore, Commit, Head, HeadUpdate, Published};
use crate::{Block, Cid, Error, Event, Result, StreamId, Tombstone, TOMBSTONE_TYPE};

/// Connecting at start gives up sooner than a request: 6 tries, about 1.5 s.
const CONNECT_TRIES: u32 = 6;

/// How many bucket writes are in flight at once.
const BLOCK_WINDOW: usize = 2048;

/// A connection to JetStream: the event stream and the block bucket.
///
/// ```no_run
/// # // Needs a running nats-server with JetStream (`nats-server -js`); the system tests run one.
/// use personctl_ledger::jetstream::{Backbone, Settings};
/// use personctl_ledger::{Draft, Ledger, SledStore, Signer};
///
/// # async fn run() -> personctl_ledger::Result<()> {
/// let ledger = Ledger::new(SledStore::open("/tmp/orders")?);
/// ledger.append(&Signer::generate()?, Draft::new("order/o-1".parse()?, "OrderPlaced", 1))?;
/// let backbone = Backbone::connect("nats://127.0.0.1:4222", Settings::default()).await?;
/// let report = backbone.publish(ledger.store(), None).await?;
/// assert!(report.all_settled());
/// # Ok(())
/// # }
/// ```
pub struct Backbone {
    js: Context,
    settings: Settings,
    blocks: Blocks,
    /// Whose events `pull` and `fast_forward` store (`None`: anyone's; see
    /// [`Backbone::with_trust`]).
    trust: Option<crate::TrustSet>,
}

/// What [`Backbone::publish`] did (the [`crate::Publisher`] report).
pub type Report = crate::PublishReport;

/// What [`Backbone::pull`] did to one stream.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pulled {
    /// Events fetched from JetStream and the bucket.
    pub fetched: u64,
    /// Local pending events that JetStream had already (their mark moved up).
    pub acknowledged: u64,
    /// Local pending events withdrawn because JetStream has other events at their heights.
    pub withdrawn: Vec<Cid>,
}

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
    /// Connects to NATS at `url` (several servers: comma-separated), retrying with bounded
    /// exponential backoff, then creates or checks the stream and opens the block bucket.
    /// Reconnects after a lost connection happen in the background with the same backoff.
    #[instrument(skip(settings))]
    pub async fn connect(url: &str, settings: Settings) -> Result<Backbone> {
        let servers = url
            .split(',')
            .map(|u| u.trim().parse::<async_nats::ServerAddr>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::InvalidUrl {
                input: url.to_string(),
                reason: e.to_string(),
            })?;
        let mut attempt = 0;
        let client = loop {
            let options = async_nats::ConnectOptions::new()
                .connection_timeout(Duration::from_secs(2))
                .reconnect_delay_callback(|attempts| delay(attempts as u32))
                .max_reconnects(None);
            match options.connect(servers.as_slice()).await {
                Ok(client) => break client,
                Err(e) if attempt + 1 < CONNECT_TRIES => {
                    tracing::debug!(attempt, error = %e, "connecting to NATS; retrying");
                    tokio::time::sleep(delay(attempt)).await;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(Error::Unreachable {
                        url: format!("{url} ({CONNECT_TRIES} tries)"),
                        reason: e.to_string(),
                    })
                }
            }
        };
        let js = async_nats::jetstream::new(client);
        super::ensure_stream(&js, &settings).await?;
        let blocks = Blocks::open(&js, &settings).await?;
        Ok(Backbone {
            js,
            settings,
            blocks,
            trust: None,
        })
    }

    /// Stores only events that `trust`'s authors signed (the signature checked strictly) when
    /// pulling and fast-forwarding: an event by anyone else is never adopted into a local
    /// chain, so a trusted writer never appends onto it. [`Backbone::pull`] then fails with
    /// [`Error::Untrusted`], writing nothing; [`Backbone::fast_forward`] leaves the stream to
    /// `pull`. Without it, any event whose CIDs check is stored, and only `verify` judges it.
    pub fn with_trust(mut self, trust: crate::TrustSet) -> Backbone {
        self.trust = Some(trust);
        self
    }

    /// Whether an event may enter the store (see [`Backbone::with_trust`]).
    fn admit(&self, block: &Block, event: &Event) -> Result<()> {
        let Some(trust) = &self.trust else {
            return Ok(());
        };
        let signed = crate::signing_message(block.bytes())
            .map(|m| event.author().verify(&m, event.signature()))
            .unwrap_or(false);
        if trust.contains(event.author()) && signed {
            return Ok(());
        }
        Err(Error::Untrusted {
            cid: event.cid(),
            author: event.author().to_string(),
            reason: format!(
                "{} on {}",
                if signed {
                    "its author is not trusted here"
                } else {
                    "its signature does not verify"
                },
                event.stream()
            ),
        })
    }

    /// The JetStream context.
    pub fn context(&self) -> &Context {
        &self.js
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The block bucket.
    pub fn blocks(&self) -> &Blocks {
        &self.blocks
    }

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
        if work.is_empty() {
            return Ok(report);
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
        report.conflicts.sort_by(|a, b| a.0.cmp(&b.0));
        tracing::debug!(
            published = report.published,
            duplicates = report.duplicates,
            conflicts = report.conflicts.len(),
            failures = report.failures.len(),
            "published"
        );
        Ok(report)
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

    /// Stores the events `notices` name (each with its stream and its message's sequence, in
    /// the order a consumer delivers them) where they continue their stream's local head: the
    /// blocks are fetched from the bucket concurrently (CIDs re-derived) and stored in one
    /// commit, and the published marks move. Returns the streams left alone, to [`pull`]: those
    /// whose notices do not continue the local head (a gap, local pending events), hold a
    /// tombstone (its masks need `pull`), or miss a block.
    ///
    /// [`pull`]: Backbone::pull
    pub async fn fast_forward<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        notices: &[(StreamId, Notice, u64)],
    ) -> Result<Vec<StreamId>> {
        // Per stream, in order: the notices not stored yet, if they continue the head.
        let mut order: Vec<StreamId> = Vec::new();
        // Per stream: its local head, and the notices (with sequences) that continue it.
        type Plan = (Option<Head>, Vec<(Notice, u64)>);
        let mut plans: HashMap<StreamId, Plan> = HashMap::new();
        let mut left: HashSet<StreamId> = HashSet::new();
        for (stream, notice, sequence) in notices {
            if left.contains(stream) || store.contains(&notice.cid)? {
                continue;
            }
            let plan = match plans.entry(stream.clone()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let head = store.head(stream)?;
                    let mark = store.published(stream)?.map(|m| m.head);
                    if head != mark {
                        left.insert(stream.clone()); // local pending events: pull decides
                        continue;
                    }
                    order.push(stream.clone());
                    e.insert((head, Vec::new()))
                }
            };
            let tip = plan.1.last().map(|(n, _)| n.cid).or(plan.0.map(|h| h.cid));
            if notice.prev != tip {
                left.insert(stream.clone());
                continue;
            }
            plan.1.push((notice.clone(), *sequence));
        }
        order.retain(|s| !left.contains(s));
        let wanted: Vec<Cid> = order
            .iter()
            .flat_map(|s| plans[s].1.iter().map(|(n, _)| n.cid))
            .collect();
        let events: Vec<Result<Option<Block>>> =
            futures_util::future::join_all(wanted.iter().map(|c| self.blocks.get(c))).await;
        let mut decoded: HashMap<Cid, (Block, Event)> = HashMap::new();
        for (cid, block) in wanted.iter().zip(events) {
            if let Some(block) = block? {
                let event = Event::decode(&block)?;
                decoded.insert(*cid, (block, event));
            }
        }
        let payloads: Vec<Cid> = decoded.values().filter_map(|(_, e)| e.payload()).collect();
        let fetched: Vec<Result<Option<Block>>> =
            futures_util::future::join_all(payloads.iter().map(|c| self.blocks.get(c))).await;
        let mut payload_blocks: HashMap<Cid, Block> = HashMap::new();
        for (cid, block) in payloads.iter().zip(fetched) {
            if let Some(block) = block? {
                payload_blocks.insert(*cid, block);
            }
        }
        let mut commit = Commit::default();
        let mut marks = Vec::new();
        for stream in &order {
            let (head, planned) = &plans[stream];
            let mut height = head.map(|h| h.height + 1).unwrap_or(0);
            let mut blocks = Vec::new();
            let mut ok = true;
            for (notice, _) in planned {
                // Each event (and its salted payload) belongs to one stream: taken, not copied.
                let Some((block, event)) = decoded.remove(&notice.cid) else {
                    ok = false;
                    break;
                };
                let payload = event.payload().map(|p| payload_blocks.remove(&p));
                let fits = event.stream() == stream
                    && self.admit(&block, &event).is_ok()
                    && event.height() == height
                    && event.prev() == notice.prev
                    && event.event_type() != TOMBSTONE_TYPE
                    && !matches!(payload, Some(None));
                if !fits {
                    ok = false;
                    break;
                }
                blocks.push(block);
                if let Some(Some(p)) = payload {
                    blocks.push(p);
                }
                height += 1;
            }
            let Some((last, sequence)) = planned.last().filter(|_| ok) else {
                left.insert(stream.clone());
                continue;
            };
            let new = Head {
                cid: last.cid,
                height: height - 1,
            };
            commit.blocks.extend(blocks);
            commit.heads.push(HeadUpdate {
                stream: stream.clone(),
                expected: *head,
                new,
            });
            marks.push((
                stream.clone(),
                Published {
                    head: new,
                    sequence: *sequence,
                },
            ));
        }
        if !commit.heads.is_empty() {
            match store.commit(&commit) {
                Ok(()) => {
                    for (stream, mark) in marks {
                        store.set_published(&stream, mark)?;
                    }
                }
                // Another writer moved a head meanwhile: let pull sort each stream out.
                Err(Error::Conflict { .. }) => left.extend(marks.into_iter().map(|(s, _)| s)),
                Err(e) => return Err(e),
            }
        }
        let mut left: Vec<StreamId> = left.into_iter().collect();
        left.sort();
        Ok(left)
    }

    /// Brings the local copy of `stream` level with JetStream: fetches the events other
    /// writers published (from the subject's last message back, through the bucket, every CID
    /// re-derived) and commits them with the new head in one step. Local pending events that
    /// JetStream already has count as acknowledged; local pending events at heights JetStream
    /// filled with other events are withdrawn (removed from the store: never acknowledged,
    /// never linked). An acknowledged local event missing from JetStream is an error, and
    /// nothing is written.
    #[instrument(skip_all, fields(stream = %stream))]
    pub async fn pull<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        stream: &StreamId,
    ) -> Result<Pulled> {
        let mut out = Pulled::default();
        let Some((last, sequence)) = self.last_notice(stream).await? else {
            return Ok(out);
        };
        let mark = store.published(stream)?;
        if mark.map(|m| m.head.cid) == Some(last.cid) && mark.map(|m| m.sequence) == Some(sequence)
        {
            return Ok(out);
        }
        // Walk JetStream's chain back to the first event the store has.
        let mut fetched = Vec::new();
        let mut js_head = None;
        let mut join = None;
        let mut next = Some(last.cid);
        // Payloads masked by the tombstones met so far: they are not fetched (the bucket no
        // longer has them) and are removed here if this store still holds them.
        let mut masked: HashSet<Cid> = HashSet::new();
        while let Some(cid) = next.take() {
            if store.contains(&cid)? {
                join = Some(cid);
                break;
            }
            let block = self
                .blocks
                .get(&cid)
                .await?
                .ok_or(Error::MissingBlock(cid))?;
            let event = Event::decode(&block)?;
            if event.stream() != stream {
                return Err(Error::InvalidEvent(format!(
                    "event {cid} on the subject of {stream} belongs to {}",
                    event.stream()
                )));
            }
            self.admit(&block, &event)?;
            js_head.get_or_insert(Head {
                cid,
                height: event.height(),
            });
            if let Some(payload) = event.payload().filter(|p| !masked.contains(p)) {
                let block = self
                    .blocks
                    .get(&payload)
                    .await?
                    .ok_or(Error::MissingBlock(payload))?;
                if event.event_type() == TOMBSTONE_TYPE {
                    masked.extend(Tombstone::decode(&event, Some(&block))?.masks);
                }
                fetched.push(block);
            }
            next = event.prev();
            fetched.push(block);
            out.fetched += 1;
        }
        // The local events above the join point: JetStream does not have them.
        let local_head = store.head(stream)?;
        let mut local_only = Vec::new();
        let mut join_head = None;
        for event in crate::Ledger::new(store).walk_back(stream)? {
            let event = event?;
            if Some(event.cid()) == join {
                join_head = Some(Head {
                    cid: event.cid(),
                    height: event.height(),
                });
                break;
            }
            local_only.push((event.cid(), event.height(), event.payload()));
        }
        if let (Some(join), None) = (join, join_head) {
            return Err(Error::InvalidEvent(format!(
                "JetStream's chain of {stream} meets the local store at {join}, which is not on the local chain"
            )));
        }
        if let (Some(m), Some((cid, height, _))) = (mark, local_only.last()) {
            if *height <= m.head.height {
                return Err(Error::InvalidEvent(format!(
                    "event {cid} of {stream} was acknowledged by JetStream (height {height}), but JetStream's chain does not hold it"
                )));
            }
        }
        out.acknowledged = match (join_head, mark) {
            (None, _) => 0,
            (Some(j), None) => j.height + 1,
            (Some(j), Some(m)) => j.height.saturating_sub(m.head.height),
        };
        let new_mark_head = match js_head {
            // JetStream's last event is one of ours: everything up to it is acknowledged.
            None => join_head.expect("a walk that fetched nothing stopped at a stored event"),
            Some(head) => {
                store.commit(&Commit {
                    blocks: fetched,
                    heads: vec![HeadUpdate {
                        stream: stream.clone(),
                        expected: local_head,
                        new: head,
                    }],
                })?;
                for (cid, _, payload) in &local_only {
                    store.remove(cid)?;
                    if let Some(p) = payload {
                        store.remove(p)?;
                    }
                }
                out.withdrawn = local_only.iter().rev().map(|(c, _, _)| *c).collect();
                for m in &masked {
                    if store.remove(m)? {
                        tracing::debug!(cid = %m, %stream, "purged a block masked by a pulled tombstone");
                    }
                }
                head
            }
        };
        store.set_published(
            stream,
            Published {
                head: new_mark_head,
                sequence,
            },
        )?;
        tracing::debug!(
            fetched = out.fetched,
            withdrawn = out.withdrawn.len(),
            "pulled"
        );
        Ok(out)
    }

    /// The subject's last notice and its stream sequence; `None` when the subject is empty.
    pub(crate) async fn last_notice(&self, stream: &StreamId) -> Result<Option<(Notice, u64)>> {
        let subject = self.settings.subject(stream);
        let context = || format!("reading the last message on {subject}");
        retry(|| async {
            let js_stream = self
                .js
                .get_stream(&self.settings.stream)
                .await
                .map_err(|e| nats(context())(e.to_string()))?;
            match js_stream.get_last_raw_message_by_subject(&subject).await {
                Ok(m) => Ok(Some((Notice::decode(&m.payload)?, m.sequence))),
                Err(e)
                    if e.kind()
                        == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
                {
                    Ok(None)
                }
                Err(e) => Err(nats(context())(e.to_string())),
            }
        })
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
