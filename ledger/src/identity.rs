//! Identities: chains of key events that outlive their keys (pre-rotation, as in KERI), and the
//! rules that resolve an event's author key to the identity whose key it was at the event's
//! place in the log.
//!
//! An identity is the stream `key/ID`, where `ID` is derived from its inception (so it is
//! self-certifying: only the holder of the first key could have made it). Its events, in the
//! reserved aggregate type [`KEY_AGGREGATE`], hold no personal data:
//!
//! - [`KEY_INCEPTED`] (height 0): `{"key": K, "next": D}`, signed by `K`; `D` is the digest of
//!   the *next* key ([`next_digest`]), committed before that key is ever used;
//!   `ID = identity_id(K, D)`.
//! - [`KEY_ROTATED`]: `{"key": K', "next": D'}`, signed by `K'`, where `next_digest(K')` is the
//!   previous `next`. A thief of the current key alone cannot rotate: the next key was never
//!   shown, only its digest.
//! - [`KEY_REVOKED`]: `{"key": K, "from": P}`, signed by the identity's current key: `K` (one of
//!   its keys, current or former) is compromised from log position `P` on.
//!
//! A key event's *position* is its leaf index in the verifying store's log (`crate::tlog`; for
//! an archive, the order of its blocks). Key `K` is the identity's current key from the
//! position of the event that made it current until the position of the rotation that replaced
//! it; an event that `K` signed at position `p` is the identity's when `K` was current at `p`
//! and not revoked from a position at or before `p`. `verify` reports events by rotated-out or
//! revoked keys as `revoked-key`, and broken key chains as `bad-key-event`.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::ledger::Ledger;
use crate::store::BlockStore;
use crate::{Author, Cid, Draft, Error, Expected, Problem, Result, Signer, StreamId, TrustSet};

/// The aggregate type of identities.
pub const KEY_AGGREGATE: &str = "key";
/// The inception of an identity.
pub const KEY_INCEPTED: &str = "KeyIncepted";
/// A rotation to the pre-committed next key.
pub const KEY_ROTATED: &str = "KeyRotated";
/// A key compromised from a log position on.
pub const KEY_REVOKED: &str = "KeyRevoked";
/// The schema of key event payloads.
pub const KEY_SCHEMA: u64 = 1;

/// The payload of an inception or a rotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Establish {
    key: ByteBuf,
    next: ByteBuf,
}

/// The payload of a revocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Revoke {
    key: ByteBuf,
    from: u64,
}

/// The digest that commits to a next key: `BLAKE3("personctl-next-key-v1" || 0x00 || key)`.
pub fn next_digest(next: &Author) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"personctl-next-key-v1\0");
    h.update(&next.to_bytes());
    *h.finalize().as_bytes()
}

/// The stream of the identity incepted with `key` and next-key digest `next`: `key/ID`, `ID`
/// the base32 (RFC 4648, lowercase, no padding) of the first 20 bytes of
/// `BLAKE3("personctl-identity-v1" || 0x00 || key || next)`.
pub fn identity_id(key: &Author, next: &[u8; 32]) -> StreamId {
    let mut h = blake3::Hasher::new();
    h.update(b"personctl-identity-v1\0");
    h.update(&key.to_bytes());
    h.update(next);
    let digest = h.finalize();
    let id = multibase::encode(multibase::Base::Base32Lower, &digest.as_bytes()[..20]);
    StreamId::new(KEY_AGGREGATE, &id[1..]).expect("base32 is a valid id")
}

/// One key's time as an identity's key, in log positions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPeriod {
    /// The key.
    pub key: Author,
    /// The position of the key event that made it current.
    pub from: u64,
    /// The position of the rotation that replaced it (`None`: still current).
    pub until: Option<u64>,
    /// The position from which it is revoked (`None`: not revoked).
    pub revoked_from: Option<u64>,
}

/// An identity as its key chain says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Its stream, `key/ID`.
    pub id: StreamId,
    /// Its keys, oldest first; the last one is current.
    pub keys: Vec<KeyPeriod>,
    /// The digest its next key must have.
    pub next: [u8; 32],
    /// The newest key event.
    pub head: Cid,
    /// How many key events.
    pub events: u64,
}

impl Identity {
    /// The current key.
    pub fn current(&self) -> &Author {
        &self.keys.last().expect("an identity has a key").key
    }
}

