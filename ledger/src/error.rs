//! The one error type of the ledger crate.
//!
//! Errors keep three kinds apart, because callers handle them differently:
//! a concurrency conflict ([`Error::Conflict`], [`Error::Withdrawn`]: reload and retry), bad input or bad data
//! ([`Error::Codec`], [`Error::InvalidStream`], [`Error::CidMismatch`], ...: report it), and an
//! infrastructure failure ([`Error::Storage`], [`Error::Io`]: the environment is broken).
//!
//! Invariant 14: typed errors for what callers tell apart.

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
    #[cfg(feature = "jetstream")]
    #[error("conflict on {subject}: the subject moved past sequence {expected_sequence}; reload and retry")]
    SubjectMoved {
        /// The subject.
        subject: String,
        /// The subject sequence the writer expected to be last.
        expected_sequence: u64,
    },
    /// NATS or JetStream failed or refused (connection, stream set-up, an incompatible stream).
    #[cfg(feature = "jetstream")]
    #[error("{context}: {reason}")]
    Nats {
        /// What was being done.
        context: String,
        /// What went wrong.
        reason: String,
    },
    /// No NATS server could be reached at the URL (after the connect retries).
    #[cfg(feature = "jetstream")]
    #[error("connecting to NATS at {url}: {reason}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What went wrong on the last try.
        reason: String,
    },
    /// A NATS URL that does not parse.
    #[cfg(feature = "jetstream")]
    #[error("the NATS URL {input:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        input: String,
        /// What is wrong with it.
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
    /// An input (a CAR archive being imported) does not verify: the whole verdict, so that
    /// the caller can print every finding without verifying again. Nothing was stored.
    #[error("does not verify: {}", first_finding(.0))]
    NotVerified(Box<crate::Report>),
    /// A Merkle proof, a checkpoint or a signed note does not check out.
    #[error("{reason}")]
    BadProof {
        /// What failed, naming it.
        reason: String,
    },
    /// An append request is malformed (for example a payload without a salt, a bad event type).
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// An event from elsewhere (JetStream) was not adopted: its signature does not verify, or
    /// `verify` would fail its author or grant. Nothing of it was stored.
    #[error("event {cid} is not adopted: {reason} (author {author})")]
    Untrusted {
        /// The event.
        cid: Cid,
        /// Its author (`did:key`).
        author: String,
        /// The check it fails, as `verify` names it (`untrusted-author`, `revoked-key`,
        /// `unauthorized`, `bad-signature`).
        check: &'static str,
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
    /// The shared log did not acknowledge some pending events ([`crate::Publisher`]); they
    /// stay stored here, pending, and the next publish sends them.
    #[error("the shared log did not acknowledge the pending events of {streams} stream(s), for example {first}: {reason}; they are stored here and kept pending")]
    NotPublished {
        /// How many streams kept pending events.
        streams: usize,
        /// The first of them.
        first: StreamId,
        /// Why, for that stream.
        reason: String,
    },
    /// An append that the write policies in force do not allow (`crate::policy`); nothing was
    /// written.
    #[error("not allowed to write to {stream}: {reason}")]
    Unauthorized {
        /// The stream.
        stream: StreamId,
        /// Why, as `verify` would say it.
        reason: String,
    },
    /// A checkpoint was asked for while events wait for the shared log's acknowledgement: a lost
    /// race could still withdraw one, which would leave a hole in a signed log.
    #[error("{streams} stream(s) hold events the shared log has not acknowledged, for example {first}; a lost race could still withdraw them, so no checkpoint covers them yet (publish them first: `personctl --nats URL sync`)")]
    Unsettled {
        /// How many streams hold pending events.
        streams: usize,
        /// The first of them.
        first: StreamId,
    },
    /// An event lost a race on the shared log: another writer's event holds its height there.
    /// It was withdrawn (removed here, never acknowledged) and the stream follows the log.
    #[error("event {cid} on {stream} lost a race on the shared log (another writer appended first) and was withdrawn")]
    Withdrawn {
        /// The stream.
        stream: StreamId,
        /// The withdrawn event.
        cid: Cid,
    },
    /// A write kept losing races on the shared log for [`crate::Retry::rounds`] rounds.
    #[error(
        "{stream}: still losing races on the shared log after {rounds} rounds of deciding again"
    )]
    StillLosing {
        /// The stream written to.
        stream: StreamId,
        /// The rounds tried.
        rounds: u32,
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

fn first_finding(report: &crate::Report) -> String {
    let Some(f) = report.findings.first() else {
        return "no finding".into();
    };
    let place = match (&f.stream, f.height) {
        (Some(s), Some(h)) => format!(" ({s} at height {h})"),
        _ => String::new(),
    };
    let cid = f.cid.map(|c| format!("block {c}")).unwrap_or_default();
    format!(
        "{cid}{place}: {} [{}]; {} failures in all",
        f.problem,
        f.problem.code(),
        report.findings.len()
    )
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
        match self {
            Error::Conflict { .. } | Error::Withdrawn { .. } | Error::StillLosing { .. } => true,
            #[cfg(feature = "jetstream")]
            Error::SubjectMoved { .. } => true,
            _ => false,
        }
    }

    /// Whether the shared log could not be reached or did not acknowledge: the write is stored
    /// here and pending, and working on locally is safe (a later publish settles it).
    pub fn is_offline(&self) -> bool {
        match self {
            Error::NotPublished { .. } => true,
            #[cfg(feature = "jetstream")]
            Error::Nats { .. } | Error::Unreachable { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn codec(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Error::Codec {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}
