//! The write path beyond the local store: a [`Publisher`] carries a store's pending events to a
//! shared log (JetStream, with the `jetstream` feature: `jetstream::Link`), and the ledger's
//! write operations that must settle there live here, so that every domain gets them alike:
//!
//! - [`Ledger::append_decided`]: decide on the newest state, store, publish, and decide again
//!   when the events lost a race (a bounded [`Retry`]); [`Ledger::append_published`] does the
//!   same for one ready-made draft;
//! - [`Ledger::erase`]: the erasure sequence (tombstone committed and acknowledged, then the
//!   masked blocks removed here, then from the shared block store);
//! - [`Ledger::collect_garbage`]: finishing erasures that a crash interrupted.
//!
//! Nothing here names NATS: the embedded store alone passes no publisher (`None`), and the
//! same calls then do the local half.
//!
//! Invariants 3 and 7: the erasure order, and writes that stay pending when the log is away.

use std::collections::HashSet;

use crate::store::BlockStore;
#[cfg(doc)]
use crate::Tombstone;
use crate::{Appended, Cid, Error, Expected, Ledger, Result, Signer, StreamId};

/// A shared log that a store's pending events are published to (ARCHITECTURE.md, invariants 2
/// and 7). An event is *pending* from its local commit until the log acknowledges it.
pub trait Publisher {
    /// Publishes the pending events of `streams` (every stream: `None`). Events that lost a
    /// race (the log holds other events at their heights) are withdrawn from `store`, which is
    /// brought level with the log, and named in [`PublishReport::conflicts`]; events the log
    /// did not acknowledge stay pending and are named in [`PublishReport::failures`].
    fn publish(
        &self,
        store: &dyn BlockStore,
        streams: Option<&[StreamId]>,
    ) -> Result<PublishReport>;

    /// Brings `stream` level with the log (before a decision is made on it); returns how many
    /// events were fetched.
    fn pull(&self, store: &dyn BlockStore, stream: &StreamId) -> Result<u64>;

    /// Removes `cids` (blocks a tombstone masks) from the log's block store; returns how many
    /// of them it still held.
    fn erase_blocks(&self, cids: &[Cid]) -> Result<u64>;
}

/// What publishing did.
#[derive(Debug, Default)]
pub struct PublishReport {
    /// Events the log acknowledged (as new messages).
    pub published: u64,
    /// Events the log had already (a re-publish after a crash or a lost acknowledgement).
    pub duplicates: u64,
    /// Events fetched from the log that other writers published.
    pub fetched: u64,
    /// Streams whose pending events lost a race: the events named were withdrawn from the
    /// local store (never acknowledged), and the local head now follows the log.
    pub conflicts: Vec<(StreamId, Vec<Cid>)>,
    /// Streams whose pending events could not be published (server unreachable, timeouts);
    /// they stay pending for the next publish.
    pub failures: Vec<(StreamId, Error)>,
}

impl PublishReport {
    /// Every pending event was acknowledged or withdrawn after a lost race.
    pub fn all_settled(&self) -> bool {
        self.failures.is_empty()
    }

    /// The report, or [`Error::NotPublished`] when some events stay pending.
    pub fn settled(self) -> Result<PublishReport> {
        match self.failures.first() {
            None => Ok(self),
            Some((stream, error)) => Err(Error::NotPublished {
                streams: self.failures.len(),
                first: stream.clone(),
                reason: error.to_string(),
            }),
        }
    }

    /// Every event withdrawn after a lost race.
    pub fn withdrawn(&self) -> HashSet<Cid> {
        self.conflicts
            .iter()
            .flat_map(|(_, cids)| cids.iter().copied())
            .collect()
    }
}

/// How often a write that lost a race on the log is decided (or appended) again on the newest
/// state before it gives up with [`Error::StillLosing`]. Each lost round means another writer's
/// event was acknowledged, so the log as a whole always progresses; the bound only turns a
/// livelock into an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Rounds of publishing, the first included.
    pub rounds: u32,
}

