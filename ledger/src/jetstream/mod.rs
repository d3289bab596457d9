//! The JetStream backbone (feature `jetstream`): the CID-only message ([`Notice`]), subjects,
//! stream set-up with a compatibility check, the block bucket ([`Blocks`]), the retry policy,
//! and in submodules [`Backbone`] (publish, pull), [`Link`] (the same for synchronous callers:
//! the [`crate::Publisher`] of the write path) and the readers ([`follow`], [`cross_check`]).
//! The design is in `docs/JETSTREAM.md`.
//!
//! Invariant 2: a `Notice` carries links only; blocks travel through the bucket.

use std::time::Duration;

use async_nats::jetstream::context::Context;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};
use serde::{Deserialize, Serialize};
use tracing::instrument;

mod backbone;
mod check;
mod durability;
mod follower;
mod link;
mod respond;
mod shared_log;

pub use self::backbone::{Backbone, Gap, Lost, Pulled, Repaired, Report};
pub use self::check::{cross_check, follow, CrossCheck, Seen};
pub use self::durability::Durability;
pub use self::follower::{
    dead_letter_stream, dead_letters, follow_log, retry_dead_letter, DeadLetter,
};
pub use self::link::{check_replicas, Link, PulledAll};
pub use self::respond::respond;

use crate::{codec, Block, Cid, Error, Event, Result, StreamId};

/// `url` (servers comma-separated) as it may be shown: a password or token in it replaced by
/// `***`, the user name kept.
pub fn redact(url: &str) -> String {
    url.split(',')
        .map(|part| {
            let Some((scheme, rest)) = part.split_once("://") else {
                return part.to_string();
            };
            match rest.split_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                    None => format!("{scheme}://***@{host}"),
                },
                None => part.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// What a JetStream message says about an event: its CID and its links, nothing else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notice {
    /// The event block's CID.
    pub cid: Cid,
    /// The previous event of the same stream.
    pub prev: Option<Cid>,
    /// Causal parents in other streams.
    pub causes: Vec<Cid>,
}

impl Notice {
    /// The notice of an event.
    pub fn of(event: &Event) -> Notice {
        Notice {
            cid: event.cid(),
            prev: event.prev(),
            causes: event.causes().to_vec(),
        }
    }

    /// The message body: canonical DAG-CBOR `{"cid", "prev", "causes"}`.
    pub fn encode(&self) -> Result<Vec<u8>> {
        codec::encode(self)
    }

    /// Reads a message body strictly.
    pub fn decode(bytes: &[u8]) -> Result<Notice> {
        codec::decode(&"JetStream message body", bytes)
    }
}

/// Where events go in JetStream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The JetStream stream's name.
    pub stream: String,
    /// The subject prefix: events are on `<prefix>.<aggregate type>.<aggregate id>`.
    pub prefix: String,
    /// Replicas of the stream and the bucket (1, or 3 in a cluster).
    pub replicas: usize,
    /// The key-value bucket that holds blocks by CID.
    pub bucket: String,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            stream: "PERSONCTL".into(),
            prefix: "ledger".into(),
            replicas: 1,
            bucket: "PERSONCTL_BLOCKS".into(),
        }
    }
}

impl Settings {
    /// The subject of a stream's events.
    pub fn subject(&self, stream: &StreamId) -> String {
        format!("{}.{}.{}", self.prefix, stream.aggregate(), stream.id())
    }

    /// The origin of the shared log's checkpoints (`crate::tlog`): `personctl.jetstream/` and
    /// the stream's name.
    pub fn log_origin(&self) -> String {
        format!("personctl.jetstream/{}", self.stream)
    }

    /// The ledger stream a subject names (`<prefix>.<type>.<id>`), if it is one.
    pub fn stream_of(&self, subject: &str) -> Option<StreamId> {
        let rest = subject
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('.')?;
        let (aggregate, id) = rest.split_once('.')?;
        StreamId::new(aggregate, id).ok()
    }

    fn config(&self) -> Config {
        Config {
            name: self.stream.clone(),
            subjects: vec![format!("{}.>", self.prefix)],
            storage: StorageType::File,
            retention: RetentionPolicy::Limits,
            discard: DiscardPolicy::Old,
            max_age: Duration::ZERO,
            max_messages: -1,
            max_bytes: -1,
            max_messages_per_subject: -1,
            deny_delete: true,
            deny_purge: true,
            num_replicas: self.replicas,
            // Every replica answers direct gets: `Backbone::check_replica` asks each server.
            allow_direct: true,
            ..Config::default()
        }
    }
}

