//! `personctl trust add|list|remove`: the keys and identities whose signatures `verify`
//! accepts.

use anyhow::{bail, Context, Result};
use serde_json::json;

use personctl_ledger::{Author, StreamId};

use crate::args::TrustCommand;
use crate::config::{load_signer, Config};
use crate::output::Out;
use crate::EXIT_OK;

pub(crate) fn run(config: &Config, command: TrustCommand, out: &mut Out) -> Result<u8> {
    match command {
        TrustCommand::Add {
            did,
            from_key,
            label,
        } => {
            if let Some(id) = did.as_deref().filter(|d| d.starts_with("key/")) {
                let id: StreamId = id.parse().with_context(|| format!("trust add {id:?}"))?;
                let store = config.open_or_create_store()?;
                let new = store.trust_identity_add(&id, &label)?;
                out.record(
                    "trusted",
                    json!({"identity": id.to_string(), "label": label, "new": new}),
                    || {
                        format!(
                            "{} identity {id}",
                            if new {
                                "trusted"
                            } else {
                                "already trusted (label updated)"
                            }
                        )
                    },
                )?;
                return Ok(EXIT_OK);
            }
            let author = match (did, from_key) {
                (Some(did), _) => did
                    .parse::<Author>()
                    .with_context(|| format!("trust add {did:?}"))?,
                (None, Some(path)) => load_signer(&path)?.author(),
                (None, None) => bail!("trust add needs a did:key or --from-key FILE"),
            };
            if author.is_weak() {
                bail!("trust add {author}: a small-order key can sign for anyone and is never trusted");
            }
            let store = config.open_or_create_store()?;
            let new = store.trust_add(&author, &label)?;
            out.record(
                "trusted",
                json!({"author": author.to_string(), "label": label, "new": new}),
                || {
                    format!(
                        "{} {author}",
                        if new {
                            "trusted"
                        } else {
                            "already trusted (label updated)"
                        }
                    )
                },
            )?;
        }
        TrustCommand::List => {
            let store = config.open_for_reading()?;
            for (author, label) in store.trust_list()? {
                out.record(
                    "trusted",
                    json!({"author": author.to_string(), "label": label}),
                    || format!("{author}\t{label}"),
                )?;
            }
            for (id, label) in store.trusted_identities()? {
                out.record(
                    "trusted",
                    json!({"identity": id.to_string(), "label": label}),
                    || format!("{id}\t{label}"),
                )?;
            }
        }
        TrustCommand::Remove { did } if did.starts_with("key/") => {
            let id: StreamId = did
                .parse()
                .with_context(|| format!("trust remove {did:?}"))?;
            let store = config.open_existing_store()?;
            if !store.trust_identity_remove(&id)? {
                bail!("trust remove {id}: that identity is not trusted");
            }
            out.record("untrusted", json!({"identity": id.to_string()}), || {
                format!("removed {id}")
            })?;
        }
        TrustCommand::Remove { did } => {
            let author = did
                .parse::<Author>()
                .with_context(|| format!("trust remove {did:?}"))?;
            let store = config.open_existing_store()?;
            if !store.trust_remove(&author)? {
                bail!("trust remove {author}: that key is not trusted");
            }
            out.record("untrusted", json!({"author": author.to_string()}), || {
                format!("removed {author}")
            })?;
        }
    }
    Ok(EXIT_OK)
}
