//! The one error type of the ledger crate.
//!
//! Errors keep three kinds apart, because callers handle them differently:
//! a concurrency conflict ([`Error::Conflict`]: reload and retry), bad input or bad data
//! ([`Error::Codec`], [`Error::InvalidStream`], [`Error::CidMismatch`], ...: report it), and an
//! infrastructure failure ([`Error::Storage`], [`Error::Io`]: the environment is broken).

use crate::{Cid, StreamId};

/// Result alias used throughout the ledger crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the ledger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The stream's head moved since the caller read it. Nothing was written.
    #[error("conflict on stream {stream}: expected head {}, found {}", fmt_height(*.expected), fmt_height(*.actual))]
    Conflict {
        /// The stream that was appended to.
        stream: StreamId,
        /// The head height the caller expected (`None`: an empty stream).
        expected: Option<u64>,
        /// The head height actually found (`None`: an empty stream).
        actual: Option<u64>,
    },
    /// A JetStream publish lost a race: the subject's last message is no longer the one the
    /// writer built on. Nothing was stored in JetStream.
    #[error("conflict on {subject}: the subject moved past sequence {expected_sequence}; reload and retry")]
    SubjectMoved {
        /// The subject.
        subject: String,
        /// The subject sequence the writer expected to be last.
        expected_sequence: u64,
    },
    /// NATS or JetStream failed or refused (connection, stream set-up, an incompatible stream).
    #[error("{context}: {reason}")]
    Nats {
        /// What was being done.
        context: String,
        /// What went wrong.
        reason: String,
    },
    /// Bytes are not strict, canonical DAG-CBOR, or do not have the expected shape.
    #[error("{what}: {reason}")]
    Codec {
        /// What was being decoded or encoded (a CID or a block kind).
        what: String,
        /// What was wrong.
        reason: String,
    },
    /// The bytes stored under a CID hash to a different CID (invariant 4).
    #[error("block {expected}: content hashes to {actual}")]
    CidMismatch {
        /// The CID the block was requested or stored under.
        expected: Cid,
        /// The CID re-derived from the bytes.
        actual: Cid,
    },
    /// A CID string or byte sequence could not be parsed, or is not a ledger CID.
    #[error("invalid CID {input:?}: {reason}")]
    InvalidCid {
        /// The offending input.
        input: String,
        /// What was wrong.
        reason: String,
    },
    /// A stream type or id violates the naming rules.
    #[error("invalid stream {input:?}: {reason}")]
    InvalidStream {
        /// The offending input.
        input: String,
        /// What was wrong.
        reason: String,
    },
    /// A key (public or secret) could not be parsed or is not acceptable.
    #[error("invalid key {input:?}: {reason}")]
    InvalidKey {
        /// The offending input (never secret material).
        input: String,
        /// What was wrong.
        reason: String,
    },
    /// A block the operation needs is not in the store.
    #[error("block {0} is missing from the store")]
    MissingBlock(Cid),
    /// A CAR archive is unreadable, does not verify, or does not fit the store it is imported
    /// into. Nothing was stored.
    #[error("CAR archive{}: {reason}", .cid.map(|c| format!(" (block {c})")).unwrap_or_default())]
    Archive {
        /// The offending block, when one is to blame.
        cid: Option<Cid>,
        /// What was wrong.
        reason: String,
    },
    /// An append request is malformed (for example a payload without a salt, a bad event type).
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// An event from elsewhere (JetStream) was not adopted: its author is not trusted here, or
    /// its signature does not verify. Nothing of it was stored.
    #[error("event {cid} is not adopted: {reason} (author {author})")]
    Untrusted {
        /// The event.
        cid: Cid,
        /// Its author (`did:key`).
        author: String,
        /// Why, naming the event's stream.
        reason: String,
    },
    /// Another process holds the store for writing (one writer per store).
    #[error("the store at {} is in use by another process", .path.display())]
    InUse {
        /// The store's directory.
        path: std::path::PathBuf,
    },
    /// A write was asked of a store opened read-only.
    #[error("the store at {} is open read-only", .path.display())]
    ReadOnly {
        /// The store's directory.
        path: std::path::PathBuf,
    },
    /// An input is over one of the documented limits (`docs/FORMAT.md`, Limits).
    #[error("{what} is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// What is too large (a block, naming its CID or kind).
        what: String,
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The storage backend failed.
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn fmt_height(h: Option<u64>) -> String {
    match h {
        Some(h) => format!("at height {h}"),
        None => "empty stream".to_string(),
    }
}

impl Error {
    /// Whether this is a concurrency conflict (reload and retry).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. } | Error::SubjectMoved { .. })
    }

    pub(crate) fn codec(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Error::Codec {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}
