//! [`Ledger`]: appending signed events to streams and walking their chains.
//!
//! Appending builds each event on the stream's current head, signs it, and commits its blocks
//! and the new head in one atomic, durable step ([`crate::BlockStore::commit`]). A writer that
//! lost a race gets [`Error::Conflict`]; the chain never forks.

use std::collections::{HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use ipld_core::ipld::Ipld;
use rayon::prelude::*;
use tracing::instrument;
use uuid::Uuid;

use crate::store::{BlockStore, Commit, Head, HeadUpdate};
use crate::{Block, Cid, Error, Event, Payload, Result, Signer, StreamId, UnsignedEvent};

/// What the writer expects the stream's head to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// Append wherever the head is (retried internally on a race).
    Any,
    /// The stream must not exist yet: the event becomes its genesis.
    Empty,
    /// The head must be at this height: the event lands at `height + 1`.
    Height(u64),
}

/// An event to append: everything but the chain position and the signature.
#[derive(Clone, Debug)]
pub struct Draft {
    /// The stream to append to.
    pub stream: StreamId,
    /// The head the writer built its decision on.
    pub expected: Expected,
    /// Event type name, past tense.
    pub event_type: String,
    /// Schema version of the event type.
    pub schema: u64,
    /// The event data; stored in a salted payload block the event links to.
    pub payload: Option<Payload>,
    /// Causal parents in other streams (must already be stored).
    pub causes: Vec<Cid>,
    /// Correlation id; a fresh UUIDv7 when `None`.
    pub correlation: Option<Uuid>,
    /// Causation id; the correlation id when `None`.
    pub causation: Option<Uuid>,
    /// Event time in microseconds since the Unix epoch; now when `None`.
    pub time_us: Option<u64>,
}

impl Draft {
    /// A draft with no payload, no causes, `Expected::Any`, and generated ids and time.
    pub fn new(stream: StreamId, event_type: impl Into<String>, schema: u64) -> Draft {
        Draft {
            stream,
            expected: Expected::Any,
            event_type: event_type.into(),
            schema,
            payload: None,
            causes: Vec::new(),
            correlation: None,
            causation: None,
            time_us: None,
        }
    }

    /// Wraps data in a freshly salted payload.
    pub fn with_data(mut self, data: Ipld) -> Result<Draft> {
        self.payload = Some(Payload::new(data)?);
        Ok(self)
    }

    /// Wraps a value of any serde type in a freshly salted payload. Read it back with
    /// [`Payload::decode_as`].
    pub fn with_value<T: serde::Serialize>(self, value: &T) -> Result<Draft> {
        let data = ipld_core::serde::to_ipld(value)
            .map_err(|e| Error::InvalidEvent(format!("the payload value: {e}")))?;
        self.with_data(data)
    }

    /// Names causal parents in other streams.
    pub fn caused_by(mut self, causes: impl IntoIterator<Item = Cid>) -> Draft {
        self.causes.extend(causes);
        self
    }

    /// Sets the head the writer built its decision on.
    pub fn expecting(mut self, expected: Expected) -> Draft {
        self.expected = expected;
        self
    }
}

/// The result of one append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The stream appended to.
    pub stream: StreamId,
    /// The new event's CID.
    pub cid: Cid,
    /// The new event's height.
    pub height: u64,
    /// The new event's type name.
    pub event_type: String,
    /// The payload block's CID, if any.
    pub payload: Option<Cid>,
}

/// Current time in microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A ledger over a block store.
pub struct Ledger<S> {
    store: S,
    /// When set, every append is first checked against the write policies in force for this
    /// trust set ([`Ledger::enforce_policies`]).
    policies: Option<crate::TrustSet>,
    /// The rules [`Ledger::may_write`] resolved last, with the key and policy heads and the
    /// trust they were resolved for (key and policy events are never erased, and the log only
    /// grows, so they hold until those heads move).
    pub(crate) rules: std::sync::Mutex<Option<crate::policy::CachedRules>>,
}

/// One stream's part of a batch: results by draft index, blocks to write, the head move.
struct StreamBuild {
    results: Vec<(usize, Appended)>,
    blocks: Vec<Block>,
    update: HeadUpdate,
}

/// How many times an `Expected::Any` append is retried after losing a race.
const ANY_RETRIES: usize = 16;

impl<S: BlockStore> Ledger<S> {
    /// Wraps a store.
    pub fn new(store: S) -> Ledger<S> {
        Ledger {
            store,
            policies: None,
            rules: Default::default(),
        }
    }

