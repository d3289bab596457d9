//! Witnesses: C2SP `tlog-cosignature` (a witness's signature over a checkpoint it saw) and
//! `tlog-witness` (the `add-checkpoint` exchange), transport-free.
//!
//! A witness keeps, per log it follows, the newest checkpoint it cosigned. It cosigns a new one
//! only when the log's key signed it and a consistency proof shows the old tree is a prefix of
//! the new: a log cannot then show two histories (a *split view*) to parties that both rely on
//! the witness, nor roll its log back. The HTTP server and client are the caller's (the CLI
//! wires them); here are the bytes in and out: [`AddCheckpoint`] (the request body),
//! [`Witness::add_checkpoint`] (the answer: status, content type, body), [`cosignatures`] and
//! [`open_witnessed`] (checking cosigned checkpoints with a quorum).
//!
//! A cosignature line is `— NAME BASE64(ID || TIME || SIG)`: `ID = SHA-256(NAME || 0x0A || 0x04
//! || PUBLIC KEY)[..4]`, `TIME` the cosigning time in seconds since the Unix epoch as 8 bytes
//! big-endian, and `SIG` the Ed25519 signature of `cosignature/v1\ntime TIME\n` followed by the
//! checkpoint's text. A witness's verifier key is `NAME+HEX(ID)+BASE64(0x04 || PUBLIC KEY)`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::prelude::*;
use sha512::{Digest, Sha256};

use super::{
    check_consistency, checked_name, open_note, parse_vkey, typed_key_id, vkey_text, Checkpoint,
    Hash, NoteKey, COSIGNATURE_V1, DASH,
};
use crate::{Author, Error, Result, Signature, Signer};

/// The most hashes a consistency proof can have (a tree of 2⁶⁴ leaves), as `tlog-witness` caps
/// them.
const MAX_PROOF: usize = 63;

/// A witness's key: a name and an Ed25519 public key, signature type `cosignature/v1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessKey {
    /// The witness's name.
    pub name: String,
    /// Its public key.
    pub author: Author,
}

impl WitnessKey {
    /// `author` under `name`.
    pub fn new(name: impl Into<String>, author: Author) -> Result<WitnessKey> {
        Ok(WitnessKey {
            name: checked_name(name.into())?,
            author,
        })
    }

    /// The verifier key text, `NAME+HEX(ID)+BASE64(0x04 || PUBLIC KEY)`.
    pub fn to_vkey(&self) -> String {
        vkey_text(&self.name, COSIGNATURE_V1, &self.author)
    }

    /// Parses a witness's verifier key.
    pub fn from_vkey(text: &str) -> Result<WitnessKey> {
        let (name, author) = parse_vkey(text, COSIGNATURE_V1)?;
        Ok(WitnessKey { name, author })
    }

    fn id(&self) -> [u8; 4] {
        typed_key_id(&self.name, COSIGNATURE_V1, &self.author)
    }
}

/// What a cosignature signs: `cosignature/v1\ntime TIME\n` and the checkpoint's text.
fn cosigned_message(text: &str, time: u64) -> String {
    format!("cosignature/v1\ntime {time}\n{text}")
}

/// Cosigns a checkpoint's `text` as witness `name` at `time` (seconds since the Unix epoch);
/// returns the signature line, newline included.
pub fn cosign(text: &str, name: &str, signer: &Signer, time: u64) -> Result<String> {
    let key = WitnessKey::new(name, signer.author())?;
    let mut sig = key.id().to_vec();
    sig.extend_from_slice(&time.to_be_bytes());
    sig.extend_from_slice(&signer.sign(cosigned_message(text, time).as_bytes()).0);
    Ok(format!("{DASH}{name} {}\n", BASE64_STANDARD.encode(sig)))
}

/// A cosignature that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness's name.
    pub witness: String,
    /// When it cosigned, in seconds since the Unix epoch.
    pub time: u64,
}

/// The cosignatures on `note` (a signed checkpoint) by `witnesses` that verify. A line by a
/// known witness key (name and ID) that does not verify rejects the note; lines by other keys
/// are ignored.
pub fn cosignatures(note: &str, witnesses: &[WitnessKey]) -> Result<Vec<Cosignature>> {
    let bad = |reason: String| Error::BadProof { reason };
    let split = note
        .rfind("\n\n")
        .ok_or_else(|| bad("a signed note: no blank line before its signatures".into()))?;
    let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
    let mut out: Vec<Cosignature> = Vec::new();
    for line in sigs.lines() {
        let Some((name, sig)) = line.strip_prefix(DASH).and_then(|r| r.split_once(' ')) else {
            return Err(bad(format!("a signature line: {line:?}")));
        };
        let Ok(sig) = BASE64_STANDARD.decode(sig) else {
            return Err(bad(format!("a signature of {name} is not base64")));
        };
        let Some(key) = witnesses
            .iter()
            .find(|k| k.name == name && sig.get(..4) == Some(&k.id()[..]))
        else {
            continue;
        };
        if sig.len() != 4 + 8 + 64 {
            return Err(bad(format!(
                "the cosignature of {name} is {} bytes, not 76",
                sig.len()
            )));
        }
        let time = u64::from_be_bytes(sig[4..12].try_into().expect("8 bytes"));
        let signature = Signature(sig[12..].try_into().expect("64 bytes"));
        if !key
            .author
            .verify(cosigned_message(text, time).as_bytes(), &signature)
        {
            return Err(bad(format!("the cosignature of {name} does not verify")));
        }
        if !out.iter().any(|c| c.witness == name) {
            out.push(Cosignature {
                witness: name.to_string(),
                time,
            });
        }
    }
    Ok(out)
}

