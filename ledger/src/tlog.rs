//! Transparency-log building blocks (issue 19, first part): a Merkle tree over event CIDs with
//! RFC 6962 hashing, its inclusion and consistency proofs, and C2SP checkpoints in the
//! `signed-note` format, signed and checked with the ledger's keys.
//!
//! The tree arithmetic is `tlog_tiles` (Cloudflare's port of Go's `sumdb/tlog`, the
//! implementation sum.golang.org runs): hashes are stored in its "stored hash" order, so a tree
//! grows by appending the hashes each new leaf completes, and proofs read `1 + log₂ n` of them.
//! A leaf is an event's binary CID; its hash is `SHA-256(0x00 || cid)`.
//!
//! Signed notes: text, a blank line, then one line per signature, `— NAME BASE64(ID || SIG)`,
//! where `ID = SHA-256(NAME || 0x0A || 0x01 || PUBLIC KEY)[..4]` and `SIG` is the Ed25519
//! signature of the text. A verifier key is written `NAME+HEX(ID)+BASE64(0x01 || PUBLIC KEY)`.
//! Signatures are checked with the ledger's Ed25519 criteria (invariant 6).
//!
//! What is not here yet: the log of a store (which events, in which order, kept with each
//! commit), witnesses and their cosignatures, and the command line.

use base64::prelude::*;
use sha512::{Digest, Sha256};
use tlog_tiles::tlog::{self, HashReader};

pub use tlog_tiles::tlog::{record_hash, Hash, EMPTY_HASH};

use crate::{Author, Cid, Error, Result, Signature, Signer};

/// The hash of a leaf: an event's binary CID, RFC 6962 leaf-hashed.
pub fn leaf_hash(cid: &Cid) -> Hash {
    tlog::record_hash(&cid.to_bytes())
}

fn proof_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::BadProof {
        reason: format!("{what}: {e}"),
    }
}

/// A Merkle tree over leaves, kept as its stored hashes (`tlog_tiles` order): appending a leaf
/// appends the hashes it completes.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    stored: Vec<Hash>,
    size: u64,
}

impl HashReader for Tree {
    fn read_hashes(&self, indexes: &[u64]) -> std::result::Result<Vec<Hash>, tlog::Error> {
        indexes
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| self.stored.get(i))
                    .copied()
                    .ok_or(tlog::Error::IndexesNotInTree)
            })
            .collect()
    }
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Tree {
        Tree::default()
    }

    /// A tree of `leaves`, in order.
    pub fn of<'a>(leaves: impl IntoIterator<Item = &'a Cid>) -> Result<Tree> {
        let mut tree = Tree::new();
        for cid in leaves {
            tree.push_hash(leaf_hash(cid))?;
        }
        Ok(tree)
    }

    /// Appends a leaf; returns its index.
    pub fn push(&mut self, cid: &Cid) -> Result<u64> {
        self.push_hash(leaf_hash(cid))
    }

    /// Appends a leaf by its leaf hash; returns its index.
    pub fn push_hash(&mut self, leaf: Hash) -> Result<u64> {
        let new = tlog::stored_hashes_for_record_hash(self.size, leaf, self)
            .map_err(|e| proof_error("growing the tree", e))?;
        self.stored.extend(new);
        self.size += 1;
        Ok(self.size - 1)
    }

    /// How many leaves it has.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root hash of its first `size` leaves (the whole tree: `self.size()`).
    pub fn root_at(&self, size: u64) -> Result<Hash> {
        if size > self.size {
            return Err(proof_error(
                "a root",
                format!("size {size} is over {}", self.size),
            ));
        }
        tlog::tree_hash(size, self).map_err(|e| proof_error("a root", e))
    }

    /// The root hash.
    pub fn root(&self) -> Hash {
        self.root_at(self.size).expect("the tree's own size")
    }

    /// The inclusion proof of leaf `index` in the tree of its first `size` leaves.
    pub fn prove_inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>> {
        if index >= size || size > self.size {
            return Err(proof_error(
                "an inclusion proof",
                format!(
                    "leaf {index} is not in a tree of {size} (the tree has {})",
                    self.size
                ),
            ));
        }
        tlog::prove_record(size, index, self).map_err(|e| proof_error("an inclusion proof", e))
    }

    /// The proof that the tree of the first `old` leaves is a prefix of the one of `size`.
    pub fn prove_consistency(&self, old: u64, size: u64) -> Result<Vec<Hash>> {
        if old > size || size > self.size {
            return Err(proof_error(
                "a consistency proof",
                format!("from {old} to {size} (the tree has {})", self.size),
            ));
        }
        tlog::prove_tree(size, old, self).map_err(|e| proof_error("a consistency proof", e))
    }
}

