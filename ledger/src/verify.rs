//! Verification: auditing a store's chains, producing a [`Report`] of [`Finding`]s.
//!
//! For every event block in scope it checks: the CID re-derives from the bytes, the encoding is
//! strict canonical DAG-CBOR of the right shape, the signature is valid (strict Ed25519) and its
//! author trusted; along every chain from its head: heights are contiguous, `prev` links the
//! previous height of the same stream, genesis has no parent, the head record matches its block,
//! every payload and every `causes` link resolves, unless a tombstone later on the same chain
//! masks it (then it is reported as [`Masked`], and a masked block still stored is a finding:
//! the erasure was not finished); every tombstone masks only payloads of earlier events of its
//! own chain. With [`Scope::All`] the whole store is scanned,
//! so it also finds forks (two blocks claiming one stream height) and events beyond a head
//! (a truncated chain).
//!
//! Scanning and signature checks run on every core (rayon); signatures are checked in batches.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;
use tracing::instrument;

use crate::keys::{verify_many, SigCheck, VERIFY_BATCH};
use crate::store::{BlockStore, Head};
use crate::{
    event::signing_message, Author, Block, BlockKind, Cid, Error, Event, Payload, Result,
    Signature, StreamId, Tombstone, TrustSet, TOMBSTONE_TYPE,
};

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
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            scope: Scope::All,
            exact: false,
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
    #[cfg(feature = "jetstream")]
    /// Cross-check with JetStream: a stored head that JetStream does not have as the subject's
    /// last message (pending events, or a store ahead of the log).
    Unpublished {
        /// The height of the subject's last event in JetStream (`None`: no message at all).
        published: Option<u64>,
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
            #[cfg(feature = "jetstream")]
            Problem::Unpublished { .. } => "unpublished",
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
            Problem::UntrustedAuthor { author } => write!(f, "author {author} is not trusted"),
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

/// What verification keeps of an event: its links, not its bytes.
struct Summary {
    stream: StreamId,
    height: u64,
    prev: Option<Cid>,
    payload: Option<Cid>,
    causes: Vec<Cid>,
    /// The schema of a tombstone (`None`: not a tombstone).
    tombstone: Option<u64>,
}

/// Everything gathered from the blocks before the chains are walked.
#[derive(Default)]
struct Gathered {
    events: HashMap<Cid, Summary>,
    payloads: HashSet<Cid>,
    /// Blocks present but unusable (mismatched, malformed, unknown); already reported.
    broken: HashSet<Cid>,
    findings: Vec<Finding>,
    masked: Vec<Masked>,
    /// The masks of every readable tombstone, by the tombstone's CID.
    tombstones: HashMap<Cid, Vec<Cid>>,
    event_count: u64,
    payload_count: u64,
}

/// Blocks are processed in chunks of this many, in parallel within a chunk.
const CHUNK: usize = 8192;
/// Signature batches waiting on the pool before the reader stops to help check them (bounds
/// the memory held by signed messages waiting for their check).
const MAX_PENDING: usize = 8;

/// Verifies `store` against `trust`. `progress` is called with the number of events processed.
///
/// Blocks are read, re-hashed and decoded in chunks while the signatures of earlier chunks are
/// checked on the rayon pool, so reading and signature checks overlap.
#[instrument(skip_all, fields(scope = ?options.scope))]
pub fn verify<S: BlockStore + ?Sized>(
    store: &S,
    trust: &TrustSet,
    options: &VerifyOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Report> {
    let all_heads = store.heads()?;
    let mut g = Gathered::default();
    // Every event of every chain is about to be summarised: size the map once.
    let expected: u64 = all_heads.iter().map(|(_, h)| h.height + 1).sum();
    g.events
        .reserve(usize::try_from(expected).unwrap_or(0).min(1 << 26));
    let failed = Mutex::new(Vec::new());
    let pending = AtomicUsize::new(0);
    let heads = rayon::scope(|pool| {
        let mut checker = Checker {
            pool,
            pending: &pending,
            failed: &failed,
            exact: options.exact,
            queued: Vec::new(),
        };
        let heads = g.gather(
            store,
            &all_heads,
            trust,
            &options.scope,
            &mut checker,
            progress,
        );
        checker.flush();
        heads
    })?;
    g.bad_signatures(failed.into_inner().unwrap_or_else(|e| e.into_inner()));
    let mut report = Report {
        streams: heads.len() as u64,
        ..Report::default()
    };
    g.read_tombstones(store)?;
    let chain = g.walk_chains(&heads);
    if options.scope == Scope::All {
        g.find_strays(&chain, &all_heads);
    }
    report.events = g.event_count;
    report.payloads = g.payload_count;
    g.findings.sort_by(|a, b| {
        (&a.stream, a.height, a.cid, a.problem.code()).cmp(&(
            &b.stream,
            b.height,
            b.cid,
            b.problem.code(),
        ))
    });
    g.findings.dedup();
    report.findings = g.findings;
    g.masked
        .sort_by(|a, b| (&a.stream, a.height).cmp(&(&b.stream, b.height)));
    report.masked = g.masked;
    tracing::debug!(
        events = report.events,
        findings = report.findings.len(),
        "verified"
    );
    Ok(report)
}

/// What a signature check needs of an event.
struct SigJob {
    cid: Cid,
    message: Vec<u8>,
    signature: Signature,
    author: Author,
}

/// The result of looking at one block on its own.
// Events and payloads come in equal numbers; boxing the event variant would add an allocation
// per event for no gain.
#[allow(clippy::large_enum_variant)]
enum Looked {
    Event { summary: Summary, job: SigJob },
    Payload,
    Bad(Problem),
}

/// Checks signatures on the rayon pool while the caller goes on reading: jobs are queued,
/// and every full batch is spawned as one task. The caller helps with queued tasks when more
/// than [`MAX_PENDING`] are waiting. CIDs whose signature fails end up in `failed`.
struct Checker<'a, 's> {
    pool: &'a rayon::Scope<'s>,
    pending: &'s AtomicUsize,
    failed: &'s Mutex<Vec<Cid>>,
    exact: bool,
    queued: Vec<SigJob>,
}

impl Checker<'_, '_> {
    fn queue(&mut self, jobs: Vec<SigJob>) {
        for job in jobs {
            self.queued.push(job);
            if self.queued.len() == VERIFY_BATCH {
                let batch = std::mem::replace(&mut self.queued, Vec::with_capacity(VERIFY_BATCH));
                self.spawn(batch);
            }
        }
    }

    /// Spawns whatever is queued, however few.
    fn flush(&mut self) {
        let batch = std::mem::take(&mut self.queued);
        if !batch.is_empty() {
            self.spawn(batch);
        }
    }

    fn spawn(&self, batch: Vec<SigJob>) {
        while self.pending.load(Ordering::Acquire) >= MAX_PENDING {
            if rayon::yield_now() != Some(rayon::Yield::Executed) {
                std::thread::yield_now();
            }
        }
        self.pending.fetch_add(1, Ordering::AcqRel);
        let (pending, failed, exact) = (self.pending, self.failed, self.exact);
        self.pool.spawn(move |_| {
            let bad = check_signatures(&batch, exact);
            if !bad.is_empty() {
                failed.lock().unwrap_or_else(|e| e.into_inner()).extend(bad);
            }
            pending.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// The CIDs of the jobs whose signature does not verify.
fn check_signatures(jobs: &[SigJob], exact: bool) -> Vec<Cid> {
    let verdicts: Vec<bool> = if exact {
        jobs.iter()
            .map(|j| j.author.verify(&j.message, &j.signature))
            .collect()
    } else {
        let checks: Vec<SigCheck<'_>> = jobs
            .iter()
            .map(|j| SigCheck {
                message: &j.message,
                signature: &j.signature,
                author: &j.author,
            })
            .collect();
        verify_many(&checks)
    };
    jobs.iter()
        .zip(verdicts)
        .filter(|(_, ok)| !ok)
        .map(|(j, _)| j.cid)
        .collect()
}

fn look(block: &Block) -> Looked {
    let malformed = |e: Error| {
        Looked::Bad(Problem::Malformed {
            reason: e.to_string(),
        })
    };
    match BlockKind::of(block.bytes()) {
        BlockKind::Event => {
            match Event::decode(block).and_then(|e| Ok((e, signing_message(block.bytes())?))) {
                Ok((event, message)) => {
                    let (cid, body, author, signature) = event.into_parts();
                    let summary = Summary {
                        stream: body.stream,
                        height: body.height,
                        prev: body.prev,
                        payload: body.payload,
                        causes: body.causes,
                        tombstone: (body.event_type == TOMBSTONE_TYPE).then_some(body.schema),
                    };
                    Looked::Event {
                        summary,
                        job: SigJob {
                            cid,
                            message,
                            signature,
                            author,
                        },
                    }
                }
                Err(e) => malformed(e),
            }
        }
        BlockKind::Payload => match Payload::decode(block) {
            Ok(_) => Looked::Payload,
            Err(e) => malformed(e),
        },
        BlockKind::Unknown => match crate::codec::decode_ipld(&block.cid(), block.bytes()) {
            Ok(_) => Looked::Bad(Problem::UnknownBlock),
            Err(e) => malformed(e),
        },
    }
}

impl Gathered {
    fn push(
        &mut self,
        cid: Option<Cid>,
        stream: Option<StreamId>,
        height: Option<u64>,
        problem: Problem,
    ) {
        self.findings.push(Finding {
            cid,
            stream,
            height,
            problem,
        });
    }

    /// Reads, re-hashes and decodes every block in `scope`, queueing signatures on `checker`.
    /// Returns the heads of the chains in scope.
    fn gather<S: BlockStore + ?Sized>(
        &mut self,
        store: &S,
        all_heads: &[(StreamId, Head)],
        trust: &TrustSet,
        scope: &Scope,
        checker: &mut Checker<'_, '_>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<(StreamId, Head)>> {
        match scope {
            Scope::All => {
                let mut chunk = Vec::with_capacity(CHUNK);
                let mut failed: Option<Error> = None;
                store.scan(&mut |item| {
                    match item {
                        Ok(block) => {
                            chunk.push(block);
                            if chunk.len() == CHUNK {
                                self.absorb(std::mem::take(&mut chunk), trust, checker);
                                progress(self.event_count);
                            }
                        }
                        Err(Error::CidMismatch { expected, actual }) => {
                            self.broken.insert(expected);
                            self.push(Some(expected), None, None, Problem::CidMismatch { actual });
                        }
                        Err(Error::InvalidCid { reason, .. }) => {
                            self.push(None, None, None, Problem::CorruptKey { reason });
                        }
                        Err(other) => {
                            failed = Some(other);
                            return false;
                        }
                    }
                    true
                })?;
                if let Some(e) = failed {
                    return Err(e);
                }
                self.absorb(chunk, trust, checker);
                progress(self.event_count);
                Ok(all_heads.to_vec())
            }
            Scope::Stream(stream) => {
                let head = store.head(stream)?.ok_or_else(|| Error::InvalidStream {
                    input: stream.to_string(),
                    reason: "no such stream in the store".into(),
                })?;
                self.gather_stream(store, head, trust, checker, progress)?;
                Ok(vec![(stream.clone(), head)])
            }
        }
    }

    /// Records a finding for every event whose signature did not verify.
    fn bad_signatures(&mut self, failed: Vec<Cid>) {
        for cid in failed {
            let summary = &self.events[&cid];
            let (s, h) = (summary.stream.clone(), summary.height);
            self.push(Some(cid), Some(s), Some(h), Problem::BadSignature);
        }
    }

    /// Decodes a chunk of blocks in parallel, records what they are, and queues their
    /// signatures on `checker`.
    fn absorb(&mut self, blocks: Vec<Block>, trust: &TrustSet, checker: &mut Checker<'_, '_>) {
        let looked: Vec<Looked> = blocks.par_iter().map(look).collect();
        let mut jobs: Vec<SigJob> = Vec::new();
        for (block, looked) in blocks.iter().zip(looked) {
            let cid = block.cid();
            match looked {
                Looked::Event { summary, job } => {
                    self.event_count += 1;
                    if !trust.contains(&job.author) {
                        let problem = Problem::UntrustedAuthor { author: job.author };
                        self.push(
                            Some(cid),
                            Some(summary.stream.clone()),
                            Some(summary.height),
                            problem,
                        );
                    }
                    self.events.insert(cid, summary);
                    jobs.push(job);
                }
                Looked::Payload => {
                    self.payload_count += 1;
                    self.payloads.insert(cid);
                }
                Looked::Bad(problem) => {
                    self.broken.insert(cid);
                    self.push(Some(cid), None, None, problem);
                }
            }
        }
        checker.queue(jobs);
    }

    /// Loads one block for a single-stream verification, recording what is wrong with it.
    fn load<S: BlockStore + ?Sized>(
        &mut self,
        store: &S,
        cid: Cid,
        into: &mut Vec<Block>,
    ) -> Result<()> {
        if self.events.contains_key(&cid)
            || self.payloads.contains(&cid)
            || self.broken.contains(&cid)
        {
            return Ok(());
        }
        match store.get(&cid) {
            Ok(Some(block)) => into.push(block),
            Ok(None) => {}
            Err(Error::CidMismatch { expected, actual }) => {
                self.broken.insert(expected);
                self.push(Some(expected), None, None, Problem::CidMismatch { actual });
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Gathers one stream's chain, payloads and causes by walking from its head.
    fn gather_stream<S: BlockStore + ?Sized>(
        &mut self,
        store: &S,
        head: Head,
        trust: &TrustSet,
        checker: &mut Checker<'_, '_>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        let mut next = Some(head.cid);
        let mut chain_blocks = Vec::new();
        while let Some(cid) = next.take() {
            let mut one = Vec::new();
            self.load(store, cid, &mut one)?;
            let Some(block) = one.pop() else { break };
            if let Ok(event) = Event::decode(&block) {
                next = event.prev();
            }
            chain_blocks.push(block);
            if chain_blocks.len() % CHUNK == 0 {
                progress(chain_blocks.len() as u64);
            }
        }
        let mut linked = Vec::new();
        for block in &chain_blocks {
            if let Ok(event) = Event::decode(block) {
                for cid in event
                    .payload()
                    .into_iter()
                    .chain(event.causes().iter().copied())
                {
                    self.load(store, cid, &mut linked)?;
                }
            }
        }
        for blocks in [chain_blocks, linked] {
            let mut blocks = blocks.into_iter();
            loop {
                let part: Vec<Block> = blocks.by_ref().take(CHUNK).collect();
                if part.is_empty() {
                    break;
                }
                self.absorb(part, trust, checker);
                progress(self.event_count);
            }
        }
        Ok(())
    }

    /// Reads the masks of every tombstone gathered; an unreadable one is a finding.
    fn read_tombstones<S: BlockStore + ?Sized>(&mut self, store: &S) -> Result<()> {
        let mut found = Vec::new();
        for (cid, ev) in self.events.iter().filter(|(_, ev)| ev.tombstone.is_some()) {
            let bad = |reason: String| Finding {
                cid: Some(*cid),
                stream: Some(ev.stream.clone()),
                height: Some(ev.height),
                problem: Problem::BadTombstone { reason },
            };
            if ev.tombstone != Some(crate::TOMBSTONE_SCHEMA) {
                found.push(bad(format!(
                    "schema {} (only {} is defined)",
                    ev.tombstone.unwrap_or_default(),
                    crate::TOMBSTONE_SCHEMA
                )));
                continue;
            }
            let Some(p) = ev.payload else {
                found.push(bad("it has no payload".into()));
                continue;
            };
            if !self.payloads.contains(&p) {
                continue; // missing or broken: the chain walk reports it
            }
            let Some(block) = store.get(&p)? else {
                continue;
            };
            match Payload::decode_as::<Tombstone>(&block) {
                Ok(t) => match t.check() {
                    Ok(()) => {
                        self.tombstones.insert(*cid, t.masks);
                    }
                    Err(e) => found.push(bad(e)),
                },
                Err(e) => found.push(bad(format!("its payload {p} is not a tombstone: {e}"))),
            }
        }
        self.findings.extend(found);
        Ok(())
    }

    /// Walks every chain from its head; returns the chain position of every event reached.
    fn walk_chains(&mut self, heads: &[(StreamId, Head)]) -> HashMap<(StreamId, u64), Cid> {
        let mut chain: HashMap<(StreamId, u64), Cid> = HashMap::default();
        let mut findings = Vec::new();
        let mut masked = Vec::new();
        // Only chains with a tombstone need their payloads remembered.
        let with_tombstones: HashSet<StreamId> = self
            .tombstones
            .keys()
            .filter_map(|t| self.events.get(t).map(|ev| ev.stream.clone()))
            .collect();
        for (stream, head) in heads {
            let remember = with_tombstones.contains(stream);
            let mut found = |cid, height, problem| {
                findings.push(Finding {
                    cid: Some(cid),
                    stream: Some(stream.clone()),
                    height,
                    problem,
                })
            };
            // Masks of the tombstones met so far (walking down, so all of them later).
            let mut active: HashMap<Cid, Cid> = HashMap::default();
            // Every payload of the chain: its event's height, and whether that is a tombstone.
            let mut payloads: HashMap<Cid, (u64, bool)> = HashMap::default();
            let mut tombstones: Vec<(Cid, u64)> = Vec::new();
            let mut cur = head.cid;
            let mut expected_height = head.height;
            let mut from: Option<Cid> = None;
            loop {
                let Some(ev) = self.events.get(&cur) else {
                    if self.payloads.contains(&cur) {
                        found(
                            cur,
                            Some(expected_height),
                            Problem::NotAnEvent {
                                role: "prev",
                                from: from.unwrap_or(cur),
                            },
                        );
                    } else if !self.broken.contains(&cur) {
                        let role = if from.is_some() { "prev" } else { "head" };
                        found(cur, Some(expected_height), Problem::Missing { role, from });
                    }
                    break;
                };
                // A bad link is named by the event that holds it: the child (the head itself
                // when the head record is what points astray).
                let (linker, linker_height) = match from {
                    Some(child) => (child, expected_height + 1),
                    None => (cur, ev.height),
                };
                if &ev.stream != stream {
                    let problem = Problem::WrongStream {
                        expected: stream.clone(),
                        found: ev.stream.clone(),
                    };
                    found(linker, Some(linker_height), problem);
                    break;
                }
                if from.is_none() && ev.height != head.height {
                    found(
                        cur,
                        Some(ev.height),
                        Problem::HeadMismatch {
                            recorded: head.height,
                            found: ev.height,
                        },
                    );
                } else if ev.height != expected_height {
                    found(
                        linker,
                        Some(linker_height),
                        Problem::HeightGap {
                            expected: expected_height,
                            found: ev.height,
                        },
                    );
                }
                chain.insert((stream.clone(), ev.height), cur);
                if let Some(p) = ev.payload {
                    if remember {
                        payloads.insert(p, (ev.height, ev.tombstone.is_some()));
                    }
                    let stored = self.payloads.contains(&p) || self.events.contains_key(&p);
                    match active.get(&p) {
                        Some(&tombstone) if stored => {
                            found(p, Some(ev.height), Problem::Unpurged { tombstone })
                        }
                        Some(&tombstone) if !self.broken.contains(&p) => masked.push(Masked {
                            payload: p,
                            event: cur,
                            stream: stream.clone(),
                            height: ev.height,
                            tombstone,
                        }),
                        Some(_) => {}
                        None if !self.payloads.contains(&p) && !self.broken.contains(&p) => {
                            let problem = if self.events.contains_key(&p) {
                                Problem::NotAnEvent {
                                    role: "payload",
                                    from: cur,
                                }
                            } else {
                                Problem::Missing {
                                    role: "payload",
                                    from: Some(cur),
                                }
                            };
                            found(p, Some(ev.height), problem);
                        }
                        None => {}
                    }
                }
                if let Some(masks) = self.tombstones.get(&cur) {
                    tombstones.push((cur, ev.height));
                    for m in masks {
                        active.entry(*m).or_insert(cur);
                    }
                }
                for c in &ev.causes {
                    if !self.events.contains_key(c) && !self.broken.contains(c) {
                        let problem = if self.payloads.contains(c) {
                            Problem::NotAnEvent {
                                role: "cause",
                                from: cur,
                            }
                        } else {
                            Problem::Missing {
                                role: "cause",
                                from: Some(cur),
                            }
                        };
                        found(*c, Some(ev.height), problem);
                    }
                }
                match ev.prev {
                    Some(prev) if ev.height > 0 => {
                        from = Some(cur);
                        cur = prev;
                        expected_height = ev.height - 1;
                    }
                    _ => break,
                }
            }
            // A tombstone may mask only payloads of earlier, non-tombstone events of its chain.
            for (t, height) in tombstones {
                for m in &self.tombstones[&t] {
                    let reason = match payloads.get(m) {
                        Some(&(h, false)) if h < height => continue,
                        Some(&(_, true)) => format!("masks {m}, the payload of a tombstone"),
                        Some(&(h, _)) => {
                            format!("masks {m}, the payload of a later event (height {h})")
                        }
                        None => {
                            format!("masks {m}, which is not the payload of any event of {stream}")
                        }
                    };
                    found(t, Some(height), Problem::BadTombstone { reason });
                }
            }
        }
        self.findings.extend(findings);
        self.masked.extend(masked);
        chain
    }

    /// Reports every event that no chain reached: forks, events beyond a head, orphans.
    fn find_strays(&mut self, chain: &HashMap<(StreamId, u64), Cid>, heads: &[(StreamId, Head)]) {
        let reached: HashSet<&Cid> = chain.values().collect();
        let head_of: HashMap<&StreamId, u64> = heads.iter().map(|(s, h)| (s, h.height)).collect();
        let mut findings = Vec::new();
        for (cid, ev) in &self.events {
            if reached.contains(cid) {
                continue;
            }
            let problem = match (
                chain.get(&(ev.stream.clone(), ev.height)),
                head_of.get(&ev.stream),
            ) {
                (Some(member), _) => Problem::Fork { chain: *member },
                (None, Some(&h)) if ev.height > h => Problem::Truncated {
                    head_height: Some(h),
                },
                (None, None) => Problem::Truncated { head_height: None },
                (None, Some(_)) => Problem::Unreachable,
            };
            findings.push(Finding {
                cid: Some(*cid),
                stream: Some(ev.stream.clone()),
                height: Some(ev.height),
                problem,
            });
        }
        self.findings.extend(findings);
    }
}
