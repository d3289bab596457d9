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
//! - `log.rs`: [`Log`], a store's events in the order stored and their tree, which the store
//!   keeps with each commit.
//! - `proof.rs`: the log of a [`crate::Ledger`]: signed checkpoints, [`Bundle`]s (inclusion
//!   proofs that check offline), consistency proofs, checks against a checkpoint.
//! - `witness.rs`: witnesses (C2SP `tlog-witness`, `tlog-cosignature`): cosignatures, the
//!   add-checkpoint exchange, [`Witness`], checkpoints opened with a quorum.

use base64::prelude::*;
use sha512::{Digest, Sha256};
use tlog_tiles::tlog::{self, HashReader};

mod log;
mod proof;
mod witness;

pub use self::log::Log;
#[cfg(feature = "jetstream")]
pub(crate) use self::proof::check_in;
pub(crate) use self::proof::check_kept;
pub use self::proof::{
    AutoCheckpoint, Bundle, LogOf, Post, Proven, SharedLog, SignedCheckpoint, Witnessed,
};
pub use self::witness::{
    cosign, cosignatures, open_witnessed, with_cosignatures, AddCheckpoint, Answer, Cosignature,
    Witness, WitnessKey,
};
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

    /// Keeps the first `size` leaves only (no-op when it has no more).
    pub fn truncate(&mut self, size: u64) {
        if size < self.size {
            self.stored.truncate(tlog::stored_hash_count(size) as usize);
            self.size = size;
        }
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
/// The signature type byte of witness keys (C2SP `tlog-cosignature`, `cosignature/v1`).
pub(crate) const COSIGNATURE_V1: u8 = 0x04;

/// A signed note's key name is valid: not empty, no `+`, no whitespace.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c == '+' || c.is_whitespace())
}

/// The key ID of `author` under `name`: `SHA-256(name || 0x0A || 0x01 || public key)[..4]`.
pub fn key_id(name: &str, author: &Author) -> [u8; 4] {
    typed_key_id(name, ED25519, author)
}

/// The key ID of a key of signature type `kind`.
pub(crate) fn typed_key_id(name: &str, kind: u8, author: &Author) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', kind]);
    h.update(author.to_bytes());
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// Checks a key name.
pub(crate) fn checked_name(name: String) -> Result<String> {
    if !valid_name(&name) {
        return Err(Error::InvalidKey {
            input: name,
            reason: "a note key's name must be non-empty, without '+' or spaces".into(),
        });
    }
    Ok(name)
}

/// The verifier key text of a key of signature type `kind`: `NAME+HEX(ID)+BASE64(kind || KEY)`.
pub(crate) fn vkey_text(name: &str, kind: u8, author: &Author) -> String {
    let mut key = vec![kind];
    key.extend_from_slice(&author.to_bytes());
    format!(
        "{name}+{}+{}",
        hex_lower(&typed_key_id(name, kind, author)),
        BASE64_STANDARD.encode(key)
    )
}

/// Parses a verifier key of signature type `kind`; its ID must be the one its name and key
/// derive.
pub(crate) fn parse_vkey(text: &str, kind: u8) -> Result<(String, Author)> {
    let bad = |reason: String| Error::InvalidKey {
        input: text.to_string(),
        reason,
    };
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("expected NAME+ID+KEY".into()));
    };
    if !valid_name(name) {
        return Err(bad("invalid key name".into()));
    }
    let key = BASE64_STANDARD
        .decode(key)
        .map_err(|_| bad("the key is not base64".into()))?;
    let Some((&found, public)) = key.split_first() else {
        return Err(bad("the key is empty".into()));
    };
    if found != kind {
        let what = if kind == ED25519 {
            "a log's Ed25519 key"
        } else {
            "a witness's cosignature/v1 key"
        };
        return Err(bad(format!(
            "not {what} (type 0x{kind:02x}; this one is 0x{found:02x})"
        )));
    }
    let public: [u8; 32] = public
        .try_into()
        .map_err(|_| bad("an Ed25519 key is 32 bytes".into()))?;
    let author =
        Author::from_bytes(&public).map_err(|_| bad("not an Ed25519 public key".into()))?;
    if id.len() != 8 || hex_lower(&typed_key_id(name, kind, &author)) != id.to_ascii_lowercase() {
        return Err(bad("the key ID does not match the name and key".into()));
    }
    Ok((name.to_string(), author))
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
        Ok(NoteKey {
            name: checked_name(name.into())?,
            author,
        })
    }

    /// The verifier key text, `NAME+HEX(ID)+BASE64(0x01 || PUBLIC KEY)`.
    pub fn to_vkey(&self) -> String {
        vkey_text(&self.name, ED25519, &self.author)
    }

    /// Parses a verifier key; its ID must be the one its name and key derive.
    pub fn from_vkey(text: &str) -> Result<NoteKey> {
        let (name, author) = parse_vkey(text, ED25519)?;
        Ok(NoteKey { name, author })
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The signature line prefix: an em dash and a space.
pub(crate) const DASH: &str = "\u{2014} ";

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