impl Default for Retry {
    /// 10,000 rounds: far above the contention measured with many racing writers (a few
    /// rounds), and reached in well under a minute against a local server.
    fn default() -> Retry {
        Retry { rounds: 10_000 }
    }
}

/// What an erasure did ([`Ledger::erase`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Erased {
    /// The tombstone appended (and acknowledged, with a publisher).
    pub tombstone: Appended,
    /// How many payloads the tombstone masks.
    pub masked: usize,
    /// Blocks removed from the local store (this erasure's, and any an interrupted one left).
    pub removed: Vec<Cid>,
    /// Blocks removed from the log's block store (`None`: no publisher).
    pub erased_remote: Option<u64>,
}

/// What [`Ledger::collect_garbage`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Collected {
    /// Masked blocks removed from the local store.
    pub removed: Vec<Cid>,
    /// Masked blocks removed from the log's block store (`None`: no publisher).
    pub erased_remote: Option<u64>,
}

impl<S: BlockStore> Ledger<S> {
    /// Appends `draft` and, with a publisher, publishes it. When the event loses a race on the
    /// log (withdrawn, the stream now level with the log), a draft that expects a height fails
    /// with [`Error::Conflict`]; one that expects [`Expected::Any`] is appended again on the
    /// new head, at most `retry.rounds` times. The stream is pulled first, so the draft's
    /// expectation is checked against the log's head. When the log does not acknowledge, the
    /// event stays stored and pending: [`Error::NotPublished`].
    pub fn append_published(
        &self,
        signer: &Signer,
        draft: crate::Draft,
        publisher: Option<&dyn Publisher>,
        retry: Retry,
    ) -> Result<Appended> {
        let Some(publisher) = publisher else {
            return self.append(signer, draft);
        };
        let store: &dyn BlockStore = self.store();
        publisher.pull(store, &draft.stream)?;
        for round in 0..retry.rounds.max(1) {
            let appended = self.append(signer, draft.clone())?;
            let report = publisher
                .publish(store, Some(std::slice::from_ref(&appended.stream)))?
                .settled()?;
            if !report.withdrawn().contains(&appended.cid) {
                return Ok(appended);
            }
            if draft.expected != Expected::Any {
                return Err(Error::Conflict {
                    stream: appended.stream.clone(),
                    expected: appended.height.checked_sub(1),
                    actual: self.store().head(&appended.stream)?.map(|h| h.height),
                });
            }
            tracing::debug!(round, stream = %appended.stream, "lost a race on the log; appending again");
        }
        Err(Error::StillLosing {
            stream: draft.stream,
            rounds: retry.rounds,
        })
    }

    /// The write path of a domain with a shared log: brings `stream` level with the log,
    /// calls `decide` (which loads the state from this ledger and returns the drafts of its
    /// events, pinned to the head it read, or none), appends them in one commit and publishes
    /// them. When they lose a race (withdrawn, the stream now level with the winner), `decide`
    /// runs again on the new state, at most `retry.rounds` times ([`Error::StillLosing`]).
    /// Drafts of several streams that are accepted only in part fail with
    /// [`Error::Withdrawn`]. Without a publisher it decides and appends once. Returns what was
    /// appended and how many rounds were lost.
    pub fn append_decided<E: From<Error>>(
        &self,
        signer: &Signer,
        stream: &StreamId,
        publisher: Option<&dyn Publisher>,
        retry: Retry,
        mut decide: impl FnMut(&Ledger<S>) -> std::result::Result<Vec<crate::Draft>, E>,
    ) -> std::result::Result<(Vec<Appended>, u32), E> {
        let store: &dyn BlockStore = self.store();
        if let Some(p) = publisher {
            p.pull(store, stream)?;
        }
        for round in 0..retry.rounds.max(1) {
            let drafts = decide(self)?;
            if drafts.is_empty() {
                return Ok((Vec::new(), round));
            }
            let appended = self.append_batch(signer, drafts)?;
            let Some(p) = publisher else {
                return Ok((appended, round));
            };
            let streams: Vec<StreamId> = appended.iter().map(|a| a.stream.clone()).collect();
            let withdrawn = p.publish(store, Some(&streams))?.settled()?.withdrawn();
            let lost: Vec<&Appended> = appended
                .iter()
                .filter(|a| withdrawn.contains(&a.cid))
                .collect();
            match lost.first() {
                None => return Ok((appended, round)),
                Some(first) if lost.len() < appended.len() => {
                    return Err(Error::Withdrawn {
                        stream: first.stream.clone(),
                        cid: first.cid,
                    }
                    .into())
                }
                Some(_) => {
                    tracing::debug!(round, %stream, "lost a race on the log; deciding again");
                }
            }
        }
        Err(Error::StillLosing {
            stream: stream.clone(),
            rounds: retry.rounds,
        }
        .into())
    }

