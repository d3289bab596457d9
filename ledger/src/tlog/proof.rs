//! The log of a [`Ledger`]'s store as a transparency log: signed checkpoints kept in the
//! store, inclusion proofs as self-contained [`Bundle`]s, consistency proofs, and the checks
//! of the log against a checkpoint that `verify` runs.

use base64::prelude::*;

use super::{
    check_inclusion, cosignatures, leaf_hash, open_witnessed, with_cosignatures, AddCheckpoint,
    Checkpoint, Cosignature, Hash, Log, NoteKey, WitnessKey,
};
use crate::{BlockStore, Cid, Error, Ledger, Problem, Result, Signer, StreamId};

/// A checkpoint, its signed note, and the key that signed it.
#[derive(Clone, Debug, PartialEq)]
pub struct SignedCheckpoint {
    /// What it states.
    pub checkpoint: Checkpoint,
    /// The signed note (C2SP `tlog-checkpoint`), cosignatures included once collected.
    pub note: String,
    /// The log's verifier key.
    pub key: NoteKey,
}

/// Runs `f` on the store's log, under the store's lock.
fn with_log<S: BlockStore + ?Sized, T>(
    store: &S,
    f: impl FnOnce(&mut Log) -> Result<T>,
) -> Result<T> {
    let mut f = Some(f);
    let mut out = None;
    store.with_log(&mut |log| {
        if let Some(f) = f.take() {
            out = Some(f(log));
        }
    })?;
    out.expect("the store visits its log once")
}

/// What the log of `store` says against `checkpoint` (see [`Ledger::check_against`]).
fn check_log<S: BlockStore + ?Sized>(
    store: &S,
    checkpoint: &Checkpoint,
) -> Result<Option<Problem>> {
    with_log(store, |log| check_in(log, checkpoint))
}

/// What `log` says against `checkpoint`: the one rule of `truncated-log` and `root-mismatch`.
pub(crate) fn check_in(log: &mut Log, checkpoint: &Checkpoint) -> Result<Option<Problem>> {
    if log.size() < checkpoint.size {
        return Ok(Some(Problem::TruncatedLog {
            checkpoint: checkpoint.size,
            log: log.size(),
        }));
    }
    if log.root_at(checkpoint.size)? != checkpoint.root {
        return Ok(Some(Problem::RootMismatch {
            size: checkpoint.size,
        }));
    }
    Ok(None)
}

/// The problems of the store's log against every checkpoint kept in it that a trusted author
/// signed (under the checkpoint's own origin); `verify` of a whole store runs this. A kept
/// checkpoint no trusted key signed states nothing and is skipped (with a warning).
pub(crate) fn check_kept<S: BlockStore + ?Sized>(
    store: &S,
    trust: &crate::TrustSet,
) -> Result<Vec<Problem>> {
    let mut problems = Vec::new();
    for (size, note) in store.checkpoints()? {
        let origin = note.lines().next().unwrap_or_default();
        let opened = trust.iter().find_map(|author| {
            let key = NoteKey::new(origin, *author).ok()?;
            Checkpoint::open(&note, &key).ok()
        });
        let Some(checkpoint) = opened else {
            tracing::warn!(
                size,
                origin,
                "a kept checkpoint no trusted key signed; skipped"
            );
            continue;
        };
        problems.extend(check_log(store, &checkpoint)?);
    }
    problems.dedup();
    Ok(problems)
}

/// Sends an add-checkpoint request body to a witness (its target, as given) and returns the
/// HTTP status and body, or why there is none.
pub type Post<'a> = dyn FnMut(&str, &str) -> std::result::Result<(u16, String), String> + 'a;

/// What [`Ledger::witness_checkpoint`] got.
#[derive(Clone, Debug)]
pub struct Witnessed {
    /// The checkpoint with every cosignature that verified.
    pub note: String,
    /// Those cosignatures.
    pub cosigned: Vec<Cosignature>,
    /// The witnesses that did not cosign, and why.
    pub refused: Vec<(String, String)>,
}

impl<S: BlockStore> Ledger<S> {
    fn with_log<T>(&self, f: impl FnOnce(&mut Log) -> Result<T>) -> Result<T> {
        with_log(self.store(), f)
    }

