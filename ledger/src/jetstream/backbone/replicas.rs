//! Asking one server alone what its replicas hold ([`Backbone::check_replica`]), so that a
//! split brain is visible: JetStream acknowledges a write once a quorum has it, and a replica
//! that lost acknowledged messages (a torn or bit-flipped file on a node that was down, a lazy
//! fsync before a power cut) may go on serving its own history.
//!
//! The backbone must be connected to that server only ([`Backbone::connect_only`]). Reads are
//! direct gets (the event stream and the bucket allow them), which every replica answers and
//! the connected server answers first when it holds one. A server that holds no replica of a
//! stream passes the get to one that does: in a cluster where every stream has a replica on
//! every server (R3 on three) each answer is the connected server's own.

use std::time::Duration;

use super::repair::height_on_chain;
use super::Backbone;
use crate::store::BlockStore;
use crate::{Cid, Finding, Problem, Result, StreamId};

type EventStream = async_nats::jetstream::stream::Stream;

/// A replica found behind is asked again up to this many times, this far apart, before it is
/// reported: the last replica of a quorum may still be applying what the others acknowledged.
/// It stops early when a try finds as much missing as the one before.
const SETTLE_TRIES: u32 = 10;
const SETTLE_DELAY: Duration = Duration::from_millis(300);

impl Backbone {
    /// The name the connected server gives itself (its URL's host and port when it gives
    /// none).
    pub fn server_name(&self) -> String {
        let info = self.context().client().server_info();
        if info.server_name.is_empty() {
            format!("{}:{}", info.host, info.port)
        } else {
            info.server_name
        }
    }

    /// Checks what the connected server's replicas hold of `store`'s acknowledged events (all
    /// streams, or one): on each stream's subject, the last message must be the event the
    /// store's published mark names or a later one of the local chain (`replica-lost` when it
    /// is an earlier one or the subject is empty there, `replica-diverged` when it names an
    /// event that is not on the chain), and the bucket must hold every block of those events,
    /// sound (`replica-bucket-missing`, `replica-bucket-corrupt`). What is behind is asked
    /// again (every 300 ms, for up to 3 s, until a try finds no less than the one before), so a
    /// replica still applying the quorum's latest writes is not reported.
    pub async fn check_replica<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        stream: Option<&StreamId>,
    ) -> Result<Vec<Finding>> {
        let server = self.server_name();
        // The stream's handle once: each subject then costs one direct get, not a lookup too.
        let events = self
            .event_stream(&format!("asking {server} for the event stream"))
            .await?;
        let heads = match stream {
            Some(s) => store.head(s)?.map(|h| (s.clone(), h)).into_iter().collect(),
            None => store.heads()?,
        };
        let streams: Vec<StreamId> = heads.into_iter().map(|(s, _)| s).collect();
        let mut behind = streams.clone();
        let mut gaps = super::repair::chain_blocks(store, &streams, true)?;
        let mut findings = Vec::new();
        let mut previous = None;
        for attempt in 0..SETTLE_TRIES {
            if attempt > 0 {
                tokio::time::sleep(SETTLE_DELAY).await;
            }
            let last_try = attempt + 1 == SETTLE_TRIES;
            findings.clear();
            let mut still = Vec::new();
            for s in behind {
                if let Some(finding) = self.replica_subject(store, &events, &s, &server).await? {
                    // A different history does not settle: it is reported at once.
                    let diverged = matches!(finding.problem, Problem::ReplicaDiverged { .. });
                    if !diverged {
                        still.push(s);
                    }
                    findings.push(finding);
                }
            }
            behind = still;
            let found = self.gaps_among(&gaps).await?;
            gaps = found.iter().map(|(cid, _)| *cid).collect();
            findings.extend(found.into_iter().map(|(cid, corrupt)| Finding {
                cid: Some(cid),
                stream: None,
                height: None,
                problem: Problem::ReplicaBlock {
                    server: server.clone(),
                    corrupt,
                },
            }));
            let settling = findings
                .iter()
                .any(|f| !matches!(f.problem, Problem::ReplicaDiverged { .. }));
            // A replica that is catching up shrinks what it lacks from one try to the next; one
            // that lacks as much as before has lost it.
            let stuck = previous == Some(findings.len());
            previous = Some(findings.len());
            if !settling || stuck || last_try {
                break;
            }
        }
        Ok(findings)
    }

    /// The connected server's last message on `stream`'s subject against the store's mark.
    async fn replica_subject<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        events: &EventStream,
        stream: &StreamId,
        server: &str,
    ) -> Result<Option<Finding>> {
        let Some(mark) = store.published(stream)? else {
            return Ok(None);
        };
        let acknowledged = mark.head.height;
        let lost = |kept| Problem::ReplicaLost {
            server: server.to_string(),
            kept,
            acknowledged,
        };
        let (cid, height, problem) = match self.direct_last_notice(events, stream, server).await? {
            None => (mark.head.cid, Some(acknowledged), lost(None)),
            Some(notice) => match height_on_chain(store, stream, notice)? {
                Some(kept) if kept >= acknowledged => return Ok(None),
                Some(kept) => (mark.head.cid, Some(acknowledged), lost(Some(kept))),
                None => (
                    notice,
                    None,
                    Problem::ReplicaDiverged {
                        server: server.to_string(),
                    },
                ),
            },
        };
        Ok(Some(Finding {
            cid: Some(cid),
            stream: Some(stream.clone()),
            height,
            problem,
        }))
    }

    /// The CID in the last message on `stream`'s subject, by a direct get (answered by a
    /// replica, the connected server's own first); `None` when the subject has none.
    async fn direct_last_notice(
        &self,
        events: &EventStream,
        stream: &StreamId,
        server: &str,
    ) -> Result<Option<Cid>> {
        use async_nats::jetstream::stream::DirectGetErrorKind;
        let subject = self.settings().subject(stream);
        let context = || format!("asking {server} for the last message on {subject}");
        super::super::retry(|| async {
            match events.direct_get_last_for_subject(&subject).await {
                Ok(m) => Ok(Some(super::super::Notice::decode(&m.payload)?.cid)),
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
                Err(e) => Err(super::super::nats(context())(e.to_string())),
            }
        })
        .await
    }
}
