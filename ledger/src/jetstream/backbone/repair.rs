//! Repairing JetStream from the chains: what it acknowledged and then lost (a server that
//! acknowledged before its lazy fsync and lost power, a wiped or truncated store) is offered
//! again from the local store, in chain order, with the usual concurrency expectations; blocks
//! the bucket lost or holds damaged are stored again. A different history is never
//! overwritten: a subject whose last message is not on the local chain is left to `pull`,
//! which adopts what continues the chain and refuses what contradicts an acknowledged event.

use futures_util::stream::{self, StreamExt};
use tracing::instrument;

use super::{Backbone, Report};
use crate::store::{BlockStore, Head, Published};
use crate::{Cid, Error, Event, Ledger, Result, StreamId};

/// How many bucket reads (and writes) are in flight at once while checking blocks.
const CHECK_WINDOW: usize = 2048;

/// One stream whose acknowledged events JetStream no longer holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lost {
    /// The stream.
    pub stream: StreamId,
    /// The height of the subject's last event in JetStream (`None`: no message at all).
    pub kept: Option<u64>,
    /// The height up to which the log had acknowledged the stream's events.
    pub acknowledged: u64,
}

/// A hole in a subject's history: JetStream lost messages from its middle and kept later ones
/// (a power cut that took part of a stream's files). The events are offered to the bucket again
/// like every lost block, so readers, which walk chains by CID, rebuild them; but a stream only
/// grows at its end, so the subject's order cannot be mended in place (see `docs/JETSTREAM.md`,
/// "Holes").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    /// The stream.
    pub stream: StreamId,
    /// The stream sequence of the first message after the hole.
    pub sequence: u64,
    /// The event that message names.
    pub cid: Cid,
    /// The first and last missing heights, when the store holds the events on both sides.
    pub heights: Option<(u64, u64)>,
}

/// What [`Backbone::repair`] found and did.
#[derive(Debug, Default)]
pub struct Repaired {
    /// Streams whose acknowledged events JetStream had lost: offered again.
    pub lost: Vec<Lost>,
    /// Event and payload blocks the bucket had lost (or held damaged), stored again.
    pub blocks: u64,
    /// Streams whose subject ends on an event that is not on the local chain: another
    /// history, or other writers' newer events. Left to `pull` (nothing is overwritten).
    pub elsewhere: Vec<(StreamId, Cid)>,
    /// The publish of everything pending afterwards (the events offered again included).
    pub published: Report,
    /// Holes left in subjects' histories afterwards, in stream order: reported, not mended.
    pub gaps: Vec<Gap>,
}

impl Backbone {
    /// Repairs JetStream from `store`'s chains (see the module docs): for every stream, the
    /// subject's last message is compared with the local chain; where it is an older event
    /// of the chain (or the subject is empty) although the published mark says more was
    /// acknowledged, the mark moves back to what JetStream holds, so that the events above it
    /// are published again. Then everything pending is published ([`Backbone::publish`]: their
    /// blocks first, lost races settled as usual), and every event block and every payload
    /// block the store holds is checked in the bucket and stored again where missing or
    /// damaged.
    #[instrument(skip_all)]
    pub async fn repair<S: BlockStore + ?Sized>(&self, store: &S) -> Result<Repaired> {
        let mut out = Repaired::default();
        for (stream, head) in store.heads()? {
            let mark = store.published(&stream)?;
            let acknowledged = mark.map(|m| m.head.height);
            match self.last_notice(&stream).await? {
                Some((notice, _)) if notice.cid == head.cid => {}
                None => {
                    if let Some(acknowledged) = acknowledged {
                        store.clear_published(&stream)?;
                        out.lost.push(Lost {
                            stream,
                            kept: None,
                            acknowledged,
                        });
                    }
                }
                Some((notice, sequence)) => match height_on_chain(store, &stream, notice.cid)? {
                    Some(height) => {
                        if acknowledged.is_some_and(|a| a > height) {
                            out.lost.push(Lost {
                                stream: stream.clone(),
                                kept: Some(height),
                                acknowledged: acknowledged.unwrap_or(height),
                            });
                        }
                        store.set_published(
                            &stream,
                            Published {
                                head: Head {
                                    cid: notice.cid,
                                    height,
                                },
                                sequence,
                            },
                        )?;
                    }
                    None => out.elsewhere.push((stream, notice.cid)),
                },
            }
        }
        for lost in &out.lost {
            tracing::warn!(stream = %lost.stream, kept = ?lost.kept, acknowledged = lost.acknowledged, "JetStream lost acknowledged events; offering them again");
        }
        // Publishing stores the blocks of the events it offers again first; the check that
        // follows then finds only what the bucket lost of the rest.
        out.published = self.publish(store, None).await?;
        out.blocks = self.restore_blocks(store).await?;
        out.gaps = self.gaps(store).await?;
        for gap in &out.gaps {
            tracing::warn!(stream = %gap.stream, sequence = gap.sequence, heights = ?gap.heights, "JetStream lost messages from the middle of this subject; its order cannot be mended in place");
        }
        Ok(out)
    }