/// Opens a checkpoint the log's `key` signed and at least `quorum` of `witnesses` cosigned.
pub fn open_witnessed(
    note: &str,
    key: &NoteKey,
    witnesses: &[WitnessKey],
    quorum: usize,
) -> Result<(Checkpoint, Vec<Cosignature>)> {
    let checkpoint = Checkpoint::open(note, key)?;
    let cosigned = cosignatures(note, witnesses)?;
    if cosigned.len() < quorum {
        return Err(Error::BadProof {
            reason: format!(
                "the checkpoint has {} valid cosignature(s) of the {} witness key(s) given, fewer than the quorum of {quorum}",
                cosigned.len(),
                witnesses.len()
            ),
        });
    }
    Ok((checkpoint, cosigned))
}

/// Adds cosignature `lines` to a signed `note` (signature lines go at its end).
pub fn with_cosignatures(note: &str, lines: &str) -> String {
    format!("{note}{lines}")
}

/// The body of a `tlog-witness` add-checkpoint request, and of a consistency proof between two
/// checkpoints: `old SIZE`, one base64 hash per line, a blank line, the signed checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct AddCheckpoint {
    /// The size of the checkpoint the proof starts from (what the witness last cosigned).
    pub old: u64,
    /// The consistency proof from `old` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint.
    pub note: String,
}

impl AddCheckpoint {
    /// The request body.
    pub fn to_body(&self) -> String {
        let mut out = format!("old {}\n", self.old);
        for h in &self.proof {
            out.push_str(&BASE64_STANDARD.encode(h.0));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.note);
        out
    }

    /// Parses a request body.
    pub fn parse(body: &[u8]) -> Result<AddCheckpoint> {
        let bad = |reason: &str| Error::BadProof {
            reason: format!("an add-checkpoint body: {reason}"),
        };
        let text = std::str::from_utf8(body).map_err(|_| bad("not UTF-8"))?;
        let (head, note) = text
            .split_once("\n\n")
            .ok_or_else(|| bad("no blank line before the checkpoint"))?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .filter(|n| !n.starts_with('+') && (n == &"0" || !n.starts_with('0')))
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| bad("the first line is not `old SIZE`"))?;
        let proof = lines
            .map(|l| {
                let bytes = BASE64_STANDARD.decode(l).ok()?;
                Some(Hash(bytes.try_into().ok()?))
            })
            .collect::<Option<Vec<Hash>>>()
            .ok_or_else(|| bad("a proof line is not a base64 hash"))?;
        if proof.len() > MAX_PROOF {
            return Err(bad("more than 63 proof lines"));
        }
        Ok(AddCheckpoint {
            old,
            proof,
            note: note.to_string(),
        })
    }

    /// Checks the proof between `old` (a checkpoint of `old` leaves, or nothing yet for 0) and
    /// the new checkpoint, which `key` must have signed; returns the new checkpoint.
    pub fn check(&self, old: Option<&Checkpoint>, key: &NoteKey) -> Result<Checkpoint> {
        let new = Checkpoint::open(&self.note, key)?;
        check_growth(old, &new, &self.proof)?;
        Ok(new)
    }
}

/// Checks that `new` extends `old` by `proof`. With no old checkpoint (or an empty one) any
/// tree extends it and the proof is empty; at the same size the roots must be equal.
fn check_growth(old: Option<&Checkpoint>, new: &Checkpoint, proof: &[Hash]) -> Result<()> {
    let bad = |reason: String| Error::BadProof { reason };
    let Some(old) = old.filter(|o| o.size > 0) else {
        if !proof.is_empty() {
            return Err(bad("a proof from the empty tree must be empty".into()));
        }
        return Ok(());
    };
    if old.origin != new.origin {
        return Err(bad(format!(
            "checkpoints of two logs: {} and {}",
            old.origin, new.origin
        )));
    }
    if new.size < old.size {
        return Err(bad(format!(
            "the log shrank from {} to {} events",
            old.size, new.size
        )));
    }
    if new.size == old.size {
        if !proof.is_empty() {
            return Err(bad("a proof between equal sizes must be empty".into()));
        }
        if new.root != old.root {
            return Err(bad(format!(
                "two checkpoints of {} events with different roots (a split view)",
                new.size
            )));
        }
        return Ok(());
    }
    check_consistency(proof, new.size, new.root, old.size, old.root)
}

