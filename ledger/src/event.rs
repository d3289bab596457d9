//! [`Event`] blocks: the signed, content-addressed unit of the ledger, and how they are built.
//!
//! The exact wire format is specified in `docs/FORMAT.md`; this module is its implementation.
//! Summary: an event block is a canonical DAG-CBOR map of 14 entries. The signature (`sig`)
//! covers [`SIGNING_PREFIX`] followed by the canonical encoding of the same map without `sig`
//! (13 entries). Because `sig` is the shortest key it is always the first entry, so the signed
//! bytes can be cut out of a block (and spliced into one) without re-encoding.

use ipld_core::ipld::Ipld;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_bytes::ByteArray;
use uuid::Uuid;

use crate::codec;
use crate::{Author, Block, Cid, Error, Result, Signature, Signer, StreamId};

/// The ledger format version written into every event (`format`).
pub const FORMAT_VERSION: u64 = 1;

/// Domain separation: prepended to the unsigned event bytes before signing.
pub const SIGNING_PREFIX: &[u8] = b"personctl-ledger-event-v1\0";

/// First byte of an event block: a CBOR map of 14 entries.
const EVENT_MAP_HEADER: u8 = 0xae;
/// First byte of the signed bytes: a CBOR map of 13 entries.
const UNSIGNED_MAP_HEADER: u8 = 0xad;
/// The `sig` entry: text key "sig", then a 64-byte byte string header.
const SIG_ENTRY_PREFIX: [u8; 6] = [0x63, b's', b'i', b'g', 0x58, 0x40];
const SIG_ENTRY_LEN: usize = SIG_ENTRY_PREFIX.len() + 64;

/// The signed bytes of an event: every field but `sig`. Field order here is irrelevant: the
/// encoder sorts keys canonically. Used for encoding only (a struct with a skipped optional
/// field would write a wrong map length, so the two forms are separate types).
#[derive(Serialize)]
struct UnsignedWire<'a> {
    format: u64,
    stream_type: &'a str,
    stream_id: &'a str,
    height: u64,
    prev: Option<Cid>,
    causes: &'a [Cid],
    #[serde(rename = "type")]
    event_type: &'a str,
    schema: u64,
    payload: Option<Cid>,
    time: u64,
    correlation: Uuid,
    causation: Uuid,
    author: ByteArray<32>,
}

/// The wire form of an event block: [`UnsignedWire`] plus `sig`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventWire {
    format: u64,
    stream_type: String,
    stream_id: String,
    height: u64,
    prev: Option<Cid>,
    causes: Vec<Cid>,
    #[serde(rename = "type")]
    event_type: String,
    schema: u64,
    payload: Option<Cid>,
    time: u64,
    correlation: Uuid,
    causation: Uuid,
    author: ByteArray<32>,
    sig: ByteArray<64>,
}

/// What kind of block some bytes are, judged by the CBOR map header alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// A map of 14 entries: an event.
    Event,
    /// A map of 2 entries: a payload.
    Payload,
    /// Anything else.
    Unknown,
}

impl BlockKind {
    /// Classifies block bytes by their first byte. Decoding still decides validity.
    pub fn of(bytes: &[u8]) -> BlockKind {
        match bytes.first() {
            Some(&EVENT_MAP_HEADER) => BlockKind::Event,
            Some(&0xa2) => BlockKind::Payload,
            _ => BlockKind::Unknown,
        }
    }
}

/// The contents of an event before it is signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsignedEvent {
    /// The stream the event belongs to.
    pub stream: StreamId,
    /// Position in the stream; genesis is 0.
    pub height: u64,
    /// The previous event of the same stream (`None` exactly for genesis).
    pub prev: Option<Cid>,
    /// Causal parents in other streams.
    pub causes: Vec<Cid>,
    /// Event type name, past tense (`PersonRegistered`).
    pub event_type: String,
    /// Schema version of this event type's payload.
    pub schema: u64,
    /// The payload block, if any.
    pub payload: Option<Cid>,
    /// Microseconds since the Unix epoch (UTC).
    pub time_us: u64,
    /// Correlation id: shared by every event of one business process.
    pub correlation: Uuid,
    /// Causation id: the command or message that caused this event.
    pub causation: Uuid,
}

/// A decoded event block. Holding an `Event` means its bytes were canonical and had the right
/// shape; it says nothing about the signature (see [`Event::verify_signature`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    cid: Cid,
    body: UnsignedEvent,
    author: Author,
    signature: Signature,
}