    /// The store's log: every event block it holds, in the order it stored them (invariant 1:
    /// only commits add to it). Payloads are not leaves, so erasure never changes the tree.
    pub fn log(&self) -> Result<Vec<Cid>> {
        self.with_log(|log| Ok(log.leaves().to_vec()))
    }

    /// How many events the log holds.
    pub fn log_size(&self) -> Result<u64> {
        self.with_log(|log| Ok(log.size()))
    }

    /// The checkpoint of the log as it is now, under `origin` (unsigned).
    pub fn log_checkpoint(&self, origin: &str) -> Result<Checkpoint> {
        self.with_log(|log| checkpoint_in(log, origin))
    }

    /// Signs a checkpoint of the log as it is now, as `origin` with `signer`, and keeps it in
    /// the store. Fails with [`Error::Unsettled`] while a publishing store holds events the
    /// shared log has not acknowledged.
    pub fn sign_checkpoint(&self, origin: &str, signer: &Signer) -> Result<SignedCheckpoint> {
        let unsettled = self.unsettled()?;
        if let Some(first) = unsettled.first() {
            return Err(Error::Unsettled {
                streams: unsettled.len(),
                first: first.clone(),
            });
        }
        let signed = self.with_log(|log| sign_in(log, origin, signer))?;
        self.store()
            .put_checkpoint(signed.checkpoint.size, &signed.note)?;
        Ok(signed)
    }

    /// Keeps `note` (a checkpoint of this log with more cosignatures) in the store, after
    /// checking that `key` signed it and that it is one of this log's states.
    pub fn keep_checkpoint(&self, note: &str, key: &NoteKey) -> Result<Checkpoint> {
        let checkpoint = Checkpoint::open(note, key)?;
        if let Some(problem) = self.check_against(&checkpoint)? {
            return Err(Error::BadProof {
                reason: format!("the checkpoint is not one of this log's: {problem}"),
            });
        }
        self.store().put_checkpoint(checkpoint.size, note)?;
        Ok(checkpoint)
    }

    /// The newest kept checkpoint (the signed note), if any.
    pub fn latest_checkpoint(&self) -> Result<Option<String>> {
        Ok(self.store().checkpoints()?.pop().map(|(_, note)| note))
    }

    /// Streams with events a shared log has not acknowledged yet, in a store that publishes
    /// (one with any published mark): a lost race could still withdraw them, so a checkpoint
    /// must wait until they are settled. Empty for a store that never published.
    pub fn unsettled(&self) -> Result<Vec<StreamId>> {
        let heads = self.store().heads()?;
        let mut marks = Vec::with_capacity(heads.len());
        for (stream, head) in heads {
            let mark = self.store().published(&stream)?;
            marks.push((stream, head, mark));
        }
        if marks.iter().all(|(_, _, m)| m.is_none()) {
            return Ok(Vec::new());
        }
        Ok(marks
            .into_iter()
            .filter(|(_, head, mark)| mark.map(|m| m.head) != Some(*head))
            .map(|(s, _, _)| s)
            .collect())
    }

    /// What the log says against `checkpoint`, one this log signed earlier (or a verifier
    /// remembers): nothing when the log still starts with exactly what it signed; else
    /// [`Problem::TruncatedLog`] (events were removed: a truncation or a rollback) or
    /// [`Problem::RootMismatch`] (history was rewritten).
    pub fn check_against(&self, checkpoint: &Checkpoint) -> Result<Option<Problem>> {
        check_log(self.store(), checkpoint)
    }

    /// The consistency proof from the log's first `old` leaves to its first `size`.
    pub fn prove_consistency(&self, old: u64, size: u64) -> Result<Vec<Hash>> {
        self.with_log(|log| log.tree()?.prove_consistency(old, size))
    }

    /// The consistency proof from this log's first `old` leaves to `signed`, as the body of a
    /// `tlog-witness` add-checkpoint request (also what `audit` hands an auditor).
    pub fn growth(&self, old: u64, signed: &SignedCheckpoint) -> Result<AddCheckpoint> {
        self.with_log(|log| growth_in(log, old, signed))
    }