/// What the identities say of a key at a position (borrowing the identity: judged once per
/// event read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyVerdict<'a> {
    /// The key belongs to no identity: it is judged as a raw key.
    NoIdentity,
    /// It was the identity's current key there.
    Current(&'a StreamId),
    /// It had not yet become the identity's key there (judged as a raw key).
    NotYet(&'a StreamId),
    /// It had been rotated out at `at`.
    Rotated {
        /// The identity.
        identity: &'a StreamId,
        /// The rotation's position.
        at: u64,
    },
    /// It is revoked from `from`.
    Revoked {
        /// The identity.
        identity: &'a StreamId,
        /// The position it is revoked from.
        from: u64,
    },
}

/// One event as [`Ledger::judged`] sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Judged {
    /// The event.
    pub cid: Cid,
    /// The identity whose current key signed it (`None`: a raw key, or a key no longer
    /// current there).
    pub identity: Option<StreamId>,
    /// What `verify` reports of its author or grant (`None`: it stands).
    pub problem: Option<Problem>,
}

/// A key chain that breaks the rules: the key event and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadKeyEvent {
    /// The key event.
    pub cid: Cid,
    /// Its stream.
    pub stream: StreamId,
    /// Its height.
    pub height: u64,
    /// What is wrong.
    pub reason: String,
}

/// Every identity of a store, resolved, and the key chains that broke the rules.
#[derive(Clone, Debug, Default)]
pub struct Identities {
    identities: BTreeMap<StreamId, Identity>,
    by_key: rustc_hash::FxHashMap<Author, Vec<(StreamId, KeyPeriod)>>,
    /// Key events that break the rules (their chain is resolved up to the one before).
    pub bad: Vec<BadKeyEvent>,
}

fn author_of(bytes: &[u8]) -> std::result::Result<Author, String> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "a key is 32 bytes".to_string())?;
    Author::from_bytes(&bytes).map_err(|_| "not an Ed25519 public key".to_string())
}

impl Identities {
    fn resolve<S: BlockStore + ?Sized>(
        &mut self,
        store: &S,
        stream: &StreamId,
        chain: &[Cid],
        position: &dyn Fn(&Cid) -> Option<u64>,
    ) -> Result<()> {
        let mut identity: Option<Identity> = None;
        for (height, cid) in chain.iter().enumerate() {
            let bad = |reason: String| BadKeyEvent {
                cid: *cid,
                stream: stream.clone(),
                height: height as u64,
                reason,
            };
            let Some(block) = store.get(cid)? else {
                self.bad.push(bad("the key event is missing".into()));
                break;
            };
            let event = match crate::Event::decode(&block) {
                Ok(e) => e,
                Err(e) => {
                    self.bad.push(bad(e.to_string()));
                    break;
                }
            };
            let at = position(cid).unwrap_or(u64::MAX);
            match step(store, identity.as_ref(), stream, &event, at) {
                Ok(next) => identity = Some(next),
                Err(reason) => {
                    self.bad.push(bad(reason));
                    break;
                }
            }
        }
        if let Some(identity) = identity {
            for period in &identity.keys {
                self.by_key
                    .entry(period.key)
                    .or_default()
                    .push((identity.id.clone(), period.clone()));
            }
            self.identities.insert(identity.id.clone(), identity);
        }
        Ok(())
    }

    /// Resolves every `key/*` stream of `store` with positions in the store's own log.
    pub fn of_store_in_log<S: BlockStore + ?Sized>(store: &S) -> Result<Identities> {
        let chains = key_chains(store)?;
        let wanted: HashSet<Cid> = chains.iter().flat_map(|(_, c)| c.iter().copied()).collect();
        let positions = positions_in_log(store, &wanted)?;
        Identities::resolve_all(store, chains, &|c| positions.get(c).copied())
    }

    /// Resolves every `key/*` stream of `store` with positions from `position` (another log's
    /// order, such as JetStream's shared log; `None`: after every event).
    pub fn of_store_at<S: BlockStore + ?Sized>(
        store: &S,
        position: &dyn Fn(&Cid) -> Option<u64>,
    ) -> Result<Identities> {
        Identities::resolve_all(store, key_chains(store)?, position)
    }

