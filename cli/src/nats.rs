//! `--nats`: the JetStream link of a command. Connecting (which first publishes whatever an
//! earlier run left pending), publishing after appends, pulling before reads. The async
//! backbone runs on a single-threaded tokio runtime owned here; everything else stays sync.

use std::future::Future;

use anyhow::{bail, Context, Result};
use personctl_ledger::jetstream::{Backbone, Pulled, Report, Settings};
use personctl_ledger::{BlockStore, StreamId};

use crate::config::Config;

/// A connected backbone and the runtime it runs on.
pub(crate) struct Link {
    runtime: tokio::runtime::Runtime,
    backbone: Backbone,
    url: String,
}

impl Link {
    /// Connects when `--nats` is given.
    pub(crate) fn connect(config: &Config) -> Result<Option<Link>> {
        let Some((url, settings)) = &config.nats else {
            return Ok(None);
        };
        let mut link = Link::connect_to(url, settings.clone())?;
        // Events from JetStream enter this home's chains only if a key it trusts signed them.
        let trust = personctl_ledger::SledStore::trust_at(config.home.join("store"))
            .context("reading the trust list")?
            .into_iter()
            .map(|(a, _)| a)
            .collect();
        link.backbone = link.backbone.with_trust(trust);
        Ok(Some(link))
    }

    /// Connects to `url` with `settings`.
    pub(crate) fn connect_to(url: &str, settings: Settings) -> Result<Link> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let backbone = runtime
            .block_on(Backbone::connect(url, settings))
            .with_context(|| format!("--nats {url}"))?;
        Ok(Link {
            runtime,
            backbone,
            url: url.to_string(),
        })
    }

    /// Connects when `--nats` is given, then publishes every event an earlier run left pending
    /// in `store` (the recovery step of every command that writes).
    pub(crate) fn connect_and_recover(
        config: &Config,
        store: &dyn BlockStore,
    ) -> Result<Option<Link>> {
        let Some(link) = Link::connect(config)? else {
            return Ok(None);
        };
        let report = link.publish(store, None)?;
        if report.published + report.duplicates > 0 {
            tracing::info!(
                published = report.published,
                duplicates = report.duplicates,
                "published events an earlier run left pending"
            );
        }
        for (stream, withdrawn) in &report.conflicts {
            tracing::warn!(
                %stream,
                withdrawn = withdrawn.len(),
                "events an earlier run left pending lost a race on JetStream and were withdrawn"
            );
        }
        Ok(Some(link))
    }

    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    pub(crate) fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    /// Publishes the pending events of `streams` (all when `None`). Events that could not be
    /// published are an error that says they are kept pending.
    pub(crate) fn publish(
        &self,
        store: &dyn BlockStore,
        streams: Option<&[StreamId]>,
    ) -> Result<Report> {
        let report = self
            .block_on(self.backbone.publish(store, streams))
            .with_context(|| {
                format!(
                    "publishing to JetStream at {} failed; the events are stored here and kept pending: `personctl sync` (or any later command with --nats) publishes them",
                    self.url
                )
            })?;
        if let Some((stream, error)) = report.failures.first() {
            bail!(
                "JetStream at {} did not acknowledge the events of {} stream(s), for example {stream}: {error}. \
                 They are stored here and kept pending: `personctl sync` (or any later command with --nats) publishes them",
                self.url,
                report.failures.len()
            );
        }
        Ok(report)
    }

    /// Brings one stream level with JetStream.
    pub(crate) fn pull(&self, store: &dyn BlockStore, stream: &StreamId) -> Result<Pulled> {
        self.block_on(self.backbone.pull(store, stream))
            .map_err(|e| match &e {
                personctl_ledger::Error::Untrusted { author, .. } => {
                    anyhow::anyhow!("{e}; if you trust that author: `personctl trust add {author}`")
                }
                _ => anyhow::Error::new(e),
            })
            .with_context(|| format!("reading {stream} from JetStream at {}", self.url))
    }

    /// Brings every stream JetStream has level with it; returns (streams, events fetched).
    pub(crate) fn pull_all(&self, store: &dyn BlockStore) -> Result<(u64, u64)> {
        let streams = self
            .block_on(self.backbone.streams())
            .with_context(|| format!("listing streams on JetStream at {}", self.url))?;
        let mut fetched = 0;
        let mut refused = Vec::new();
        for stream in &streams {
            match self.block_on(self.backbone.pull(store, stream)) {
                Ok(pulled) => fetched += pulled.fetched,
                // One stream's untrusted events do not keep the others from being read.
                Err(e @ personctl_ledger::Error::Untrusted { .. }) => refused.push(e),
                Err(e) => {
                    return Err(anyhow::Error::new(e)).with_context(|| {
                        format!("reading {stream} from JetStream at {}", self.url)
                    })
                }
            }
        }
        if let Some(first) = refused.first() {
            let author = match first {
                personctl_ledger::Error::Untrusted { author, .. } => author.clone(),
                _ => unreachable!("only Untrusted is collected"),
            };
            bail!(
                "{} stream(s) on JetStream at {} hold events this home does not trust; they were not adopted (the rest was read). For example: {first}. If you trust that author: `personctl trust add {author}`, then sync again",
                refused.len(),
                self.url
            );
        }
        Ok((streams.len() as u64, fetched))
    }
}

/// The store for a command that reads. With `--nats`, the stream read (or every stream, for
/// `None`) is first brought level with JetStream, so a machine with an empty store reads what
/// others published; without it, the local store must exist.
pub(crate) fn store_for_reading(
    config: &Config,
    stream: Option<&StreamId>,
) -> Result<personctl_ledger::SledStore> {
    let Some(link) = Link::connect(config)? else {
        return config.open_for_reading();
    };
    let store = config.open_or_create_store()?;
    match stream {
        Some(s) => {
            link.pull(&store, s)?;
        }
        None => {
            link.pull_all(&store)?;
        }
    }
    Ok(store)
}
