//! `personctl checkpoint`, `personctl prove` and `verify --proof`: the home's log (the
//! library's `tlog`: a Merkle tree over every event, in the order stored), signed checkpoints,
//! and proofs that check offline.

use std::path::Path;

use anyhow::{bail, Context, Result};
use base64::prelude::*;
use serde_json::json;

use personctl_ledger::jetstream::Link;
use personctl_ledger::tlog::{
    AddCheckpoint, AutoCheckpoint, Bundle, Checkpoint, LogOf, NoteKey, SignedCheckpoint,
    WitnessKey, Witnessed,
};
use personctl_ledger::{Cid, Ledger, Signer, SledStore};

use crate::args::{AuditArgs, CheckpointArgs, ProveArgs, WitnessKeys};
use crate::config::Config;
use crate::nats;
use crate::output::Out;
use crate::{EXIT_NEGATIVE, EXIT_OK};

/// `PREFIX/` and the last 16 characters of the home's did:key.
pub(crate) fn default_name(prefix: &str, signer: &Signer) -> String {
    let did = signer.author().to_string();
    format!("{prefix}/{}", &did[did.len().saturating_sub(16)..])
}

/// The --witness-key keys and the quorum (default: all of them).
fn witness_keys(args: &WitnessKeys) -> Result<(Vec<WitnessKey>, usize)> {
    let keys = args
        .witness_keys
        .iter()
        .map(|k| WitnessKey::from_vkey(k).with_context(|| format!("--witness-key {k:?}")))
        .collect::<Result<Vec<_>>>()?;
    let quorum = args.quorum.unwrap_or(keys.len());
    if quorum > keys.len() {
        bail!("--quorum {quorum}: only {} --witness-key given", keys.len());
    }
    Ok((keys, quorum))
}

/// Posts a tlog-witness add-checkpoint request: `TARGET/add-checkpoint`, plain HTTP.
fn post_add_checkpoint(target: &str, body: &str) -> std::result::Result<(u16, String), String> {
    let base = target.trim_end_matches('/');
    let url = if base.ends_with("/add-checkpoint") {
        base.to_string()
    } else {
        format!("{base}/add-checkpoint")
    };
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(10))
        .build();
    match agent
        .post(&url)
        .set("Content-Type", "text/plain")
        .send_string(body)
    {
        Ok(r) => {
            let status = r.status();
            Ok((status, r.into_string().map_err(|e| format!("{url}: {e}"))?))
        }
        Err(ureq::Error::Status(status, r)) => Ok((status, r.into_string().unwrap_or_default())),
        Err(e) => Err(format!("{url}: {e}")),
    }
}

/// A signed (and, with --witness, cosigned) checkpoint of the home's log.
struct Signed {
    signed: SignedCheckpoint,
    /// With --witness: what the witnesses did, and whether the quorum cosigned.
    witnessed: Option<(Witnessed, bool)>,
}