    /// Asks witnesses to cosign `signed` (the C2SP `tlog-witness` exchange, over the caller's
    /// transport): `post(target, body)` sends an add-checkpoint request to one of `targets` and
    /// returns the HTTP status and body, or why it could not. A witness that answers 409 with
    /// the size it holds is asked again with a proof from that size. Only cosignatures by
    /// `witnesses` that verify are kept; the checkpoint with them is kept in the store.
    pub fn witness_checkpoint(
        &self,
        signed: &SignedCheckpoint,
        targets: &[String],
        witnesses: &[WitnessKey],
        post: &mut Post<'_>,
    ) -> Result<Witnessed> {
        let witnessed = ask_witnesses(signed, targets, witnesses, post, &mut |old| {
            self.growth(old, signed)
        })?;
        if !witnessed.cosigned.is_empty() {
            self.keep_checkpoint(&witnessed.note, &signed.key)?;
        }
        Ok(witnessed)
    }

    /// A self-contained proof that event `cid` is in the log `signed` covers: the event block,
    /// its payload unless erased, the inclusion proof.
    pub fn prove(&self, cid: &Cid, signed: &SignedCheckpoint) -> Result<Bundle> {
        let size = signed.checkpoint.size;
        let (index, proof) = self.with_log(|log| inclusion_in(log, cid, size))?;
        bundle_of(self.store(), cid, signed, index, &proof)
    }
}

/// The add-checkpoint exchange with each of `targets` (see [`Ledger::witness_checkpoint`]);
/// `growth(old)` gives the request body from a witness's size.
fn ask_witnesses(
    signed: &SignedCheckpoint,
    targets: &[String],
    witnesses: &[WitnessKey],
    post: &mut Post<'_>,
    growth: &mut dyn FnMut(u64) -> Result<AddCheckpoint>,
) -> Result<Witnessed> {
    let size = signed.checkpoint.size;
    let mut note = signed.note.clone();
    let mut refused = Vec::new();
    for target in targets {
        let mut old = 0;
        let outcome = loop {
            let body = growth(old)?.to_body();
            let (status, text) = match post(target, &body) {
                Ok(answer) => answer,
                Err(e) => break Err(e),
            };
            match status {
                200 => {
                    let lines: String = text
                        .lines()
                        .filter(|l| !l.is_empty())
                        .map(|l| format!("{l}\n"))
                        .collect();
                    let before = cosignatures(&note, witnesses)?.len();
                    let with = with_cosignatures(&note, &lines);
                    match cosignatures(&with, witnesses) {
                        Ok(c) if c.len() > before => {
                            note = with;
                            break Ok(());
                        }
                        Ok(_) => {
                            break Err("its answer holds no cosignature by a --witness-key".into())
                        }
                        Err(e) => break Err(format!("its cosignature: {e}")),
                    }
                }
                409 => {
                    let held = text.trim().parse::<u64>().ok();
                    match held {
                        Some(h) if h > size => {
                            break Err(format!(
                                "it holds a checkpoint of {h} events, more than this log's {size}: the log was rolled back, or another log signs as this one"
                            ))
                        }
                        Some(h) if h != old => old = h,
                        Some(h) => {
                            break Err(format!(
                                "it holds another checkpoint of {h} events: a split view (this log's history is not the one it cosigned)"
                            ))
                        }
                        None => break Err(format!("409 Conflict: {}", text.trim())),
                    }
                }
                _ => break Err(format!("HTTP {status}: {}", text.trim())),
            }
        };
        if let Err(reason) = outcome {
            tracing::info!(target, "a witness refused: {reason}");
            refused.push((target.clone(), reason));
        }
    }
    let cosigned = cosignatures(&note, witnesses)?;
    Ok(Witnessed {
        note,
        cosigned,
        refused,
    })
}

/// The checkpoint of `log` as it is now, under `origin`.
fn checkpoint_in(log: &mut Log, origin: &str) -> Result<Checkpoint> {
    let tree = log.tree()?;
    Ok(Checkpoint {
        origin: origin.to_string(),
        size: tree.size(),
        root: tree.root(),
    })
}

/// Signs the checkpoint of `log` as it is now.
fn sign_in(log: &mut Log, origin: &str, signer: &Signer) -> Result<SignedCheckpoint> {
    let key = NoteKey::new(origin, signer.author())?;
    let checkpoint = checkpoint_in(log, origin)?;
    let note = checkpoint.sign(origin, signer)?;
    tracing::debug!(origin, size = checkpoint.size, "signed a checkpoint");
    Ok(SignedCheckpoint {
        checkpoint,
        note,
        key,
    })
}