    fn resolve_all<S: BlockStore + ?Sized>(
        store: &S,
        chains: Vec<(StreamId, Vec<Cid>)>,
        position: &dyn Fn(&Cid) -> Option<u64>,
    ) -> Result<Identities> {
        let mut out = Identities::default();
        for (stream, chain) in chains {
            out.resolve(store, &stream, &chain, position)?;
        }
        Ok(out)
    }

    /// The identity `id`, if its chain holds one.
    pub fn get(&self, id: &StreamId) -> Option<&Identity> {
        self.identities.get(id)
    }

    /// Every identity.
    pub fn iter(&self) -> impl Iterator<Item = &Identity> {
        self.identities.values()
    }

    /// Whether no identity and no broken key chain was found.
    pub fn is_empty(&self) -> bool {
        self.identities.is_empty() && self.bad.is_empty()
    }

    /// Whether `key` is (or was) a key of an identity.
    pub fn knows(&self, key: &Author) -> bool {
        self.by_key.contains_key(key)
    }

    /// What the identities say of an event `key` signed at `position` (`None`: unknown, as for
    /// an event outside the log: judged as after every key event).
    pub fn judge(&self, key: &Author, position: Option<u64>) -> KeyVerdict<'_> {
        let Some(periods) = self.by_key.get(key) else {
            return KeyVerdict::NoIdentity;
        };
        let p = position.unwrap_or(u64::MAX);
        let mut verdict = KeyVerdict::NoIdentity;
        for (identity, period) in periods {
            if let Some(from) = period.revoked_from.filter(|&r| r <= p) {
                return KeyVerdict::Revoked { identity, from };
            }
            if p < period.from {
                verdict = KeyVerdict::NotYet(identity);
                continue;
            }
            match period.until {
                Some(at) if at <= p => verdict = KeyVerdict::Rotated { identity, at },
                _ => return KeyVerdict::Current(identity),
            }
        }
        verdict
    }
}

/// Every `key/*` chain of `store`, genesis first.
fn key_chains<S: BlockStore + ?Sized>(store: &S) -> Result<Vec<(StreamId, Vec<Cid>)>> {
    let mut chains = Vec::new();
    for (stream, _) in store.heads_of(KEY_AGGREGATE)? {
        let chain = chain_of(store, &stream)?;
        chains.push((stream, chain));
    }
    Ok(chains)
}

/// The log positions (`crate::tlog`) of the events of `wanted` that are in the store's log.
pub fn positions_in_log<S: BlockStore + ?Sized>(
    store: &S,
    wanted: &HashSet<Cid>,
) -> Result<HashMap<Cid, u64>> {
    let mut out = HashMap::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    store.with_log(&mut |log| {
        for (i, cid) in log.leaves().iter().enumerate() {
            if wanted.contains(cid) {
                out.insert(*cid, i as u64);
            }
        }
    })?;
    Ok(out)
}

/// The CIDs of a stream's events, walked back from its head along `prev` links, genesis first
/// (as far as the blocks go: a gap leaves a chain that does not start with an inception).
pub(crate) fn chain_of<S: BlockStore + ?Sized>(store: &S, stream: &StreamId) -> Result<Vec<Cid>> {
    let mut out = Vec::new();
    let mut next = store.head(stream)?.map(|h| h.cid);
    while let Some(cid) = next {
        out.push(cid);
        next = match store.get(&cid) {
            Ok(Some(block)) => crate::Event::decode(&block).ok().and_then(|e| e.prev()),
            _ => None,
        };
    }
    out.reverse();
    Ok(out)
}

/// The verdict on an event `author` signed at log `position`, under `trust`: `None` when it
/// speaks for a trusted identity (its key was current there) or a trusted raw key; else the
/// problem. A key rotated out or revoked before `position` is `revoked-key` whatever the trust.
pub fn judge_author(
    identities: &Identities,
    trust: &TrustSet,
    author: &Author,
    position: Option<u64>,
) -> Option<Problem> {
    match identities.judge(author, position) {
        KeyVerdict::Current(id) if trust.trusts_identity(id) => None,
        KeyVerdict::Rotated { identity, at } => Some(Problem::RevokedKey {
            identity: identity.clone(),
            key: *author,
            from: at,
            rotated: true,
        }),
        KeyVerdict::Revoked { identity, from } => Some(Problem::RevokedKey {
            identity: identity.clone(),
            key: *author,
            from,
            rotated: false,
        }),
        _ if trust.contains(author) => None,
        _ => Some(Problem::UntrustedAuthor { author: *author }),
    }
}