impl UnsignedEvent {
    fn wire<'a>(&'a self, author: &Author) -> UnsignedWire<'a> {
        UnsignedWire {
            format: FORMAT_VERSION,
            stream_type: self.stream.aggregate(),
            stream_id: self.stream.id(),
            height: self.height,
            prev: self.prev,
            causes: &self.causes,
            event_type: &self.event_type,
            schema: self.schema,
            payload: self.payload,
            time: self.time_us,
            correlation: self.correlation,
            causation: self.causation,
            author: ByteArray::new(author.to_bytes()),
        }
    }

    /// Checks the rules that are not expressed by types.
    fn check(&self) -> Result<()> {
        if (self.height == 0) != self.prev.is_none() {
            return Err(Error::InvalidEvent(format!(
                "height {} with prev {:?}: exactly the genesis event (height 0) has no prev",
                self.height, self.prev
            )));
        }
        check_event_type(&self.event_type)
    }

    /// The exact bytes an `author`'s signature covers: [`SIGNING_PREFIX`], then the canonical
    /// encoding of the event without `sig`.
    pub fn signing_message(&self, author: &Author) -> Result<Vec<u8>> {
        self.check()?;
        let unsigned = codec::encode(&self.wire(author))?;
        let mut message = Vec::with_capacity(SIGNING_PREFIX.len() + unsigned.len());
        message.extend_from_slice(SIGNING_PREFIX);
        message.extend_from_slice(&unsigned);
        Ok(message)
    }

    /// Signs the event and encodes it as a block.
    pub fn sign(self, signer: &Signer) -> Result<(Event, Block)> {
        let author = signer.author();
        let message = self.signing_message(&author)?;
        let signature = signer.sign(&message);
        let bytes = splice_signature(&message[SIGNING_PREFIX.len()..], &signature)?;
        crate::check_block_size("the event block", bytes.len())?;
        let block = Block::new(bytes);
        Ok((
            Event {
                cid: block.cid(),
                body: self,
                author,
                signature,
            },
            block,
        ))
    }
}

/// Event type names: 1 to 128 characters of `[A-Za-z0-9_.-]`, starting with a letter.
fn check_event_type(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidEvent(format!(
            "event type {name:?} must be 1 to 128 characters of A-Z a-z 0-9 _ . -, starting with a letter"
        )))
    }
}

/// Builds the block bytes from the unsigned bytes: the map header goes from 13 to 14 entries
/// and the `sig` entry is inserted first.
fn splice_signature(unsigned: &[u8], signature: &Signature) -> Result<Vec<u8>> {
    if unsigned.first() != Some(&UNSIGNED_MAP_HEADER) {
        return Err(Error::codec(
            "unsigned event",
            "expected a map of 13 entries",
        ));
    }
    let mut bytes = Vec::with_capacity(unsigned.len() + SIG_ENTRY_LEN);
    bytes.push(EVENT_MAP_HEADER);
    bytes.extend_from_slice(&SIG_ENTRY_PREFIX);
    bytes.extend_from_slice(&signature.0);
    bytes.extend_from_slice(&unsigned[1..]);
    Ok(bytes)
}

/// The exact bytes the signature of an event block covers: [`SIGNING_PREFIX`], then the block
/// with its `sig` entry removed and its map header set to 13 entries.
///
/// Only meaningful for a block that [`Event::decode`] accepted.
pub fn signing_message(block: &[u8]) -> Result<Vec<u8>> {
    let ok = block.len() > 1 + SIG_ENTRY_LEN
        && block[0] == EVENT_MAP_HEADER
        && block[1..1 + SIG_ENTRY_PREFIX.len()] == SIG_ENTRY_PREFIX;
    if !ok {
        return Err(Error::codec(
            "event block",
            "does not start with a 14-entry map and its sig entry",
        ));
    }
    let rest = &block[1 + SIG_ENTRY_LEN..];
    let mut message = Vec::with_capacity(SIGNING_PREFIX.len() + 1 + rest.len());
    message.extend_from_slice(SIGNING_PREFIX);
    message.push(UNSIGNED_MAP_HEADER);
    message.extend_from_slice(rest);
    Ok(message)
}

