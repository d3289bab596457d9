//! Integration tests of the ledger crate: codec fixtures, Wycheproof, golden vectors, stores,
//! appends under contention, and verification of tampered stores.

mod codec_fixtures;
mod concurrency;
mod golden;
mod tamper;
mod wycheproof;

use std::path::PathBuf;

/// The repository's `fixtures/` directory.
pub(crate) fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}