/// The key and next-key digest of an inception's or a rotation's payload.
fn established(block: &crate::Block) -> std::result::Result<(Author, [u8; 32]), String> {
    let e: Establish = crate::Payload::decode_as(block).map_err(|e| e.to_string())?;
    let key = author_of(&e.key)?;
    let next = e
        .next
        .as_slice()
        .try_into()
        .map_err(|_| "a next-key digest is 32 bytes".to_string())?;
    Ok((key, next))
}

/// Applies one key event to the identity so far; `Err` says which rule it breaks.
fn step<S: BlockStore + ?Sized>(
    store: &S,
    so_far: Option<&Identity>,
    stream: &StreamId,
    event: &crate::Event,
    at: u64,
) -> std::result::Result<Identity, String> {
    if event.schema() != KEY_SCHEMA {
        return Err(format!(
            "schema {} of a key event (expected {KEY_SCHEMA})",
            event.schema()
        ));
    }
    let payload = event
        .payload()
        .ok_or_else(|| "a key event without a payload".to_string())?;
    let block = store
        .get(&payload)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!("its payload {payload} is missing (key payloads are never erased)")
        })?;
    let author = *event.author();
    match (event.event_type(), so_far) {
        (KEY_INCEPTED, None) => {
            let (key, next) = established(&block)?;
            if author != key {
                return Err("an inception is signed by the key it names".into());
            }
            if identity_id(&key, &next) != *stream {
                return Err(format!(
                    "the inception derives {}, not this stream",
                    identity_id(&key, &next)
                ));
            }
            Ok(Identity {
                id: stream.clone(),
                keys: vec![KeyPeriod {
                    key,
                    from: at,
                    until: None,
                    revoked_from: None,
                }],
                next,
                head: event.cid(),
                events: 1,
            })
        }
        (KEY_ROTATED, Some(before)) => {
            let (key, next) = established(&block)?;
            if author != key {
                return Err("a rotation is signed by the key it makes current".into());
            }
            if next_digest(&key) != before.next {
                return Err(
                    "the new key is not the one the previous key event committed to".into(),
                );
            }
            let mut after = before.clone();
            if let Some(last) = after.keys.last_mut() {
                last.until = Some(at);
            }
            after.keys.push(KeyPeriod {
                key,
                from: at,
                until: None,
                revoked_from: None,
            });
            after.next = next;
            after.head = event.cid();
            after.events += 1;
            Ok(after)
        }
        (KEY_REVOKED, Some(before)) => {
            let r: Revoke = crate::Payload::decode_as(&block).map_err(|e| e.to_string())?;
            let key = author_of(&r.key)?;
            if author != *before.current() {
                return Err("a revocation is signed by the identity's current key".into());
            }
            let mut after = before.clone();
            let Some(period) = after.keys.iter_mut().rev().find(|p| p.key == key) else {
                return Err(format!("{key} is not a key of this identity"));
            };
            let from = period.revoked_from.map_or(r.from, |f| f.min(r.from));
            period.revoked_from = Some(from);
            after.head = event.cid();
            after.events += 1;
            Ok(after)
        }
        (KEY_INCEPTED, Some(_)) => Err("a second inception".into()),
        (t, None) => Err(format!("a key chain starts with {KEY_INCEPTED}, not {t}")),
        (t, Some(_)) => Err(format!("{t} is not a key event")),
    }
}

impl<S: BlockStore> Ledger<S> {
    /// Every event of `stream`, newest first, with the identity that signed it and the
    /// problem `verify` would report with its author or grant under `trust` (the judgement of
    /// [`crate::policy::Rules::judge`], for a reader: `replay` marks, `log` shows).
    pub fn judged(&self, stream: &StreamId, trust: &TrustSet) -> Result<Vec<Judged>> {
        let rules = crate::policy::Rules::of_store(self.store(), trust)?;
        let mut events = Vec::new();
        for event in self.walk_back(stream)? {
            let event = event?;
            events.push((event.cid(), *event.author(), event.event_type().to_string()));
        }
        let wanted: HashSet<Cid> = events
            .iter()
            .filter(|(_, a, _)| rules.needs_position(a))
            .map(|(c, _, _)| *c)
            .collect();
        let positions = positions_in_log(self.store(), &wanted)?;
        Ok(events
            .into_iter()
            .map(|(cid, author, event_type)| {
                let at = positions.get(&cid).copied();
                let identity = rules.identity_of(&author, at);
                let problem = rules.judge(&author, stream, &event_type, at);
                Judged {
                    cid,
                    identity,
                    problem,
                }
            })
            .collect())
    }

