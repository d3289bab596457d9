//! CAR archives: a ledger's chains as one CARv1 file that any IPLD tool can read.
//!
//! The file follows the public [CARv1 specification](https://ipld.io/specs/transport/car/carv1/):
//! a varint-prefixed DAG-CBOR header `{roots, version: 1}`, then one varint-prefixed section per
//! block (binary CID, then the block's bytes). Framing is done by `iroh-car`; everything about
//! chains is done here.
//!
//! An archive is *closed*: its roots are the head of every chain it holds, and every chain is
//! complete from its root down to genesis, with every payload (a payload a later tombstone masks
//! is simply absent) and every causal parent. A chain that is only there because another chain
//! names one of its events in `causes` is cut at the highest such event, which is then its root.
//! So an archive verifies on its own, exactly as a store does ([`crate::verify`]).
//!
//! [`export`] writes one; [`read`] reads one into memory, re-deriving every CID, into an
//! [`Archive`] that can be verified ([`Archive::verify`]) and only then imported
//! ([`Archive::import_into`]), all or nothing.
//!
//! ```
//! use personctl_ledger::{car, Draft, Ipld, Ledger, MemoryStore, Signer, TrustSet};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let signer = Signer::from_seed([7; 32]);
//! let origin = Ledger::new(MemoryStore::new());
//! let draft = Draft::new("order/o-1".parse()?, "OrderPlaced", 1)
//!     .with_data(Ipld::String("3 apples".into()))?;
//! let placed = origin.append(&signer, draft)?;
//!
//! let mut file = Vec::new();
//! let exported = car::export(origin.store(), None, &mut file).await?;
//! assert_eq!((exported.events, exported.payloads), (1, 1));
//!
//! let archive = car::read(file.as_slice()).await?;
//! let trust: TrustSet = [signer.author()].into_iter().collect();
//! assert!(archive.verify(&trust, false)?.is_ok());
//! let replica = MemoryStore::new();
//! let imported = archive.import_into(&replica, &trust)?;
//! assert_eq!(imported.moved[0].1.cid, placed.cid);
//! # Ok::<(), personctl_ledger::Error>(())
//! # }).unwrap();
//! ```

use std::collections::{BTreeMap, HashSet, VecDeque};

use tokio::io::{AsyncRead, AsyncWrite};

use crate::store::{BlockStore, Commit, Head, HeadUpdate, MemoryStore};
use crate::{
    verify, Block, Cid, Error, Event, Finding, Ledger, Problem, Report, Result, StreamId, TrustSet,
    VerifyOptions, CID_LEN,
};

/// What [`export`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exported {
    /// The roots: one head per chain, ordered by stream.
    pub roots: Vec<(StreamId, Head)>,
    /// Event blocks written.
    pub events: u64,
    /// Payload blocks written.
    pub payloads: u64,
    /// Payloads left out because a tombstone masks them.
    pub masked: u64,
}

/// The largest CAR section (CID and block bytes) that readers accept: 4 MiB, as `iroh-car`
/// and the IPLD project's JavaScript reader allocate at most.
pub const MAX_SECTION: usize = 4 * 1024 * 1024;

/// Writes the chains of `streams` (every stream when `None`) from `store` to `writer` as a CARv1
/// file, with every block they reach, and every identity and policy chain of the store. Fails, before writing anything, when a stream has no
/// events or a reachable block is missing and no tombstone covers it; and, while writing, when
/// a block's section would exceed [`MAX_SECTION`] ([`Error::TooLarge`]: write to a temporary
/// file and keep it only on success).
///
/// Blocks go out in the store's log order (oldest first, `crate::tlog`), each event followed by
/// its payload, so that an event's place in the archive is its place in the log relative to the
/// others (what identities are judged by, `crate::identity`).
pub async fn export<S, W>(store: &S, streams: Option<&[StreamId]>, writer: W) -> Result<Exported>
where
    S: BlockStore,
    W: AsyncWrite + Send + Unpin,
{
    let plan = plan(store, streams)?;
    let header =
        iroh_car::CarHeader::new_v1(plan.roots.iter().map(|(_, h)| h.cid.to_raw()).collect());
    let mut car = iroh_car::CarWriter::new(header, writer);
    for cid in &plan.order {
        let block = store.get(cid)?.ok_or(Error::MissingBlock(*cid))?;
        // A section (CID and bytes) over what CAR readers allocate could be written but never
        // read back: refuse it rather than make a backup that cannot be restored.
        if CID_LEN + block.bytes().len() > MAX_SECTION {
            return Err(Error::TooLarge {
                what: format!("block {cid} (with its CID, one CAR section)"),
                size: CID_LEN + block.bytes().len(),
                limit: MAX_SECTION,
            });
        }
        car.write(cid.to_raw(), block.bytes())
            .await
            .map_err(|e| archive_io("writing the archive", e))?;
    }
    car.finish()
        .await
        .map_err(|e| archive_io("finishing the archive", e))?;
    tracing::debug!(
        roots = plan.roots.len(),
        blocks = plan.order.len(),
        "exported"
    );
    Ok(Exported {
        roots: plan.roots,
        events: plan.events,
        payloads: plan.payloads,
        masked: plan.masked,
    })
}

