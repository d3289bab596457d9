//! What a verification finds: [`Report`], its [`Finding`]s and their [`Problem`]s, and the
//! options it runs with.

use std::fmt;

use crate::{Author, Cid, StreamId};

/// Which part of the store to verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every block in the store and every stream.
    All,
    /// One stream: its chain, its payloads and its causes.
    Stream(StreamId),
}

/// How to verify.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// What to verify.
    pub scope: Scope,
    /// Check every signature alone with strict verification instead of in batches.
    pub exact: bool,
    /// The log whose positions identities and grants are judged at (`crate::identity`):
    /// `None`, the store's own; `Some`, another order of events, such as JetStream's shared
    /// log (`crate::jetstream::Backbone::shared_log`). An event not in it is judged as after
    /// every event of it.
    pub order: Option<Vec<crate::Cid>>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            scope: Scope::All,
            exact: false,
            order: None,
        }
    }
}

/// What was wrong with a block or a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The bytes stored under the CID hash to another CID.
    CidMismatch {
        /// The CID of the stored bytes.
        actual: Cid,
    },
    /// A store key that is not a ledger CID.
    CorruptKey {
        /// What was wrong.
        reason: String,
    },
    /// Not strict canonical DAG-CBOR, or not the shape of its block kind.
    Malformed {
        /// What was wrong.
        reason: String,
    },
    /// A block that is neither an event nor a payload.
    UnknownBlock,
    /// The signature does not verify.
    BadSignature,
    /// The signature's key is not in the trust set.
    UntrustedAuthor {
        /// The author.
        author: Author,
    },
    /// A linked block is not in the store.
    Missing {
        /// How it is linked: `head`, `prev`, `payload` or `cause`.
        role: &'static str,
        /// The block that links to it (`None` for a head).
        from: Option<Cid>,
    },
    /// A `prev` or head link leads to an event of another stream. Named by the event whose
    /// `prev` it is (by the head, when the head record points astray).
    WrongStream {
        /// The stream whose chain was walked.
        expected: StreamId,
        /// The stream the event claims.
        found: StreamId,
    },
    /// An event's height is not one more than its parent's. Named by the child.
    HeightGap {
        /// The height the chain position calls for.
        expected: u64,
        /// The height the event claims.
        found: u64,
    },
    /// The head record's height differs from the head block's height.
    HeadMismatch {
        /// Height recorded in the heads index.
        recorded: u64,
        /// Height in the block.
        found: u64,
    },
    /// A `causes` or `prev` link leads to a block that is not an event.
    NotAnEvent {
        /// How it is linked.
        role: &'static str,
        /// The linking event.
        from: Cid,
    },
    /// Another block claims the same stream and height as a chain member.
    Fork {
        /// The chain member at that height.
        chain: Cid,
    },
    /// An event beyond its stream's head, or of a stream with no head: the chain was cut.
    Truncated {
        /// The head's height (`None`: the stream has no head).
        head_height: Option<u64>,
    },
    /// An event that no chain reaches, at a height its chain does not cover.
    Unreachable,
    /// A tombstone that cannot be read, or that masks a block which is not the payload of an
    /// earlier event of its own chain (another stream's payload, a later event's, an event,
    /// another tombstone's payload).
    BadTombstone {
        /// What was wrong.
        reason: String,
    },
    /// A payload masked by a tombstone is still stored: the erasure was not finished
    /// (collect garbage, or erase again).
    Unpurged {
        /// The tombstone that masks it.
        tombstone: Cid,
    },
    /// An event signed by a key its identity had rotated out, or revoked, before the event's
    /// place in the log.
    RevokedKey {
        /// The identity.
        identity: StreamId,
        /// The key.
        key: Author,
        /// The log position from which the key no longer speaks for the identity.
        from: u64,
        /// Whether it was rotated out (else revoked).
        rotated: bool,
    },
    /// While a write policy is in force, an event no grant allowed at its place in the log.
    Unauthorized {
        /// The identity that signed it (`None`: a raw key, which holds no grant).
        identity: Option<StreamId>,
        /// The stream type.
        aggregate: String,
        /// The event type.
        event_type: String,
    },
    /// A policy event (in a `policy/*` stream) that breaks the rules.
    BadPolicyEvent {
        /// Which rule, in words.
        reason: String,
    },
    /// A key event (in a `key/*` stream) that breaks the rules of identities.
    BadKeyEvent {
        /// Which rule, in words.
        reason: String,
    },
    /// The store's log is shorter than a checkpoint it signed: events it had are gone (a
    /// truncation, or a rollback to an older copy). Named by no CID.
    TruncatedLog {
        /// The checkpoint's size.
        checkpoint: u64,
        /// The log's size now.
        log: u64,
    },
    /// The store's log, cut at a checkpoint's size, has another root: the history it signed
    /// was rewritten (or another log's checkpoint was given).
    RootMismatch {
        /// The checkpoint's size.
        size: u64,
    },
    #[cfg(feature = "jetstream")]
    /// Cross-check with JetStream: a stored head that JetStream does not have as the subject's
    /// last message (pending events, or a store ahead of the log).
    Unpublished {
        /// The height of the subject's last event in JetStream (`None`: no message at all).
        published: Option<u64>,
    },
    #[cfg(feature = "jetstream")]
    /// Cross-check with JetStream: a block of the local chain (an event, or a payload the
    /// store holds) that the shared bucket lacks, or holds with bytes that do not hash to its
    /// CID (`corrupt`).
    BucketBlock {
        /// Whether the bucket holds it damaged (rather than not at all).
        corrupt: bool,
    },
    #[cfg(feature = "jetstream")]
    /// Cross-check with JetStream: JetStream acknowledged the stream's events up to a height
    /// (the store's published mark) and no longer holds them: lost by the log, not pending.
    Lost {
        /// The height of the subject's last event in JetStream (`None`: no message at all).
        published: Option<u64>,
        /// The height up to which JetStream had acknowledged the stream.
        acknowledged: u64,
    },
    #[cfg(feature = "jetstream")]
    /// One server asked alone: its replica's last message on the stream's subject is an
    /// earlier event of the chain than JetStream acknowledged, or the subject is empty there.
    ReplicaLost {
        /// The server (its name).
        server: String,
        /// The height of the subject's last event on that replica (`None`: no message).
        kept: Option<u64>,
        /// The height up to which JetStream had acknowledged the stream.
        acknowledged: u64,
    },
    #[cfg(feature = "jetstream")]
    /// One server asked alone: its replica's last message on the stream's subject names an
    /// event that is not on the local chain (another history).
    ReplicaDiverged {
        /// The server (its name).
        server: String,
    },
    #[cfg(feature = "jetstream")]
    /// One server asked alone: its replica of the bucket lacks a block of an acknowledged
    /// event, or holds it damaged (`corrupt`).
    ReplicaBlock {
        /// The server (its name).
        server: String,
        /// Whether it holds the block damaged (rather than not at all).
        corrupt: bool,
    },
    #[cfg(feature = "jetstream")]
    /// Cross-check with JetStream: a message names an event that is not in the store.
    NotStored {
        /// The message's stream sequence.
        sequence: u64,
    },
    #[cfg(feature = "jetstream")]
    /// Cross-check with JetStream: a message does not match the event it names, or is out of
    /// order on its subject.
    MessageMismatch {
        /// The message's stream sequence.
        sequence: u64,
        /// What differs.
        reason: String,
    },
}