/// A witness's answer to an add-checkpoint request, as HTTP would carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status: 200 cosigned; 400 malformed; 403 not signed by the log's key; 404 a
    /// log this witness does not follow; 409 `old` is not the size it holds (the body says
    /// which), or a split view; 422 the consistency proof does not verify.
    pub status: u16,
    /// The body's content type.
    pub content_type: &'static str,
    /// The body: the cosignature line (200), the size the witness holds (409), or why.
    pub body: String,
}

impl Answer {
    fn text(status: u16, body: impl Into<String>) -> Answer {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// A witness: the logs it follows (their keys), the newest checkpoint it cosigned of each (in
/// a directory, one file per log, written atomically before it cosigns), and its key.
pub struct Witness {
    name: String,
    signer: Signer,
    logs: Vec<NoteKey>,
    dir: PathBuf,
    /// One add-checkpoint at a time: read, check, write, cosign.
    lock: Mutex<()>,
}

impl Witness {
    /// A witness named `name`, signing with `signer`, following the logs of `logs`, keeping its
    /// state in `dir` (created if missing).
    pub fn open(
        dir: impl AsRef<Path>,
        name: &str,
        signer: Signer,
        logs: Vec<NoteKey>,
    ) -> Result<Witness> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            context: format!("creating {}", dir.display()),
            source,
        })?;
        Ok(Witness {
            name: checked_name(name.to_string())?,
            signer,
            logs,
            dir,
            lock: Mutex::new(()),
        })
    }

    /// Its verifier key.
    pub fn key(&self) -> WitnessKey {
        WitnessKey {
            name: self.name.clone(),
            author: self.signer.author(),
        }
    }

    fn state_path(&self, origin: &str, suffix: &str) -> PathBuf {
        let digest = Sha256::digest(origin.as_bytes());
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{hex}{suffix}"))
    }

    /// The newest checkpoint it cosigned of the log `key` signs.
    pub fn latest(&self, key: &NoteKey) -> Result<Option<Checkpoint>> {
        let path = self.state_path(&key.name, ".note");
        match std::fs::read_to_string(&path) {
            Ok(note) => Checkpoint::open(&note, key).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io {
                context: format!("reading {}", path.display()),
                source,
            }),
        }
    }

    /// Answers an add-checkpoint request, cosigning at `time` (seconds since the Unix epoch).
    pub fn add_checkpoint(&self, body: &[u8], time: u64) -> Answer {
        let request = match AddCheckpoint::parse(body) {
            Ok(r) => r,
            Err(e) => return Answer::text(400, e.to_string()),
        };
        let origin = request.note.lines().next().unwrap_or_default();
        let Some(key) = self.logs.iter().find(|k| k.name == origin) else {
            return Answer::text(
                404,
                format!("this witness does not follow the log {origin:?}"),
            );
        };
        let checkpoint = match open_note(&request.note, std::slice::from_ref(key)) {
            Ok((text, _)) => match Checkpoint::parse(&text) {
                Ok(c) => c,
                Err(e) => return Answer::text(400, e.to_string()),
            },
            Err(e) => return Answer::text(403, format!("not signed by the log's key: {e}")),
        };
        let _one = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let latest = match self.latest(key) {
            Ok(l) => l,
            Err(e) => return Answer::text(500, e.to_string()),
        };
        let held = latest.as_ref().map_or(0, |c| c.size);
        let conflict = || Answer {
            status: 409,
            content_type: "text/x.tlog.size",
            body: format!("{held}\n"),
        };
        if request.old != held {
            return conflict();
        }
        if checkpoint.size < request.old {
            return Answer::text(400, "the checkpoint is smaller than `old`");
        }
        if let Err(e) = check_growth(latest.as_ref(), &checkpoint, &request.proof) {
            if latest
                .as_ref()
                .is_some_and(|l| l.size == checkpoint.size && l.root != checkpoint.root)
            {
                // A split view: keep the evidence, refuse as a conflict.
                tracing::warn!(origin, size = checkpoint.size, "a split view: {e}");
                let path = self.state_path(origin, &format!("-split-{}.note", checkpoint.size));
                let tmp = path.with_extension("tmp");
                let _ = crate::store::write_atomically(&path, &tmp, request.note.as_bytes());
                return conflict();
            }
            return Answer::text(422, e.to_string());
        }
        let line = match cosign(
            &checkpoint.text().unwrap_or_default(),
            &self.name,
            &self.signer,
            time,
        ) {
            Ok(l) => l,
            Err(e) => return Answer::text(500, e.to_string()),
        };
        if held != checkpoint.size {
            let path = self.state_path(origin, ".note");
            let tmp = self.state_path(origin, ".note.tmp");
            if let Err(e) = crate::store::write_atomically(&path, &tmp, request.note.as_bytes()) {
                return Answer::text(500, e.to_string());
            }
        }
        tracing::debug!(origin, size = checkpoint.size, "cosigned");
        Answer {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            body: line,
        }
    }
}