/// Bounded exponential backoff for re-trying a JetStream request after a transient failure (a
/// lost connection, a cluster electing a new leader): 50 ms doubling up to 2 s, at most 10
/// tries, and no new try once 15 s have passed since the first (a try waits up to 5 s for its
/// reply, so a request gives up within about 20 s).
const TRIES: u32 = 10;
const RETRY_FOR: Duration = Duration::from_secs(15);

fn delay(attempt: u32) -> Duration {
    Duration::from_millis(50)
        .saturating_mul(1 << attempt.min(10))
        .min(Duration::from_secs(2))
}

/// Runs `request` until it succeeds or fails for good. Only [`Error::Nats`] (the transport or
/// the server failed) is retried; a retried publish is safe because every message carries its
/// CID as message id and the expected subject sequence.
async fn retry<T, F, Fut>(mut request: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 0;
    let started = std::time::Instant::now();
    loop {
        match request().await {
            Err(Error::Nats { context, reason })
                if attempt + 1 < TRIES && started.elapsed() < RETRY_FOR =>
            {
                tracing::debug!(attempt, %context, %reason, "JetStream request failed; retrying");
                metrics::counter!(crate::metrics::NATS_RETRIES).increment(1);
                tokio::time::sleep(delay(attempt)).await;
                attempt += 1;
            }
            Err(Error::Nats { context, reason }) => {
                return Err(Error::Nats {
                    context: format!(
                        "{context} ({} tries in {:.1} s)",
                        attempt + 1,
                        started.elapsed().as_secs_f64()
                    ),
                    reason,
                })
            }
            other => return other,
        }
    }
}

fn nats(context: impl Into<String>) -> impl FnOnce(String) -> Error {
    let context = context.into();
    move |reason| Error::Nats { context, reason }
}

/// Every way `existing` differs from what the ledger needs.
fn differences(existing: &Config, wanted: &Config) -> Vec<String> {
    let mut out = Vec::new();
    // Each field is compared through its Debug form, and named as in the stream config
    // (`num_replicas` is the replicas setting).
    macro_rules! compare {
        ($($field:ident),*) => {$(
            let (found, needed) = (format!("{:?}", existing.$field), format!("{:?}", wanted.$field));
            if found != needed {
                out.push(format!("{} is {found}, needs {needed}", stringify!($field)));
            }
        )*};
    }
    compare!(
        storage,
        retention,
        max_age,
        max_messages,
        max_bytes,
        max_messages_per_subject,
        deny_delete,
        deny_purge,
        num_replicas
    );
    let subject = &wanted.subjects[0];
    if !existing.subjects.contains(subject) {
        out.push(format!(
            "subjects are {:?}, need to include {subject:?}",
            existing.subjects
        ));
    }
    out
}

/// Creates the stream, or checks that the existing one is what the ledger needs (an
/// incompatible stream is an error naming every difference; nothing is changed).
#[instrument(skip_all, fields(stream = %settings.stream))]
pub async fn ensure_stream(js: &Context, settings: &Settings) -> Result<()> {
    let wanted = settings.config();
    match js.get_stream(&settings.stream).await {
        Ok(mut stream) => {
            let info = stream
                .info()
                .await
                .map_err(|e| nats(format!("reading stream {}", settings.stream))(e.to_string()))?;
            let diffs = differences(&info.config, &wanted);
            if !diffs.is_empty() {
                return Err(Error::Nats {
                    context: format!(
                        "JetStream stream {} exists but is incompatible",
                        settings.stream
                    ),
                    reason: diffs.join("; "),
                });
            }
            // Streams made by earlier versions answered gets from the leader only. A user
            // without the right to change the stream still works; only asking each replica
            // (`verify --replicas`) needs it.
            if !info.config.allow_direct {
                let mut config = info.config.clone();
                config.allow_direct = true;
                if let Err(e) = js.update_stream(&config).await {
                    tracing::warn!(error = %e, "could not allow direct gets on the stream");
                }
            }
            tracing::debug!("stream checked");
            Ok(())
        }
        Err(e) if is_stream_not_found(&e) => {
            js.create_stream(wanted)
                .await
                .map_err(|e| nats(format!("creating stream {}", settings.stream))(e.to_string()))?;
            tracing::debug!("stream created");
            Ok(())
        }
        Err(e) => Err(nats(format!("looking up stream {}", settings.stream))(
            e.to_string(),
        )),
    }
}

fn is_stream_not_found(e: &async_nats::jetstream::context::GetStreamError) -> bool {
    use async_nats::jetstream::context::GetStreamErrorKind;
    use async_nats::jetstream::ErrorCode;
    matches!(e.kind(), GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND)
}

/// The shared block bucket: every block by CID, for readers on other machines. Reading a block
/// re-derives its CID (invariant 4), here as everywhere.
pub struct Blocks {
    js: Context,
    kv: async_nats::jetstream::kv::Store,
    name: String,
}

