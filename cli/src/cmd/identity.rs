//! `personctl identity create|rotate|revoke|show|list`, `grant` and `revoke-grant`: the
//! library's identities and policies (`ledger::identity`, `ledger::policy`), with each
//! identity's keys kept in the home under `keys/identities/ID` (`ledger::identity::IdentityKeys`:
//! an interrupted rotation is settled by the next command on that identity). With `--nats`,
//! the key and policy events are published as soon as they are written, so other homes can
//! resolve them.

use anyhow::{bail, Context, Result};
use serde_json::json;

use personctl_ledger::identity::{Identity, IdentityKeys};
use personctl_ledger::{Author, BlockStore, Ledger, Signer, SledStore, StreamId};

use crate::args::{GrantArgs, IdentityCommand};
use crate::config::{identity_dir, Config};
use crate::output::Out;
use crate::EXIT_OK;

fn parse_id(id: &str) -> Result<StreamId> {
    let stream: StreamId = id.parse().with_context(|| format!("--id {id:?}"))?;
    if stream.aggregate() != personctl_ledger::identity::KEY_AGGREGATE {
        bail!("--id {id:?}: an identity is key/ID");
    }
    Ok(stream)
}

/// The identity's current key in this home, an interrupted rotation settled.
fn signer_of(config: &Config, ledger: &Ledger<SledStore>, id: &StreamId) -> Result<Signer> {
    let keys = IdentityKeys::at(identity_dir(&config.home, &id.to_string())?);
    Ok(ledger.identity_signer(id, &keys)?)
}

fn show(out: &mut Out, kind: &str, identity: &Identity) -> Result<()> {
    let keys: Vec<_> = identity
        .keys
        .iter()
        .map(|k| json!({"key": k.key.to_string(), "from": k.from, "until": k.until, "revoked_from": k.revoked_from}))
        .collect();
    out.record(
        kind,
        json!({"identity": identity.id.to_string(), "current": identity.current().to_string(), "events": identity.events, "keys": keys}),
        || {
            let mut text = format!("{}\n  current key {}", identity.id, identity.current());
            for k in &identity.keys {
                text.push_str(&format!(
                    "\n  key {} from log position {}{}{}",
                    k.key,
                    k.from,
                    k.until.map(|u| format!(" until {u}")).unwrap_or_default(),
                    k.revoked_from
                        .map(|r| format!(", revoked from {r}"))
                        .unwrap_or_default()
                ));
            }
            text
        },
    )?;
    Ok(())
}

pub(crate) fn run(config: &Config, command: IdentityCommand, out: &mut Out) -> Result<u8> {
    match command {
        IdentityCommand::Create { label } => {
            let ledger = Ledger::new(config.open_or_create_store()?);
            let root = config.home.join("keys").join("identities");
            let (id, _) = ledger.create_identity_keys(&root)?;
            ledger.store().trust_identity_add(&id, &label)?;
            crate::nats::connect_and_recover(config, ledger.store())?;
            show(out, "identity", &ledger.identity(&id)?)?;
        }
        IdentityCommand::Rotate { id } => {
            let id = parse_id(&id)?;
            let ledger = Ledger::new(config.open_existing_store()?);
            let keys = IdentityKeys::at(identity_dir(&config.home, &id.to_string())?);
            let identity = ledger.rotate_identity_keys(&id, &keys)?;
            crate::nats::connect_and_recover(config, ledger.store())?;
            show(out, "identity", &identity)?;
        }
        IdentityCommand::Revoke { id, revoked, from } => {
            let id = parse_id(&id)?;
            let key: Author = revoked
                .parse()
                .with_context(|| format!("--revoked-key {revoked:?}"))?;
            let ledger = Ledger::new(config.open_existing_store()?);
            let current = signer_of(config, &ledger, &id)?;
            let identity = ledger.revoke_key(&id, &current, &key, from)?;
            crate::nats::connect_and_recover(config, ledger.store())?;
            show(out, "identity", &identity)?;
        }
        IdentityCommand::Show { id } => {
            let id = parse_id(&id)?;
            let ledger = Ledger::new(config.open_for_reading()?);
            if ledger.store().head(&id)?.is_none() {
                bail!("no identity {id} in the store at {}", config.home.display());
            }
            show(out, "identity", &ledger.identity(&id)?)?;
        }
        IdentityCommand::List => {
            let ledger = Ledger::new(config.open_for_reading()?);
            let identities =
                personctl_ledger::identity::Identities::of_store_in_log(ledger.store())?;
            for identity in identities.iter() {
                show(out, "identity", identity)?;
            }
            for bad in &identities.bad {
                out.record(
                    "bad-key-event",
                    json!({"identity": bad.stream.to_string(), "height": bad.height, "cid": bad.cid.to_string(), "reason": bad.reason}),
                    || format!("{} at height {}: {}", bad.stream, bad.height, bad.reason),
                )?;
            }
        }
    }
    Ok(EXIT_OK)
}

/// `grant` (`granting`) and `revoke-grant`: a policy event signed by the admin's current key.
pub(crate) fn grant(
    config: &Config,
    args: &GrantArgs,
    granting: bool,
    out: &mut Out,
) -> Result<u8> {
    let admin = parse_id(&args.admin)?;
    let grantee = parse_id(&args.grantee)?;
    personctl_ledger::StreamId::new(args.aggregate.as_str(), "x")
        .with_context(|| format!("--aggregate {:?}", args.aggregate))?;
    if !granting && !args.events.is_empty() {
        bail!("revoke-grant withdraws every grant on --aggregate; --event is for grant");
    }
    let ledger = Ledger::new(config.open_existing_store()?);
    let signer = signer_of(config, &ledger, &admin)?;
    let cid = if granting {
        ledger.grant_write(&admin, &signer, &grantee, &args.aggregate, &args.events)?
    } else {
        ledger.revoke_write(&admin, &signer, &grantee, &args.aggregate)?
    };
    crate::nats::connect_and_recover(config, ledger.store())?;
    let kind = if granting { "granted" } else { "grant-revoked" };
    out.record(
        kind,
        json!({"admin": admin.to_string(), "grantee": grantee.to_string(), "aggregate": args.aggregate, "events": args.events, "cid": cid.to_string()}),
        || {
            let what = if args.events.is_empty() {
                "any event".to_string()
            } else {
                args.events.join(", ")
            };
            if granting {
                format!("{grantee} may write {what} to {} streams ({admin}'s policy, {cid})", args.aggregate)
            } else {
                format!("{grantee} may no longer write to {} streams ({admin}'s policy, {cid})", args.aggregate)
            }
        },
    )?;
    Ok(EXIT_OK)
}