    /// Refuses up front, from now on, any append that `verify` under `trust` would report as
    /// `unauthorized` (`crate::policy`): [`Error::Unauthorized`], nothing written.
    pub fn enforce_policies(mut self, trust: crate::TrustSet) -> Ledger<S> {
        self.policies = Some(trust);
        self
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Unwraps the store.
    pub fn into_store(self) -> S {
        self.store
    }

    /// Appends one event. See [`Ledger::append_batch`].
    pub fn append(&self, signer: &Signer, draft: Draft) -> Result<Appended> {
        let mut out = self.append_batch(signer, vec![draft])?;
        Ok(out.pop().expect("one draft gives one result"))
    }

    /// Appends many events in one atomic, durable write.
    ///
    /// Drafts for the same stream chain onto each other in order; the first draft of a stream
    /// is checked against the stored head, later ones against the batch's own progress. Either
    /// every event is appended or none is. Causes must name events already stored or earlier in
    /// the batch. Signing runs on all cores, one stream per task.
    #[instrument(skip_all, fields(events = drafts.len()))]
    pub fn append_batch(&self, signer: &Signer, drafts: Vec<Draft>) -> Result<Vec<Appended>> {
        if let Some(trust) = &self.policies {
            let writes: Vec<(&StreamId, &str)> = drafts
                .iter()
                .map(|d| (&d.stream, d.event_type.as_str()))
                .collect();
            if let Err((stream, problem)) = self.may_write(&signer.author(), &writes, trust)? {
                return Err(Error::Unauthorized {
                    stream,
                    reason: problem.to_string(),
                });
            }
        }
        let any_only = drafts.iter().all(|d| d.expected == Expected::Any);
        let mut attempt = 0;
        let started = std::time::Instant::now();
        loop {
            match self.try_append_batch(signer, &drafts) {
                Ok(appended) => {
                    metrics::counter!(crate::metrics::EVENTS_APPENDED)
                        .increment(appended.len() as u64);
                    metrics::histogram!(crate::metrics::APPEND_SECONDS)
                        .record(started.elapsed().as_secs_f64());
                    return Ok(appended);
                }
                Err(Error::Conflict { .. }) if any_only && attempt < ANY_RETRIES => {
                    attempt += 1;
                    tracing::debug!(
                        attempt,
                        "head moved during an Expected::Any append; retrying"
                    );
                }
                other => return other,
            }
        }
    }

    fn try_append_batch(&self, signer: &Signer, drafts: &[Draft]) -> Result<Vec<Appended>> {
        // Group draft indices by stream, keeping order within each stream.
        let mut order: Vec<StreamId> = Vec::new();
        let mut groups: HashMap<&StreamId, Vec<usize>> = HashMap::new();
        for (i, d) in drafts.iter().enumerate() {
            groups
                .entry(&d.stream)
                .or_insert_with(|| {
                    order.push(d.stream.clone());
                    Vec::new()
                })
                .push(i);
        }
        let mut starts = Vec::with_capacity(order.len());
        for stream in &order {
            starts.push(self.store.head(stream)?);
        }
        // The reserved type is checked as verify would check it, whoever writes it.
        for d in drafts
            .iter()
            .filter(|d| d.event_type == crate::TOMBSTONE_TYPE)
        {
            let chain: Vec<Event> = self.walk_back(&d.stream)?.collect::<Result<_>>()?;
            crate::Tombstone::check_draft(d, &chain)?;
        }
        let now = now_us();
        let build = |(stream, start): (&StreamId, &Option<Head>)| -> Result<StreamBuild> {
            let mut head = *start;
            let mut blocks = Vec::new();
            let mut results = Vec::new();
            for &i in &groups[stream] {
                let d = &drafts[i];
                check_expected(stream, d.expected, head)?;
                let payload_block = d.payload.as_ref().map(Payload::to_block).transpose()?;
                let correlation = d.correlation.unwrap_or_else(Uuid::now_v7);
                let unsigned = UnsignedEvent {
                    stream: stream.clone(),
                    height: head.map_or(0, |h| h.height + 1),
                    prev: head.map(|h| h.cid),
                    causes: d.causes.clone(),
                    event_type: d.event_type.clone(),
                    schema: d.schema,
                    payload: payload_block.as_ref().map(Block::cid),
                    time_us: d.time_us.unwrap_or(now),
                    correlation,
                    causation: d.causation.unwrap_or(correlation),
                };
                let height = unsigned.height;
                let (event, block) = unsigned.sign(signer)?;
                head = Some(Head {
                    cid: event.cid(),
                    height,
                });
                results.push((
                    i,
                    Appended {
                        stream: stream.clone(),
                        cid: event.cid(),
                        height,
                        event_type: d.event_type.clone(),
                        payload: event.payload(),
                    },
                ));
                blocks.extend(payload_block);
                blocks.push(block);
            }
            let new = head.expect("a group has at least one draft");
            let update = HeadUpdate {
                stream: stream.clone(),
                expected: *start,
                new,
            };
            Ok(StreamBuild {
                results,
                blocks,
                update,
            })
        };
        // One stream is built on the calling thread: handing a single task to the pool only
        // adds a round trip, which many concurrent single-event writers pay on every call.
        let built: Vec<Result<StreamBuild>> = if order.len() == 1 {
            order.iter().zip(&starts).map(build).collect()
        } else {
            order.par_iter().zip(starts.par_iter()).map(build).collect()
        };

        let mut commit = Commit::default();
        let mut out: Vec<Option<Appended>> = vec![None; drafts.len()];
        for item in built {
            let StreamBuild {
                results,
                blocks,
                update,
            } = item?;
            for (i, a) in results {
                out[i] = Some(a);
            }
            commit.blocks.extend(blocks);
            commit.heads.push(update);
        }
        self.check_causes(drafts, &commit)?;
        self.store.commit(&commit)?;
        tracing::debug!(
            events = drafts.len(),
            streams = commit.heads.len(),
            "appended"
        );
        Ok(out
            .into_iter()
            .map(|a| a.expect("every draft was built"))
            .collect())
    }

    /// Every cause must be an event stored already or written by this commit.
    fn check_causes(&self, drafts: &[Draft], commit: &Commit) -> Result<()> {
        let mut known: Option<HashSet<Cid>> = None;
        for d in drafts {
            for cause in &d.causes {
                let in_commit = known
                    .get_or_insert_with(|| commit.blocks.iter().map(Block::cid).collect())
                    .contains(cause);
                if !in_commit && !self.store.contains(cause)? {
                    return Err(Error::InvalidEvent(format!(
                        "cause {cause} of a {} event on {} is not in the store",
                        d.event_type, d.stream
                    )));
                }
            }
        }
        Ok(())
    }

    /// Reads and decodes one event (its CID is re-derived; the signature is not checked).
    pub fn event(&self, cid: &Cid) -> Result<Event> {
        let block = self.store.get(cid)?.ok_or(Error::MissingBlock(*cid))?;
        Event::decode(&block)
    }

    /// Reads and decodes one payload block; `None` when it is not stored.
    pub fn payload(&self, cid: &Cid) -> Result<Option<Payload>> {
        self.store
            .get(cid)?
            .map(|b| Payload::decode(&b))
            .transpose()
    }

    /// Walks a stream from its head back to genesis via `prev`.
    pub fn walk_back(&self, stream: &StreamId) -> Result<WalkBack<'_, S>> {
        let next = self.store.head(stream)?.map(|h| h.cid);
        Ok(WalkBack {
            ledger: self,
            stream: stream.clone(),
            next,
        })
    }

