//! Reading the event stream back: [`follow`] (new events, live) and [`cross_check`] (every
//! message against the store, and every stored head against JetStream).

use std::collections::HashMap;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use futures_util::{Stream, StreamExt};

use super::{nats, retry, Backbone, Notice};
use crate::{BlockStore, Cid, Event, Finding, Problem, Result, StreamId};

/// One message read from the event stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The ledger stream, from the message's subject.
    pub stream: StreamId,
    /// The message's stream sequence.
    pub sequence: u64,
    /// The message body.
    pub notice: Notice,
    /// Messages the consumer has yet to deliver after this one (when this message was sent).
    pub pending: u64,
}

impl Backbone {
    /// The event stream's handle; an error names `context`.
    pub(super) async fn event_stream(
        &self,
        context: &str,
    ) -> Result<async_nats::jetstream::stream::Stream> {
        self.context()
            .get_stream(&self.settings().stream)
            .await
            .map_err(|e| nats(context)(e.to_string()))
    }

    fn stream_of(&self, subject: &str) -> Option<StreamId> {
        self.settings().stream_of(subject)
    }

    /// An ordered consumer on one ledger stream's subject, or on all of them.
    pub(super) async fn messages(
        &self,
        stream: Option<&StreamId>,
        deliver: DeliverPolicy,
    ) -> Result<impl Stream<Item = Result<Seen>> + '_> {
        let filter = match stream {
            Some(s) => self.settings().subject(s),
            None => format!("{}.>", self.settings().prefix),
        };
        let context = format!("following {filter}");
        // Creating a consumer is a cluster operation: a cluster that just lost a node may be
        // electing a leader, so it is retried like every request.
        let messages = retry(|| async {
            let failed = |e: String| nats(context.clone())(e);
            self.event_stream(&context)
                .await?
                .create_consumer(pull::OrderedConfig {
                    filter_subject: filter.clone(),
                    deliver_policy: deliver,
                    ..Default::default()
                })
                .await
                .map_err(|e| failed(e.to_string()))?
                .messages()
                .await
                .map_err(|e| failed(e.to_string()))
        })
        .await?;
        Ok(messages.map(move |m| {
            let m = m.map_err(|e| nats(context.clone())(e.to_string()))?;
            let info = m.info().map_err(|e| nats(context.clone())(e.to_string()))?;
            let (sequence, pending) = (info.stream_sequence, info.pending);
            let stream = self.stream_of(&m.subject).ok_or_else(|| {
                nats(context.clone())(format!(
                    "message {sequence} on {} is not on a ledger subject",
                    m.subject
                ))
            })?;
            Ok(Seen {
                stream,
                sequence,
                notice: Notice::decode(&m.payload)?,
                pending,
            })
        }))
    }
}

impl Backbone {
    /// [`Backbone::messages`] on every ledger subject, from stream sequence `start` on.
    pub(super) async fn messages_from(
        &self,
        start: u64,
    ) -> Result<impl Stream<Item = Result<Seen>> + '_> {
        self.messages(
            None,
            DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
        )
        .await
    }

    /// The event stream's last sequence; `None` when it holds no message.
    pub(super) async fn last_sequence(&self) -> Result<Option<u64>> {
        retry(|| async {
            let failed = |e: String| nats("reading the event stream")(e);
            let mut js_stream = self.event_stream("reading the event stream").await?;
            let state = &js_stream
                .info()
                .await
                .map_err(|e| failed(e.to_string()))?
                .state;
            Ok((state.messages > 0).then_some(state.last_sequence))
        })
        .await
    }

    /// Every ledger stream that has events in JetStream, in subject order of their last
    /// messages.
    pub async fn streams(&self) -> Result<Vec<StreamId>> {
        let mut out = Vec::new();
        if self.last_sequence().await?.is_none() {
            return Ok(out);
        }
        let seen = self.messages(None, DeliverPolicy::LastPerSubject).await?;
        futures_util::pin_mut!(seen);
        while let Some(s) = seen.next().await {
            let s = s?;
            out.push(s.stream);
            if s.pending == 0 {
                break;
            }
        }
        Ok(out)
    }
}

