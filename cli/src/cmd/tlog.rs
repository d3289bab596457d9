//! `personctl checkpoint`, `personctl prove` and `verify --proof`: the home's log (the
//! library's `tlog`: a Merkle tree over every event, in the order stored), signed checkpoints,
//! and proofs that check offline.

use std::path::Path;

use anyhow::{bail, Context, Result};
use base64::prelude::*;
use serde_json::json;

use personctl_ledger::tlog::{Bundle, Checkpoint, NoteKey, SignedCheckpoint};
use personctl_ledger::{Cid, Ledger, Signer, SledStore};

use crate::args::{CheckpointArgs, ProveArgs};
use crate::config::Config;
use crate::output::Out;
use crate::{EXIT_NEGATIVE, EXIT_OK};

/// The log's origin: `--origin`, or personctl.local/ and the end of this home's did:key.
fn origin(args: &CheckpointArgs, signer: &Signer) -> String {
    let did = signer.author().to_string();
    args.origin
        .clone()
        .unwrap_or_else(|| format!("personctl.local/{}", &did[did.len().saturating_sub(16)..]))
}

/// Signs a checkpoint of the home's log and keeps it in the store.
fn sign(config: &Config, args: &CheckpointArgs) -> Result<(SignedCheckpoint, Ledger<SledStore>)> {
    let signer = config.signer()?;
    let ledger = Ledger::new(config.open_existing_store()?);
    let signed = ledger.sign_checkpoint(&origin(args, &signer), &signer)?;
    Ok((signed, ledger))
}

pub(crate) fn checkpoint(config: &Config, args: &CheckpointArgs, out: &mut Out) -> Result<u8> {
    let (s, _) = sign(config, args)?;
    let root = BASE64_STANDARD.encode(s.checkpoint.root.0);
    let vkey = s.key.to_vkey();
    out.record(
        "checkpoint",
        json!({"origin": s.checkpoint.origin, "size": s.checkpoint.size, "root": root, "vkey": vkey, "note": s.note}),
        || format!("{}\nverifier key: {vkey}", s.note.trim_end()),
    )?;
    Ok(EXIT_OK)
}

pub(crate) fn prove(config: &Config, args: &ProveArgs, out: &mut Out) -> Result<u8> {
    let cid: Cid = args
        .cid
        .parse()
        .with_context(|| format!("--cid {:?}", args.cid))?;
    let (s, ledger) = sign(config, &args.checkpoint)?;
    let bundle = ledger.prove(&cid, &s)?;
    let vkey = s.key.to_vkey();
    let text = serde_json::to_string_pretty(&bundle)?;
    std::fs::write(&args.out, text).with_context(|| format!("writing {}", args.out.display()))?;
    out.record(
        "proof",
        json!({"cid": cid.to_string(), "index": bundle.index, "size": s.checkpoint.size, "file": args.out.display().to_string(), "vkey": vkey}),
        || {
            format!(
                "wrote {}: event {cid} is leaf {} of {} in {}'s log\ncheck it anywhere: personctl verify --proof {} --log-key '{}'",
                args.out.display(),
                bundle.index,
                s.checkpoint.size,
                s.checkpoint.origin,
                args.out.display(),
                vkey
            )
        },
    )?;
    Ok(EXIT_OK)
}

/// Opens the signed checkpoint at `path` with `vkey`, or with this home's key under the
/// checkpoint's own origin.
pub(crate) fn open_checkpoint(
    config: &Config,
    path: &Path,
    vkey: Option<&str>,
) -> Result<Checkpoint> {
    let note =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let key = match vkey {
        Some(v) => NoteKey::from_vkey(v).context("--log-key")?,
        None => {
            let origin = note.lines().next().unwrap_or_default().to_string();
            NoteKey::new(origin, config.signer()?.author())?
        }
    };
    Checkpoint::open(&note, &key).with_context(|| format!("the checkpoint {}", path.display()))
}

/// `verify --proof FILE --log-key VKEY`: offline, no home. Exit 1 when it does not verify.
pub(crate) fn verify_proof(path: &Path, vkey: &str, out: &mut Out) -> Result<u8> {
    let key = NoteKey::from_vkey(vkey).context("--log-key")?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let bundle: Bundle = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a proof bundle", path.display()))?;
    match bundle.check(&key) {
        Ok(p) => {
            let cid = p.event.cid();
            out.record(
                "proof",
                json!({"ok": true, "cid": cid.to_string(), "stream": p.event.stream().to_string(), "height": p.event.height(), "index": p.index, "size": p.checkpoint.size, "origin": p.checkpoint.origin, "payload": p.payload}),
                || {
                    format!(
                        "OK: event {cid} ({} at height {}) is leaf {} of {}'s log of {} events, signed by {}{}",
                        p.event.stream(),
                        p.event.height(),
                        p.index,
                        p.checkpoint.origin,
                        p.checkpoint.size,
                        key.name,
                        if p.payload { "" } else { "; its payload is not included (erased, or none)" }
                    )
                },
            )?;
            Ok(EXIT_OK)
        }
        Err(e) => {
            out.record(
                "proof",
                json!({"ok": false, "message": e.to_string()}),
                || format!("FAILED: {e}"),
            )?;
            Ok(EXIT_NEGATIVE)
        }
    }
}
