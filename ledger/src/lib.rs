//! A content-addressed, signed, domain-agnostic event ledger.
//!
//! Every event is a strict, canonical DAG-CBOR block addressed by a CIDv1 (dag-cbor, BLAKE3-256)
//! and signed with ed25519. Events form one Merkle chain per stream (`prev`) and link causal
//! parents in other streams (`causes`). Event data lives in separate, salted payload blocks, so
//! it can be erased while the chain stays verifiable.
//!
//! The ledger knows nothing of any domain: a domain picks an aggregate type (the first half of
//! a [`StreamId`], `order` below), event type names and payload types, and keeps its rules in
//! pure `decide`/`apply` functions. `ledger/examples/organisation.rs` is a complete second
//! domain built this way; the person domain (`personctl-domain`) is the first.
//!
//! # Appending
//!
//! A [`Draft`] names the stream, the event type and its schema version, and the data, which goes
//! into a salted payload block. [`Expected`] is the optimistic-concurrency check: the head the
//! decision was made on.
//!
//! ```
//! use personctl_ledger::{Draft, Error, Expected, Ledger, MemoryStore, Signer};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct OrderPlaced {
//!     item: String,
//!     quantity: u32,
//! }
//!
//! let signer = Signer::from_seed([42; 32]); // Signer::generate() in real use
//! let ledger = Ledger::new(MemoryStore::new()); // SledStore::open(dir) for a durable store
//! let order = "order/o-1".parse()?;
//! let placed = OrderPlaced { item: "apple".into(), quantity: 3 };
//! let first = ledger.append(
//!     &signer,
//!     Draft::new(order, "OrderPlaced", 1).expecting(Expected::Empty).with_value(&placed)?,
//! )?;
//! assert_eq!(first.height, 0);
//!
//! // A writer that decided on a stale head is refused, and nothing is written.
//! let shipment = "shipment/s-9".parse()?;
//! let stale = Draft::new("order/o-1".parse()?, "OrderCancelled", 1).expecting(Expected::Empty);
//! assert!(matches!(ledger.append(&signer, stale), Err(Error::Conflict { .. })));
//!
//! // A causal link into another stream.
//! let sent = Draft::new(shipment, "ShipmentSent", 1).caused_by([first.cid]);
//! assert_eq!(ledger.append(&signer, sent)?.height, 0);
//! # Ok::<(), personctl_ledger::Error>(())
//! ```
//!
//! # Walking and reading
//!
//! [`Ledger::walk_forward`] (genesis first) and [`Ledger::walk_back`] (head first) yield decoded
//! [`Event`]s; every block read re-derives its CID. [`Payload::decode_as`] reads a payload
//! straight into its type.
//!
//! ```
//! # use personctl_ledger::{Draft, Ledger, MemoryStore, Signer};
//! use personctl_ledger::{BlockStore, Payload};
//! # #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! # struct OrderPlaced { item: String, quantity: u32 }
//! # let signer = Signer::from_seed([42; 32]);
//! # let ledger = Ledger::new(MemoryStore::new());
//! # let placed = OrderPlaced { item: "apple".into(), quantity: 3 };
//! # ledger.append(&signer, Draft::new("order/o-1".parse()?, "OrderPlaced", 1).with_value(&placed)?)?;
//! # ledger.append(&signer, Draft::new("order/o-1".parse()?, "OrderPaid", 1))?;
//! let order = "order/o-1".parse()?;
//! let mut types = Vec::new();
//! for event in ledger.walk_forward(&order)? {
//!     let event = event?;
//!     types.push(event.event_type().to_string());
//!     if let Some(cid) = event.payload() {
//!         let block = ledger.store().get(&cid)?.expect("stored");
//!         assert_eq!(Payload::decode_as::<OrderPlaced>(&block)?, placed);
//!     }
//! }
//! assert_eq!(types, ["OrderPlaced", "OrderPaid"]);
//! assert_eq!(ledger.walk_back(&order)?.count(), 2);
//! # Ok::<(), personctl_ledger::Error>(())
//! ```
//!
//! # Verifying
//!
//! [`verify`] audits a store (or one stream) against a [`TrustSet`]: CIDs, strict encoding,
//! signatures (in batches, on every core), trust, chain links, payloads, causes, forks,
//! truncation and tombstones. Each failure is a [`Finding`] naming the CID.
//!
//! ```
//! use personctl_ledger::{verify, Draft, Ledger, MemoryStore, Problem, Signer, TrustSet, VerifyOptions};
//!
//! let (alice, mallory) = (Signer::from_seed([1; 32]), Signer::from_seed([2; 32]));
//! let ledger = Ledger::new(MemoryStore::new());
//! ledger.append(&alice, Draft::new("order/o-1".parse()?, "OrderPlaced", 1))?;
//! let forged = ledger.append(&mallory, Draft::new("order/o-1".parse()?, "OrderRefunded", 1))?;
//!
//! let trust: TrustSet = [alice.author()].into_iter().collect();
//! let report = verify(ledger.store(), &trust, &VerifyOptions::default(), &|_| {})?;
//! assert!(!report.is_ok());
//! assert_eq!(report.findings[0].cid, Some(forged.cid));
//! assert!(matches!(report.findings[0].problem, Problem::UntrustedAuthor { .. }));
//! # Ok::<(), personctl_ledger::Error>(())
//! ```
//!
//! # Publishing and archives
//!
//! With the `jetstream` feature, `jetstream::Backbone` publishes a store's events to NATS
//! JetStream (messages carry CIDs and links only) and pulls other writers' events. With the
//! `car` feature, the `car` module exports and imports CARv1 archives that verify on their own.
//!
//! The wire format is specified in `docs/FORMAT.md`.