impl Backbone {
    /// Every ledger stream of aggregate type `aggregate` that has events in JetStream, in
    /// subject order.
    pub async fn streams_of(&self, aggregate: &str) -> Result<Vec<StreamId>> {
        let filter = format!("{}.{aggregate}.>", self.settings().prefix);
        let context = format!("listing the subjects {filter}");
        let subjects = retry(|| async {
            let failed = |e: String| nats(context.clone())(e);
            let mut info = self
                .event_stream(&context)
                .await?
                .info_with_subjects(&filter)
                .await
                .map_err(|e| failed(e.to_string()))?;
            let mut subjects = Vec::new();
            while let Some(s) = info.next().await {
                subjects.push(s.map_err(|e| failed(e.to_string()))?.0);
            }
            Ok(subjects)
        })
        .await?;
        let mut out: Vec<StreamId> = subjects.iter().filter_map(|s| self.stream_of(s)).collect();
        out.sort();
        Ok(out)
    }
}

/// Follows events as they are published (only new ones), on one stream's subject or on all.
pub async fn follow<'a>(
    backbone: &'a Backbone,
    stream: Option<&StreamId>,
) -> Result<impl Stream<Item = Result<Seen>> + 'a> {
    backbone.messages(stream, DeliverPolicy::New).await
}

/// The outcome of [`cross_check`].
#[derive(Clone, Debug, Default)]
pub struct CrossCheck {
    /// Messages read.
    pub messages: u64,
    /// What failed, in message order, then the blocks the bucket lacks or holds damaged, then
    /// the unpublished and lost heads by stream.
    pub findings: Vec<Finding>,
}

/// Checks JetStream against the store (one stream, or all): every message names an event the
/// store holds, its links match the event's, and on each subject the events follow their chain
/// one height at a time; and every stored head is its subject's last message. Signatures and
/// blocks are the store verification's part (`crate::verify`); the shared bucket must hold
/// every block of the acknowledged events, sound (`bucket-missing`, `bucket-corrupt`). Over all
/// streams, the newest
/// checkpoint published under [`Settings::log_origin`](super::Settings::log_origin) that a
/// trusted author signed (the backbone's trust set) is checked against the shared log: a
/// JetStream that lost events it had is `truncated-log`, one that holds another history is
/// `root-mismatch`.
pub async fn cross_check<S: BlockStore + ?Sized>(
    backbone: &Backbone,
    store: &S,
    stream: Option<&StreamId>,
) -> Result<CrossCheck> {
    let mut out = CrossCheck::default();
    // Read up to the last message there is now.
    let target = match stream {
        Some(s) => backbone.last_notice(s).await?.map(|(_, sequence)| sequence),
        None => backbone.last_sequence().await?,
    };
    let mut last: HashMap<StreamId, (Cid, u64)> = HashMap::new();
    let mut shared = Vec::new();
    let mut seen_cids = std::collections::HashSet::new();
    if let Some(target) = target {
        let messages = backbone.messages(stream, DeliverPolicy::All).await?;
        futures_util::pin_mut!(messages);
        while let Some(seen) = messages.next().await {
            let seen = seen?;
            out.messages += 1;
            if seen_cids.insert(seen.notice.cid) {
                shared.push(seen.notice.cid);
            }
            check_message(store, &seen, &mut last, &mut out.findings)?;
            if seen.sequence >= target {
                break;
            }
        }
    }
    if stream.is_none() {
        out.findings
            .extend(check_published_checkpoint(backbone, shared).await?);
    }
    let heads = match stream {
        Some(s) => store.head(s)?.map(|h| (s.clone(), h)).into_iter().collect(),
        None => store.heads()?,
    };
    // The bucket: every block of the local chains there, and sound.
    let streams: Vec<StreamId> = heads.iter().map(|(s, _)| s.clone()).collect();
    for (cid, corrupt) in backbone.bucket_gaps(store, &streams, true).await? {
        out.findings.push(Finding {
            cid: Some(cid),
            stream: None,
            height: None,
            problem: Problem::BucketBlock { corrupt },
        });
    }
    for (s, head) in heads {
        let published = last.get(&s).copied();
        if published.map(|(c, _)| c) != Some(head.cid) {
            let published = published.map(|(_, h)| h);
            // The store's mark says how far JetStream acknowledged the stream: beyond what
            // JetStream holds now, the events were lost, not left pending.
            let acknowledged = store.published(&s)?.map(|m| m.head.height);
            let problem = match acknowledged {
                Some(a) if published.is_none_or(|p| a > p) => Problem::Lost {
                    published,
                    acknowledged: a,
                },
                _ => Problem::Unpublished { published },
            };
            out.findings.push(Finding {
                cid: Some(head.cid),
                stream: Some(s),
                height: Some(head.height),
                problem,
            });
        }
    }
    Ok(out)
}