    /// Incepts an identity whose current key is `current` and whose next key will be `next`
    /// (only its digest is written); returns its stream.
    pub fn incept_identity(&self, current: &Signer, next: &Author) -> Result<StreamId> {
        let digest = next_digest(next);
        let id = identity_id(&current.author(), &digest);
        let draft = Draft::new(id.clone(), KEY_INCEPTED, KEY_SCHEMA)
            .with_value(&Establish {
                key: ByteBuf::from(current.author().to_bytes().to_vec()),
                next: ByteBuf::from(digest.to_vec()),
            })?
            .expecting(Expected::Empty);
        self.append(current, draft)?;
        Ok(id)
    }

    /// The identity `id` as its chain says, with positions in this store's log.
    pub fn identity(&self, id: &StreamId) -> Result<Identity> {
        let mut identities = Identities::default();
        let chain = self.chain(id)?;
        let positions = self.positions(&chain)?;
        identities.resolve(self.store(), id, &chain, &|c| positions.get(c).copied())?;
        if let Some(bad) = identities.bad.first() {
            return Err(Error::InvalidEvent(format!(
                "{} at height {}: {}",
                bad.stream, bad.height, bad.reason
            )));
        }
        identities
            .identities
            .remove(id)
            .ok_or_else(|| Error::InvalidEvent(format!("{id} is not an identity")))
    }

    /// Log positions of `cids`.
    fn positions(&self, cids: &[Cid]) -> Result<HashMap<Cid, u64>> {
        positions_in_log(self.store(), &cids.iter().copied().collect())
    }

    /// Rotates identity `id` to `new_current` (the key its last key event committed to), which
    /// commits to `next`.
    pub fn rotate_identity(
        &self,
        id: &StreamId,
        new_current: &Signer,
        next: &Author,
    ) -> Result<Identity> {
        let before = self.identity(id)?;
        if next_digest(&new_current.author()) != before.next {
            return Err(Error::InvalidKey {
                input: new_current.author().to_string(),
                reason: format!("it is not the next key {id} committed to"),
            });
        }
        let draft = Draft::new(id.clone(), KEY_ROTATED, KEY_SCHEMA)
            .with_value(&Establish {
                key: ByteBuf::from(new_current.author().to_bytes().to_vec()),
                next: ByteBuf::from(next_digest(next).to_vec()),
            })?
            .expecting(Expected::Height(before.events - 1));
        self.append(new_current, draft)?;
        self.identity(id)
    }

    /// Revokes `key` (a key of identity `id`) from log position `from` on, signed by the
    /// identity's current key `current`.
    pub fn revoke_key(
        &self,
        id: &StreamId,
        current: &Signer,
        key: &Author,
        from: u64,
    ) -> Result<Identity> {
        let before = self.identity(id)?;
        if current.author() != *before.current() {
            return Err(Error::InvalidKey {
                input: current.author().to_string(),
                reason: format!("it is not the current key of {id}"),
            });
        }
        if !before.keys.iter().any(|p| p.key == *key) {
            return Err(Error::InvalidKey {
                input: key.to_string(),
                reason: format!("it is not a key of {id}"),
            });
        }
        let draft = Draft::new(id.clone(), KEY_REVOKED, KEY_SCHEMA)
            .with_value(&Revoke {
                key: ByteBuf::from(key.to_bytes().to_vec()),
                from,
            })?
            .expecting(Expected::Height(before.events - 1));
        self.append(current, draft)?;
        self.identity(id)
    }
}

/// An identity's keys kept in a directory (mode 0700): `current.pem` and `next.pem` (PKCS#8
/// PEM, mode 0600), and `retired-N.pem` for the key that the rotation to key event N replaced.
///
/// A rotation writes the new next key to `next.pem.new` first, appends the rotation, then
/// renames; [`Ledger::settle_identity_keys`] finishes such a rotation that a crash interrupted
/// after its append, or undoes one that never committed.
#[derive(Clone, Debug)]
pub struct IdentityKeys {
    dir: std::path::PathBuf,
}