/// Checks that `leaf` (a leaf hash) is leaf `index` of the tree of `size` leaves with `root`.
pub fn check_inclusion(
    proof: &[Hash],
    size: u64,
    root: Hash,
    index: u64,
    leaf: Hash,
) -> Result<()> {
    tlog::check_record(&proof.to_vec(), size, root, index, leaf)
        .map_err(|e| proof_error(&format!("leaf {index} in a tree of {size}"), e))
}

/// Checks that the tree of `old` leaves with `old_root` is a prefix of the tree of `size`
/// leaves with `root`.
pub fn check_consistency(
    proof: &[Hash],
    size: u64,
    root: Hash,
    old: u64,
    old_root: Hash,
) -> Result<()> {
    tlog::check_tree(&proof.to_vec(), size, root, old, old_root)
        .map_err(|e| proof_error(&format!("a tree of {old} growing to {size}"), e))
}

/// The signature type byte of Ed25519 keys in signed notes.
const ED25519: u8 = 0x01;

/// A signed note's key name is valid: not empty, no `+`, no whitespace.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c == '+' || c.is_whitespace())
}

/// The key ID of `author` under `name`: `SHA-256(name || 0x0A || 0x01 || public key)[..4]`.
pub fn key_id(name: &str, author: &Author) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ED25519]);
    h.update(author.to_bytes());
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// A key that signs or checks notes: a name and an Ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteKey {
    /// The key's name (for a log: its origin, `host[/path]`).
    pub name: String,
    /// The public key.
    pub author: Author,
}

impl NoteKey {
    /// `author` under `name`.
    pub fn new(name: impl Into<String>, author: Author) -> Result<NoteKey> {
        let name = name.into();
        if !valid_name(&name) {
            return Err(Error::InvalidKey {
                input: name,
                reason: "a note key's name must be non-empty, without '+' or spaces".into(),
            });
        }
        Ok(NoteKey { name, author })
    }

    /// The verifier key text, `NAME+HEX(ID)+BASE64(0x01 || PUBLIC KEY)`.
    pub fn to_vkey(&self) -> String {
        let mut key = vec![ED25519];
        key.extend_from_slice(&self.author.to_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex_lower(&key_id(&self.name, &self.author)),
            BASE64_STANDARD.encode(key)
        )
    }

    /// Parses a verifier key; its ID must be the one its name and key derive.
    pub fn from_vkey(text: &str) -> Result<NoteKey> {
        let bad = |reason: &str| Error::InvalidKey {
            input: text.to_string(),
            reason: reason.to_string(),
        };
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected NAME+ID+KEY"));
        };
        if !valid_name(name) {
            return Err(bad("invalid key name"));
        }
        let key = BASE64_STANDARD
            .decode(key)
            .map_err(|_| bad("the key is not base64"))?;
        let [ED25519, public @ ..] = key.as_slice() else {
            return Err(bad("not an Ed25519 key (type 0x01)"));
        };
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| bad("an Ed25519 key is 32 bytes"))?;
        let author = Author::from_bytes(&public).map_err(|_| bad("not an Ed25519 public key"))?;
        let note = NoteKey::new(name, author)?;
        if id.len() != 8 || hex_lower(&key_id(name, &note.author)) != id.to_ascii_lowercase() {
            return Err(bad("the key ID does not match the name and key"));
        }
        Ok(note)
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The signature line prefix: an em dash and a space.
const DASH: &str = "\u{2014} ";

/// Signs `text` (which must end in a newline and hold no blank line) as `name`; returns the
/// note.
pub fn sign_note(text: &str, name: &str, signer: &Signer) -> Result<String> {
    if !text.ends_with('\n') || text.contains("\n\n") || text.starts_with('\n') {
        return Err(Error::InvalidEvent(
            "a note's text ends in a newline and holds no blank line".into(),
        ));
    }
    let key = NoteKey::new(name, signer.author())?;
    let mut sig = key_id(name, &key.author).to_vec();
    sig.extend_from_slice(&signer.sign(text.as_bytes()).0);
    Ok(format!(
        "{text}\n{DASH}{name} {}\n",
        BASE64_STANDARD.encode(sig)
    ))
}