/// Checks one message against the store and the subject's previous message.
fn check_message<S: BlockStore + ?Sized>(
    store: &S,
    seen: &Seen,
    last: &mut HashMap<StreamId, (Cid, u64)>,
    findings: &mut Vec<Finding>,
) -> Result<()> {
    let cid = seen.notice.cid;
    let mismatch = |height: Option<u64>, reason: String| Finding {
        cid: Some(cid),
        stream: Some(seen.stream.clone()),
        height,
        problem: Problem::MessageMismatch {
            sequence: seen.sequence,
            reason,
        },
    };
    let previous = last.get(&seen.stream).copied();
    let Some(block) = store.get(&cid)? else {
        findings.push(Finding {
            cid: Some(cid),
            stream: Some(seen.stream.clone()),
            height: None,
            problem: Problem::NotStored {
                sequence: seen.sequence,
            },
        });
        // Keep following the subject from this message on.
        last.insert(
            seen.stream.clone(),
            (cid, previous.map_or(0, |(_, h)| h + 1)),
        );
        return Ok(());
    };
    let event = match Event::decode(&block) {
        Ok(e) => e,
        Err(e) => {
            findings.push(mismatch(
                None,
                format!("names a block that is not an event: {e}"),
            ));
            return Ok(());
        }
    };
    let height = event.height();
    if event.stream() != &seen.stream {
        findings.push(mismatch(
            Some(height),
            format!("the event belongs to {}", event.stream()),
        ));
    }
    if event.prev() != seen.notice.prev || event.causes() != seen.notice.causes.as_slice() {
        findings.push(mismatch(
            Some(height),
            "its links differ from the event's".into(),
        ));
    }
    let (want_prev, want_height) = match previous {
        Some((c, h)) => (Some(c), h + 1),
        None => (None, 0),
    };
    if event.prev() != want_prev || height != want_height {
        findings.push(mismatch(
            Some(height),
            format!("out of order: the subject's previous message leads to height {want_height}"),
        ));
    }
    last.insert(seen.stream.clone(), (cid, height));
    Ok(())
}

/// The newest published checkpoint of the shared log that a trusted author signed, against
/// the shared log `leaves` (see [`cross_check`]).
async fn check_published_checkpoint(
    backbone: &Backbone,
    leaves: Vec<Cid>,
) -> Result<Option<Finding>> {
    let origin = backbone.settings().log_origin();
    let Some(note) = backbone.published_checkpoint(&origin).await? else {
        return Ok(None);
    };
    let Some(trust) = &backbone.trust else {
        return Ok(None);
    };
    let opened = trust.iter().find_map(|author| {
        let key = crate::tlog::NoteKey::new(origin.as_str(), *author).ok()?;
        crate::tlog::Checkpoint::open(&note, &key).ok()
    });
    let Some(checkpoint) = opened else {
        tracing::warn!(
            origin,
            "the newest published checkpoint is not signed by a trusted key"
        );
        return Ok(None);
    };
    let mut log = crate::tlog::Log::default();
    for cid in leaves {
        log.push(cid);
    }
    let problem = crate::tlog::check_in(&mut log, &checkpoint)?;
    Ok(problem.map(|problem| Finding {
        cid: None,
        stream: None,
        height: None,
        problem,
    }))
}