/// The consistency proof from `log`'s first `old` leaves to `signed`, as a request body.
fn growth_in(log: &mut Log, old: u64, signed: &SignedCheckpoint) -> Result<AddCheckpoint> {
    let proof = if old == 0 {
        Vec::new()
    } else {
        log.tree()?.prove_consistency(old, signed.checkpoint.size)?
    };
    Ok(AddCheckpoint {
        old,
        proof,
        note: signed.note.clone(),
    })
}

/// The index of `cid` in `log`'s first `size` leaves and its inclusion proof.
fn inclusion_in(log: &mut Log, cid: &Cid, size: u64) -> Result<(u64, Vec<Hash>)> {
    let index = log
        .index_of(cid)
        .filter(|&i| i < size)
        .ok_or_else(|| Error::BadProof {
            reason: format!("event {cid} is not in this log of {size} events"),
        })?;
    Ok((index, log.tree()?.prove_inclusion(index, size)?))
}

/// The bundle of event `cid` from `store`, with its inclusion proof under `signed`.
fn bundle_of<S: BlockStore + ?Sized>(
    store: &S,
    cid: &Cid,
    signed: &SignedCheckpoint,
    index: u64,
    proof: &[Hash],
) -> Result<Bundle> {
    let event = store.get(cid)?.ok_or(Error::MissingBlock(*cid))?;
    let decoded = crate::Event::decode(&event)?;
    let payload = match decoded.payload() {
        Some(p) => store.get(&p)?,
        None => None,
    };
    Ok(Bundle {
        checkpoint: signed.note.clone(),
        index,
        proof: proof.iter().map(|h| BASE64_STANDARD.encode(h.0)).collect(),
        event: BASE64_STANDARD.encode(event.bytes()),
        payload: payload.map(|p| BASE64_STANDARD.encode(p.bytes())),
    })
}

/// A log in a shared order (JetStream's, `crate::jetstream::Backbone::shared_log`) over the
/// events of a store that holds them all: every machine that reads the shared order computes
/// the same tree. Its checkpoints are not kept in the store (whose own log is in the order it
/// stored); they are published where the order came from.
pub struct SharedLog<'a, S: BlockStore + ?Sized> {
    store: &'a S,
    log: Log,
}

impl<'a, S: BlockStore + ?Sized> SharedLog<'a, S> {
    /// The log of `leaves`, in that order; every one must be an event `store` holds
    /// ([`Error::MissingBlock`] names the first that is not: sync first).
    pub fn new(store: &'a S, leaves: Vec<Cid>) -> Result<SharedLog<'a, S>> {
        let mut log = Log::default();
        for cid in leaves {
            if !store.contains(&cid)? {
                return Err(Error::MissingBlock(cid));
            }
            log.push(cid);
        }
        Ok(SharedLog { store, log })
    }

    /// How many events.
    pub fn size(&self) -> u64 {
        self.log.size()
    }

    /// Signs a checkpoint of it, as `origin` with `signer`.
    pub fn sign_checkpoint(&mut self, origin: &str, signer: &Signer) -> Result<SignedCheckpoint> {
        sign_in(&mut self.log, origin, signer)
    }

    /// See [`Ledger::check_against`].
    pub fn check_against(&mut self, checkpoint: &Checkpoint) -> Result<Option<Problem>> {
        check_in(&mut self.log, checkpoint)
    }

    /// See [`Ledger::growth`].
    pub fn growth(&mut self, old: u64, signed: &SignedCheckpoint) -> Result<AddCheckpoint> {
        growth_in(&mut self.log, old, signed)
    }

    /// See [`Ledger::prove`].
    pub fn prove(&mut self, cid: &Cid, signed: &SignedCheckpoint) -> Result<Bundle> {
        let (index, proof) = inclusion_in(&mut self.log, cid, signed.checkpoint.size)?;
        bundle_of(self.store, cid, signed, index, &proof)
    }

    /// See [`Ledger::witness_checkpoint`] (nothing is kept in the store).
    pub fn witness_checkpoint(
        &mut self,
        signed: &SignedCheckpoint,
        targets: &[String],
        witnesses: &[WitnessKey],
        post: &mut Post<'_>,
    ) -> Result<Witnessed> {
        let log = &mut self.log;
        ask_witnesses(signed, targets, witnesses, post, &mut |old| {
            growth_in(log, old, signed)
        })
    }
}

/// A proof that one event is in a log, checkable offline with the log's verifier key alone:
/// the signed checkpoint, the event's index and inclusion proof, the event block, and its
/// payload block unless erased. Its JSON form is what `personctl prove` writes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// The signed checkpoint (a C2SP signed note).
    pub checkpoint: String,
    /// The event's leaf index.
    pub index: u64,
    /// The inclusion proof, base64 hashes.
    pub proof: Vec<String>,
    /// The event block's bytes, base64.
    pub event: String,
    /// The payload block's bytes, base64 (`None`: erased, or an event without one).
    pub payload: Option<String>,
}

