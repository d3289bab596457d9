//! `personctl erase` (GDPR erasure through a signed tombstone) and `personctl gc` (finishing
//! erasures: removing every masked block still stored).
//!
//! Order of work, so that nothing is removed without a tombstone that covers it: the tombstone
//! is appended (and with `--nats` acknowledged by JetStream), then the masked blocks are
//! removed here and erased from the JetStream block bucket. A crash in between leaves blocks
//! that are masked (never read again) but still stored; `verify` reports them as `unpurged`,
//! and `erase` again or `gc` removes them.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;

use personctl_domain::model::ItemKind;
use personctl_domain::{Erasure, Persons};
use personctl_ledger::{BlockStore, Cid, Ledger};

use crate::args::EraseArgs;
use crate::config::{person_arg, Config};
use crate::nats::Link;
use crate::output::Out;
use crate::EXIT_OK;

/// `KIND` or `KIND:KEY`, for example `phone` or `phone:+44 20 7946 0000`.
fn component(text: &str) -> Result<Erasure> {
    let (kind, key) = match text.split_once(':') {
        Some((kind, key)) => (kind, Some(key.to_string())),
        None => (text, None),
    };
    let kind = ItemKind::ALL
        .into_iter()
        .find(|k| k.command_name().eq_ignore_ascii_case(kind.trim()))
        .ok_or_else(|| {
            let kinds: Vec<&str> = ItemKind::ALL.iter().map(|k| k.command_name()).collect();
            anyhow!(
                "--component {text:?}: unknown kind {kind:?}; expected one of {}, optionally followed by :KEY",
                kinds.join(", ")
            )
        })?;
    if key.as_deref().is_some_and(|k| k.trim().is_empty()) {
        bail!("--component {text:?}: the key after ':' is empty");
    }
    Ok(Erasure::Component { kind, key })
}

pub(crate) fn erase(config: &Config, args: &EraseArgs, out: &mut Out) -> Result<u8> {
    let id = person_arg("--person ", &args.person)?;
    let erasure = match &args.component {
        Some(c) => component(c)?,
        None => Erasure::Person,
    };
    let signer = config.signer()?;
    let stream = id.stream();
    let (store, link) = match config.nats {
        None => (config.open_existing_store()?, None),
        Some(_) => {
            let store = config.open_or_create_store()?;
            let link = Link::connect_and_recover(config, &store)?;
            if let Some(link) = &link {
                link.pull(&store, &stream)?;
            }
            (store, link)
        }
    };
    if store.head(&stream)?.is_none() {
        bail!(
            "no person {id} in the store at {}{}",
            config.home.display(),
            if link.is_some() {
                " nor in JetStream"
            } else {
                ""
            }
        );
    }
    let persons = Persons::new(Ledger::new(&store));
    let tombstone = persons.erase(&signer, id, &erasure, &args.reason)?;
    if let (Some(link), Some(_)) = (&link, &tombstone) {
        let report = link.publish(&store, Some(std::slice::from_ref(&stream)))?;
        if !report.conflicts.is_empty() {
            bail!(
                "person {id}: another writer appended to the person first, so the tombstone was withdrawn and nothing was removed; run the erasure again"
            );
        }
    }
    let removed = persons.purge(id)?;
    // Every payload masked on the chain, by tombstone: read once for the bucket and the count.
    let masks = Ledger::new(&store).masks(&stream)?;
    let erased_remote = match &link {
        Some(link) => erase_from_bucket(link, masks.keys().copied())?,
        None => 0,
    };
    let scope = match &erasure {
        Erasure::Person => "person".to_string(),
        Erasure::Component { kind, key: None } => format!("every {}", kind.command_name()),
        Erasure::Component { kind, key: Some(_) } => format!("one {}", kind.command_name()),
    };
    let what = match &erasure {
        Erasure::Person => format!("person {id}"),
        Erasure::Component { .. } => format!("{scope} of person {id}"),
    };
    match &tombstone {
        Some(t) => {
            let masked = masks.values().filter(|by| **by == t.cid).count();
            out.record(
                "erased",
                json!({
                    "person": id.to_string(),
                    "scope": scope,
                    "tombstone": t.cid.to_string(),
                    "height": t.height,
                    "masked": masked,
                    "removed": removed.len(),
                    "erased_from_bucket": link.as_ref().map(|_| erased_remote),
                }),
                || {
                    let bucket = match &link {
                        Some(_) => format!(", {erased_remote} from the JetStream bucket"),
                        None => String::new(),
                    };
                    format!(
                        "erased {what}: tombstone {} at height {} masks {masked} payload(s); removed {} block(s) here{bucket}",
                        t.cid,
                        t.height,
                        removed.len()
                    )
                },
            )?;
        }
        None => out.record(
            "erased",
            json!({
                "person": id.to_string(),
                "scope": scope,
                "tombstone": null,
                "masked": 0,
                "removed": removed.len(),
                "erased_from_bucket": link.as_ref().map(|_| erased_remote),
            }),
            || {
                format!(
                    "nothing left to erase of {what} (already erased, or never recorded); removed {} leftover block(s)",
                    removed.len()
                )
            },
        )?,
    }
    Ok(EXIT_OK)
}

/// Erases the `masked` blocks from the JetStream bucket; returns how many it had.
fn erase_from_bucket(link: &Link, masked: impl IntoIterator<Item = Cid>) -> Result<u64> {
    let mut masked: Vec<Cid> = masked.into_iter().collect();
    masked.sort();
    let mut erased = 0;
    for cid in masked {
        if link
            .block_on(link.backbone().blocks().erase(&cid))
            .with_context(|| format!("erasing {cid} from the JetStream bucket"))?
        {
            erased += 1;
        }
    }
    Ok(erased)
}

/// `personctl gc`: removes every masked block still stored (and with `--nats`, still in the
/// bucket). Needed only after an interrupted erasure; sled holds no block bytes, and removal
/// overwrites them in the segment files, so no compaction step is needed.
pub(crate) fn gc(config: &Config, out: &mut Out) -> Result<u8> {
    let store = config.open_existing_store()?;
    let link = Link::connect_and_recover(config, &store)?;
    let ledger = Ledger::new(&store);
    let removed = ledger.purge_masked(None)?;
    let erased_remote = match &link {
        Some(link) => {
            let mut masked = Vec::new();
            for (stream, _) in store.heads()? {
                masked.extend(ledger.masks(&stream)?.into_keys());
            }
            Some(erase_from_bucket(link, masked)?)
        }
        None => None,
    };
    out.record(
        "gc",
        json!({"removed": removed.len(), "erased_from_bucket": erased_remote}),
        || {
            let bucket = erased_remote
                .map(|n| format!(", {n} from the JetStream bucket"))
                .unwrap_or_default();
            format!("removed {} masked block(s) here{bucket}", removed.len())
        },
    )?;
    Ok(EXIT_OK)
}