impl Event {
    /// Decodes an event block strictly (canonical DAG-CBOR, exactly the event fields, a
    /// supported format version, valid stream and type names, a 64-byte signature).
    pub fn decode(block: &Block) -> Result<Event> {
        let cid = block.cid();
        let wire: EventWire = codec::decode(&cid, block.bytes())?;
        if wire.format != FORMAT_VERSION {
            return Err(Error::codec(
                cid.to_string(),
                format!("unsupported ledger format version {}", wire.format),
            ));
        }
        let stream = StreamId::new(wire.stream_type, wire.stream_id)
            .map_err(|e| Error::codec(cid.to_string(), e))?;
        let author =
            Author::from_bytes(&wire.author).map_err(|e| Error::codec(cid.to_string(), e))?;
        let body = UnsignedEvent {
            stream,
            height: wire.height,
            prev: wire.prev,
            causes: wire.causes,
            event_type: wire.event_type,
            schema: wire.schema,
            payload: wire.payload,
            time_us: wire.time,
            correlation: wire.correlation,
            causation: wire.causation,
        };
        body.check().map_err(|e| Error::codec(cid.to_string(), e))?;
        Ok(Event {
            cid,
            body,
            author,
            signature: Signature(wire.sig.into_array()),
        })
    }

    /// Takes the event apart: its CID, body, author and signature.
    pub fn into_parts(self) -> (Cid, UnsignedEvent, Author, Signature) {
        (self.cid, self.body, self.author, self.signature)
    }

    /// Checks the signature strictly against the block the event was decoded from.
    pub fn verify_signature(&self, block: &Block) -> Result<bool> {
        debug_assert_eq!(block.cid(), self.cid);
        Ok(self
            .author
            .verify(&signing_message(block.bytes())?, &self.signature))
    }

    /// The event block's CID.
    pub fn cid(&self) -> Cid {
        self.cid
    }
    /// Everything but the author and signature.
    pub fn body(&self) -> &UnsignedEvent {
        &self.body
    }
    /// The stream.
    pub fn stream(&self) -> &StreamId {
        &self.body.stream
    }
    /// The height in the stream.
    pub fn height(&self) -> u64 {
        self.body.height
    }
    /// The parent in the same stream.
    pub fn prev(&self) -> Option<Cid> {
        self.body.prev
    }
    /// Causal parents in other streams.
    pub fn causes(&self) -> &[Cid] {
        &self.body.causes
    }
    /// The event type name.
    pub fn event_type(&self) -> &str {
        &self.body.event_type
    }
    /// The schema version of the event type.
    pub fn schema(&self) -> u64 {
        self.body.schema
    }
    /// The payload block, if any.
    pub fn payload(&self) -> Option<Cid> {
        self.body.payload
    }
    /// Microseconds since the Unix epoch.
    pub fn time_us(&self) -> u64 {
        self.body.time_us
    }
    /// The signer.
    pub fn author(&self) -> &Author {
        &self.author
    }
    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }
}

/// The wire form of a payload block.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PayloadWire {
    data: Ipld,
    #[serde(with = "serde_bytes")]
    salt: Vec<u8>,
}

/// Minimum salt length of a payload block, in bytes.
pub const MIN_SALT_LEN: usize = 16;

/// A payload block: opaque IPLD data and a random salt, so that the payload's CID cannot be used
/// to confirm a guessed value.
#[derive(Clone, Debug, PartialEq)]
pub struct Payload {
    data: Ipld,
    salt: Vec<u8>,
}

impl Payload {
    /// A payload with a fresh 16-byte salt from a cryptographically secure generator seeded
    /// by the operating system (`rand`'s thread-local ChaCha generator, reseeded periodically).
    pub fn new(data: Ipld) -> Result<Payload> {
        use rand::Rng;
        let mut salt = vec![0u8; MIN_SALT_LEN];
        rand::rng().fill_bytes(&mut salt);
        Ok(Payload { data, salt })
    }

    /// A payload with a given salt (at least [`MIN_SALT_LEN`] bytes). For fixtures and tests.
    pub fn with_salt(data: Ipld, salt: Vec<u8>) -> Result<Payload> {
        if salt.len() < MIN_SALT_LEN {
            return Err(Error::InvalidEvent(format!(
                "payload salt has {} bytes, at least {MIN_SALT_LEN} are required",
                salt.len()
            )));
        }
        Ok(Payload { data, salt })
    }

    /// The data.
    pub fn data(&self) -> &Ipld {
        &self.data
    }

