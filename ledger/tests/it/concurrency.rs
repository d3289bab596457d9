//! Appends racing on one stream: exactly one writer wins each height; the chain never forks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use personctl_ledger::{
    verify, BlockStore, Draft, Error, Expected, Ledger, SledStore, StreamId, TrustSet,
    VerifyOptions,
};

use crate::golden::fixture_signer;

#[test]
fn conflicting_appends_from_two_threads_win_once_per_height() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger::new(SledStore::open(dir.path()).unwrap()));
    let stream: StreamId = "person/race".parse().unwrap();
    const TARGET: u64 = 150;
    let conflicts = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let (ledger, stream, conflicts) = (ledger.clone(), stream.clone(), conflicts.clone());
            std::thread::spawn(move || {
                let signer = fixture_signer();
                let mut won = Vec::new();
                loop {
                    let head = ledger.store().head(&stream).unwrap();
                    if head.is_some_and(|h| h.height + 1 >= TARGET) {
                        return won;
                    }
                    let expected = head.map_or(Expected::Empty, |h| Expected::Height(h.height));
                    let mut draft = Draft::new(stream.clone(), "Touched", 1);
                    draft.expected = expected;
                    draft.causation = Some(uuid::Uuid::from_u128(t));
                    match ledger.append(&signer, draft) {
                        Ok(a) => won.push(a.height),
                        Err(Error::Conflict {
                            stream: s,
                            expected: e,
                            actual,
                        }) => {
                            assert_eq!(s, stream);
                            assert_ne!(e, actual, "a conflict names two different heights");
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(other) => panic!("unexpected error: {other}"),
                    }
                }
            })
        })
        .collect();
    let mut heights: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    heights.sort();
    assert_eq!(
        heights,
        (0..TARGET).collect::<Vec<_>>(),
        "every height won exactly once"
    );

    let chain = ledger.chain(&stream).unwrap();
    assert_eq!(chain.len() as u64, TARGET);
    let trust: TrustSet = [fixture_signer().author()].into_iter().collect();
    let report = verify(ledger.store(), &trust, &VerifyOptions::default(), &|_| {}).unwrap();
    assert!(report.is_ok(), "{:?}", report.findings);
    assert_eq!(
        report.events, TARGET,
        "no stray event was written by a losing writer"
    );
    eprintln!("conflicts observed: {}", conflicts.load(Ordering::Relaxed));
}

#[test]
fn a_batch_is_all_or_nothing() {
    let ledger = Ledger::new(personctl_ledger::MemoryStore::new());
    let signer = fixture_signer();
    let a: StreamId = "person/a".parse().unwrap();
    let b: StreamId = "person/b".parse().unwrap();
    ledger
        .append(&signer, Draft::new(b.clone(), "Created", 1))
        .unwrap();
    let mut stale = Draft::new(b.clone(), "Touched", 1);
    stale.expected = Expected::Empty;
    let err = ledger
        .append_batch(&signer, vec![Draft::new(a.clone(), "Created", 1), stale])
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                expected: None,
                actual: Some(0),
                ..
            }
        ),
        "{err}"
    );
    assert!(
        ledger.store().head(&a).unwrap().is_none(),
        "nothing of the failed batch was written"
    );
    let mut scanned = 0;
    ledger
        .store()
        .scan(&mut |_| {
            scanned += 1;
            true
        })
        .unwrap();
    assert_eq!(scanned, 1);
}

#[test]
fn group_commit_keeps_exactly_the_winners_across_a_reopen() {
    // Sixteen writers, one event per call, four of them per stream, racing with Expected::Height:
    // concurrent commits share durable writes (group commit), and within a group each commit
    // is checked against the heads the commits before it moved.
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger::new(SledStore::open(dir.path()).unwrap()));
    const PER_STREAM: u64 = 60;
    let threads: Vec<_> = (0..16u64)
        .map(|t| {
            let ledger = ledger.clone();
            std::thread::spawn(move || {
                let signer = fixture_signer();
                let stream: StreamId = format!("person/group-{}", t % 4).parse().unwrap();
                let mut won = 0u64;
                let mut lost = 0u64;
                loop {
                    let head = ledger.store().head(&stream).unwrap();
                    if head.is_some_and(|h| h.height + 1 >= PER_STREAM) {
                        return (won, lost);
                    }
                    let mut draft = Draft::new(stream.clone(), "Touched", 1);
                    draft.expected = head.map_or(Expected::Empty, |h| Expected::Height(h.height));
                    draft.causation = Some(uuid::Uuid::from_u128(t as u128));
                    match ledger.append(&signer, draft) {
                        Ok(_) => won += 1,
                        Err(Error::Conflict { .. }) => lost += 1,
                        Err(other) => panic!("unexpected error: {other}"),
                    }
                }
            })
        })
        .collect();
    let (won, lost) = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .fold((0, 0), |(w, l), (a, b)| (w + a, l + b));
    assert_eq!(won, 4 * PER_STREAM, "every height of every stream won once");
    eprintln!("conflicts observed: {lost}");
    let heads = ledger.store().heads().unwrap();
    drop(ledger);

    let reopened = Ledger::new(SledStore::open(dir.path()).unwrap());
    assert_eq!(reopened.store().heads().unwrap(), heads);
    let trust: TrustSet = [fixture_signer().author()].into_iter().collect();
    let report = verify(reopened.store(), &trust, &VerifyOptions::default(), &|_| {}).unwrap();
    assert!(report.is_ok(), "{:?}", report.findings);
    assert_eq!(report.events, 4 * PER_STREAM, "no losing event was stored");
}
