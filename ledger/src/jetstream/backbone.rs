//! [`Backbone`]: a store kept level with JetStream. Publishing pending events (pipelined across
//! streams, in order within one), pulling what other writers published, and withdrawing local
//! events that lost a race.
//!
//! The local head may run ahead of JetStream: events above the stream's [`Published`] mark are
//! *pending*, durable locally and not yet acknowledged. Publishing moves the mark; a lost race
//! moves the head back onto JetStream's chain (see `docs/JETSTREAM.md`). Publishing lives in
//! `publish`, pulling and fast-forwarding in `pull`.

mod publish;
mod pull;
mod repair;
mod replicas;
mod rules;

pub use self::repair::{Gap, Lost, Repaired};

use std::time::Duration;

use async_nats::jetstream::context::Context;

use tracing::instrument;

use super::{delay, Blocks, Settings};

use crate::{Block, BlockStore, Cid, Error, Event, Result};

/// Connecting at start gives up sooner than a request: 6 tries, about 1.5 s.
const CONNECT_TRIES: u32 = 6;

/// A connection to JetStream: the event stream and the block bucket.
///
/// ```no_run
/// # // Needs a running nats-server with JetStream (`nats-server -js`); the system tests run one.
/// use personctl_ledger::jetstream::{Backbone, Settings};
/// use personctl_ledger::{Draft, Ledger, SledStore, Signer};
///
/// # async fn run() -> personctl_ledger::Result<()> {
/// let ledger = Ledger::new(SledStore::open("/tmp/orders")?);
/// ledger.append(&Signer::generate()?, Draft::new("order/o-1".parse()?, "OrderPlaced", 1))?;
/// let backbone = Backbone::connect("nats://127.0.0.1:4222", Settings::default()).await?;
/// let report = backbone.publish(ledger.store(), None).await?;
/// assert!(report.all_settled());
/// # Ok(())
/// # }
/// ```
pub struct Backbone {
    js: Context,
    settings: Settings,
    blocks: Blocks,
    /// Whose events `pull` and `fast_forward` store (`None`: anyone's; see
    /// [`Backbone::with_trust`]).
    pub(super) trust: Option<crate::TrustSet>,
    /// The rules and shared-log positions [`Backbone::judge`] used last.
    rules: std::sync::Mutex<Option<rules::Cache>>,
    /// Set while the key and policy chains are being pulled.
    pulling_rules: std::sync::atomic::AtomicBool,
}

/// What [`Backbone::publish`] did (the [`crate::Publisher`] report).
pub type Report = crate::PublishReport;

/// What [`Backbone::pull`] did to one stream.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pulled {
    /// Events fetched from JetStream and the bucket.
    pub fetched: u64,
    /// Local pending events that JetStream had already (their mark moved up).
    pub acknowledged: u64,
    /// Local pending events withdrawn because JetStream has other events at their heights.
    pub withdrawn: Vec<Cid>,
}

impl Backbone {
    /// Connects to NATS at `url` (several servers: comma-separated), retrying with bounded
    /// exponential backoff, then creates or checks the stream and opens the block bucket.
    /// Reconnects after a lost connection happen in the background with the same backoff.
    #[instrument(skip(settings))]
    pub async fn connect(url: &str, settings: Settings) -> Result<Backbone> {
        Backbone::connect_with(url, settings, false).await
    }

    /// Connects to the one server at `url` and to no other: the servers it advertises are
    /// ignored and a lost connection is retried there only. What the backbone reads with direct
    /// gets then comes from that server's own replicas ([`Backbone::check_replica`]).
    pub async fn connect_only(url: &str, settings: Settings) -> Result<Backbone> {
        Backbone::connect_with(url, settings, true).await
    }