mod block;
#[cfg(feature = "car")]
pub mod car;
mod cid;
pub mod codec;
mod error;
mod event;
mod follow;
pub mod identity;
#[cfg(feature = "jetstream")]
pub mod jetstream;
mod keys;
mod ledger;
pub mod metrics;
pub mod policy;
mod publish;
pub mod store;
mod stream;
pub mod tlog;
mod tombstone;
mod trust;
mod verify;

pub use crate::block::Block;
pub use crate::cid::{Cid, ShortCid, BLAKE3_256, CID_LEN, DAG_CBOR};
pub use crate::error::{Error, Result};
pub use crate::event::{
    signing_message, BlockKind, Event, Payload, UnsignedEvent, FORMAT_VERSION, MIN_SALT_LEN,
    SIGNING_PREFIX,
};
pub use crate::follow::{backoff, FollowOptions, Followed, Projector};
pub use crate::keys::{verify_many, Author, SigCheck, Signature, Signer, VERIFY_BATCH};
pub use crate::ledger::{now_us, Appended, Draft, Expected, Ledger, WalkBack};
pub use crate::publish::{Collected, Erased, PublishReport, Publisher, Retry};
pub use crate::store::{BlockStore, Commit, Head, HeadUpdate, MemoryStore, Published, SledStore};
pub use crate::stream::StreamId;
pub use crate::tombstone::{Masks, Tombstone, MAX_SCOPE, TOMBSTONE_SCHEMA, TOMBSTONE_TYPE};
pub use crate::trust::TrustSet;
pub use crate::verify::{
    verify, verify_events, Finding, Masked, Problem, Report, Scope, VerifyOptions,
};

/// The largest block the ledger writes, in bytes (256 KiB): an event or payload block over it
/// is refused with [`Error::TooLarge`] before anything is signed or stored. It stays well under
/// JetStream's default `max_payload` (1 MiB), which a block must fit with its message headers,
/// and under the 4 MiB a CAR section may hold. See `docs/FORMAT.md`, Limits.
pub const MAX_BLOCK: usize = 256 * 1024;

/// Refuses a block of `size` bytes over [`MAX_BLOCK`]; `what` names it in the error.
pub(crate) fn check_block_size(what: &str, size: usize) -> Result<()> {
    if size > MAX_BLOCK {
        return Err(Error::TooLarge {
            what: what.to_string(),
            size,
            limit: MAX_BLOCK,
        });
    }
    Ok(())
}

/// Re-exported so that users build payload data without naming the crate version.
pub use ipld_core::ipld::Ipld;