/// Opens a signed note: its text, and the names of the `keys` whose signatures verify. A
/// signature by a known key (name and ID) that does not verify rejects the note; one by an
/// unknown key is ignored; a note no known key signed is rejected.
pub fn open_note(note: &str, keys: &[NoteKey]) -> Result<(String, Vec<String>)> {
    let bad = |reason: String| Error::BadProof { reason };
    let split = note
        .rfind("\n\n")
        .ok_or_else(|| bad("a signed note: no blank line before its signatures".into()))?;
    let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
    if !sigs.ends_with('\n') {
        return Err(bad("a signed note ends in a newline".into()));
    }
    let mut verified = Vec::new();
    for line in sigs.lines() {
        let rest = line
            .strip_prefix(DASH)
            .ok_or_else(|| bad(format!("a signature line: {line:?}")))?;
        let (name, sig) = rest
            .split_once(' ')
            .ok_or_else(|| bad(format!("a signature line: {line:?}")))?;
        let sig = BASE64_STANDARD
            .decode(sig)
            .map_err(|_| bad(format!("a signature of {name} is not base64")))?;
        if sig.len() < 4 {
            return Err(bad(format!("a signature of {name} is too short")));
        }
        let Some(key) = keys
            .iter()
            .find(|k| k.name == name && key_id(&k.name, &k.author) == sig[..4])
        else {
            continue;
        };
        let signature = <[u8; 64]>::try_from(&sig[4..])
            .map(Signature)
            .map_err(|_| bad(format!("the signature of {name} is not 64 bytes")))?;
        if !key.author.verify(text.as_bytes(), &signature) {
            return Err(bad(format!("the signature of {name} does not verify")));
        }
        verified.push(name.to_string());
    }
    if verified.is_empty() {
        return Err(bad("no signature by a known key".into()));
    }
    Ok((text.to_string(), verified))
}

/// A log's signed statement of its size and root (C2SP `tlog-checkpoint`).
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The log's origin (a unique name, `host[/path]`).
    pub origin: String,
    /// How many leaves the tree has.
    pub size: u64,
    /// Its root hash.
    pub root: Hash,
}

impl Checkpoint {
    /// The checkpoint's text: `ORIGIN\nSIZE\nBASE64(ROOT)\n`.
    pub fn text(&self) -> Result<String> {
        let c = tlog_tiles::checkpoint::Checkpoint::new(&self.origin, self.size, self.root, "")
            .map_err(|e| proof_error("a checkpoint", e))?;
        String::from_utf8(c.to_bytes()).map_err(|e| proof_error("a checkpoint", e))
    }

    /// Parses a checkpoint's text (extension lines are ignored).
    pub fn parse(text: &str) -> Result<Checkpoint> {
        let c = tlog_tiles::checkpoint::Checkpoint::from_bytes(text.as_bytes())
            .map_err(|e| proof_error("a checkpoint", e))?;
        Ok(Checkpoint {
            origin: c.origin().to_string(),
            size: c.size(),
            root: *c.hash(),
        })
    }

    /// Signs the checkpoint with `signer` as `name`.
    pub fn sign(&self, name: &str, signer: &Signer) -> Result<String> {
        sign_note(&self.text()?, name, signer)
    }

    /// Opens a signed checkpoint that `key` signed.
    pub fn open(note: &str, key: &NoteKey) -> Result<Checkpoint> {
        let (text, _) = open_note(note, std::slice::from_ref(key))?;
        Checkpoint::parse(&text)
    }
}

impl<S: crate::BlockStore> crate::Ledger<S> {
    /// The store's log: every event block it holds, in the order it stored them (invariant 1:
    /// only commits add to it). Payloads are not leaves, so erasure never changes the tree.
    pub fn log(&self) -> Result<Vec<Cid>> {
        let mut out = Vec::new();
        for cid in self.store().stored_order()? {
            let Some(block) = self.store().get(&cid)? else {
                continue;
            };
            if crate::BlockKind::of(block.bytes()) == crate::BlockKind::Event {
                out.push(cid);
            }
        }
        Ok(out)
    }

    /// The Merkle tree of [`Ledger::log`], and the log.
    pub fn log_tree(&self) -> Result<(Tree, Vec<Cid>)> {
        let log = self.log()?;
        Ok((Tree::of(&log)?, log))
    }

    /// Streams with events a shared log has not acknowledged yet, in a store that publishes
    /// (one with any published mark): a lost race could still withdraw them, so a checkpoint
    /// must wait until they are settled. Empty for a store that never published.
    pub fn unsettled(&self) -> Result<Vec<crate::StreamId>> {
        let heads = self.store().heads()?;
        let mut marks = Vec::with_capacity(heads.len());
        for (stream, head) in heads {
            let mark = self.store().published(&stream)?;
            marks.push((stream, head, mark));
        }
        if marks.iter().all(|(_, _, m)| m.is_none()) {
            return Ok(Vec::new());
        }
        Ok(marks
            .into_iter()
            .filter(|(_, head, mark)| mark.map(|m| m.head) != Some(*head))
            .map(|(s, _, _)| s)
            .collect())
    }