/// What a checked [`Bundle`] proves.
#[derive(Clone, Debug)]
pub struct Proven {
    /// The checkpoint, signed by the key given.
    pub checkpoint: Checkpoint,
    /// The event, its CID re-derived and its signature verified.
    pub event: crate::Event,
    /// Its leaf index.
    pub index: u64,
    /// Whether the payload came with it (and hashes to the event's payload link).
    pub payload: bool,
    /// The witnesses' cosignatures on the checkpoint that verified (with
    /// [`Bundle::check_witnessed`]).
    pub cosignatures: Vec<Cosignature>,
}

impl Bundle {
    /// Checks the bundle against the log's verifier key: the checkpoint's signature, the event
    /// block (CID re-derived from its bytes, strict decoding, its author's signature), its
    /// inclusion under the checkpoint's root, and the payload's CID. Any failure is
    /// [`Error::BadProof`] naming it.
    pub fn check(&self, key: &NoteKey) -> Result<Proven> {
        self.check_witnessed(key, &[], 0)
    }

    /// [`Bundle::check`], and the checkpoint cosigned by at least `quorum` of `witnesses`.
    pub fn check_witnessed(
        &self,
        key: &NoteKey,
        witnesses: &[WitnessKey],
        quorum: usize,
    ) -> Result<Proven> {
        let bad = |reason: String| Error::BadProof { reason };
        let (checkpoint, cosignatures) = open_witnessed(&self.checkpoint, key, witnesses, quorum)
            .map_err(|e| bad(format!("the checkpoint: {e}")))?;
        let bytes = BASE64_STANDARD
            .decode(&self.event)
            .map_err(|_| bad("the event is not base64".into()))?;
        let block = crate::Block::new(bytes);
        let event = crate::Event::decode(&block)
            .map_err(|e| bad(format!("the event block {}: {e}", block.cid())))?;
        if !event.verify_signature(&block)? {
            return Err(bad(format!(
                "event {}: its signature does not verify",
                block.cid()
            )));
        }
        let proof = self
            .proof
            .iter()
            .map(|h| {
                let bytes = BASE64_STANDARD.decode(h).ok()?;
                Some(Hash(bytes.try_into().ok()?))
            })
            .collect::<Option<Vec<Hash>>>()
            .ok_or_else(|| bad("the inclusion proof holds something that is not a hash".into()))?;
        check_inclusion(
            &proof,
            checkpoint.size,
            checkpoint.root,
            self.index,
            leaf_hash(&block.cid()),
        )
        .map_err(|e| bad(format!("event {} under the checkpoint: {e}", block.cid())))?;
        if let Some(payload) = &self.payload {
            let bytes = BASE64_STANDARD
                .decode(payload)
                .map_err(|_| bad("the payload is not base64".into()))?;
            let cid = crate::Block::new(bytes).cid();
            if event.payload() != Some(cid) {
                return Err(bad(format!(
                    "the payload {cid} is not the one event {} links",
                    block.cid()
                )));
            }
        }
        Ok(Proven {
            checkpoint,
            index: self.index,
            payload: self.payload.is_some(),
            event,
            cosignatures,
        })
    }
}