impl Blocks {
    /// Opens the bucket named in `settings`, creating it (file storage, history 1, no expiry)
    /// when missing.
    pub async fn open(js: &Context, settings: &Settings) -> Result<Blocks> {
        let context = || format!("opening the block bucket {}", settings.bucket);
        if js.get_key_value(&settings.bucket).await.is_err() {
            // The bucket's backing stream, laid out as every NATS key-value bucket is. Created
            // directly rather than with `create_key_value`, whose account-info request does not
            // parse against nats-server 2.9.
            js.get_or_create_stream(Config {
                name: format!("KV_{}", settings.bucket),
                description: Some("personctl blocks by CID".into()),
                subjects: vec![format!("$KV.{}.>", settings.bucket)],
                max_messages_per_subject: 1,
                max_bytes: -1,
                max_age: Duration::ZERO,
                max_message_size: -1,
                storage: StorageType::File,
                allow_rollup: true,
                // Erasure deletes single messages (securely); see `Blocks::erase`.
                deny_delete: false,
                deny_purge: false,
                allow_direct: true,
                num_replicas: settings.replicas,
                discard: DiscardPolicy::New,
                duplicate_window: Duration::from_secs(120),
                ..Config::default()
            })
            .await
            .map_err(|e| nats(context())(e.to_string()))?;
        }
        // Buckets made by earlier versions denied deletes; erasure needs them.
        let stream = js
            .get_stream(format!("KV_{}", settings.bucket))
            .await
            .map_err(|e| nats(context())(e.to_string()))?;
        if stream.cached_info().config.deny_delete {
            let mut config = stream.cached_info().config.clone();
            config.deny_delete = false;
            js.update_stream(&config)
                .await
                .map_err(|e| nats(context())(e.to_string()))?;
        }
        let kv = js
            .get_key_value(&settings.bucket)
            .await
            .map_err(|e| nats(context())(e.to_string()))?;
        Ok(Blocks {
            js: js.clone(),
            kv,
            name: settings.bucket.clone(),
        })
    }

    /// Stores a block under its CID and waits for the ack (idempotent: the CID is also the
    /// message id). Retried like every request.
    pub async fn put(&self, block: &Block) -> Result<()> {
        // The key-value put, written out so that it can carry a message id.
        let subject = format!("$KV.{}.{}", self.name, block.cid());
        let context = || format!("storing block {} in the bucket", block.cid());
        retry(|| async {
            let message = PublishMessage::build()
                .payload(block.bytes().to_vec().into())
                .message_id(block.cid().to_string());
            let ack = self
                .js
                .send_publish(subject.clone(), message)
                .await
                .map_err(|e| nats(context())(e.to_string()))?;
            ack.await
                .map(drop)
                .map_err(|e| nats(context())(e.to_string()))
        })
        .await
    }

    /// The block stored under `cid`, checked against it; `None` if absent.
    pub async fn get(&self, cid: &Cid) -> Result<Option<Block>> {
        let value = retry(|| async {
            self.kv
                .get(cid.to_string())
                .await
                .map_err(|e| nats(format!("reading block {cid} from the bucket"))(e.to_string()))
        })
        .await?;
        value
            .map(|bytes| Block::verified(*cid, bytes.to_vec()))
            .transpose()
    }

    /// Erases a block from the bucket for good (for a tombstone): its message is deleted with
    /// the server's secure erase, which overwrites it on disk, not only marks it deleted.
    /// Returns whether the bucket had it. Retried like every request.
    pub async fn erase(&self, cid: &Cid) -> Result<bool> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        let subject = format!("$KV.{}.{}", self.name, cid);
        let context = || format!("erasing block {cid} from the bucket");
        retry(|| async {
            let stream = self
                .js
                .get_stream(format!("KV_{}", self.name))
                .await
                .map_err(|e| nats(context())(e.to_string()))?;
            let sequence = match stream.get_last_raw_message_by_subject(&subject).await {
                Ok(message) => message.sequence,
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(false),
                Err(e) => return Err(nats(context())(e.to_string())),
            };
            stream
                .delete_message(sequence)
                .await
                .map_err(|e| nats(context())(e.to_string()))
        })
        .await
    }
}

#[cfg(test)]
mod redact_tests {
    use super::redact;

    #[test]
    fn a_password_or_token_is_never_shown() {
        assert_eq!(
            redact("nats://svc:s3cret@a:4222, nats://tok@b:4222,nats://c:4222"),
            "nats://svc:***@a:4222, nats://***@b:4222,nats://c:4222"
        );
        assert_eq!(redact("127.0.0.1:4222"), "127.0.0.1:4222");
    }
}
