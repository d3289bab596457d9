//! `--nats`: the command's JetStream link (the ledger's `jetstream::Link`, which is also the
//! write path's `Publisher`), made with this home's trust list, and the command line's words
//! for its failures (naming the commands that fix them).

use anyhow::{bail, Context, Result};
use personctl_ledger::jetstream::{Durability, Link, Pulled, Settings};
use personctl_ledger::{BlockStore, Error, StreamId};

use crate::config::Config;

/// What to do about pending events, for messages.
pub(crate) const PENDING_HINT: &str =
    "`personctl sync` (or any later command with --nats) publishes them";

/// Connects when `--nats` is given. Events from JetStream enter this home's chains only if a
/// key or an identity it trusts signed them (`Backbone::judge`).
pub(crate) fn connect(config: &Config) -> Result<Option<Link>> {
    let Some((url, settings)) = &config.nats else {
        return Ok(None);
    };
    let trust = personctl_ledger::SledStore::trust_set_at(config.home.join("store"))
        .context("reading the trust list")?;
    let link = connect_to(url, settings.clone())?.with_trust(trust);
    report_durability(&config.nats_monitor);
    Ok(Some(link))
}

/// Reads each `--nats-monitor` server's durability setting (once per run) and warns about
/// every server that acknowledges before it fsyncs; at -v, names those that do not.
fn report_durability(monitors: &[String]) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for monitor in monitors {
            match durability(monitor) {
                Ok(d) if d.is_lazy() => tracing::warn!("{d}"),
                Ok(d) => tracing::info!("{d}"),
                Err(e) => tracing::warn!("--nats-monitor {monitor}: {e:#}"),
            }
        }
    });
}

/// `monitor`'s `/varz`, read for its durability setting.
fn durability(monitor: &str) -> Result<Durability> {
    let url = format!("{monitor}/varz");
    let body = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(3))
        .build()
        .get(&url)
        .call()
        .with_context(|| format!("reading {url}"))?
        .into_string()
        .with_context(|| format!("reading {url}"))?;
    Durability::from_varz(body.as_bytes()).with_context(|| format!("reading {url}"))
}

/// Connects to `url` with `settings`.
pub(crate) fn connect_to(url: &str, settings: Settings) -> Result<Link> {
    Link::connect(url, settings)
        .with_context(|| format!("--nats {}", personctl_ledger::jetstream::redact(url)))
}

/// Connects when `--nats` is given, then publishes every event an earlier run left pending in
/// `store` (the recovery step of every command that writes).
pub(crate) fn connect_and_recover(config: &Config, store: &dyn BlockStore) -> Result<Option<Link>> {
    let Some(link) = connect(config)? else {
        return Ok(None);
    };
    link.recover(store)
        .and_then(|r| r.settled())
        .map_err(|e| pending_error(&link, e))?;
    Ok(Some(link))
}

/// Like [`connect_and_recover`], for commands that may write offline: when no server answers,
/// `Ok((None, Some(why)))`, and the command stores its events here, pending.
pub(crate) fn connect_or_offline(
    config: &Config,
    store: &dyn BlockStore,
) -> Result<(Option<Link>, Option<anyhow::Error>)> {
    match connect_and_recover(config, store) {
        Ok(link) => Ok((link, None)),
        Err(e) if is_offline(&e) => Ok((None, Some(e))),
        Err(e) => Err(e),
    }
}

/// The error of a command that stored `what` here while JetStream was unreachable (`why`).
pub(crate) fn stored_offline(why: &anyhow::Error, what: &str) -> anyhow::Error {
    anyhow::anyhow!("{why:#}; {what} stored here and kept pending: {PENDING_HINT}")
}

fn is_offline(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| c.downcast_ref::<Error>().is_some_and(Error::is_offline))
}

/// A publishing failure, with what happens to the events and how to publish them.
pub(crate) fn pending_error(link: &Link, e: Error) -> anyhow::Error {
    anyhow::Error::new(e).context(format!(
        "publishing to JetStream at {} failed; the events are stored here and kept pending: {PENDING_HINT}",
        link.url()
    ))
}

/// Brings one stream level with JetStream.
pub(crate) fn pull(link: &Link, store: &dyn BlockStore, stream: &StreamId) -> Result<Pulled> {
    link.pull_stream(store, stream)
        .map_err(untrusted_hint)
        .with_context(|| format!("reading {stream} from JetStream at {}", link.url()))
}

/// Adds how to trust an author to an [`Error::Untrusted`].
pub(crate) fn untrusted_hint(e: Error) -> anyhow::Error {
    match &e {
        Error::Untrusted {
            author,
            check: "untrusted-author",
            ..
        } => anyhow::anyhow!("{e}; if you trust that author: `personctl trust add {author}`"),
        _ => anyhow::Error::new(e),
    }
}

/// [`untrusted_hint`] for the domain's errors.
pub(crate) fn untrusted_hint_domain(e: personctl_domain::Error) -> anyhow::Error {
    match e {
        personctl_domain::Error::Ledger(e) => untrusted_hint(e),
        e => anyhow::Error::new(e),
    }
}

/// Brings every stream JetStream has level with it; returns (streams, events fetched).
pub(crate) fn pull_all(link: &Link, store: &dyn BlockStore) -> Result<(u64, u64)> {
    let all = link
        .pull_all(store)
        .with_context(|| format!("reading JetStream at {}", link.url()))?;
    if let Some(first @ Error::Untrusted { author, check, .. }) = all.refused.first() {
        let hint = match *check {
            "untrusted-author" => {
                format!(
                    " If you trust that author: `personctl trust add {author}`, then sync again"
                )
            }
            _ => String::new(),
        };
        bail!(
            "{} stream(s) on JetStream at {} hold events this home does not adopt; they were not adopted (the rest was read). For example: {first}.{hint}",
            all.refused.len(),
            link.url()
        );
    }
    Ok((all.streams, all.fetched))
}

/// The store for a command that reads. With `--nats`, the stream read (or every stream, for
/// `None`) is first brought level with JetStream, so a machine with an empty store reads what
/// others published; without it, the local store must exist.
pub(crate) fn store_for_reading(
    config: &Config,
    stream: Option<&StreamId>,
) -> Result<personctl_ledger::SledStore> {
    let Some(link) = connect(config)? else {
        return config.open_for_reading();
    };
    let store = config.open_or_create_store()?;
    match stream {
        Some(s) => {
            pull(&link, &store, s)?;
        }
        None => {
            pull_all(&link, &store)?;
        }
    }
    Ok(store)
}