/// The blocks of an export, in order, and its roots.
struct Plan {
    roots: Vec<(StreamId, Head)>,
    order: Vec<Cid>,
    events: u64,
    payloads: u64,
    masked: u64,
}

/// Walks the chains to export, and the chains their causes reach, recording the block order.
fn plan<S: BlockStore>(store: &S, streams: Option<&[StreamId]>) -> Result<Plan> {
    let ledger = Ledger::new(store);
    let heads: Vec<(StreamId, Head)> = match streams {
        None => store.heads()?,
        Some(list) => {
            let mut heads = Vec::with_capacity(list.len());
            for s in list {
                let head = store.head(s)?.ok_or_else(|| Error::InvalidStream {
                    input: s.to_string(),
                    reason: "no such stream in the store".into(),
                })?;
                heads.push((s.clone(), head));
            }
            // The identity and policy chains that judge the events' authors go along: they
            // hold no personal data, and without them an archive of identities' events could
            // not be verified on its own.
            for aggregate in [
                crate::identity::KEY_AGGREGATE,
                crate::policy::POLICY_AGGREGATE,
            ] {
                for (s, head) in store.heads_of(aggregate)? {
                    if !heads.iter().any(|(h, _)| *h == s) {
                        heads.push((s, head));
                    }
                }
            }
            heads
        }
    };
    if heads.is_empty() {
        return Err(Error::Archive {
            cid: None,
            reason: "nothing to export: the store has no streams".into(),
        });
    }
    let mut plan = Plan {
        roots: Vec::new(),
        order: Vec::new(),
        events: 0,
        payloads: 0,
        masked: 0,
    };
    // The highest event written per stream: the roots.
    let mut tops: BTreeMap<StreamId, Head> = BTreeMap::new();
    let mut seen: HashSet<Cid> = HashSet::new();
    let mut starts: VecDeque<Cid> = heads.iter().map(|(_, h)| h.cid).collect();
    let mut masks_of: BTreeMap<StreamId, crate::Masks> = BTreeMap::new();
    let mut event_cids: std::collections::HashSet<Cid> = std::collections::HashSet::new();
    while let Some(start) = starts.pop_front() {
        let mut next = Some(start);
        while let Some(cid) = next.take() {
            if !seen.insert(cid) {
                break; // the rest of this chain is written already
            }
            let event = ledger.event(&cid)?;
            let stream = event.stream().clone();
            let top = tops.entry(stream.clone()).or_insert(Head {
                cid,
                height: event.height(),
            });
            if event.height() > top.height {
                *top = Head {
                    cid,
                    height: event.height(),
                };
            }
            plan.order.push(cid);
            plan.events += 1;
            event_cids.insert(cid);
            // A payload a tombstone masks is never exported, even while it is still stored (an
            // erasure not finished yet). A tombstone lies above what it masks: a walk down from
            // the head meets it first, so its masks are gathered on the way; a chain cut below
            // its head (there only as a cause) reads its chain's masks first.
            if !masks_of.contains_key(&stream) {
                let from_head = store.head(&stream)?.map(|h| h.cid) == Some(cid);
                let known = if from_head {
                    crate::Masks::new()
                } else {
                    ledger.masks(&stream)?
                };
                masks_of.insert(stream.clone(), known);
            }
            if let Some(t) = crate::Tombstone::of(store, &event)? {
                let masks = masks_of.get_mut(&stream).expect("inserted above");
                masks.extend(t.masks.into_iter().map(|m| (m, cid)));
            }
            if let Some(p) = event.payload() {
                if masks_of[&stream].contains_key(&p) {
                    plan.masked += 1;
                } else if store.contains(&p)? {
                    plan.order.push(p);
                    plan.payloads += 1;
                } else {
                    return Err(Error::MissingBlock(p));
                }
            }
            starts.extend(event.causes().iter().filter(|c| !seen.contains(c)));
            next = event.prev();
        }
    }
    plan.roots = tops.into_iter().collect();
    // In log order: each event with its payload, the events by their place in the log.
    let positions = crate::identity::positions_in_log(store, &event_cids)?;
    let events = event_cids;
    let mut groups: Vec<(u64, usize, Vec<Cid>)> = Vec::new();
    for (i, cid) in plan.order.iter().enumerate() {
        match positions.get(cid) {
            Some(&at) => groups.push((at, i, vec![*cid])),
            None if events.contains(cid) => groups.push((u64::MAX, i, vec![*cid])),
            None => groups
                .last_mut()
                .expect("a payload follows its event")
                .2
                .push(*cid),
        }
    }
    groups.sort_by_key(|(at, i, _)| (*at, *i));
    plan.order = groups.into_iter().flat_map(|(_, _, g)| g).collect();
    Ok(plan)
}

