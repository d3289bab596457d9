//! Gathering: every block in scope is read, re-hashed and decoded in chunks (in parallel),
//! while the signatures of earlier chunks are checked in batches on the rayon pool.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;

use super::{Finding, Masked, Problem, Scope};
use crate::keys::{verify_many, SigCheck, VERIFY_BATCH};
use crate::store::{BlockStore, Head};
use crate::{
    event::signing_message, Author, Block, BlockKind, Cid, Error, Event, Payload, Result,
    Signature, StreamId, Tombstone, TrustSet, TOMBSTONE_TYPE,
};

/// What verification keeps of an event: its links, not its bytes.
pub(super) struct Summary {
    pub(super) stream: StreamId,
    pub(super) height: u64,
    pub(super) prev: Option<Cid>,
    pub(super) payload: Option<Cid>,
    pub(super) causes: Vec<Cid>,
    /// The schema of a tombstone (`None`: not a tombstone).
    pub(super) tombstone: Option<u64>,
    /// The signing key.
    pub(super) author: Author,
    /// The event type, as an index into [`Gathered::event_types`].
    pub(super) event_type: u32,
}

/// Everything gathered from the blocks before the chains are walked.
#[derive(Default)]
pub(super) struct Gathered {
    pub(super) events: HashMap<Cid, Summary>,
    pub(super) payloads: HashSet<Cid>,
    /// Blocks present but unusable (mismatched, malformed, unknown); already reported.
    pub(super) broken: HashSet<Cid>,
    pub(super) findings: Vec<Finding>,
    pub(super) masked: Vec<Masked>,
    /// The masks of every readable tombstone, by the tombstone's CID.
    pub(super) tombstones: HashMap<Cid, Vec<Cid>>,
    pub(super) event_count: u64,
    pub(super) payload_count: u64,
    /// Every event type seen, interned (summaries hold their index).
    pub(super) event_types: Vec<String>,
    pub(super) event_type_index: HashMap<String, u32>,
}

/// Blocks are processed in chunks of this many, in parallel within a chunk.
pub(super) const CHUNK: usize = 8192;
/// Signature batches waiting on the pool before the reader stops to help check them (bounds
/// the memory held by signed messages waiting for their check).
pub(super) const MAX_PENDING: usize = 8;

/// What a signature check needs of an event.
pub(super) struct SigJob {
    pub(super) cid: Cid,
    pub(super) message: Vec<u8>,
    pub(super) signature: Signature,
    pub(super) author: Author,
}

/// The result of looking at one block on its own.
// Events and payloads come in equal numbers; boxing the event variant would add an allocation
// per event for no gain.
#[allow(clippy::large_enum_variant)]
enum Looked {
    Event {
        summary: Summary,
        job: SigJob,
        event_type: String,
    },
    Payload,
    Bad(Problem),
}

/// Checks signatures on the rayon pool while the caller goes on reading: jobs are queued,
/// and every full batch is spawned as one task. The caller helps with queued tasks when more
/// than [`MAX_PENDING`] are waiting. CIDs whose signature fails end up in `failed`.
pub(super) struct Checker<'a, 's> {
    pub(super) pool: &'a rayon::Scope<'s>,
    pub(super) pending: &'s AtomicUsize,
    pub(super) failed: &'s Mutex<Vec<Cid>>,
    pub(super) exact: bool,
    pub(super) queued: Vec<SigJob>,
}

impl Checker<'_, '_> {
    pub(super) fn queue(&mut self, jobs: Vec<SigJob>) {
        for job in jobs {
            self.queued.push(job);
            if self.queued.len() == VERIFY_BATCH {
                let batch = std::mem::replace(&mut self.queued, Vec::with_capacity(VERIFY_BATCH));
                self.spawn(batch);
            }
        }
    }

    /// Spawns whatever is queued, however few.
    pub(super) fn flush(&mut self) {
        let batch = std::mem::take(&mut self.queued);
        if !batch.is_empty() {
            self.spawn(batch);
        }
    }

    pub(super) fn spawn(&self, batch: Vec<SigJob>) {
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
                        author,
                        event_type: 0,
                    };
                    Looked::Event {
                        event_type: body.event_type,
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
    pub(super) fn push(
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
    pub(super) fn gather<S: BlockStore + ?Sized>(
        &mut self,
        store: &S,
        all_heads: &[(StreamId, Head)],
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
                                self.absorb(std::mem::take(&mut chunk), checker);
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
                self.absorb(chunk, checker);
                progress(self.event_count);
                Ok(all_heads.to_vec())
            }
            Scope::Stream(stream) => {
                let head = store.head(stream)?.ok_or_else(|| Error::InvalidStream {
                    input: stream.to_string(),
                    reason: "no such stream in the store".into(),
                })?;
                self.gather_stream(store, head, checker, progress)?;
                Ok(vec![(stream.clone(), head)])
            }
        }
    }

