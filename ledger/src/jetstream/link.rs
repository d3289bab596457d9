//! [`Link`]: a [`Backbone`] for synchronous callers. It owns a single-threaded tokio runtime
//! and implements [`Publisher`], so the write path ([`crate::Ledger::append_published`],
//! [`crate::Ledger::erase`], a domain's own) publishes to JetStream without going async.

use std::future::Future;

use super::{Backbone, Pulled, Report, Settings};
use crate::{BlockStore, Cid, Error, Publisher, Result, StreamId, TrustSet};

/// A connected [`Backbone`] and the runtime it runs on.
///
/// ```no_run
/// # // Needs a running nats-server with JetStream (`nats-server -js`); the system tests run one.
/// use personctl_ledger::jetstream::{Link, Settings};
/// use personctl_ledger::{Draft, Ledger, Retry, Signer, SledStore};
///
/// # fn run() -> personctl_ledger::Result<()> {
/// let ledger = Ledger::new(SledStore::open("/tmp/orders")?);
/// let link = Link::connect("nats://127.0.0.1:4222", Settings::default())?;
/// let draft = Draft::new("order/o-1".parse()?, "OrderPlaced", 1);
/// ledger.append_published(&Signer::generate()?, draft, Some(&link), Retry::default())?;
/// # Ok(())
/// # }
/// ```
pub struct Link {
    runtime: tokio::runtime::Runtime,
    backbone: Backbone,
    url: String,
}

/// What [`Backbone::pull_all`] did.
#[derive(Debug, Default)]
pub struct PulledAll {
    /// Streams JetStream has.
    pub streams: u64,
    /// Events fetched over all of them.
    pub fetched: u64,
    /// Streams not adopted because they hold events this store does not trust
    /// ([`Error::Untrusted`], one per stream); the others were read.
    pub refused: Vec<Error>,
}

impl Link {
    /// Connects to `url` with `settings` ([`Backbone::connect`]).
    pub fn connect(url: &str, settings: Settings) -> Result<Link> {
        Link::start(url, Backbone::connect(url, settings))
    }

    /// Connects to the one server at `url` and to no other ([`Backbone::connect_only`]).
    pub fn connect_only(url: &str, settings: Settings) -> Result<Link> {
        Link::start(url, Backbone::connect_only(url, settings))
    }

    fn start(url: &str, connect: impl Future<Output = Result<Backbone>>) -> Result<Link> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Io {
                context: "starting the async runtime".into(),
                source: e,
            })?;
        let backbone = runtime.block_on(connect)?;
        Ok(Link {
            runtime,
            backbone,
            url: super::redact(url),
        })
    }

    /// Adopts only events that `trust`'s authors signed ([`Backbone::with_trust`]).
    pub fn with_trust(mut self, trust: TrustSet) -> Link {
        self.backbone = self.backbone.with_trust(trust);
        self
    }

    /// The URL connected to, any password or token in it replaced by `***`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `future` on this link's runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Makes this link's runtime the current one until the guard is dropped (for code that
    /// polls futures or drops NATS objects outside [`Link::block_on`]).
    pub(super) fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.runtime.enter()
    }

    /// The backbone.
    pub fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    /// [`Backbone::publish`].
    pub fn publish_report(
        &self,
        store: &dyn BlockStore,
        streams: Option<&[StreamId]>,
    ) -> Result<Report> {
        self.block_on(self.backbone.publish(store, streams))
    }

    /// [`Backbone::repair`].
    pub fn repair(&self, store: &dyn BlockStore) -> Result<super::Repaired> {
        self.block_on(self.backbone.repair(store))
    }

    /// [`Backbone::pull`].
    pub fn pull_stream(&self, store: &dyn BlockStore, stream: &StreamId) -> Result<Pulled> {
        self.block_on(self.backbone.pull(store, stream))
    }

    /// [`Backbone::pull_all`].
    pub fn pull_all(&self, store: &dyn BlockStore) -> Result<PulledAll> {
        self.block_on(self.backbone.pull_all(store))
    }

    /// Publishes every event a crash or an outage left pending in `store`; the report names
    /// what was withdrawn and what is still pending.
    pub fn recover(&self, store: &dyn BlockStore) -> Result<Report> {
        let report = self.publish_report(store, None)?;
        if report.published + report.duplicates > 0 {
            tracing::info!(
                published = report.published,
                duplicates = report.duplicates,
                "published events left pending"
            );
        }
        for (stream, withdrawn) in &report.conflicts {
            tracing::warn!(
                %stream,
                withdrawn = withdrawn.len(),
                "pending events lost a race on JetStream and were withdrawn"
            );
        }
        Ok(report)
    }
}

/// Asks each server of `urls` (comma-separated) alone what its replicas hold of `store`'s
/// acknowledged events ([`Backbone::check_replica`]): all at once, each on a thread with a
/// connection of its own ([`Link::connect_only`]). The findings of all of them, server by
/// server in the order given.
pub fn check_replicas<S: BlockStore + Sync + ?Sized>(
    urls: &str,
    settings: &Settings,
    store: &S,
    stream: Option<&StreamId>,
) -> Result<Vec<crate::Finding>> {
    let ask = |url: &str| -> Result<Vec<crate::Finding>> {
        let link = Link::connect_only(url, settings.clone())?;
        let found = link.block_on(link.backbone().check_replica(store, stream))?;
        tracing::info!(server = %link.backbone().server_name(), findings = found.len(), "replica checked");
        Ok(found)
    };
    let urls: Vec<&str> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    let answers: Vec<Result<Vec<crate::Finding>>> = std::thread::scope(|scope| {
        let asking: Vec<_> = urls.iter().map(|url| scope.spawn(|| ask(url))).collect();
        asking
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut findings = Vec::new();
    for answer in answers {
        findings.extend(answer?);
    }
    Ok(findings)
}

impl Publisher for Link {
    fn publish(
        &self,
        store: &dyn BlockStore,
        streams: Option<&[StreamId]>,
    ) -> Result<crate::PublishReport> {
        self.publish_report(store, streams)
    }

    fn pull(&self, store: &dyn BlockStore, stream: &StreamId) -> Result<u64> {
        Ok(self.pull_stream(store, stream)?.fetched)
    }

    fn erase_blocks(&self, cids: &[Cid]) -> Result<u64> {
        let mut erased = 0;
        for cid in cids {
            if self.block_on(self.backbone.blocks().erase(cid))? {
                erased += 1;
            }
        }
        Ok(erased)
    }
}