/// A CAR file read into memory: every CID re-derived, its roots resolved to stream heads.
/// Nothing is stored anywhere until [`Archive::import_into`].
pub struct Archive {
    store: MemoryStore,
    roots: Vec<(StreamId, Head)>,
    blocks: u64,
    /// What reading found wrong (sections and roots); [`Archive::verify`] reports them first.
    findings: Vec<Finding>,
}

/// Reads a CARv1 file. Fails ([`Error::Archive`]) only when the file is not CARv1 at all: a
/// header or a section that does not parse. Everything else is a verdict, kept as findings
/// for [`Archive::verify`] (docs/FORMAT.md, CAR archives): a section whose CID is not a ledger
/// CID (`corrupt-key`) or does not re-derive from its bytes (`cid-mismatch`; the bytes are
/// dropped), a root missing from the file (`missing-block`), a root that is not an event
/// (`malformed`), a second root for one stream (`fork`).
pub async fn read<R: AsyncRead + Send + Unpin>(reader: R) -> Result<Archive> {
    let mut car = iroh_car::CarReader::new(reader)
        .await
        .map_err(|e| archive_io("reading the CAR header", e))?;
    let raw_roots = car.header().roots().to_vec();
    let store = MemoryStore::new();
    let mut blocks = 0u64;
    let mut findings = Vec::new();
    let finding = |cid: Option<Cid>, problem: Problem| Finding {
        cid,
        stream: None,
        height: None,
        problem,
    };
    let not_ledger = |what: String, e: Error| {
        finding(
            None,
            Problem::CorruptKey {
                reason: format!("{what} is not a ledger CID ({e})"),
            },
        )
    };
    while let Some((raw, bytes)) = car
        .next_block()
        .await
        .map_err(|e| archive_io(format!("reading the CAR section after {blocks} blocks"), e))?
    {
        blocks += 1;
        let cid = match Cid::try_from(raw) {
            Ok(cid) => cid,
            Err(e) => {
                findings.push(not_ledger(format!("section {blocks}: {raw}"), e));
                continue;
            }
        };
        match Block::verified(cid, bytes) {
            Ok(block) => store.put(&block)?,
            Err(Error::CidMismatch { actual, .. }) => {
                findings.push(finding(Some(cid), Problem::CidMismatch { actual }));
            }
            Err(e) => return Err(e),
        }
    }
    let mut roots: BTreeMap<StreamId, Head> = BTreeMap::new();
    for raw in raw_roots {
        let cid = match Cid::try_from(raw) {
            Ok(cid) => cid,
            Err(e) => {
                findings.push(not_ledger(format!("root {raw}"), e));
                continue;
            }
        };
        let Some(block) = store.get(&cid)? else {
            // Absent, or dropped above for its mismatch (already a finding).
            if !findings.iter().any(|f| f.cid == Some(cid)) {
                findings.push(finding(
                    Some(cid),
                    Problem::Missing {
                        role: "head",
                        from: None,
                    },
                ));
            }
            continue;
        };
        let event = match Event::decode(&block) {
            Ok(event) => event,
            Err(e) => {
                findings.push(finding(
                    Some(cid),
                    Problem::Malformed {
                        reason: format!("a root that is not an event: {e}"),
                    },
                ));
                continue;
            }
        };
        let head = Head {
            cid,
            height: event.height(),
        };
        if let Some(other) = roots.get(event.stream()) {
            findings.push(Finding {
                cid: Some(cid),
                stream: Some(event.stream().clone()),
                height: Some(event.height()),
                problem: Problem::Fork { chain: other.cid },
            });
            continue;
        }
        roots.insert(event.stream().clone(), head);
    }
    let roots: Vec<(StreamId, Head)> = roots.into_iter().collect();
    store.commit(&Commit {
        blocks: Vec::new(),
        heads: roots
            .iter()
            .map(|(s, h)| HeadUpdate {
                stream: s.clone(),
                expected: None,
                new: *h,
            })
            .collect(),
    })?;
    Ok(Archive {
        store,
        roots,
        blocks,
        findings,
    })
}