    /// Records a finding for every event whose signature did not verify.
    pub(super) fn bad_signatures(&mut self, failed: Vec<Cid>) {
        for cid in failed {
            let summary = &self.events[&cid];
            let (s, h) = (summary.stream.clone(), summary.height);
            self.push(Some(cid), Some(s), Some(h), Problem::BadSignature);
        }
    }

    /// Decodes a chunk of blocks in parallel, records what they are, and queues their
    /// signatures on `checker`.
    pub(super) fn absorb(&mut self, blocks: Vec<Block>, checker: &mut Checker<'_, '_>) {
        let looked: Vec<Looked> = blocks.par_iter().map(look).collect();
        let mut jobs: Vec<SigJob> = Vec::new();
        for (block, looked) in blocks.iter().zip(looked) {
            let cid = block.cid();
            match looked {
                Looked::Event {
                    mut summary,
                    job,
                    event_type,
                } => {
                    self.event_count += 1;
                    summary.event_type = self.intern(event_type);
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
    pub(super) fn load<S: BlockStore + ?Sized>(
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
    pub(super) fn gather_stream<S: BlockStore + ?Sized>(
        &mut self,
        store: &S,
        head: Head,
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
                self.absorb(part, checker);
                progress(self.event_count);
            }
        }
        Ok(())
    }

    /// Reads the masks of every tombstone gathered; an unreadable one is a finding.
    pub(super) fn read_tombstones<S: BlockStore + ?Sized>(&mut self, store: &S) -> Result<()> {
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
}

impl Gathered {
    fn intern(&mut self, event_type: String) -> u32 {
        if let Some(&i) = self.event_type_index.get(&event_type) {
            return i;
        }
        let i = self.event_types.len() as u32;
        self.event_types.push(event_type.clone());
        self.event_type_index.insert(event_type, i);
        i
    }

    /// Judges every gathered event's author (after the blocks are read): a key of a trusted
    /// identity that was current at the event's log position, or a trusted raw key; an event
    /// by a key rotated out or revoked before its position is `revoked-key` whatever the trust;
    /// a key chain that breaks the rules is `bad-key-event` (see `crate::identity`).
    pub(super) fn judge_authors<S: BlockStore + ?Sized>(
        &mut self,
        store: &S,
        trust: &TrustSet,
        order: Option<&[Cid]>,
    ) -> Result<()> {
        let shared: Option<std::collections::HashMap<Cid, u64>> = order.map(|o| {
            let mut at = std::collections::HashMap::with_capacity(o.len());
            for (i, cid) in o.iter().enumerate() {
                at.entry(*cid).or_insert(i as u64);
            }
            at
        });
        let rules = match &shared {
            None => crate::policy::Rules::of_store(store, trust)?,
            Some(at) => crate::policy::Rules::of_store_at(store, trust, &|c| at.get(c).copied())?,
        };
        for bad in &rules.policies.bad {
            self.push(
                Some(bad.cid),
                Some(bad.stream.clone()),
                Some(bad.height),
                Problem::BadPolicyEvent {
                    reason: bad.reason.clone(),
                },
            );
        }
        for bad in &rules.identities.bad {
            self.push(
                Some(bad.cid),
                Some(bad.stream.clone()),
                Some(bad.height),
                Problem::BadKeyEvent {
                    reason: bad.reason.clone(),
                },
            );
        }
        // Log positions, only for events whose verdict depends on one.
        let wanted: std::collections::HashSet<Cid> = self
            .events
            .iter()
            .filter(|(_, s)| rules.needs_position(&s.author))
            .map(|(c, _)| *c)
            .collect();
        let positions = match shared {
            None => crate::identity::positions_in_log(store, &wanted)?,
            Some(at) => at,
        };
        let mut found = Vec::new();
        for (cid, summary) in &self.events {
            let position = positions.get(cid).copied();
            let event_type = &self.event_types[summary.event_type as usize];
            if let Some(problem) =
                rules.judge(&summary.author, &summary.stream, event_type, position)
            {
                found.push((*cid, summary.stream.clone(), summary.height, problem));
            }
        }
        for (cid, stream, height, problem) in found {
            self.push(Some(cid), Some(stream), Some(height), problem);
        }
        Ok(())
    }
}
