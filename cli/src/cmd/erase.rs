//! `personctl erase` (GDPR erasure through a signed tombstone) and `personctl gc` (finishing
//! erasures: removing every masked block still stored).
//!
//! The order of work (tombstone acknowledged, then the masked blocks removed here, then from
//! the JetStream bucket) is the library's: `Persons::erase_and_purge` and
//! `Ledger::collect_garbage`. This module parses and prints.

use anyhow::{anyhow, bail, Result};
use serde_json::json;

use personctl_domain::model::ItemKind;
use personctl_domain::{Erasure, Error as DomainError, Persons};
use personctl_ledger::{BlockStore, Error as LedgerError, Ledger, Publisher};

use crate::args::EraseArgs;
use crate::config::{person_arg, Config};
use crate::nats;
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
    if args.dry_run {
        return dry_run(config, id, &erasure, &args.reason, out);
    }
    let (store, link) = match config.nats {
        None => (config.open_existing_store()?, None),
        Some(_) => {
            let store = config.open_or_create_store()?;
            let link = nats::connect_and_recover(config, &store)?;
            (store, link)
        }
    };
    let signer = config.signer_over(&store)?;
    let persons = Persons::new(config.guarded(&store)?);
    let publisher = link.as_ref().map(|l| l as &dyn Publisher);
    let erasing = persons
        .erase_and_purge(&signer, id, &erasure, &args.reason, publisher)
        .map_err(|e| match e {
            DomainError::UnknownPerson(_) => anyhow!(
                "no person {id} in the store at {}{}",
                config.home.display(),
                if link.is_some() {
                    " nor in JetStream"
                } else {
                    ""
                }
            ),
            DomainError::Ledger(e @ LedgerError::Withdrawn { .. }) => {
                anyhow!("person {id}: {e}, so nothing was removed; run the erasure again")
            }
            DomainError::Ledger(e) if e.is_offline() => match &link {
                Some(link) => nats::pending_error(link, e).context(format!(
                    "person {id}: the tombstone is not acknowledged, so nothing was removed yet"
                )),
                None => anyhow::Error::new(e),
            },
            e => nats::untrusted_hint_domain(e),
        })?;
    let scope = match &erasure {
        Erasure::Person => "person".to_string(),
        Erasure::Component { kind, key: None } => format!("every {}", kind.command_name()),
        Erasure::Component { kind, key: Some(_) } => format!("one {}", kind.command_name()),
    };
    let what = match &erasure {
        Erasure::Person => format!("person {id}"),
        Erasure::Component { .. } => format!("{scope} of person {id}"),
    };
    let bucket = |n: Option<u64>| {
        n.map(|n| format!(", {n} from the JetStream bucket"))
            .unwrap_or_default()
    };
    let e = &erasing;
    match &erasing.tombstone {
        Some(t) => {
            out.record(
                "erased",
                json!({
                    "person": id.to_string(),
                    "scope": scope,
                    "tombstone": t.cid.to_string(),
                    "height": t.height,
                    "masked": e.masked,
                    "removed": e.removed.len(),
                    "erased_from_bucket": e.erased_remote,
                }),
                || {
                    format!(
                        "erased {what}: tombstone {} at height {} masks {} payload(s); removed {} block(s) here{}",
                        t.cid,
                        t.height,
                        e.masked,
                        e.removed.len(),
                        bucket(e.erased_remote)
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
                "removed": e.removed.len(),
                "erased_from_bucket": e.erased_remote,
            }),
            || {
                format!(
                    "nothing left to erase of {what} (already erased, or never recorded); removed {} leftover block(s){}",
                    e.removed.len(),
                    bucket(e.erased_remote)
                )
            },
        )?,
    }
    Ok(EXIT_OK)
}

/// `erase --dry-run`: which payloads the erasure would mask, from the local store; nothing is
/// written.
fn dry_run(
    config: &Config,
    id: personctl_domain::PersonId,
    erasure: &Erasure,
    reason: &str,
    out: &mut Out,
) -> Result<u8> {
    let store = crate::nats::store_for_reading(config, Some(&id.stream()))?;
    if store.head(&id.stream())?.is_none() {
        bail!("no person {id} in the store at {}", config.home.display());
    }
    let preview = Persons::new(Ledger::new(&store)).erasure_preview(id, erasure, reason)?;
    for (head, event_type, payload) in &preview {
        out.record(
            "would-mask",
            json!({"person": id.to_string(), "height": head.height, "event": head.cid.to_string(), "type": event_type, "payload": payload.to_string()}),
            || format!("would mask {payload}  (height {} {event_type}, event {})", head.height, head.cid),
        )?;
    }
    out.record(
        "dry-run",
        json!({"person": id.to_string(), "masked": preview.len()}),
        || {
            format!(
                "dry run: the erasure would mask {} of person {id}; nothing was written",
                crate::output::plural(preview.len() as u64, "payload")
            )
        },
    )?;
    Ok(EXIT_OK)
}

/// `personctl gc`: removes every masked block still stored (and with `--nats`, still in the
/// bucket). Needed only after an interrupted erasure; sled holds no block bytes, and removal
/// overwrites them in the segment files, so no compaction step is needed.
pub(crate) fn gc(config: &Config, out: &mut Out) -> Result<u8> {
    let store = config.open_existing_store()?;
    let link = nats::connect_and_recover(config, &store)?;
    let publisher = link.as_ref().map(|l| l as &dyn Publisher);
    let collected = Ledger::new(&store).collect_garbage(None, publisher)?;
    let (removed, erased_remote) = (collected.removed.len(), collected.erased_remote);
    out.record(
        "gc",
        json!({"removed": removed, "erased_from_bucket": erased_remote}),
        || {
            let bucket = erased_remote
                .map(|n| format!(", {n} from the JetStream bucket"))
                .unwrap_or_default();
            format!("removed {removed} masked block(s) here{bucket}")
        },
    )?;
    Ok(EXIT_OK)
}