/// What [`Archive::import_into`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// Blocks stored (those already stored, and those a local tombstone masks, are not).
    pub blocks: u64,
    /// Streams created or moved forward.
    pub moved: Vec<(StreamId, Head)>,
    /// Streams left alone: the store already holds the archive's chain, or more of it.
    pub unchanged: Vec<StreamId>,
    /// Events in the archive, all verified.
    pub events: u64,
}

impl Archive {
    /// The archive's roots: one head per stream.
    pub fn roots(&self) -> &[(StreamId, Head)] {
        &self.roots
    }

    /// Sections read (blocks, counting repeats once each time).
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// The archive as a store, to read events from.
    pub fn store(&self) -> &MemoryStore {
        &self.store
    }

    /// Verifies the archive on its own, as [`crate::verify`] verifies a whole store: every chain
    /// from its root, every signature against `trust`, and any block no root reaches.
    pub fn verify(&self, trust: &TrustSet, exact: bool) -> Result<Report> {
        let options = VerifyOptions {
            exact,
            ..VerifyOptions::default()
        };
        let mut report = verify(&self.store, trust, &options, &|_| {})?;
        // Reading's findings first; verification's own about the same block and check dropped.
        let mut findings = self.findings.clone();
        findings.extend(report.findings.drain(..).filter(|f| {
            !self
                .findings
                .iter()
                .any(|r| r.cid == f.cid && r.problem.code() == f.problem.code())
        }));
        report.findings = findings;
        // Every block must be reached from a root: an event of a chain, or its payload. A
        // stray block (one added, or left behind by a removed head) is a finding of its own.
        let mut reached: HashSet<Cid> = report.findings.iter().filter_map(|f| f.cid).collect();
        let ledger = Ledger::new(&self.store);
        for (stream, _) in &self.roots {
            for event in ledger.walk_back(stream)? {
                let Ok(event) = event else { break };
                reached.insert(event.cid());
                reached.extend(event.payload());
            }
        }
        let mut strays = Vec::new();
        self.store.scan(&mut |block| {
            if let Ok(block) = block {
                if !reached.contains(&block.cid()) {
                    strays.push(block.cid());
                }
            }
            true
        })?;
        strays.sort();
        report
            .findings
            .extend(strays.into_iter().map(|cid| crate::Finding {
                cid: Some(cid),
                stream: None,
                height: None,
                problem: crate::Problem::Unreachable,
            }));
        Ok(report)
    }

