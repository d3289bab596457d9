//! `personctl identity create|rotate|revoke|show|list`: the library's identities
//! (`ledger::identity`), with their keys kept in the home: `keys/identities/ID/current.pem` and
//! `next.pem` (mode 0600); a rotated-out key is kept as `retired-N.pem`.
//!
//! A rotation writes the new next key to `next.pem.new` first, appends the rotation, then
//! renames; an interrupted one is finished (or undone, when the rotation was not committed) by
//! the next `identity` command on that identity.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::json;

use personctl_ledger::identity::Identity;
use personctl_ledger::{Author, BlockStore, Ledger, Signer, SledStore, StreamId};

use crate::args::{GrantArgs, IdentityCommand};
use crate::config::{identity_dir, load_signer, write_key, Config};
use crate::output::Out;
use crate::EXIT_OK;

fn parse_id(id: &str) -> Result<StreamId> {
    let stream: StreamId = id.parse().with_context(|| format!("--id {id:?}"))?;
    if stream.aggregate() != personctl_ledger::identity::KEY_AGGREGATE {
        bail!("--id {id:?}: an identity is key/ID");
    }
    Ok(stream)
}

/// The identity's key directory, after finishing or undoing an interrupted rotation.
fn keys_of(config: &Config, ledger: &Ledger<SledStore>, id: &StreamId) -> Result<PathBuf> {
    let dir = identity_dir(&config.home, &id.to_string())?;
    let pending = dir.join("next.pem.new");
    if pending.exists() {
        let identity = ledger.identity(id)?;
        let next = load_signer(&dir.join("next.pem"))?;
        if identity.current() == &next.author() {
            finish_rotation(&dir, identity.events - 1)?;
        } else {
            std::fs::remove_file(&pending)
                .with_context(|| format!("removing {}", pending.display()))?;
        }
    }
    Ok(dir)
}

/// Moves the keys after a committed rotation: current to retired-N, next to current, the new
/// next in place.
fn finish_rotation(dir: &Path, events: u64) -> Result<()> {
    let rename = |from: &str, to: &str| {
        std::fs::rename(dir.join(from), dir.join(to))
            .with_context(|| format!("renaming {from} to {to} in {}", dir.display()))
    };
    rename("current.pem", &format!("retired-{events}.pem"))?;
    rename("next.pem", "current.pem")?;
    rename("next.pem.new", "next.pem")?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
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
            let (current, next) = (Signer::generate()?, Signer::generate()?);
            let ledger = Ledger::new(config.open_or_create_store()?);
            let digest = personctl_ledger::identity::next_digest(&next.author());
            let id = personctl_ledger::identity::identity_id(&current.author(), &digest);
            let dir = identity_dir(&config.home, &id.to_string())?;
            // The keys first: an identity whose keys were lost could never rotate.
            write_key(&dir.join("current.pem"), &current)?;
            write_key(&dir.join("next.pem"), &next)?;
            let made = ledger.incept_identity(&current, &next.author())?;
            debug_assert_eq!(made, id);
            ledger.store().trust_identity_add(&id, &label)?;
            show(out, "identity", &ledger.identity(&id)?)?;
        }
        IdentityCommand::Rotate { id } => {
            let id = parse_id(&id)?;
            let ledger = Ledger::new(config.open_existing_store()?);
            let dir = keys_of(config, &ledger, &id)?;
            let next = load_signer(&dir.join("next.pem"))?;
            let after = Signer::generate()?;
            write_key(&dir.join("next.pem.new"), &after)?;
            let identity = ledger.rotate_identity(&id, &next, &after.author())?;
            finish_rotation(&dir, identity.events - 1)?;
            show(out, "identity", &identity)?;
        }
        IdentityCommand::Revoke { id, revoked, from } => {
            let id = parse_id(&id)?;
            let key: Author = revoked
                .parse()
                .with_context(|| format!("--revoked-key {revoked:?}"))?;
            let ledger = Ledger::new(config.open_existing_store()?);
            let dir = keys_of(config, &ledger, &id)?;
            let current = load_signer(&dir.join("current.pem"))?;
            let identity = ledger.revoke_key(&id, &current, &key, from)?;
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
    let dir = keys_of(config, &ledger, &admin)?;
    let signer = load_signer(&dir.join("current.pem"))?;
    let cid = if granting {
        ledger.grant_write(&admin, &signer, &grantee, &args.aggregate, &args.events)?
    } else {
        ledger.revoke_write(&admin, &signer, &grantee, &args.aggregate)?
    };
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
