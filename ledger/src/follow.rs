//! Read models fed from a shared log, domain-agnostic: the [`Projector`] a domain implements
//! (what one event does to its read models, and how a batch is committed with its checkpoint),
//! and what a follower reports. The follower itself, a JetStream consumer with batches,
//! retries and dead letters, is `jetstream::follow_log` (feature `jetstream`); a projector
//! never sees NATS.

use std::time::Duration;

use crate::{Cid, Event};

/// A read model that a follower keeps current. The follower hands it events that are stored
/// here, whose CIDs were re-derived, whose signature verified and whose author is trusted
/// (ARCHITECTURE.md, invariants 4 and 6); the projector decides what they do.
pub trait Projector {
    /// What one event does to the read models; a batch's updates are committed together.
    type Update;
    /// The projector's error. A failing [`Projector::prepare`] is retried, then dead-lettered.
    type Error: std::fmt::Display + From<crate::Error>;

    /// The log sequence of the last message applied (0: none). The follower resumes right
    /// after it, so the checkpoint must be written in the same transaction as the updates.
    fn checkpoint(&self) -> Result<u64, Self::Error>;

    /// What `event` does. Called in log order; may append (and publish) events of its own,
    /// which must be idempotent per event: after a crash before the commit, it runs again.
    fn prepare(&mut self, event: &Event) -> Result<Self::Update, Self::Error>;

    /// Writes a batch's updates (with the CIDs of their events) and moves the checkpoint to
    /// `last` (`None`: applied out of order, as a dead letter retried; the checkpoint stays),
    /// in one transaction.
    fn commit(
        &mut self,
        last: Option<u64>,
        updates: Vec<(Cid, Self::Update)>,
    ) -> Result<(), Self::Error>;

    /// The log is idle (or caught up): time for time-based work. Returns how many events it
    /// appended and published (their messages come next).
    fn idle(&mut self) -> Result<u64, Self::Error> {
        Ok(0)
    }

    /// Answers a query between batches (request and answer bodies are the projector's own);
    /// `None` when it answers none.
    fn answer(&mut self, request: &[u8]) -> Option<Vec<u8>> {
        let _ = request;
        None
    }
}

/// How a follower runs.
#[derive(Clone, Debug)]
pub struct FollowOptions {
    /// The aggregate (stream type) whose events the projector reads.
    pub aggregate: String,
    /// The follower's name: it starts each of its consumers' descriptions (the consumers
    /// themselves are ephemeral, one per follower) and is the queue group queries are
    /// answered in.
    pub consumer: String,
    /// Attempts at one message before it is dead-lettered.
    pub max_attempts: u32,
    /// The delay before the first retry; it doubles, up to 5 s.
    pub retry_delay: Duration,
    /// Stop once nothing is left to apply (after the idle work), instead of following on.
    pub until_caught_up: bool,
    /// How often [`Projector::idle`] runs while the log is quiet.
    pub idle_every: Duration,
    /// The subject queries arrive on (answered by [`Projector::answer`]); `None`: no queries.
    pub queries: Option<String>,
    /// Messages taken at once (their chains are pulled concurrently).
    pub batch: usize,
}

impl FollowOptions {
    /// Options for `aggregate` with `consumer`: 5 attempts from 100 ms, idle work every
    /// minute, batches of 256, no queries, following until stopped.
    pub fn new(aggregate: impl Into<String>, consumer: impl Into<String>) -> FollowOptions {
        FollowOptions {
            aggregate: aggregate.into(),
            consumer: consumer.into(),
            max_attempts: 5,
            retry_delay: Duration::from_millis(100),
            until_caught_up: false,
            idle_every: Duration::from_secs(60),
            queries: None,
            batch: 256,
        }
    }
}

/// What a follower did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Followed {
    /// Messages applied.
    pub applied: u64,
    /// Messages delivered again that the checkpoint had passed already.
    pub skipped: u64,
    /// Messages dead-lettered after their last attempt.
    pub dead_lettered: u64,
    /// Events the idle work appended.
    pub swept: u64,
    /// The checkpoint at the end.
    pub checkpoint: u64,
    /// Messages not applied yet at the end.
    pub lag: u64,
    /// Times the consumer was lost (deleted, or forgotten by the server) and recreated from
    /// the checkpoint.
    pub reopened: u64,
}

/// The delay before retry `attempt` (1-based): `base`, doubling, at most 5 s.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(Duration::from_secs(5))
}