    /// Verifies the archive, then stores it in `store` in one atomic commit: every block not
    /// already there (except payloads a tombstone of either side masks), and every head the
    /// archive moves forward. Fails and stores nothing when the archive does not verify
    /// ([`Error::NotVerified`], with the whole report), when a chain has diverged from the
    /// store's, or when a head moved meanwhile ([`Error::Conflict`]).
    pub fn import_into<S: BlockStore>(&self, store: &S, trust: &TrustSet) -> Result<Imported> {
        let report = self.verify(trust, false)?;
        if !report.findings.is_empty() {
            return Err(Error::NotVerified(Box::new(report)));
        }
        let mine = Ledger::new(&self.store);
        let local = Ledger::new(store);
        let mut imported = Imported {
            events: report.events,
            ..Imported::default()
        };
        let mut heads = Vec::new();
        let mut masked = crate::Masks::new();
        for (stream, theirs) in &self.roots {
            // The archive's own masked payloads are not in it (it verified), so only the masks
            // of this store's chains matter.
            masked.extend(local.masks(stream)?);
            let Some(ours) = store.head(stream)? else {
                heads.push(HeadUpdate {
                    stream: stream.clone(),
                    expected: None,
                    new: *theirs,
                });
                continue;
            };
            // The lower head must be on the higher one's chain; otherwise the chains forked.
            let (here, there) = if ours.height < theirs.height {
                (ours.cid, at_height(&mine, theirs, ours.height)?)
            } else {
                (at_height(&local, &ours, theirs.height)?, theirs.cid)
            };
            if here != there {
                return Err(Error::Archive {
                    cid: Some(theirs.cid),
                    reason: format!(
                        "stream {stream} has diverged from this store at height {}: here {here}, in the archive {there}",
                        ours.height.min(theirs.height),
                    ),
                });
            }
            if ours.height < theirs.height {
                heads.push(HeadUpdate {
                    stream: stream.clone(),
                    expected: Some(ours),
                    new: *theirs,
                });
            } else {
                imported.unchanged.push(stream.clone());
            }
        }
        // In the archive's order (each event, then its payload), so that the events keep
        // their places relative to each other in this store's log.
        let mut blocks = Vec::new();
        for cid in mine.log()? {
            let event = mine.event(&cid)?;
            let wanted = std::iter::once(cid).chain(event.payload());
            for cid in wanted {
                if masked.contains_key(&cid) || store.contains(&cid)? {
                    continue;
                }
                if let Some(block) = self.store.get(&cid)? {
                    blocks.push(block);
                }
            }
        }
        imported.blocks = blocks.len() as u64;
        imported.moved = heads.iter().map(|u| (u.stream.clone(), u.new)).collect();
        store.commit(&Commit { blocks, heads })?;
        tracing::debug!(
            blocks = imported.blocks,
            moved = imported.moved.len(),
            "imported"
        );
        Ok(imported)
    }
}

/// The CID of the event at `height` on the chain below `head`.
fn at_height<S: BlockStore>(ledger: &Ledger<S>, head: &Head, height: u64) -> Result<Cid> {
    let mut cid = head.cid;
    for _ in height..head.height {
        cid = ledger.event(&cid)?.prev().ok_or(Error::MissingBlock(cid))?;
    }
    Ok(cid)
}