    /// The events of `stream` whose author `trust` does not accept, newest first: what a
    /// reader should mark (`verify` fails them as `untrusted-author` or `revoked-key`; see
    /// [`Ledger::judged`]).
    pub fn untrusted(&self, stream: &StreamId, trust: &crate::TrustSet) -> Result<Vec<Cid>> {
        Ok(self
            .judged(stream, trust)?
            .into_iter()
            .filter(|j| j.problem.is_some())
            .map(|j| j.cid)
            .collect())
    }

    /// The CIDs of a stream's events, genesis first. Memory is one CID per event.
    pub fn chain(&self, stream: &StreamId) -> Result<Vec<Cid>> {
        let mut cids = Vec::new();
        for event in self.walk_back(stream)? {
            cids.push(event?.cid());
        }
        cids.reverse();
        Ok(cids)
    }

    /// Walks a stream from genesis to head, loading one block at a time.
    pub fn walk_forward(
        &self,
        stream: &StreamId,
    ) -> Result<impl Iterator<Item = Result<Event>> + '_> {
        let cids = self.chain(stream)?;
        Ok(cids.into_iter().map(move |cid| self.event(&cid)))
    }
}

fn check_expected(stream: &StreamId, expected: Expected, head: Option<Head>) -> Result<()> {
    let actual = head.map(|h| h.height);
    let ok = match expected {
        Expected::Any => true,
        Expected::Empty => actual.is_none(),
        Expected::Height(h) => actual == Some(h),
    };
    if ok {
        return Ok(());
    }
    Err(Error::Conflict {
        stream: stream.clone(),
        expected: match expected {
            Expected::Height(h) => Some(h),
            _ => None,
        },
        actual,
    })
}

/// Iterator from a stream's head back to genesis; see [`Ledger::walk_back`].
pub struct WalkBack<'a, S> {
    ledger: &'a Ledger<S>,
    stream: StreamId,
    next: Option<Cid>,
}

impl<S: BlockStore> Iterator for WalkBack<'_, S> {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Result<Event>> {
        let cid = self.next.take()?;
        let event = match self.ledger.event(&cid) {
            Ok(e) => e,
            Err(e) => return Some(Err(e)),
        };
        if event.stream() != &self.stream {
            return Some(Err(Error::InvalidEvent(format!(
                "event {cid} on the chain of {} belongs to {}",
                self.stream,
                event.stream()
            ))));
        }
        self.next = event.prev();
        Some(Ok(event))
    }
}
