//! Integration tests of the ledger crate: codec fixtures, Wycheproof, golden vectors, chains,
//! and appends under contention.

mod chains;
mod codec_fixtures;
mod concurrency;
mod erasure;
mod golden;
mod identity;
mod publish;
mod recovery;
mod speccheck;
mod store;
mod tlog;
mod wycheproof;

use std::path::PathBuf;

/// The repository's `fixtures/` directory.
pub(crate) fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}
mod format_doc;