fn archive_io(context: impl Into<String>, e: iroh_car::Error) -> Error {
    match e {
        iroh_car::Error::Io(source) => Error::Io {
            context: context.into(),
            source,
        },
        other => Error::Archive {
            cid: None,
            reason: format!("{}: {other}", context.into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Draft, Ipld, Signer};

    /// A ledger of one stream of two events, its signer's trust, and its archive.
    fn archive_of_two() -> (Ledger<MemoryStore>, TrustSet, Vec<u8>) {
        let signer = Signer::from_seed([3; 32]);
        let ledger = Ledger::new(MemoryStore::new());
        let stream: StreamId = "org/o".parse().unwrap();
        for i in 0..2 {
            let draft = Draft::new(stream.clone(), "Touched", 1)
                .with_data(Ipld::String(format!("value {i}")))
                .unwrap();
            ledger.append(&signer, draft).unwrap();
        }
        let trust = [signer.author()].into_iter().collect();
        let mut bytes = Vec::new();
        block_on(export(ledger.store(), None, &mut bytes)).unwrap();
        (ledger, trust, bytes)
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// A CAR section: varint length, binary CID, bytes.
    fn section(cid: &Cid, bytes: &[u8]) -> Vec<u8> {
        let body = [cid.to_bytes().as_slice(), bytes].concat();
        let mut out = Vec::new();
        let mut n = body.len() as u64;
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
        out.extend(body);
        out
    }

    /// The two events of `archive_of_two`'s stream, head first.
    fn two_events(ledger: &Ledger<MemoryStore>) -> (Event, Event) {
        let stream: StreamId = "org/o".parse().unwrap();
        let mut events = ledger.walk_back(&stream).unwrap().map(|e| e.unwrap());
        (events.next().unwrap(), events.next().unwrap())
    }

    /// A CAR file with `roots` and the blocks `cids` of `ledger`, in that order.
    fn car_of(ledger: &Ledger<MemoryStore>, roots: &[Cid], cids: &[Cid]) -> Vec<u8> {
        let mut bytes = Vec::new();
        block_on(async {
            let header = iroh_car::CarHeader::new_v1(roots.iter().map(Cid::to_raw).collect());
            let mut car = iroh_car::CarWriter::new(header, &mut bytes);
            for cid in cids {
                let block = ledger.store().get(cid).unwrap().unwrap();
                car.write(cid.to_raw(), block.bytes()).await.unwrap();
            }
            car.finish().await.unwrap();
        });
        bytes
    }

    fn unreachable(report: &Report) -> Vec<Cid> {
        report
            .findings
            .iter()
            .filter(|f| f.problem == crate::Problem::Unreachable)
            .filter_map(|f| f.cid)
            .collect()
    }

    #[test]
    fn a_stray_block_is_unreachable_and_nothing_is_imported() {
        let (_, trust, mut bytes) = archive_of_two();
        // A well-formed payload block (salted), but no event of the archive links it.
        let other = Ledger::new(MemoryStore::new());
        let draft = Draft::new("org/x".parse().unwrap(), "Touched", 1)
            .with_data(Ipld::String("stray".into()))
            .unwrap();
        let appended = other.append(&Signer::from_seed([4; 32]), draft).unwrap();
        let payload = other.event(&appended.cid).unwrap().payload().unwrap();
        let stray = other.store().get(&payload).unwrap().unwrap();
        bytes.extend(section(&stray.cid(), stray.bytes()));
        let archive = block_on(read(bytes.as_slice())).unwrap();
        let report = archive.verify(&trust, false).unwrap();
        assert_eq!(
            unreachable(&report),
            vec![stray.cid()],
            "{:?}",
            report.findings
        );
        assert_eq!(
            unreachable(&archive.verify(&trust, true).unwrap()),
            vec![stray.cid()]
        );
        let target = MemoryStore::new();
        assert!(archive.import_into(&target, &trust).is_err());
        assert!(target.heads().unwrap().is_empty());
        assert!(!target.contains(&stray.cid()).unwrap());
    }

    #[test]
    fn a_payload_left_behind_by_a_removed_head_is_unreachable() {
        let (ledger, trust, _) = archive_of_two();
        let (head, first) = two_events(&ledger);
        // An archive rooted at the first event, holding the head's payload but not the head.
        let bytes = car_of(
            &ledger,
            &[first.cid()],
            &[
                first.cid(),
                first.payload().unwrap(),
                head.payload().unwrap(),
            ],
        );
        let archive = block_on(read(bytes.as_slice())).unwrap();
        let report = archive.verify(&trust, false).unwrap();
        assert_eq!(unreachable(&report), vec![head.payload().unwrap()]);
        assert!(archive.import_into(&MemoryStore::new(), &trust).is_err());
    }

    #[test]
    fn a_second_root_for_a_stream_and_a_root_that_is_not_an_event_are_findings() {
        let (ledger, trust, _) = archive_of_two();
        let (head, first) = two_events(&ledger);
        let payload = first.payload().unwrap();
        let bytes = car_of(
            &ledger,
            &[head.cid(), first.cid(), payload],
            &[head.cid(), head.payload().unwrap(), first.cid(), payload],
        );
        let archive = block_on(read(bytes.as_slice())).unwrap();
        let report = archive.verify(&trust, false).unwrap();
        let found: Vec<(&str, Option<Cid>)> = report
            .findings
            .iter()
            .map(|f| (f.problem.code(), f.cid))
            .collect();
        assert!(found.contains(&("fork", Some(first.cid()))), "{found:?}");
        assert!(found.contains(&("malformed", Some(payload))), "{found:?}");
        assert!(archive.import_into(&MemoryStore::new(), &trust).is_err());
    }
}
