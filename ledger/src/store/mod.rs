//! Block storage: the [`BlockStore`] trait, its heads index, and two implementations.
//!
//! A store holds blocks by CID and, per stream, the head (CID and height of the newest event).
//! [`BlockStore::commit`] writes blocks and moves heads in one atomic step, with a
//! compare-and-swap on every head it moves: that is what keeps a chain from forking.
//!
//! - [`SledStore`]: the embedded default, durable, in a directory: block bytes and commit
//!   records in append-only segment files (the source of truth, from which the index is
//!   derived at open), the trust list in a file, JetStream published marks in sled.
//! - [`MemoryStore`]: in memory, for unit tests and examples.
//!
//! Invariant 1 (docs/ARCHITECTURE.md): `commit` is the only way a head moves.

mod memory;
mod recover;
mod segments;
mod sled;
mod trust_file;

pub(crate) use self::trust_file::write_atomically;

pub use self::memory::MemoryStore;
pub use self::recover::Repair;
pub use self::sled::SledStore;

use serde::{Deserialize, Serialize};

use crate::tlog::Log;
use crate::{Block, Cid, Result, StreamId};

/// The newest event of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The head event's CID.
    pub cid: Cid,
    /// The head event's height.
    pub height: u64,
}

/// Where a stream stands in an external log (JetStream): the newest event the log has
/// acknowledged, and the log's sequence number for it. Events above it on the local chain are
/// *pending*: stored durably here, not yet acknowledged there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// The acknowledged event.
    pub head: Head,
    /// The log's sequence number of that event's message.
    pub sequence: u64,
}

/// One head move inside a [`Commit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadUpdate {
    /// The stream whose head moves.
    pub stream: StreamId,
    /// The head the writer built on (`None`: the stream must not exist yet).
    pub expected: Option<Head>,
    /// The new head.
    pub new: Head,
}

/// Blocks to write and heads to move, atomically.
#[derive(Clone, Debug, Default)]
pub struct Commit {
    /// Blocks to store (storing a block twice is harmless).
    pub blocks: Vec<Block>,
    /// Heads to move; every `expected` must still be current or nothing is written.
    pub heads: Vec<HeadUpdate>,
}

/// Storage for blocks and stream heads.
///
/// Implementations must re-derive the CID of every block they hand out (invariant 4): [`Block`]
/// can only be built by hashing or by checking bytes against a CID, so `get` returns a checked
/// block or an [`crate::Error::CidMismatch`].
pub trait BlockStore: Send + Sync {
    /// The block stored under `cid`, checked against it; `None` if absent.
    fn get(&self, cid: &Cid) -> Result<Option<Block>>;
    /// Whether a block is stored under `cid` (its bytes are not checked).
    fn contains(&self, cid: &Cid) -> Result<bool>;
    /// Stores a block durably. Idempotent.
    fn put(&self, block: &Block) -> Result<()>;
    /// Removes a block durably; returns whether it was there.
    fn remove(&self, cid: &Cid) -> Result<bool>;
    /// The head of one stream.
    fn head(&self, stream: &StreamId) -> Result<Option<Head>>;
    /// Every stream's head, ordered by stream.
    fn heads(&self) -> Result<Vec<(StreamId, Head)>>;
    /// The heads of the streams of one aggregate type, ordered by stream.
    fn heads_of(&self, aggregate: &str) -> Result<Vec<(StreamId, Head)>> {
        Ok(self
            .heads()?
            .into_iter()
            .filter(|(s, _)| s.aggregate() == aggregate)
            .collect())
    }
    /// Writes `commit.blocks` and moves `commit.heads` atomically and durably. Fails with
    /// [`crate::Error::Conflict`] (writing nothing) when an expected head is no longer current.
    fn commit(&self, commit: &Commit) -> Result<()>;
    /// Visits every stored block. Each item is a checked block, or the error found while
    /// checking it ([`crate::Error::CidMismatch`], [`crate::Error::InvalidCid`] for a corrupt key).
    /// The visitor returns `false` to stop.
    fn scan(&self, visit: &mut dyn FnMut(Result<Block>) -> bool) -> Result<()>;
    /// Visits the store's log ([`crate::tlog::Log`]): every event block, in the order this
    /// store first stored it, as its commits fixed it; removing a block takes it out. The store
    /// keeps it with each commit, under its own lock (held while `visit` runs).
    fn with_log(&self, visit: &mut dyn FnMut(&mut Log)) -> Result<()>;
    /// Keeps a signed checkpoint of the log (`crate::tlog`) of `size` leaves, durably,
    /// replacing one of the same size (a copy with more cosignatures).
    fn put_checkpoint(&self, size: u64, note: &str) -> Result<()>;
    /// Every kept checkpoint, by size, ascending.
    fn checkpoints(&self) -> Result<Vec<(u64, String)>>;
    /// How far the stream is acknowledged by the external log; `None`: nothing yet.
    fn published(&self, stream: &StreamId) -> Result<Option<Published>>;
    /// Records how far the stream is acknowledged. Need not be flushed at once: a lost mark
    /// only means that acknowledged events are offered again, which the log deduplicates.
    fn set_published(&self, stream: &StreamId, published: Published) -> Result<()>;
    /// Forgets the stream's mark: every event of it is pending again (the log lost them all;
    /// `jetstream::Backbone::repair`).
    fn clear_published(&self, stream: &StreamId) -> Result<()>;
}

