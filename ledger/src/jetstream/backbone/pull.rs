//! Pulling: bringing a local stream level with JetStream (fetching other writers' events
//! through the bucket, every CID re-derived; withdrawing local pending events that lost), and
//! fast-forwarding a batch of notices that continue the local heads in one commit.

use std::collections::{HashMap, HashSet};

use tracing::instrument;

use async_nats::jetstream::consumer::DeliverPolicy;
use futures_util::StreamExt;

use super::{Backbone, Pulled};
use crate::jetstream::PulledAll;
use crate::jetstream::{nats, retry, Notice};
use crate::store::{BlockStore, Commit, Head, HeadUpdate, Published};
use crate::{Block, Cid, Error, Event, Result, StreamId, Tombstone, TOMBSTONE_TYPE};

/// Notices per [`Backbone::fast_forward`] call while adopting in JetStream's order.
const ADOPT_BATCH: usize = 1024;

/// Whether `stream` is a key or policy chain.
pub(super) fn is_rule_chain(stream: &StreamId) -> bool {
    matches!(
        stream.aggregate(),
        crate::identity::KEY_AGGREGATE | crate::policy::POLICY_AGGREGATE
    )
}

impl Backbone {
    /// Brings every stream JetStream has level with `store`, adopting the events in
    /// JetStream's order (batches of [`Backbone::fast_forward`] from the oldest message a
    /// stream lacks), so the store's log lists them as the shared log does and identities and
    /// grants resolve at the same positions. Streams that cannot be fast-forwarded (local
    /// pending events, a tombstone, a gap) are then pulled one by one: key chains, policy
    /// chains, then the rest. One stream's untrusted events do not keep the others from being
    /// read: they are named in [`PulledAll::refused`].
    pub async fn pull_all<S: BlockStore + ?Sized>(&self, store: &S) -> Result<PulledAll> {
        let mut out = PulledAll::default();
        if self.last_sequence().await?.is_none() {
            return Ok(out);
        }
        let mut behind: Vec<StreamId> = Vec::new();
        let mut start = u64::MAX;
        let mut last = 0;
        {
            let lasts = self.messages(None, DeliverPolicy::LastPerSubject).await?;
            futures_util::pin_mut!(lasts);
            while let Some(seen) = lasts.next().await {
                let seen = seen?;
                out.streams += 1;
                last = last.max(seen.sequence);
                let mark = store.published(&seen.stream)?;
                if mark.map(|m| (m.head.cid, m.sequence)) != Some((seen.notice.cid, seen.sequence))
                {
                    start = start.min(mark.map_or(1, |m| m.sequence + 1));
                    behind.push(seen.stream);
                }
                if seen.pending == 0 {
                    break;
                }
            }
        }
        if behind.is_empty() {
            return Ok(out);
        }
        let mut before: HashMap<StreamId, u64> = HashMap::new();
        for stream in &behind {
            before.insert(
                stream.clone(),
                store.head(stream)?.map_or(0, |h| h.height + 1),
            );
        }
        let wanted: HashSet<&StreamId> = behind.iter().collect();
        if start <= last {
            let mut left: HashSet<StreamId> = HashSet::new();
            let mut batch = Vec::new();
            let messages = self.messages_from(start).await?;
            futures_util::pin_mut!(messages);
            // The judge sees the key and policy chains as far as the scan got, and pulls none
            // ahead of it (that would list later key events before earlier events here).
            let _scanning = self.hold_rule_chains();
            while let Some(m) = messages.next().await {
                let m = m?;
                let done = m.pending == 0 || m.sequence >= last;
                // A key or policy event is stored on its own, before the events after it are
                // judged.
                let rule = is_rule_chain(&m.stream);
                if rule && !batch.is_empty() {
                    left.extend(self.fast_forward(store, &batch).await?);
                    batch.clear();
                }
                if wanted.contains(&m.stream) && !left.contains(&m.stream) {
                    batch.push((m.stream, m.notice, m.sequence));
                }
                if (rule || done || batch.len() >= ADOPT_BATCH) && !batch.is_empty() {
                    left.extend(self.fast_forward(store, &batch).await?);
                    batch.clear();
                }
                if done {
                    break;
                }
            }
        }
        behind.sort_by_key(|s| {
            let rank = match s.aggregate() {
                crate::identity::KEY_AGGREGATE => 0,
                crate::policy::POLICY_AGGREGATE => 1,
                _ => 2,
            };
            (rank, s.clone())
        });
        for stream in &behind {
            match self.pull(store, stream).await {
                Ok(_) => {}
                Err(e @ Error::Untrusted { .. }) => out.refused.push(e),
                Err(e) => return Err(e),
            }
            let now = store.head(stream)?.map_or(0, |h| h.height + 1);
            out.fetched += now.saturating_sub(before[stream]);
        }
        Ok(out)
    }