    /// Every hole in the subjects' histories: a message whose event's `prev` is not the event
    /// of the subject's previous message (or, first on its subject, whose event has a `prev`).
    /// Reads the event stream once, up to its last message now.
    async fn gaps<S: BlockStore + ?Sized>(&self, store: &S) -> Result<Vec<Gap>> {
        let mut gaps = Vec::new();
        let Some(target) = self.last_sequence().await? else {
            return Ok(gaps);
        };
        let height = |cid: &Cid| -> Option<u64> {
            let block = store.get(cid).ok()??;
            Some(Event::decode(&block).ok()?.height())
        };
        let mut last: std::collections::HashMap<StreamId, Cid> = Default::default();
        let messages = self.messages_from(1).await?;
        futures_util::pin_mut!(messages);
        while let Some(seen) = messages.next().await {
            let seen = seen?;
            let before = last.insert(seen.stream.clone(), seen.notice.cid);
            if let Some(prev) = seen.notice.prev.filter(|p| before != Some(*p)) {
                // Missing: after the previous message's event (or from height 0) up to this
                // event's `prev`.
                let from = match before {
                    Some(b) => height(&b).map(|h| h + 1),
                    None => Some(0),
                };
                let heights = from.zip(height(&prev)).filter(|(a, b)| a <= b);
                gaps.push(Gap {
                    stream: seen.stream,
                    sequence: seen.sequence,
                    cid: seen.notice.cid,
                    heights,
                });
            }
            if seen.sequence >= target {
                break;
            }
        }
        Ok(gaps)
    }

    /// The blocks of `streams`' local chains (their events, and the payloads the store still
    /// holds) that the bucket lacks (`false`) or holds damaged (`true`: its bytes do not hash
    /// to its CID), newest first per stream. With `acknowledged`, only the events up to each
    /// stream's published mark (pending events' blocks are not expected there yet).
    pub(in crate::jetstream) async fn bucket_gaps<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        streams: &[StreamId],
        acknowledged: bool,
    ) -> Result<Vec<(Cid, bool)>> {
        let cids = chain_blocks(store, streams, acknowledged)?;
        self.gaps_among(&cids).await
    }

    /// Those of `cids` that the bucket lacks (`false`) or holds damaged (`true`), in order.
    pub(in crate::jetstream) async fn gaps_among(&self, cids: &[Cid]) -> Result<Vec<(Cid, bool)>> {
        stream::iter(cids.iter().map(|cid| async move {
            match self.blocks.get(cid).await {
                Ok(Some(_)) => Ok(None),
                Ok(None) => Ok(Some((*cid, false))),
                Err(Error::CidMismatch { .. }) => Ok(Some((*cid, true))),
                Err(e) => Err(e),
            }
        }))
        .buffered(CHECK_WINDOW)
        .collect::<Vec<Result<Option<(Cid, bool)>>>>()
        .await
        .into_iter()
        .filter_map(Result::transpose)
        .collect()
    }

    /// Stores again every block of the local chains that the bucket lacks or holds damaged;
    /// returns how many.
    async fn restore_blocks<S: BlockStore + ?Sized>(&self, store: &S) -> Result<u64> {
        let streams: Vec<StreamId> = store.heads()?.into_iter().map(|(s, _)| s).collect();
        let missing: Vec<Cid> = self
            .bucket_gaps(store, &streams, false)
            .await?
            .into_iter()
            .map(|(cid, _)| cid)
            .collect();
        let blocks = missing
            .iter()
            .map(|cid| store.get(cid)?.ok_or(Error::MissingBlock(*cid)))
            .collect::<Result<Vec<_>>>()?;
        stream::iter(blocks.iter().map(|block| async move {
            tracing::warn!(cid = %block.cid(), "the bucket lost a block; storing it again");
            self.blocks.put(block).await
        }))
        .buffer_unordered(CHECK_WINDOW)
        .collect::<Vec<Result<()>>>()
        .await
        .into_iter()
        .collect::<Result<()>>()?;
        Ok(missing.len() as u64)
    }
}

/// The blocks of `streams`' local chains: their events, and the payloads the store still
/// holds, newest first per stream; with `acknowledged`, only up to each stream's published mark
/// (a stream with none has nothing acknowledged).
pub(super) fn chain_blocks<S: BlockStore + ?Sized>(
    store: &S,
    streams: &[StreamId],
    acknowledged: bool,
) -> Result<Vec<Cid>> {
    let ledger = Ledger::new(store);
    let mut cids: Vec<Cid> = Vec::new();
    for stream in streams {
        let below = match (acknowledged, store.published(stream)?) {
            (false, _) => u64::MAX,
            (true, Some(mark)) => mark.head.height,
            (true, None) => continue,
        };
        for event in ledger.walk_back(stream)? {
            let event: Event = event?;
            if event.height() > below {
                continue;
            }
            cids.push(event.cid());
            if let Some(p) = event
                .payload()
                .filter(|p| store.contains(p).unwrap_or(false))
            {
                cids.push(p);
            }
        }
    }
    Ok(cids)
}

/// The height of `cid` on `stream`'s local chain, if it is one of its events.
pub(in crate::jetstream) fn height_on_chain<S: BlockStore + ?Sized>(
    store: &S,
    stream: &StreamId,
    cid: Cid,
) -> Result<Option<u64>> {
    let Some(block) = store.get(&cid)? else {
        return Ok(None);
    };
    let Ok(event) = Event::decode(&block) else {
        return Ok(None);
    };
    if event.stream() != stream {
        return Ok(None);
    }
    // The event is stored and of this stream; it is on the chain if walking back from the
    // head meets it at its height.
    for walked in Ledger::new(store).walk_back(stream)? {
        let walked = walked?;
        if walked.height() == event.height() {
            return Ok((walked.cid() == cid).then_some(event.height()));
        }
        if walked.height() < event.height() {
            break;
        }
    }
    Ok(None)
}