impl<S: BlockStore + ?Sized> BlockStore for &S {
    fn get(&self, cid: &Cid) -> Result<Option<Block>> {
        (**self).get(cid)
    }
    fn contains(&self, cid: &Cid) -> Result<bool> {
        (**self).contains(cid)
    }
    fn put(&self, block: &Block) -> Result<()> {
        (**self).put(block)
    }
    fn remove(&self, cid: &Cid) -> Result<bool> {
        (**self).remove(cid)
    }
    fn head(&self, stream: &StreamId) -> Result<Option<Head>> {
        (**self).head(stream)
    }
    fn heads(&self) -> Result<Vec<(StreamId, Head)>> {
        (**self).heads()
    }
    fn heads_of(&self, aggregate: &str) -> Result<Vec<(StreamId, Head)>> {
        (**self).heads_of(aggregate)
    }
    fn commit(&self, commit: &Commit) -> Result<()> {
        (**self).commit(commit)
    }
    fn scan(&self, visit: &mut dyn FnMut(Result<Block>) -> bool) -> Result<()> {
        (**self).scan(visit)
    }
    fn with_log(&self, visit: &mut dyn FnMut(&mut Log)) -> Result<()> {
        (**self).with_log(visit)
    }
    fn put_checkpoint(&self, size: u64, note: &str) -> Result<()> {
        (**self).put_checkpoint(size, note)
    }
    fn checkpoints(&self) -> Result<Vec<(u64, String)>> {
        (**self).checkpoints()
    }
    fn published(&self, stream: &StreamId) -> Result<Option<Published>> {
        (**self).published(stream)
    }
    fn set_published(&self, stream: &StreamId, published: Published) -> Result<()> {
        (**self).set_published(stream, published)
    }
    fn clear_published(&self, stream: &StreamId) -> Result<()> {
        (**self).clear_published(stream)
    }
}

/// Checks every head update of a commit against the current heads, as `current` reports them.
fn check_heads(
    commit: &Commit,
    mut current: impl FnMut(&StreamId) -> Result<Option<Head>>,
) -> Result<()> {
    for update in &commit.heads {
        let actual = current(&update.stream)?;
        if actual != update.expected {
            return Err(crate::Error::Conflict {
                stream: update.stream.clone(),
                expected: update.expected.map(|h| h.height),
                actual: actual.map(|h| h.height),
            });
        }
    }
    Ok(())
}