/// The file of an identity's current key in its key directory ([`IdentityKeys`]).
pub const CURRENT_KEY_FILE: &str = "current.pem";
const CURRENT: &str = CURRENT_KEY_FILE;
const NEXT: &str = "next.pem";
const PENDING: &str = "next.pem.new";

impl IdentityKeys {
    /// The keys kept in `dir`.
    pub fn at(dir: impl Into<std::path::PathBuf>) -> IdentityKeys {
        IdentityKeys { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The current key (settle an interrupted rotation first: [`Ledger::identity_signer`]).
    pub fn current(&self) -> Result<Signer> {
        self.read(CURRENT)
    }

    fn io(&self, what: String) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Io {
            context: what,
            source,
        }
    }

    fn read(&self, name: &str) -> Result<Signer> {
        let path = self.dir.join(name);
        let pem = std::fs::read_to_string(&path)
            .map_err(self.io(format!("reading the key {}", path.display())))?;
        Signer::from_pkcs8_pem(&pem)
    }

    fn write(&self, name: &str, signer: &Signer) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(self.io(format!("creating {}", self.dir.display())))?;
        let tmp = self.dir.join(format!("{name}.tmp"));
        crate::store::write_atomically(
            &self.dir.join(name),
            &tmp,
            signer.to_pkcs8_pem()?.as_bytes(),
        )
    }

    /// After a committed rotation to key event `events - 1`: the current key to
    /// `retired-(events - 1).pem`, the next to current, the new next in place.
    fn finish_rotation(&self, events: u64) -> Result<()> {
        for (from, to) in [
            (CURRENT, format!("retired-{}.pem", events - 1)),
            (NEXT, CURRENT.to_string()),
            (PENDING, NEXT.to_string()),
        ] {
            std::fs::rename(self.dir.join(from), self.dir.join(&to))
                .map_err(self.io(format!("renaming {from} to {to} in {}", self.dir.display())))?;
        }
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(self.io(format!("syncing {}", self.dir.display())))
    }
}

impl<S: BlockStore> Ledger<S> {
    /// Makes a new identity: a current and a next key, kept in `root/ID` (written before the
    /// inception, since an identity whose keys were lost could never rotate), then its
    /// inception.
    pub fn create_identity_keys(&self, root: &std::path::Path) -> Result<(StreamId, IdentityKeys)> {
        let (current, next) = (Signer::generate()?, Signer::generate()?);
        let id = identity_id(&current.author(), &next_digest(&next.author()));
        let keys = IdentityKeys::at(root.join(id.id()));
        keys.write(CURRENT, &current)?;
        keys.write(NEXT, &next)?;
        self.incept_identity(&current, &next.author())?;
        Ok((id, keys))
    }

    /// Finishes a rotation of identity `id` that a crash interrupted after it was committed,
    /// or undoes one that was not (see [`IdentityKeys`]).
    pub fn settle_identity_keys(&self, id: &StreamId, keys: &IdentityKeys) -> Result<()> {
        let pending = keys.dir.join(PENDING);
        if !pending.exists() {
            return Ok(());
        }
        let identity = self.identity(id)?;
        if identity.current() == &keys.read(NEXT)?.author() {
            keys.finish_rotation(identity.events)
        } else {
            std::fs::remove_file(&pending)
                .map_err(keys.io(format!("removing {}", pending.display())))
        }
    }

    /// The key that signs for identity `id` now: its current key in `keys`, after a rotation a
    /// crash interrupted is settled.
    pub fn identity_signer(&self, id: &StreamId, keys: &IdentityKeys) -> Result<Signer> {
        self.settle_identity_keys(id, keys)?;
        keys.current()
    }

    /// Rotates identity `id` to the next key kept in `keys`, with a new next key.
    pub fn rotate_identity_keys(&self, id: &StreamId, keys: &IdentityKeys) -> Result<Identity> {
        self.settle_identity_keys(id, keys)?;
        let next = keys.read(NEXT)?;
        let after = Signer::generate()?;
        keys.write(PENDING, &after)?;
        let identity = self.rotate_identity(id, &next, &after.author())?;
        keys.finish_rotation(identity.events)?;
        Ok(identity)
    }
}