/// Runs `f` on the home's log: with --nats, the shared one (JetStream's order, after
/// publishing what is pending and pulling every stream), else the store's own. `f` gets the
/// log, the link, and the default origin.
fn with_log<T>(
    config: &Config,
    f: impl FnOnce(&mut LogOf<'_, SledStore>, Option<&Link>, String) -> Result<T>,
) -> Result<T> {
    let signer = config.signer()?;
    let ledger = Ledger::new(config.open_existing_store()?);
    let link = nats::connect_and_recover(config, ledger.store())?;
    match &link {
        Some(link) => {
            let shared = link
                .shared_log_of(ledger.store())
                .map_err(nats::untrusted_hint)
                .with_context(|| {
                    format!("the shared log (the order of JetStream at {})", link.url())
                })?;
            let origin = link.backbone().settings().log_origin();
            f(&mut LogOf::Shared(shared), Some(link), origin)
        }
        None => f(
            &mut LogOf::Stored(&ledger),
            None,
            default_name("personctl.local", &signer),
        ),
    }
}

/// Signs a checkpoint of `log` (kept in the store, or with --nats published to JetStream);
/// asks the witnesses.
fn sign(
    config: &Config,
    args: &CheckpointArgs,
    log: &mut LogOf<'_, SledStore>,
    link: Option<&Link>,
    default_origin: String,
) -> Result<Signed> {
    let signer = config.signer()?;
    let (keys, quorum) = witness_keys(&args.keys)?;
    let origin = args.origin.clone().unwrap_or(default_origin);
    let mut signed = log.sign_checkpoint(&origin, &signer)?;
    let mut witnessed = None;
    if !args.witnesses.is_empty() {
        let w =
            log.witness_checkpoint(&signed, &args.witnesses, &keys, &mut post_add_checkpoint)?;
        signed.note = w.note.clone();
        let met = w.cosigned.len() >= quorum;
        witnessed = Some((w, met));
    }
    if let Some(link) = link {
        link.publish_checkpoint(&origin, &signed.note)
            .with_context(|| format!("publishing the checkpoint to JetStream at {}", link.url()))?;
    }
    Ok(Signed { signed, witnessed })
}

/// What the witnesses did, for the text output.
fn witnessed_text(w: &Option<(Witnessed, bool)>) -> String {
    let Some((w, met)) = w else {
        return String::new();
    };
    let mut out = String::new();
    for c in &w.cosigned {
        out.push_str(&format!("\ncosigned by {}", c.witness));
    }
    for (target, reason) in &w.refused {
        out.push_str(&format!("\nnot cosigned by {target}: {reason}"));
    }
    if !met {
        out.push_str("\nFAILED: fewer witnesses cosigned than the quorum");
    }
    out
}

fn witnessed_json(w: &Option<(Witnessed, bool)>) -> serde_json::Value {
    match w {
        None => serde_json::Value::Null,
        Some((w, met)) => json!({
            "quorum_met": met,
            "cosigned": w.cosigned.iter().map(|c| json!({"witness": c.witness, "time": c.time})).collect::<Vec<_>>(),
            "refused": w.refused.iter().map(|(t, r)| json!({"witness": t, "reason": r})).collect::<Vec<_>>(),
        }),
    }
}

fn exit_code(w: &Option<(Witnessed, bool)>) -> u8 {
    match w {
        Some((_, false)) => EXIT_NEGATIVE,
        _ => EXIT_OK,
    }
}

pub(crate) fn checkpoint(config: &Config, args: &CheckpointArgs, out: &mut Out) -> Result<u8> {
    let Signed {
        signed: s,
        witnessed,
    } = with_log(config, |log, link, origin| {
        sign(config, args, log, link, origin)
    })?;
    let root = BASE64_STANDARD.encode(s.checkpoint.root.0);
    let vkey = s.key.to_vkey();
    out.record(
        "checkpoint",
        json!({"origin": s.checkpoint.origin, "size": s.checkpoint.size, "root": root, "vkey": vkey, "note": s.note, "witnesses": witnessed_json(&witnessed)}),
        || {
            format!(
                "{}\nverifier key: {vkey}{}",
                s.note.trim_end(),
                witnessed_text(&witnessed)
            )
        },
    )?;
    Ok(exit_code(&witnessed))
}

pub(crate) fn prove(config: &Config, args: &ProveArgs, out: &mut Out) -> Result<u8> {
    let cid: Cid = args
        .cid
        .parse()
        .with_context(|| format!("--cid {:?}", args.cid))?;
    let (
        Signed {
            signed: s,
            witnessed,
        },
        bundle,
    ) = with_log(config, |log, link, origin| {
        let signed = sign(config, &args.checkpoint, log, link, origin)?;
        let bundle = log.prove(&cid, &signed.signed)?;
        Ok((signed, bundle))
    })?;
    let vkey = s.key.to_vkey();
    let text = serde_json::to_string_pretty(&bundle)?;
    std::fs::write(&args.out, text).with_context(|| format!("writing {}", args.out.display()))?;
    out.record(
        "proof",
        json!({"cid": cid.to_string(), "index": bundle.index, "size": s.checkpoint.size, "file": args.out.display().to_string(), "vkey": vkey, "witnesses": witnessed_json(&witnessed)}),
        || {
            format!(
                "wrote {}: event {cid} is leaf {} of {} in {}'s log\ncheck it anywhere: personctl verify --proof {} --log-key '{}'{}",
                args.out.display(),
                bundle.index,
                s.checkpoint.size,
                s.checkpoint.origin,
                args.out.display(),
                vkey,
                witnessed_text(&witnessed)
            )
        },
    )?;
    Ok(exit_code(&witnessed))
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

/// `verify --proof FILE --log-key VKEY [--witness-key VKEY --quorum K]`: offline, no home.
/// Exit 1 when it does not verify.
pub(crate) fn verify_proof(
    path: &Path,
    vkey: &str,
    witnesses: &WitnessKeys,
    out: &mut Out,
) -> Result<u8> {
    let key = NoteKey::from_vkey(vkey).context("--log-key")?;
    let (witnesses, quorum) = witness_keys(witnesses)?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let bundle: Bundle = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a proof bundle", path.display()))?;
    match bundle.check_witnessed(&key, &witnesses, quorum) {
        Ok(p) => {
            let cid = p.event.cid();
            let cosigned: Vec<&str> = p.cosignatures.iter().map(|c| c.witness.as_str()).collect();
            out.record(
                "proof",
                json!({"ok": true, "cid": cid.to_string(), "stream": p.event.stream().to_string(), "height": p.event.height(), "index": p.index, "size": p.checkpoint.size, "origin": p.checkpoint.origin, "payload": p.payload, "cosigned": cosigned}),
                || {
                    format!(
                        "OK: event {cid} ({} at height {}) is leaf {} of {}'s log of {} events, signed by {}{}{}",
                        p.event.stream(),
                        p.event.height(),
                        p.index,
                        p.checkpoint.origin,
                        p.checkpoint.size,
                        key.name,
                        if cosigned.is_empty() {
                            String::new()
                        } else {
                            format!(", cosigned by {}", cosigned.join(", "))
                        },
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

/// `audit --from OLD`: at the home, a fresh checkpoint and the consistency proof from OLD to
/// it; with --proof, that proof checked offline. Exit 1 when the log did not just grow.
pub(crate) fn audit(config: &Config, args: &AuditArgs, out: &mut Out) -> Result<u8> {
    let old = open_checkpoint(config, &args.from, args.log_key.as_deref())?;
    let (growth, key, problem) = match &args.proof {
        Some(path) => {
            let key = NoteKey::from_vkey(args.log_key.as_deref().unwrap_or_default())
                .context("--log-key")?;
            let text =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let growth = AddCheckpoint::parse(&text)
                .with_context(|| format!("{} is not a consistency proof", path.display()))?;
            let problem = if growth.old != old.size {
                Some(format!(
                    "the proof starts from {} events, the checkpoint --from has {}",
                    growth.old, old.size
                ))
            } else {
                growth.check(Some(&old), &key).err().map(|e| e.to_string())
            };
            (growth, key, problem)
        }
        None => {
            let grown = with_log(config, |log, link, origin| {
                if let Some(problem) = log.check_against(&old)? {
                    return Ok(Err(format!("{problem} ({})", problem.code())));
                }
                let checkpoint = CheckpointArgs {
                    origin: args.origin.clone(),
                    witnesses: Vec::new(),
                    keys: WitnessKeys::default(),
                };
                let signed = sign(config, &checkpoint, log, link, origin)?.signed;
                Ok(Ok((log.growth(old.size, &signed)?, signed.key)))
            })?;
            let (growth, key) = match grown {
                Ok(g) => g,
                Err(problem) => return verdict_line(out, &old, None, Some(problem)),
            };
            // Our own proof, checked as the auditor will check it.
            let problem = growth.check(Some(&old), &key).err().map(|e| e.to_string());
            if let Some(path) = &args.out {
                std::fs::write(path, growth.to_body())
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            (growth, key, problem)
        }
    };
    let new = Checkpoint::open(&growth.note, &key).ok();
    verdict_line(out, &old, new.map(|n| (n, growth.proof.len())), problem)
}

fn verdict_line(
    out: &mut Out,
    old: &Checkpoint,
    new: Option<(Checkpoint, usize)>,
    problem: Option<String>,
) -> Result<u8> {
    let size = new.as_ref().map(|(n, _)| n.size);
    let hashes = new.as_ref().map(|(_, h)| *h);
    match problem {
        None => {
            out.record(
                "audit",
                json!({"ok": true, "origin": old.origin, "from": old.size, "to": size, "hashes": hashes}),
                || {
                    format!(
                        "OK: {}'s log only grew, from {} to {} events (a consistency proof of {})",
                        old.origin,
                        old.size,
                        size.unwrap_or(old.size),
                        crate::output::plural(hashes.unwrap_or(0) as u64, "hash")
                    )
                },
            )?;
            Ok(EXIT_OK)
        }
        Some(problem) => {
            out.record(
                "audit",
                json!({"ok": false, "origin": old.origin, "from": old.size, "to": size, "message": problem}),
                || format!("FAILED: {}'s log since its checkpoint of {} events: {problem}", old.origin, old.size),
            )?;
            Ok(EXIT_NEGATIVE)
        }
    }
}

/// `--checkpoint-every N` after a command that appended: a checkpoint of the home's own log
/// when N events were added since the newest kept one.
pub(crate) fn auto_checkpoint(config: &Config, every: u64, out: &mut Out) -> Result<()> {
    let signer = config.signer()?;
    let ledger = Ledger::new(config.open_existing_store()?);
    let origin = default_name("personctl.local", &signer);
    let mut auto = AutoCheckpoint::new(origin, Some(every), None);
    if let Some(s) = auto.tick(&ledger, &signer)? {
        let root = BASE64_STANDARD.encode(s.checkpoint.root.0);
        out.record(
            "checkpoint",
            json!({"origin": s.checkpoint.origin, "size": s.checkpoint.size, "root": root, "vkey": s.key.to_vkey(), "note": s.note, "witnesses": null}),
            || format!("signed a checkpoint of {} events (kept in the store)", s.checkpoint.size),
        )?;
    }
    Ok(())
}