    /// What the log says against `checkpoint`, one this log signed earlier (or a verifier
    /// remembers): nothing when the log still starts with exactly what it signed; else
    /// [`crate::Problem::TruncatedLog`] (events were removed: a truncation or a rollback) or
    /// [`crate::Problem::RootMismatch`] (history was rewritten).
    pub fn check_against(&self, checkpoint: &Checkpoint) -> Result<Option<crate::Problem>> {
        let (tree, _) = self.log_tree()?;
        if tree.size() < checkpoint.size {
            return Ok(Some(crate::Problem::TruncatedLog {
                checkpoint: checkpoint.size,
                log: tree.size(),
            }));
        }
        if tree.root_at(checkpoint.size)? != checkpoint.root {
            return Ok(Some(crate::Problem::RootMismatch {
                size: checkpoint.size,
            }));
        }
        Ok(None)
    }

    /// A self-contained proof that event `cid` is in the log `checkpoint` (a signed note over
    /// `tree`) covers: the event block, its payload unless erased, the inclusion proof.
    pub fn prove(&self, cid: &Cid, tree: &Tree, log: &[Cid], checkpoint: &str) -> Result<Bundle> {
        let index = log
            .iter()
            .position(|c| c == cid)
            .ok_or_else(|| Error::BadProof {
                reason: format!("event {cid} is not in this store's log"),
            })? as u64;
        let proof = tree.prove_inclusion(index, tree.size())?;
        let event = self.store().get(cid)?.ok_or(Error::MissingBlock(*cid))?;
        let decoded = crate::Event::decode(&event)?;
        let payload = match decoded.payload() {
            Some(p) => self.store().get(&p)?,
            None => None,
        };
        Ok(Bundle {
            checkpoint: checkpoint.to_string(),
            index,
            proof: proof.iter().map(|h| BASE64_STANDARD.encode(h.0)).collect(),
            event: BASE64_STANDARD.encode(event.bytes()),
            payload: payload.map(|p| BASE64_STANDARD.encode(p.bytes())),
        })
    }
}

/// A proof that one event is in a log, checkable offline with the log's verifier key alone:
/// the signed checkpoint, the event's index and inclusion proof, the event block, and its
/// payload block unless erased. Its JSON form is what `personctl prove` writes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// The signed checkpoint (a C2SP signed note).
    pub checkpoint: String,
    /// The event's leaf index.
    pub index: u64,
    /// The inclusion proof, base64 hashes.
    pub proof: Vec<String>,
    /// The event block's bytes, base64.
    pub event: String,
    /// The payload block's bytes, base64 (`None`: erased, or an event without one).
    pub payload: Option<String>,
}

/// What a checked [`Bundle`] proves.
#[derive(Clone, Debug)]
pub struct Proven {
    /// The checkpoint, signed by the key given.
    pub checkpoint: Checkpoint,
    /// The event, its CID re-derived and its signature verified.
    pub event: crate::Event,
    /// Its leaf index.
    pub index: u64,
    /// Whether the payload came with it (and hashes to the event's payload link).
    pub payload: bool,
}

impl Bundle {
    /// Checks the bundle against the log's verifier key: the checkpoint's signature, the event
    /// block (CID re-derived from its bytes, strict decoding, its author's signature), its
    /// inclusion under the checkpoint's root, and the payload's CID. Any failure is
    /// [`Error::BadProof`] naming it.
    pub fn check(&self, key: &NoteKey) -> Result<Proven> {
        let bad = |reason: String| Error::BadProof { reason };
        let checkpoint = Checkpoint::open(&self.checkpoint, key)
            .map_err(|e| bad(format!("the checkpoint: {e}")))?;
        let bytes = BASE64_STANDARD
            .decode(&self.event)
            .map_err(|_| bad("the event is not base64".into()))?;
        let block = crate::Block::new(bytes);
        let event = crate::Event::decode(&block)
            .map_err(|e| bad(format!("the event block {}: {e}", block.cid())))?;
        if !event.verify_signature(&block)? {
            return Err(bad(format!(
                "event {}: its signature does not verify",
                block.cid()
            )));
        }
        let proof = self
            .proof
            .iter()
            .map(|h| {
                let bytes = BASE64_STANDARD.decode(h).ok()?;
                Some(Hash(bytes.try_into().ok()?))
            })
            .collect::<Option<Vec<Hash>>>()
            .ok_or_else(|| bad("the inclusion proof holds something that is not a hash".into()))?;
        check_inclusion(
            &proof,
            checkpoint.size,
            checkpoint.root,
            self.index,
            leaf_hash(&block.cid()),
        )
        .map_err(|e| bad(format!("event {} under the checkpoint: {e}", block.cid())))?;
        if let Some(payload) = &self.payload {
            let bytes = BASE64_STANDARD
                .decode(payload)
                .map_err(|_| bad("the payload is not base64".into()))?;
            let cid = crate::Block::new(bytes).cid();
            if event.payload() != Some(cid) {
                return Err(bad(format!(
                    "the payload {cid} is not the one event {} links",
                    block.cid()
                )));
            }
        }
        Ok(Proven {
            checkpoint,
            index: self.index,
            payload: self.payload.is_some(),
            event,
        })
    }
}