    async fn connect_with(url: &str, settings: Settings, only: bool) -> Result<Backbone> {
        let servers = url
            .split(',')
            .map(|u| u.trim().parse::<async_nats::ServerAddr>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::InvalidUrl {
                input: super::redact(url),
                reason: e.to_string(),
            })?;
        // Credentials in the URL (the client library reads none from it): `user:password@`,
        // or a token alone, `token@`, as NATS's own tools take them.
        // Percent-encoded in the URL, as URLs require of `@`, `:` and `/`.
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let credentials = servers
            .iter()
            .find_map(|s| Some((decode(s.username()?), s.password().map(decode))));
        if only && servers.len() != 1 {
            return Err(Error::InvalidUrl {
                input: super::redact(url),
                reason: "names several servers where one is asked alone".into(),
            });
        }
        let shown = super::redact(url);
        let mut attempt = 0;
        let client = loop {
            let mut options = async_nats::ConnectOptions::new()
                .connection_timeout(Duration::from_secs(2))
                .reconnect_delay_callback(|attempts| delay(attempts as u32))
                .max_reconnects(None);
            options = match &credentials {
                Some((user, Some(password))) => {
                    options.user_and_password(user.clone(), password.clone())
                }
                Some((token, None)) => options.token(token.clone()),
                None => options,
            };
            if only {
                options = options.ignore_discovered_servers();
            }
            match options.connect(servers.as_slice()).await {
                Ok(client) => break client,
                Err(e) if attempt + 1 < CONNECT_TRIES => {
                    tracing::debug!(attempt, error = %e, "connecting to NATS; retrying");
                    tokio::time::sleep(delay(attempt)).await;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(Error::Unreachable {
                        url: format!("{shown} ({CONNECT_TRIES} tries)"),
                        reason: e.to_string(),
                    })
                }
            }
        };
        let js = async_nats::jetstream::new(client);
        super::ensure_stream(&js, &settings).await?;
        let blocks = Blocks::open(&js, &settings).await?;
        Ok(Backbone {
            js,
            settings,
            blocks,
            trust: None,
            rules: Default::default(),
            pulling_rules: Default::default(),
        })
    }

    /// Stores only events that `trust`'s authors signed (the signature checked strictly) when
    /// pulling and fast-forwarding: an event by anyone else is never adopted into a local
    /// chain, so a trusted writer never appends onto it. [`Backbone::pull`] then fails with
    /// [`Error::Untrusted`], writing nothing; [`Backbone::fast_forward`] leaves the stream to
    /// `pull`. Without it, any event whose CIDs check is stored, and only `verify` judges it.
    pub fn with_trust(mut self, trust: crate::TrustSet) -> Backbone {
        self.trust = Some(trust);
        self
    }

    /// The trust adoption applies ([`Backbone::with_trust`]).
    pub fn trust(&self) -> Option<&crate::TrustSet> {
        self.trust.as_ref()
    }

    /// Whether an event may enter the store (see [`Backbone::with_trust`]): its signature
    /// verifies and [`Backbone::judge`] finds nothing against its author or grant.
    async fn admit<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        block: &Block,
        event: &Event,
    ) -> Result<()> {
        let Some(trust) = &self.trust else {
            return Ok(());
        };
        let signed = crate::signing_message(block.bytes())
            .map(|m| event.author().verify(&m, event.signature()))
            .unwrap_or(false);
        let problem = if signed {
            self.judge(store, trust, event).await?
        } else {
            Some(crate::Problem::BadSignature)
        };
        let Some(problem) = problem else {
            return Ok(());
        };
        Err(Error::Untrusted {
            cid: event.cid(),
            author: event.author().to_string(),
            check: problem.code(),
            reason: format!("{problem} on {}", event.stream()),
        })
    }

    /// The events of `events` that may enter the store, as [`Backbone::admit`] decides, with
    /// their signatures checked together ([`crate::keys::verify_many`], the same verdicts).
    async fn admit_many<'a, S: BlockStore + ?Sized>(
        &self,
        store: &S,
        events: impl Iterator<Item = (&'a Block, &'a Event)>,
    ) -> Result<std::collections::HashSet<Cid>> {
        let Some(trust) = &self.trust else {
            return Ok(events.map(|(_, e)| e.cid()).collect());
        };
        // An event whose signed bytes cannot be cut out of its block is not admitted.
        let signed: Vec<(&Event, Vec<u8>)> = events
            .filter_map(|(b, e)| Some((e, crate::signing_message(b.bytes()).ok()?)))
            .collect();
        let checks: Vec<crate::keys::SigCheck<'_>> = signed
            .iter()
            .map(|(e, message)| crate::keys::SigCheck {
                message,
                signature: e.signature(),
                author: e.author(),
            })
            .collect();
        let verdicts = crate::keys::verify_many(&checks);
        let mut admitted = std::collections::HashSet::new();
        for ((event, _), ok) in signed.iter().zip(verdicts) {
            if ok && self.judge(store, trust, event).await?.is_none() {
                admitted.insert(event.cid());
            }
        }
        Ok(admitted)
    }

    /// The JetStream context.
    pub fn context(&self) -> &Context {
        &self.js
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The block bucket.
    pub fn blocks(&self) -> &Blocks {
        &self.blocks
    }
}
