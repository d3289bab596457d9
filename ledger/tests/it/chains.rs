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
                    ..VerifyOptions::default()
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

/// Signs an event of `stream` at `height` with `prev` and makes it the stream's head, past
/// every append check (as a forger's own code could).
fn forge_head(
    store: &personctl_ledger::MemoryStore,
    stream: &StreamId,
    height: u64,
    prev: Cid,
) -> Cid {
    use personctl_ledger::{BlockStore, Commit, Head, HeadUpdate, UnsignedEvent};
    let (event, block) = UnsignedEvent {
        stream: stream.clone(),
        height,
        prev: Some(prev),
        causes: Vec::new(),
        event_type: "Touched".into(),
        schema: 1,
        payload: None,
        time_us: 1,
        correlation: uuid::Uuid::nil(),
        causation: uuid::Uuid::nil(),
    }
    .sign(&fixture_signer())
    .unwrap();
    let expected = store.head(stream).unwrap();
    store
        .commit(&Commit {
            blocks: vec![block],
            heads: vec![HeadUpdate {
                stream: stream.clone(),
                expected,
                new: Head {
                    cid: event.cid(),
                    height,
                },
            }],
        })
        .unwrap();
    event.cid()
}

#[test]
fn a_bad_prev_link_is_named_by_the_child_that_holds_it() {
    let ledger = Ledger::new(personctl_ledger::MemoryStore::new());
    let (a, b): (StreamId, StreamId) = ("thing/a".parse().unwrap(), "thing/b".parse().unwrap());
    let mut heads = Vec::new();
    for s in [&a, &b] {
        let draft = Draft::new(s.clone(), "Touched", 1)
            .with_data(Ipld::Integer(1))
            .unwrap();
        heads.push(ledger.append(&fixture_signer(), draft).unwrap().cid);
    }
    let trust: TrustSet = [fixture_signer().author()].into_iter().collect();
    let findings = |store: &personctl_ledger::MemoryStore| {
        verify(store, &trust, &VerifyOptions::default(), &|_| {})
            .unwrap()
            .findings
            .into_iter()
            .map(|f| (f.problem.code(), f.cid.unwrap(), f.height))
            .collect::<Vec<_>>()
    };
    // On a, an event whose prev is b's event: wrong-stream, named by that event (the child).
    let child = forge_head(ledger.store(), &a, 1, heads[1]);
    assert!(
        findings(ledger.store()).contains(&("wrong-stream", child, Some(1))),
        "{:?}",
        findings(ledger.store())
    );
    // On b, an event at height 5 on top of height 0: height-gap, named by the child too.
    let gap = forge_head(ledger.store(), &b, 5, heads[1]);
    assert!(
        findings(ledger.store()).contains(&("height-gap", gap, Some(5))),
        "{:?}",
        findings(ledger.store())
    );
}