impl Problem {
    /// A stable machine-readable name for the check that failed.
    pub fn code(&self) -> &'static str {
        match self {
            Problem::CidMismatch { .. } => "cid-mismatch",
            Problem::CorruptKey { .. } => "corrupt-key",
            Problem::Malformed { .. } => "malformed",
            Problem::UnknownBlock => "unknown-block",
            Problem::BadSignature => "bad-signature",
            Problem::UntrustedAuthor { .. } => "untrusted-author",
            Problem::Missing { .. } => "missing-block",
            Problem::WrongStream { .. } => "wrong-stream",
            Problem::HeightGap { .. } => "height-gap",
            Problem::HeadMismatch { .. } => "head-mismatch",
            Problem::NotAnEvent { .. } => "not-an-event",
            Problem::Fork { .. } => "fork",
            Problem::Truncated { .. } => "truncated",
            Problem::Unreachable => "unreachable",
            Problem::BadTombstone { .. } => "bad-tombstone",
            Problem::Unpurged { .. } => "unpurged",
            Problem::RevokedKey { .. } => "revoked-key",
            Problem::BadKeyEvent { .. } => "bad-key-event",
            Problem::Unauthorized { .. } => "unauthorized",
            Problem::BadPolicyEvent { .. } => "bad-policy-event",
            Problem::TruncatedLog { .. } => "truncated-log",
            Problem::RootMismatch { .. } => "root-mismatch",
            #[cfg(feature = "jetstream")]
            Problem::Unpublished { .. } => "unpublished",
            #[cfg(feature = "jetstream")]
            Problem::Lost { .. } => "lost",
            #[cfg(feature = "jetstream")]
            Problem::BucketBlock { corrupt: false } => "bucket-missing",
            #[cfg(feature = "jetstream")]
            Problem::BucketBlock { corrupt: true } => "bucket-corrupt",
            #[cfg(feature = "jetstream")]
            Problem::ReplicaLost { .. } => "replica-lost",
            #[cfg(feature = "jetstream")]
            Problem::ReplicaDiverged { .. } => "replica-diverged",
            #[cfg(feature = "jetstream")]
            Problem::ReplicaBlock { corrupt: false, .. } => "replica-bucket-missing",
            #[cfg(feature = "jetstream")]
            Problem::ReplicaBlock { corrupt: true, .. } => "replica-bucket-corrupt",
            #[cfg(feature = "jetstream")]
            Problem::NotStored { .. } => "not-stored",
            #[cfg(feature = "jetstream")]
            Problem::MessageMismatch { .. } => "message-mismatch",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::CidMismatch { actual } => write!(f, "content hashes to {actual}"),
            Problem::CorruptKey { reason } => write!(f, "corrupt store key: {reason}"),
            Problem::Malformed { reason } => write!(f, "malformed block: {reason}"),
            Problem::UnknownBlock => write!(f, "neither an event nor a payload block"),
            Problem::BadSignature => write!(f, "signature does not verify"),
            Problem::UntrustedAuthor { author } => write!(f, "author {author} is not trusted here"),
            Problem::Missing {
                role,
                from: Some(from),
            } => write!(f, "{role} of {from} is missing"),
            Problem::Missing { role, from: None } => write!(f, "{role} block is missing"),
            Problem::WrongStream { expected, found } => {
                write!(f, "on the chain of {expected} but belongs to {found}")
            }
            Problem::HeightGap { expected, found } => {
                write!(f, "height {found} where {expected} was expected")
            }
            Problem::HeadMismatch { recorded, found } => {
                write!(
                    f,
                    "head record says height {recorded}, block has height {found}"
                )
            }
            Problem::NotAnEvent { role, from } => write!(f, "{role} of {from} is not an event"),
            Problem::Fork { chain } => {
                write!(f, "fork: {chain} holds the same stream height on the chain")
            }
            Problem::Truncated {
                head_height: Some(h),
            } => write!(f, "beyond the stream head at height {h}: chain truncated"),
            Problem::Truncated { head_height: None } => {
                write!(f, "its stream has no head: chain truncated")
            }
            Problem::Unreachable => write!(f, "not reachable from any stream head"),
            Problem::BadTombstone { reason } => write!(f, "bad tombstone: {reason}"),
            Problem::RevokedKey {
                identity,
                key,
                from,
                rotated,
            } => write!(
                f,
                "signed by {key}, which {identity} {} log position {from}, before this event",
                if *rotated { "rotated out at" } else { "revoked from" }
            ),
            Problem::BadKeyEvent { reason } => write!(f, "a key event that breaks the rules: {reason}"),
            Problem::Unauthorized {
                identity,
                aggregate,
                event_type,
            } => match identity {
                Some(id) => write!(
                    f,
                    "{id} holds no grant to write {event_type} to {aggregate} streams here"
                ),
                None => write!(
                    f,
                    "signed by a raw key, which holds no grant, while a write policy is in force ({event_type} to {aggregate})"
                ),
            },
            Problem::BadPolicyEvent { reason } => {
                write!(f, "a policy event that breaks the rules: {reason}")
            }
            Problem::TruncatedLog { checkpoint, log } => write!(
                f,
                "the log has {log} events, fewer than the {checkpoint} its checkpoint signed: events were removed"
            ),
            Problem::RootMismatch { size } => write!(
                f,
                "the log's first {size} events do not have the root its checkpoint signed: history was rewritten"
            ),
            Problem::Unpurged { tombstone } => write!(
                f,
                "masked by tombstone {tombstone} but still stored: erasure unfinished (erase again, or collect garbage)"
            ),
            #[cfg(feature = "jetstream")]
            Problem::Unpublished { published: Some(h) } => write!(
                f,
                "stored head not in JetStream (its subject ends at height {h}): pending (publish it)"
            ),
            #[cfg(feature = "jetstream")]
            Problem::Unpublished { published: None } => write!(
                f,
                "stored head not in JetStream (its subject has no message): pending (publish it)"
            ),
            #[cfg(feature = "jetstream")]
            Problem::BucketBlock { corrupt } => {
                let what = if *corrupt {
                    "holds this block damaged (its bytes do not hash to its CID)"
                } else {
                    "lacks this block"
                };
                write!(
                    f,
                    "JetStream's block bucket {what}: run `personctl sync --repair` to store it again"
                )
            }
            #[cfg(feature = "jetstream")]
            Problem::Lost {
                published,
                acknowledged,
            } => {
                let kept = match published {
                    Some(h) => format!("its subject ends at height {h}"),
                    None => "its subject has no message".into(),
                };
                write!(
                    f,
                    "JetStream acknowledged this stream up to height {acknowledged} and lost it ({kept}): run `personctl sync --repair` to publish it again"
                )
            }
            #[cfg(feature = "jetstream")]
            Problem::ReplicaLost {
                server,
                kept,
                acknowledged,
            } => {
                let kept = match kept {
                    Some(h) => format!("its subject ends at height {h} there"),
                    None => "its subject has no message there".into(),
                };
                write!(
                    f,
                    "server {server}'s replica lacks events JetStream acknowledged up to height {acknowledged} ({kept})"
                )
            }
            #[cfg(feature = "jetstream")]
            Problem::ReplicaDiverged { server } => write!(
                f,
                "server {server}'s replica ends the subject on this event, which is not on the chain: another history (left for a person to decide)"
            ),
            #[cfg(feature = "jetstream")]
            Problem::ReplicaBlock { server, corrupt } => {
                let what = if *corrupt {
                    "holds this block damaged (its bytes do not hash to its CID)"
                } else {
                    "lacks this block"
                };
                write!(f, "server {server}'s replica of the block bucket {what}")
            }
            #[cfg(feature = "jetstream")]
            Problem::NotStored { sequence } => {
                write!(f, "JetStream message {sequence} names an event the store lacks")
            }
            #[cfg(feature = "jetstream")]
            Problem::MessageMismatch { sequence, reason } => {
                write!(f, "JetStream message {sequence}: {reason}")
            }
        }
    }
}

/// One failed check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The failing block (for a missing block: the missing CID). `None` only for a corrupt key.
    pub cid: Option<Cid>,
    /// The stream concerned, when known.
    pub stream: Option<StreamId>,
    /// The height concerned, when known.
    pub height: Option<u64>,
    /// What was wrong.
    pub problem: Problem,
}

/// A payload that is absent because a tombstone masks it: not a failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Masked {
    /// The masked payload block.
    pub payload: Cid,
    /// The event that links it.
    pub event: Cid,
    /// That event's stream.
    pub stream: StreamId,
    /// That event's height.
    pub height: u64,
    /// The tombstone that masks it (later on the same chain).
    pub tombstone: Cid,
}

/// The outcome of a verification.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Event blocks decoded and checked.
    pub events: u64,
    /// Payload blocks decoded and checked.
    pub payloads: u64,
    /// Streams walked from their heads.
    pub streams: u64,
    /// Everything that failed, in a stable order (by stream, height, CID).
    pub findings: Vec<Finding>,
    /// Payloads absent because a tombstone masks them (by stream and height).
    pub masked: Vec<Masked>,
}

impl Report {
    /// Whether everything verified.
    pub fn is_ok(&self) -> bool {
        self.findings.is_empty()
    }
}