/// A log to sign, prove and audit: a ledger's own (kept by its store; its checkpoints kept
/// there too) or a [`SharedLog`]. The same calls either way.
pub enum LogOf<'a, S: BlockStore> {
    /// The ledger's own log, in the order its store stored the events.
    Stored(&'a Ledger<S>),
    /// A shared order.
    Shared(SharedLog<'a, S>),
}

impl<S: BlockStore> LogOf<'_, S> {
    /// See [`Ledger::sign_checkpoint`] and [`SharedLog::sign_checkpoint`].
    pub fn sign_checkpoint(&mut self, origin: &str, signer: &Signer) -> Result<SignedCheckpoint> {
        match self {
            LogOf::Stored(l) => l.sign_checkpoint(origin, signer),
            LogOf::Shared(l) => l.sign_checkpoint(origin, signer),
        }
    }

    /// See [`Ledger::check_against`].
    pub fn check_against(&mut self, checkpoint: &Checkpoint) -> Result<Option<Problem>> {
        match self {
            LogOf::Stored(l) => l.check_against(checkpoint),
            LogOf::Shared(l) => l.check_against(checkpoint),
        }
    }

    /// See [`Ledger::growth`].
    pub fn growth(&mut self, old: u64, signed: &SignedCheckpoint) -> Result<AddCheckpoint> {
        match self {
            LogOf::Stored(l) => l.growth(old, signed),
            LogOf::Shared(l) => l.growth(old, signed),
        }
    }

    /// See [`Ledger::prove`].
    pub fn prove(&mut self, cid: &Cid, signed: &SignedCheckpoint) -> Result<Bundle> {
        match self {
            LogOf::Stored(l) => l.prove(cid, signed),
            LogOf::Shared(l) => l.prove(cid, signed),
        }
    }

    /// See [`Ledger::witness_checkpoint`].
    pub fn witness_checkpoint(
        &mut self,
        signed: &SignedCheckpoint,
        targets: &[String],
        witnesses: &[WitnessKey],
        post: &mut Post<'_>,
    ) -> Result<Witnessed> {
        match self {
            LogOf::Stored(l) => l.witness_checkpoint(signed, targets, witnesses, post),
            LogOf::Shared(l) => l.witness_checkpoint(signed, targets, witnesses, post),
        }
    }
}

/// Signs checkpoints of a ledger's own log as it grows (call [`AutoCheckpoint::tick`] after
/// appends, or on a timer): when at least `every_events` events were added since the newest
/// kept checkpoint, or when `every` has passed since the last one and the log grew. While
/// events wait for a shared log's acknowledgement nothing is signed (see
/// [`Ledger::sign_checkpoint`]); the next tick tries again.
#[derive(Clone, Debug)]
pub struct AutoCheckpoint {
    origin: String,
    every_events: Option<u64>,
    every: Option<std::time::Duration>,
    last: Option<(u64, std::time::Instant)>,
}

impl AutoCheckpoint {
    /// Checkpoints of `origin`, every `every_events` events and/or every `every`.
    pub fn new(
        origin: impl Into<String>,
        every_events: Option<u64>,
        every: Option<std::time::Duration>,
    ) -> AutoCheckpoint {
        AutoCheckpoint {
            origin: origin.into(),
            every_events: every_events.filter(|&n| n > 0),
            every,
            last: None,
        }
    }

    /// Signs (and keeps) a checkpoint when one is due; returns it.
    pub fn tick<S: BlockStore>(
        &mut self,
        ledger: &Ledger<S>,
        signer: &Signer,
    ) -> Result<Option<SignedCheckpoint>> {
        let now = std::time::Instant::now();
        let (last_size, last_at) = match self.last {
            Some(l) => l,
            None => {
                let size = ledger
                    .store()
                    .checkpoints()?
                    .last()
                    .map_or(0, |(size, _)| *size);
                *self.last.insert((size, now))
            }
        };
        let size = ledger.log_size()?;
        let grown = size.saturating_sub(last_size);
        let by_count = self.every_events.is_some_and(|n| grown >= n);
        let by_time = self.every.is_some_and(|t| grown > 0 && now - last_at >= t);
        if !(by_count || by_time) {
            return Ok(None);
        }
        match ledger.sign_checkpoint(&self.origin, signer) {
            Ok(signed) => {
                self.last = Some((signed.checkpoint.size, now));
                Ok(Some(signed))
            }
            Err(Error::Unsettled { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