    /// The salt.
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    /// Encodes the payload as a block.
    pub fn to_block(&self) -> Result<Block> {
        let wire = PayloadWire {
            data: self.data.clone(),
            salt: self.salt.clone(),
        };
        let bytes = codec::encode(&wire)?;
        crate::check_block_size("the payload block", bytes.len())?;
        Ok(Block::new(bytes))
    }

    /// Decodes a payload block strictly, straight into the data type `T` (no `Ipld` tree in
    /// between). The block must be exactly the canonical encoding of `{"data": T, "salt": ...}`:
    /// re-encoding the decoded value must give the same bytes.
    pub fn decode_as<T: Serialize + DeserializeOwned>(block: &Block) -> Result<T> {
        #[derive(Serialize, Deserialize)]
        #[serde(deny_unknown_fields, bound = "T: Serialize + DeserializeOwned")]
        struct Typed<T> {
            data: T,
            #[serde(with = "serde_bytes")]
            salt: Vec<u8>,
        }
        let wire: Typed<T> = codec::decode(&block.cid(), block.bytes())?;
        if wire.salt.len() < MIN_SALT_LEN {
            return Err(Error::codec(
                block.cid().to_string(),
                format!(
                    "payload salt has {} bytes, at least {MIN_SALT_LEN} are required",
                    wire.salt.len()
                ),
            ));
        }
        Ok(wire.data)
    }

    /// Decodes a payload block strictly.
    pub fn decode(block: &Block) -> Result<Payload> {
        let wire: PayloadWire = codec::decode(&block.cid(), block.bytes())?;
        Payload::with_salt(wire.data, wire.salt)
            .map_err(|e| Error::codec(block.cid().to_string(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn sample(height: u64, prev: Option<Cid>) -> UnsignedEvent {
        UnsignedEvent {
            stream: "person/p1".parse().unwrap(),
            height,
            prev,
            causes: vec![Cid::of(b"x")],
            event_type: "Registered".into(),
            schema: 1,
            payload: None,
            time_us: 1_700_000_000_000_000,
            correlation: Uuid::from_u128(1),
            causation: Uuid::from_u128(2),
        }
    }

    #[test]
    fn splice_equals_full_encoding() {
        let signer = Signer::from_seed([3; 32]);
        let (event, block) = sample(0, None).sign(&signer).unwrap();
        let w = event.body.wire(&event.author);
        let full = codec::encode(&EventWire {
            format: w.format,
            stream_type: w.stream_type.into(),
            stream_id: w.stream_id.into(),
            height: w.height,
            prev: w.prev,
            causes: w.causes.to_vec(),
            event_type: w.event_type.into(),
            schema: w.schema,
            payload: w.payload,
            time: w.time,
            correlation: w.correlation,
            causation: w.causation,
            author: w.author,
            sig: ByteArray::new(event.signature.0),
        })
        .unwrap();
        assert_eq!(block.bytes(), &full[..]);
        assert_eq!(Event::decode(&block).unwrap(), event);
        assert!(event.verify_signature(&block).unwrap());
        let unsigned = codec::encode(&event.body.wire(&event.author)).unwrap();
        assert_eq!(unsigned[0], UNSIGNED_MAP_HEADER);
        codec::decode_ipld(&"unsigned", &unsigned).unwrap();
        let mut expected = SIGNING_PREFIX.to_vec();
        expected.extend_from_slice(&unsigned);
        assert_eq!(signing_message(block.bytes()).unwrap(), expected);
    }

    #[test]
    fn genesis_rule_is_enforced() {
        let signer = Signer::from_seed([3; 32]);
        assert!(sample(0, Some(Cid::of(b"p"))).sign(&signer).is_err());
        assert!(sample(1, None).sign(&signer).is_err());
        let mut bad_type = sample(0, None);
        bad_type.event_type = "has space".into();
        assert!(bad_type
            .sign(&signer)
            .unwrap_err()
            .to_string()
            .contains("event type"));
    }

    #[test]
    fn payload_salt_rules() {
        assert!(Payload::with_salt(Ipld::Null, vec![0; 15]).is_err());
        let p = Payload::new(Ipld::String("x".into())).unwrap();
        let q = Payload::new(Ipld::String("x".into())).unwrap();
        assert_ne!(
            p.to_block().unwrap().cid(),
            q.to_block().unwrap().cid(),
            "salts differ"
        );
        let block = p.to_block().unwrap();
        assert_eq!(Payload::decode(&block).unwrap(), p);
        assert_eq!(BlockKind::of(block.bytes()), BlockKind::Payload);
    }
}
