//! Verification: auditing a store's chains, producing a [`Report`] of [`Finding`]s.
//!
//! For every event block in scope it checks: the CID re-derives from the bytes, the encoding is
//! strict canonical DAG-CBOR of the right shape, the signature is valid (strict Ed25519) and its
//! author trusted; along every chain from its head: heights are contiguous, `prev` links the
//! previous height of the same stream, genesis has no parent, the head record matches its block,
//! every payload and every `causes` link resolves, unless a tombstone later on the same chain
//! masks it (then it is reported as [`Masked`], and a masked block still stored is a finding:
//! the erasure was not finished); every tombstone masks only payloads of earlier events of its
//! own chain. With [`Scope::All`] the whole store is scanned,
//! so it also finds forks (two blocks claiming one stream height) and events beyond a head
//! (a truncated chain).
//!
//! Scanning and signature checks run on every core (rayon); signatures are checked in batches.
//!
//! The parts: `report` (what a verification finds), `gather` (reading, re-hashing, decoding and
//! signature checks, on every core), `chains` (walking each chain from its head, masks and
//! strays), and `events` (verifying a handful of events as a reader meets them).
//!
//! Invariant 6: the rules here are the ones `docs/FORMAT.md` states, on every path.

mod chains;
mod events;
mod gather;
mod report;

use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;

use tracing::instrument;

use crate::store::BlockStore;
use crate::{Result, TrustSet};

pub use self::events::verify_events;
use self::gather::{Checker, Gathered};
pub use self::report::{Finding, Masked, Problem, Report, Scope, VerifyOptions};

/// Verifies `store` against `trust`. `progress` is called with the number of events processed.
///
/// Blocks are read, re-hashed and decoded in chunks while the signatures of earlier chunks are
/// checked on the rayon pool, so reading and signature checks overlap.
#[instrument(skip_all, fields(scope = ?options.scope))]
pub fn verify<S: BlockStore + ?Sized>(
    store: &S,
    trust: &TrustSet,
    options: &VerifyOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Report> {
    let all_heads = store.heads()?;
    let mut g = Gathered::default();
    // Every event of every chain is about to be summarised: size the map once.
    let expected: u64 = all_heads.iter().map(|(_, h)| h.height + 1).sum();
    g.events
        .reserve(usize::try_from(expected).unwrap_or(0).min(1 << 26));
    let failed = Mutex::new(Vec::new());
    let pending = AtomicUsize::new(0);
    let heads = rayon::scope(|pool| {
        let mut checker = Checker {
            pool,
            pending: &pending,
            failed: &failed,
            exact: options.exact,
            queued: Vec::new(),
        };
        let heads = g.gather(store, &all_heads, &options.scope, &mut checker, progress);
        checker.flush();
        heads
    })?;
    g.bad_signatures(failed.into_inner().unwrap_or_else(|e| e.into_inner()));
    g.judge_authors(store, trust, options.order.as_deref())?;
    let mut report = Report {
        streams: heads.len() as u64,
        ..Report::default()
    };
    g.read_tombstones(store)?;
    let chain = g.walk_chains(&heads);
    if options.scope == Scope::All {
        g.find_strays(&chain, &all_heads);
        for problem in crate::tlog::check_kept(store, trust)? {
            g.findings.push(Finding {
                cid: None,
                stream: None,
                height: None,
                problem,
            });
        }
    }
    report.events = g.event_count;
    report.payloads = g.payload_count;
    g.findings.sort_by(|a, b| {
        (&a.stream, a.height, a.cid, a.problem.code()).cmp(&(
            &b.stream,
            b.height,
            b.cid,
            b.problem.code(),
        ))
    });
    g.findings.dedup();
    report.findings = g.findings;
    g.masked
        .sort_by(|a, b| (&a.stream, a.height).cmp(&(&b.stream, b.height)));
    report.masked = g.masked;
    tracing::debug!(
        events = report.events,
        findings = report.findings.len(),
        "verified"
    );
    Ok(report)
}