    /// Stores the events `notices` name (each with its stream and its message's sequence, in
    /// the order a consumer delivers them) where they continue their stream's local head: the
    /// blocks are fetched from the bucket concurrently (CIDs re-derived) and stored in one
    /// commit, and the published marks move. Returns the streams left alone, to [`pull`]: those
    /// whose notices do not continue the local head (a gap, local pending events), hold a
    /// tombstone (its masks need `pull`), or miss a block.
    ///
    /// [`pull`]: Backbone::pull
    pub async fn fast_forward<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        notices: &[(StreamId, Notice, u64)],
    ) -> Result<Vec<StreamId>> {
        Ok(self.fast_forward_checked(store, notices).await?.0)
    }

    /// [`Backbone::fast_forward`], also returning the events it stored whose signatures it
    /// verified and whose authors and grants it judged under this backbone's trust
    /// ([`Backbone::with_trust`]; none without it), so a follower judging with the same trust
    /// need not check them twice.
    pub(in crate::jetstream) async fn fast_forward_checked<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        notices: &[(StreamId, Notice, u64)],
    ) -> Result<(Vec<StreamId>, HashMap<Cid, Event>)> {
        // Per stream, in order: the notices not stored yet, if they continue the head.
        let mut order: Vec<StreamId> = Vec::new();
        // Per stream: its local head, and the notices (with sequences) that continue it.
        type Plan = (Option<Head>, Vec<(Notice, u64)>);
        let mut plans: HashMap<StreamId, Plan> = HashMap::new();
        let mut left: HashSet<StreamId> = HashSet::new();
        for (stream, notice, sequence) in notices {
            if left.contains(stream) || store.contains(&notice.cid)? {
                continue;
            }
            let plan = match plans.entry(stream.clone()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let head = store.head(stream)?;
                    let mark = store.published(stream)?.map(|m| m.head);
                    if head != mark {
                        left.insert(stream.clone()); // local pending events: pull decides
                        continue;
                    }
                    order.push(stream.clone());
                    e.insert((head, Vec::new()))
                }
            };
            let tip = plan.1.last().map(|(n, _)| n.cid).or(plan.0.map(|h| h.cid));
            if notice.prev != tip {
                left.insert(stream.clone());
                continue;
            }
            plan.1.push((notice.clone(), *sequence));
        }
        order.retain(|s| !left.contains(s));
        let wanted: Vec<Cid> = order
            .iter()
            .flat_map(|s| plans[s].1.iter().map(|(n, _)| n.cid))
            .collect();
        // Each event, then its payload, fetched as one chain per event, all events at once
        // (one wait for the whole batch instead of one for the events and one for the
        // payloads).
        let fetched = futures_util::future::join_all(wanted.iter().map(|cid| async move {
            let Some(block) = self.blocks.get(cid).await? else {
                return Ok::<_, Error>(None);
            };
            let event = Event::decode(&block)?;
            let payload = match event.payload() {
                Some(p) => self.blocks.get(&p).await?,
                None => None,
            };
            Ok(Some((block, event, payload)))
        }))
        .await;
        let mut decoded: HashMap<Cid, (Block, Event)> = HashMap::new();
        let mut payload_blocks: HashMap<Cid, Block> = HashMap::new();
        for (cid, fetched) in wanted.iter().zip(fetched) {
            if let Some((block, event, payload)) = fetched? {
                if let Some(p) = payload {
                    payload_blocks.insert(p.cid(), p);
                }
                decoded.insert(*cid, (block, event));
            }
        }
        // Signatures checked together (batch verification), authors and grants judged.
        let admitted = self
            .admit_many(store, decoded.values().map(|(b, e)| (b, e)))
            .await?;
        let mut commit = Commit::default();
        // (stream sequence, blocks of that event): the commit lists them in JetStream's order,
        // so this store's log follows the shared log.
        let mut sequenced: Vec<(u64, Vec<Block>)> = Vec::new();
        let mut marks = Vec::new();
        for stream in &order {
            let (head, planned) = &plans[stream];
            let mut height = head.map(|h| h.height + 1).unwrap_or(0);
            let mut blocks = Vec::new();
            let mut events = Vec::new();
            let mut ok = true;
            for (notice, sequence) in planned {
                // Each event (and its salted payload) belongs to one stream: taken, not copied.
                let Some((block, event)) = decoded.remove(&notice.cid) else {
                    ok = false;
                    break;
                };
                let payload = event.payload().map(|p| payload_blocks.remove(&p));
                let fits = event.stream() == stream
                    && admitted.contains(&notice.cid)
                    && event.height() == height
                    && event.prev() == notice.prev
                    && event.event_type() != TOMBSTONE_TYPE
                    && !matches!(payload, Some(None));
                if !fits {
                    ok = false;
                    break;
                }
                let mut event_blocks = vec![block];
                if let Some(Some(p)) = payload {
                    event_blocks.push(p);
                }
                blocks.push((*sequence, event_blocks));
                events.push(event);
                height += 1;
            }
            let Some((last, sequence)) = planned.last().filter(|_| ok) else {
                left.insert(stream.clone());
                continue;
            };
            let new = Head {
                cid: last.cid,
                height: height - 1,
            };
            sequenced.extend(blocks);
            commit.heads.push(HeadUpdate {
                stream: stream.clone(),
                expected: *head,
                new,
            });
            marks.push((
                stream.clone(),
                Published {
                    head: new,
                    sequence: *sequence,
                },
                events,
            ));
        }
        sequenced.sort_by_key(|(sequence, _)| *sequence);
        commit.blocks = sequenced.into_iter().flat_map(|(_, b)| b).collect();
        let mut checked = HashMap::new();
        if !commit.heads.is_empty() {
            match store.commit(&commit) {
                Ok(()) => {
                    for (stream, mark, events) in marks {
                        store.set_published(&stream, mark)?;
                        if self.trust.is_some() {
                            checked.extend(events.into_iter().map(|e| (e.cid(), e)));
                        }
                    }
                }
                // Another writer moved a head meanwhile: let pull sort each stream out.
                Err(Error::Conflict { .. }) => {
                    left.extend(marks.into_iter().map(|(s, _, _)| s));
                }
                Err(e) => return Err(e),
            }
        }
        let mut left: Vec<StreamId> = left.into_iter().collect();
        left.sort();
        Ok((left, checked))
    }

    /// Brings the local copy of `stream` level with JetStream: fetches the events other
    /// writers published (from the subject's last message back, through the bucket, every CID
    /// re-derived) and commits them with the new head in one step. Local pending events that
    /// JetStream already has count as acknowledged; local pending events at heights JetStream
    /// filled with other events are withdrawn (removed from the store: never acknowledged,
    /// never linked). An acknowledged local event missing from JetStream is an error, and
    /// nothing is written.
    #[instrument(skip_all, fields(stream = %stream))]
    pub async fn pull<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        stream: &StreamId,
    ) -> Result<Pulled> {
        let mut out = Pulled::default();
        let Some((last, sequence)) = self.last_notice(stream).await? else {
            return Ok(out);
        };
        let mark = store.published(stream)?;
        if mark.map(|m| m.head.cid) == Some(last.cid) && mark.map(|m| m.sequence) == Some(sequence)
        {
            return Ok(out);
        }
        // Walk JetStream's chain back to the first event the store has.
        let mut fetched = Vec::new();
        let mut js_head = None;
        let mut join = None;
        let mut next = Some(last.cid);
        // Payloads masked by the tombstones met so far: they are not fetched (the bucket no
        // longer has them) and are removed here if this store still holds them.
        let mut masked: HashSet<Cid> = HashSet::new();
        while let Some(cid) = next.take() {
            if store.contains(&cid)? {
                join = Some(cid);
                break;
            }
            let block = self
                .blocks
                .get(&cid)
                .await?
                .ok_or(Error::MissingBlock(cid))?;
            let event = Event::decode(&block)?;
            if event.stream() != stream {
                return Err(Error::InvalidEvent(format!(
                    "event {cid} on the subject of {stream} belongs to {}",
                    event.stream()
                )));
            }
            self.admit(store, &block, &event).await?;
            js_head.get_or_insert(Head {
                cid,
                height: event.height(),
            });
            if let Some(payload) = event.payload().filter(|p| !masked.contains(p)) {
                let block = self
                    .blocks
                    .get(&payload)
                    .await?
                    .ok_or(Error::MissingBlock(payload))?;
                if event.event_type() == TOMBSTONE_TYPE {
                    masked.extend(Tombstone::decode(&event, Some(&block))?.masks);
                }
                fetched.push(block);
            }
            next = event.prev();
            fetched.push(block);
            out.fetched += 1;
        }
        // The local events above the join point: JetStream does not have them.
        let local_head = store.head(stream)?;
        let mut local_only = Vec::new();
        let mut join_head = None;
        for event in crate::Ledger::new(store).walk_back(stream)? {
            let event = event?;
            if Some(event.cid()) == join {
                join_head = Some(Head {
                    cid: event.cid(),
                    height: event.height(),
                });
                break;
            }
            local_only.push((event.cid(), event.height(), event.payload()));
        }
        if let (Some(join), None) = (join, join_head) {
            return Err(Error::InvalidEvent(format!(
                "JetStream's chain of {stream} meets the local store at {join}, which is not on the local chain"
            )));
        }
        if let (Some(m), Some((cid, height, _))) = (mark, local_only.last()) {
            if *height <= m.head.height {
                return Err(Error::InvalidEvent(format!(
                    "event {cid} of {stream} was acknowledged by JetStream (height {height}), but JetStream's chain does not hold it"
                )));
            }
        }
        out.acknowledged = match (join_head, mark) {
            (None, _) => 0,
            (Some(j), None) => j.height + 1,
            (Some(j), Some(m)) => j.height.saturating_sub(m.head.height),
        };
        let new_mark_head = match js_head {
            // JetStream's last event is one of ours: everything up to it is acknowledged.
            None => join_head.expect("a walk that fetched nothing stopped at a stored event"),
            Some(head) => {
                // Oldest first: the store's log lists them in chain order.
                fetched.reverse();
                store.commit(&Commit {
                    blocks: fetched,
                    heads: vec![HeadUpdate {
                        stream: stream.clone(),
                        expected: local_head,
                        new: head,
                    }],
                })?;
                for (cid, _, payload) in &local_only {
                    store.remove(cid)?;
                    if let Some(p) = payload {
                        store.remove(p)?;
                    }
                }
                out.withdrawn = local_only.iter().rev().map(|(c, _, _)| *c).collect();
                for m in &masked {
                    if store.remove(m)? {
                        tracing::debug!(cid = %m, %stream, "purged a block masked by a pulled tombstone");
                    }
                }
                head
            }
        };
        store.set_published(
            stream,
            Published {
                head: new_mark_head,
                sequence,
            },
        )?;
        tracing::debug!(
            fetched = out.fetched,
            withdrawn = out.withdrawn.len(),
            "pulled"
        );
        Ok(out)
    }

    /// The subject's last notice and its stream sequence; `None` when the subject is empty.
    pub(crate) async fn last_notice(&self, stream: &StreamId) -> Result<Option<(Notice, u64)>> {
        let subject = self.settings.subject(stream);
        let context = || format!("reading the last message on {subject}");
        retry(|| async {
            let js_stream = self.event_stream(&context()).await?;
            match js_stream.get_last_raw_message_by_subject(&subject).await {
                Ok(m) => Ok(Some((Notice::decode(&m.payload)?, m.sequence))),
                Err(e)
                    if e.kind()
                        == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
                {
                    Ok(None)
                }
                Err(e) => Err(nats(context())(e.to_string())),
            }
        })
        .await
    }
}
