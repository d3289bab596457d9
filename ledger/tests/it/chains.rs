//! Walking and verifying clean chains through the library API (tampered stores are covered by
//! the system tests in `tests/system/tamper.rs`).

use personctl_ledger::{
    verify, Cid, Draft, Ipld, Ledger, Scope, SledStore, StreamId, TrustSet, VerifyOptions,
};

use crate::golden::fixture_signer;

#[test]
fn a_clean_store_verifies_in_both_scopes_and_exact_mode_and_walks_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::new(SledStore::open(dir.path()).unwrap());
    let signer = fixture_signer();
    let (a, b): (StreamId, StreamId) = ("person/a".parse().unwrap(), "person/b".parse().unwrap());
    let mut drafts = Vec::new();
    for i in 0..5 {
        for s in [&a, &b] {
            drafts.push(
                Draft::new(s.clone(), "Touched", 1)
                    .with_data(Ipld::Integer(i))
                    .unwrap(),
            );
        }
    }
    let out = ledger.append_batch(&signer, drafts).unwrap();
    let b_events: Vec<Cid> = out
        .iter()
        .filter(|x| x.stream == b)
        .map(|x| x.cid)
        .collect();
    let trust: TrustSet = [signer.author()].into_iter().collect();
    for exact in [false, true] {
        for scope in [
            Scope::All,
            Scope::Stream(a.clone()),
            Scope::Stream(b.clone()),
        ] {
            let report = verify(
                ledger.store(),
                &trust,
                &VerifyOptions {
                    scope: scope.clone(),
                    exact,
                },
                &|_| {},
            )
            .unwrap();
            assert!(report.is_ok(), "{scope:?}: {:?}", report.findings);
        }
    }
    let report = verify(ledger.store(), &trust, &VerifyOptions::default(), &|_| {}).unwrap();
    assert_eq!(
        (report.events, report.payloads, report.streams),
        (10, 10, 2)
    );
    assert_eq!(ledger.chain(&b).unwrap(), b_events);
    let forward: Vec<Cid> = ledger
        .walk_forward(&b)
        .unwrap()
        .map(|e| e.unwrap().cid())
        .collect();
    assert_eq!(forward, b_events);
    let back: Vec<u64> = ledger
        .walk_back(&a)
        .unwrap()
        .map(|e| e.unwrap().height())
        .collect();
    assert_eq!(back, vec![4, 3, 2, 1, 0]);
    // An untrusted verifier sees every event as untrusted, and nothing else.
    let report = verify(
        ledger.store(),
        &TrustSet::new(),
        &VerifyOptions::default(),
        &|_| {},
    )
    .unwrap();
    assert_eq!(report.findings.len(), 10);
    assert!(report
        .findings
        .iter()
        .all(|f| f.problem.code() == "untrusted-author"));
}
