//! A content-addressed, signed, domain-agnostic event ledger.
//!
//! Every event is a strict, canonical DAG-CBOR block addressed by a CIDv1 (dag-cbor, BLAKE3-256)
//! and signed with ed25519. Events form one Merkle chain per stream (`prev`) and link causal
//! parents in other streams (`causes`). Event data lives in separate, salted payload blocks, so
//! it can be erased while the chain stays verifiable.
//!
//! ```
//! use personctl_ledger::{Draft, Ledger, MemoryStore, Signer, TrustSet, verify, VerifyOptions};
//! use ipld_core::ipld::Ipld;
//!
//! let signer = Signer::from_seed([42; 32]);
//! let ledger = Ledger::new(MemoryStore::new());
//! let stream = "order/o-1".parse()?;
//! let draft = Draft::new(stream, "OrderPlaced", 1).with_data(Ipld::String("3 apples".into()))?;
//! let appended = ledger.append(&signer, draft)?;
//! assert_eq!(appended.height, 0);
//!
//! let trust: TrustSet = [signer.author()].into_iter().collect();
//! let report = verify(ledger.store(), &trust, &VerifyOptions::default(), &|_| {})?;
//! assert!(report.is_ok());
//! # Ok::<(), personctl_ledger::Error>(())
//! ```
//!
//! The wire format is specified in `docs/FORMAT.md`.

mod block;
#[cfg(feature = "car")]
pub mod car;
mod cid;
pub mod codec;
mod error;
mod event;
#[cfg(feature = "jetstream")]
pub mod jetstream;
mod keys;
mod ledger;
pub mod store;
mod stream;
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
pub use crate::keys::{verify_many, Author, SigCheck, Signature, Signer};
pub use crate::ledger::{now_us, Appended, Draft, Expected, Ledger, WalkBack};
pub use crate::store::{BlockStore, Commit, Head, HeadUpdate, MemoryStore, Published, SledStore};
pub use crate::stream::StreamId;
pub use crate::tombstone::{Masks, Tombstone, TOMBSTONE_SCHEMA, TOMBSTONE_TYPE};
pub use crate::trust::TrustSet;
pub use crate::verify::{verify, Finding, Masked, Problem, Report, Scope, VerifyOptions};

/// Re-exported so that users build payload data without naming the crate version.
pub use ipld_core::ipld::Ipld;
