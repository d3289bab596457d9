//! The shared log: with JetStream, a ledger's transparency log (`crate::tlog`) is the event
//! stream's order, so every machine that reads the stream computes the same tree whatever order
//! it stored the events in; and signed checkpoints of it are published next to the events.
//!
//! - [`Backbone::shared_log`]: every event CID in stream-sequence order (a CID published again
//!   after the duplicate window keeps its first place).
//! - Checkpoints go to their own JetStream stream, `<STREAM>_CHECKPOINTS`, on subject
//!   `<prefix>_checkpoints.<HEX>` where `HEX` is the first 16 bytes of SHA-256 of the origin in
//!   hex; the message is the signed note (no personal data: an origin, a size, a root and
//!   signatures), its message id the note's SHA-256, so publishing twice stores it once.

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};
use futures_util::StreamExt;
use sha512::{Digest, Sha256};

use super::{nats, retry, Backbone, Link};
use crate::tlog::SharedLog;
use crate::{BlockStore, Cid, Result};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Backbone {
    /// Every event CID the event stream holds, in its sequence order.
    pub async fn shared_log(&self) -> Result<Vec<Cid>> {
        let mut out = Vec::new();
        if self.last_sequence().await?.is_none() {
            return Ok(out);
        }
        let mut seen = HashSet::new();
        let messages = self.messages(None, DeliverPolicy::All).await?;
        futures_util::pin_mut!(messages);
        while let Some(m) = messages.next().await {
            let m = m?;
            if seen.insert(m.notice.cid) {
                out.push(m.notice.cid);
            }
            if m.pending == 0 {
                break;
            }
        }
        Ok(out)
    }

    fn checkpoint_stream(&self) -> String {
        format!("{}_CHECKPOINTS", self.settings().stream)
    }

    fn checkpoint_subject(&self, origin: &str) -> String {
        let digest = Sha256::digest(origin.as_bytes());
        format!(
            "{}_checkpoints.{}",
            self.settings().prefix,
            hex(&digest[..16])
        )
    }

    /// Publishes a signed checkpoint of `origin`'s log; returns its sequence in the checkpoint
    /// stream (created when missing).
    pub async fn publish_checkpoint(&self, origin: &str, note: &str) -> Result<u64> {
        let name = self.checkpoint_stream();
        let subject = self.checkpoint_subject(origin);
        let context = || format!("publishing a checkpoint of {origin} on {subject}");
        retry(|| async {
            self.context()
                .get_or_create_stream(Config {
                    name: name.clone(),
                    description: Some("personctl signed checkpoints".into()),
                    subjects: vec![format!("{}_checkpoints.>", self.settings().prefix)],
                    storage: StorageType::File,
                    retention: RetentionPolicy::Limits,
                    discard: DiscardPolicy::Old,
                    num_replicas: self.settings().replicas,
                    duplicate_window: Duration::from_secs(120),
                    ..Config::default()
                })
                .await
                .map_err(|e| nats(context())(e.to_string()))?;
            let message = PublishMessage::build()
                .payload(note.as_bytes().to_vec().into())
                .message_id(hex(&Sha256::digest(note.as_bytes())));
            let ack = self
                .context()
                .send_publish(subject.clone(), message)
                .await
                .map_err(|e| nats(context())(e.to_string()))?;
            ack.await
                .map(|a| a.sequence)
                .map_err(|e| nats(context())(e.to_string()))
        })
        .await
    }

    /// The newest published checkpoint of `origin`'s log (the signed note), if any.
    pub async fn published_checkpoint(&self, origin: &str) -> Result<Option<String>> {
        let subject = self.checkpoint_subject(origin);
        let context = || format!("reading the newest checkpoint on {subject}");
        let Ok(stream) = self.context().get_stream(self.checkpoint_stream()).await else {
            return Ok(None);
        };
        match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => String::from_utf8(m.payload.to_vec())
                .map(Some)
                .map_err(|e| nats(context())(e.to_string())),
            Err(e)
                if e.kind()
                    == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
            {
                Ok(None)
            }
            Err(e) => Err(nats(context())(e.to_string())),
        }
    }
}

impl Link {
    /// The shared log over `store`: every stream pulled level with JetStream first (the first
    /// stream refused as untrusted is the error), then [`Backbone::shared_log`]'s order.
    pub fn shared_log_of<'a, S: BlockStore + ?Sized>(
        &self,
        store: &'a S,
    ) -> Result<SharedLog<'a, S>> {
        let pulled = self.pull_all(&store)?;
        if let Some(e) = pulled.refused.into_iter().next() {
            return Err(e);
        }
        SharedLog::new(store, self.shared_log()?)
    }

    /// [`Backbone::shared_log`].
    pub fn shared_log(&self) -> Result<Vec<Cid>> {
        self.block_on(self.backbone().shared_log())
    }

    /// [`Backbone::publish_checkpoint`].
    pub fn publish_checkpoint(&self, origin: &str, note: &str) -> Result<u64> {
        self.block_on(self.backbone().publish_checkpoint(origin, note))
    }

    /// [`Backbone::published_checkpoint`].
    pub fn published_checkpoint(&self, origin: &str) -> Result<Option<String>> {
        self.block_on(self.backbone().published_checkpoint(origin))
    }
}