    /// Erases data for good, in the only safe order: `tombstone` (a draft of a
    /// [`crate::TOMBSTONE_TYPE`] event, for example from [`Tombstone::draft`]) is appended
    /// (with a publisher: acknowledged by the log), then every block a tombstone of its stream
    /// masks is removed from the local store, then from the log's block store. A tombstone
    /// that loses a race is withdrawn and the erasure fails with [`Error::Withdrawn`], nothing
    /// removed; one the log did not acknowledge stays pending ([`Error::NotPublished`]),
    /// nothing removed. A crash between the steps leaves masked blocks still stored (never
    /// read again, reported by `verify` as unpurged): erasing again, or
    /// [`Ledger::collect_garbage`], finishes the work. Decide the tombstone on a stream that
    /// is level with the log ([`Publisher::pull`]) and pin it with its `expected` head.
    pub fn erase(
        &self,
        signer: &Signer,
        tombstone: crate::Draft,
        publisher: Option<&dyn Publisher>,
    ) -> Result<Erased> {
        if tombstone.event_type != crate::TOMBSTONE_TYPE {
            return Err(Error::InvalidEvent(format!(
                "an erasure appends a {} event, not {:?}",
                crate::TOMBSTONE_TYPE,
                tombstone.event_type
            )));
        }
        let store: &dyn BlockStore = self.store();
        let stream = tombstone.stream.clone();
        let appended = self.append(signer, tombstone)?;
        if let Some(publisher) = publisher {
            let report = publisher
                .publish(store, Some(std::slice::from_ref(&stream)))?
                .settled()?;
            if report.withdrawn().contains(&appended.cid) {
                return Err(Error::Withdrawn {
                    stream,
                    cid: appended.cid,
                });
            }
        }
        // The newest tombstone of its chain: every payload it lists is masked by it.
        let masked =
            crate::Tombstone::of(store, &self.event(&appended.cid)?)?.map_or(0, |t| t.masks.len());
        let collected = self.collect_garbage(Some(std::slice::from_ref(&stream)), publisher)?;
        Ok(Erased {
            tombstone: appended,
            masked,
            removed: collected.removed,
            erased_remote: collected.erased_remote,
        })
    }

    /// Removes every block a tombstone of `streams` (every stream: `None`) masks that is
    /// still stored here and, with a publisher, in the log's block store: the last step of an
    /// erasure, and what finishes one a crash interrupted.
    pub fn collect_garbage(
        &self,
        streams: Option<&[StreamId]>,
        publisher: Option<&dyn Publisher>,
    ) -> Result<Collected> {
        let removed = self.purge_masked(streams)?;
        let erased_remote = match publisher {
            Some(p) => {
                let streams = match streams {
                    Some(s) => s.to_vec(),
                    None => self.store().heads()?.into_iter().map(|(s, _)| s).collect(),
                };
                let mut masked = Vec::new();
                for stream in &streams {
                    masked.extend(self.masks(stream)?.into_keys());
                }
                Some(p.erase_blocks(&sorted(masked))?)
            }
            None => None,
        };
        Ok(Collected {
            removed,
            erased_remote,
        })
    }
}

fn sorted(cids: impl IntoIterator<Item = Cid>) -> Vec<Cid> {
    let mut cids: Vec<Cid> = cids.into_iter().collect();
    cids.sort();
    cids.dedup();
    cids
}
