//! Tombstones: masked payloads verify, unmasked missing ones do not, a tombstone may mask only
//! earlier payloads of its own chain, and a masked block still stored is reported until purged.

use personctl_ledger::{
    verify, BlockStore, Cid, Commit, Draft, Error, Head, HeadUpdate, Ipld, Ledger, MemoryStore,
    Payload, Problem, Report, Signer, StreamId, Tombstone, TrustSet, UnsignedEvent, VerifyOptions,
    TOMBSTONE_TYPE,
};

fn signer() -> Signer {
    Signer::from_seed([5; 32])
}

fn audit(store: &MemoryStore) -> Report {
    let trust: TrustSet = [signer().author()].into_iter().collect();
    verify(store, &trust, &VerifyOptions::default(), &|_| {}).unwrap()
}

fn codes(report: &Report) -> Vec<&'static str> {
    report.findings.iter().map(|f| f.problem.code()).collect()
}

/// Appends three events with payloads to `stream`; returns their payload CIDs.
fn chain(ledger: &Ledger<MemoryStore>, stream: &StreamId, secret: &str) -> Vec<Cid> {
    (0..3)
        .map(|i| {
            let draft = Draft::new(stream.clone(), "Noted", 1)
                .with_data(Ipld::String(format!("{secret} #{i}")))
                .unwrap();
            ledger.append(&signer(), draft).unwrap().payload.unwrap()
        })
        .collect()
}

/// Writes an event of the reserved type with `data` as its payload straight to the store, past
/// the checks every append makes (as a hostile writer's own code could): what verify must then
/// report. Returns the event's CID and its payload's.
fn forge(ledger: &Ledger<MemoryStore>, stream: &StreamId, data: Ipld, schema: u64) -> (Cid, Cid) {
    let payload = Payload::new(data).unwrap().to_block().unwrap();
    let head = ledger.store().head(stream).unwrap();
    let unsigned = UnsignedEvent {
        stream: stream.clone(),
        height: head.map_or(0, |h| h.height + 1),
        prev: head.map(|h| h.cid),
        causes: Vec::new(),
        event_type: TOMBSTONE_TYPE.into(),
        schema,
        payload: Some(payload.cid()),
        time_us: 1,
        correlation: uuid::Uuid::nil(),
        causation: uuid::Uuid::nil(),
    };
    let height = unsigned.height;
    let (event, block) = unsigned.sign(&signer()).unwrap();
    let payload_cid = payload.cid();
    ledger
        .store()
        .commit(&Commit {
            blocks: vec![payload, block],
            heads: vec![HeadUpdate {
                stream: stream.clone(),
                expected: head,
                new: Head {
                    cid: event.cid(),
                    height,
                },
            }],
        })
        .unwrap();
    (event.cid(), payload_cid)
}

fn as_data(t: &Tombstone) -> Ipld {
    ipld_core::serde::to_ipld(t).unwrap()
}

fn tombstone(masks: Vec<Cid>) -> Tombstone {
    Tombstone {
        masks,
        reason: "request 17".into(),
        scope: "all".into(),
    }
}

#[test]
fn masked_payloads_verify_and_name_their_tombstone_while_unmasked_missing_ones_fail() {
    let ledger = Ledger::new(MemoryStore::new());
    let a: StreamId = "thing/a".parse().unwrap();
    let payloads = chain(&ledger, &a, "secret");
    let t = ledger
        .append(
            &signer(),
            tombstone(payloads[..2].to_vec()).draft(a.clone()).unwrap(),
        )
        .unwrap();

    // Before the purge the masked blocks are still there: the erasure is unfinished.
    let report = audit(ledger.store());
    assert_eq!(codes(&report), ["unpurged", "unpurged"]);
    assert!(report
        .findings
        .iter()
        .all(|f| f.problem == Problem::Unpurged { tombstone: t.cid }));

    let mut removed = ledger.purge_masked(None).unwrap();
    removed.sort();
    let mut expected = payloads[..2].to_vec();
    expected.sort();
    assert_eq!(removed, expected);
    assert!(ledger.purge_masked(None).unwrap().is_empty(), "idempotent");
    let report = audit(ledger.store());
    assert!(report.is_ok(), "{:?}", report.findings);
    let masked: Vec<(Cid, u64, Cid)> = report
        .masked
        .iter()
        .map(|m| (m.payload, m.height, m.tombstone))
        .collect();
    assert_eq!(
        masked,
        [(payloads[0], 0, t.cid), (payloads[1], 1, t.cid)],
        "reported as masked, with the tombstone"
    );

    // The third payload is not masked: deleting it is a failure.
    assert!(ledger.store().remove(&payloads[2]).unwrap());
    let report = audit(ledger.store());
    assert_eq!(codes(&report), ["missing-block"]);
    assert_eq!(report.findings[0].cid, Some(payloads[2]));
}

#[test]
fn a_tombstone_may_mask_only_earlier_payloads_of_its_own_chain() {
    let ledger = Ledger::new(MemoryStore::new());
    let a: StreamId = "thing/a".parse().unwrap();
    let b: StreamId = "thing/b".parse().unwrap();
    let of_a = chain(&ledger, &a, "alpha");
    chain(&ledger, &b, "beta");
    // On b, naming a's payload: refused by append, reported by verify, and a's payload is
    // not masked by it.
    let refused = ledger.append(
        &signer(),
        tombstone(vec![of_a[0]]).draft(b.clone()).unwrap(),
    );
    assert!(
        matches!(&refused, Err(Error::InvalidEvent(m)) if m.contains("not the payload of an earlier event")),
        "{refused:?}"
    );
    let (bad, _) = forge(&ledger, &b, as_data(&tombstone(vec![of_a[0]])), 1);
    let report = audit(ledger.store());
    assert_eq!(codes(&report), ["bad-tombstone"]);
    assert_eq!(report.findings[0].cid, Some(bad));
    assert!(
        report.findings[0]
            .problem
            .to_string()
            .contains("not the payload of any event of thing/b"),
        "{}",
        report.findings[0].problem
    );
    ledger.store().remove(&of_a[0]).unwrap();
    assert_eq!(
        codes(&audit(ledger.store())),
        ["missing-block", "bad-tombstone"]
    );

    // Masking another tombstone's payload, or naming an event, is rejected too.
    let first = ledger
        .append(
            &signer(),
            tombstone(vec![of_a[1]]).draft(a.clone()).unwrap(),
        )
        .unwrap();
    let mut masks = vec![first.payload.unwrap(), first.cid];
    masks.sort();
    assert!(ledger
        .append(
            &signer(),
            tombstone(masks.clone()).draft(a.clone()).unwrap()
        )
        .is_err());
    let (second, _) = forge(&ledger, &a, as_data(&tombstone(masks)), 1);
    let report = audit(ledger.store());
    let about_second: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.cid == Some(second))
        .map(|f| f.problem.to_string())
        .collect();
    assert_eq!(about_second.len(), 2, "{about_second:?}");
    assert!(about_second
        .iter()
        .any(|m| m.contains("payload of a tombstone")));
    assert!(about_second.iter().any(|m| m.contains("not the payload")));

    // A tombstone needs a reason, masks and a scope of the documented grammar; written past
    // the checks anyway, each is a bad tombstone (and its masks are not applied).
    let mut silent = tombstone(vec![of_a[2]]);
    silent.reason = "  ".into();
    assert!(silent.draft(a.clone()).is_err());
    let mut unscoped = tombstone(vec![of_a[2]]);
    unscoped.scope = "Ada Lovelace".into();
    assert!(unscoped.draft(a.clone()).is_err());
    assert!(tombstone(vec![]).draft(a.clone()).is_err());
    for (t, schema) in [
        (silent, 1),
        (unscoped, 1),
        (tombstone(vec![]), 1),
        (tombstone(vec![of_a[2]]), 2),
    ] {
        let before = audit(ledger.store()).findings.len();
        let (cid, _) = forge(&ledger, &a, as_data(&t), schema);
        let report = audit(ledger.store());
        let about: Vec<&'static str> = report
            .findings
            .iter()
            .filter(|f| f.cid == Some(cid))
            .map(|f| f.problem.code())
            .collect();
        assert_eq!(about, ["bad-tombstone"], "{t:?} schema {schema}");
        assert_eq!(
            report.findings.len(),
            before + 1,
            "{t:?}: its masks were applied"
        );
        assert!(report.masked.iter().all(|m| m.payload != of_a[2]));
    }
}

#[test]
fn a_tombstone_whose_payload_is_not_a_tombstone_is_reported() {
    let ledger = Ledger::new(MemoryStore::new());
    let a: StreamId = "thing/a".parse().unwrap();
    chain(&ledger, &a, "alpha");
    let fake = Draft::new(a.clone(), personctl_ledger::TOMBSTONE_TYPE, 1)
        .with_data(Ipld::String("not a tombstone".into()))
        .unwrap();
    assert!(
        ledger.append(&signer(), fake).is_err(),
        "append checks the reserved type"
    );
    let (t, _) = forge(&ledger, &a, Ipld::String("not a tombstone".into()), 1);
    let report = audit(ledger.store());
    assert_eq!(codes(&report), ["bad-tombstone"]);
    assert_eq!(report.findings[0].cid, Some(t));
    let event = ledger.event(&t).unwrap();
    assert!(Tombstone::of(ledger.store(), &event).is_err());
}

#[test]
fn without_its_salt_a_guessed_value_does_not_reproduce_the_payload_cid() {
    let value = Ipld::String("zelda.quarrington@private.example".into());
    let payload = Payload::new(value.clone()).unwrap();
    let stored = payload.to_block().unwrap().cid();
    // The guess, encoded as a payload would be but without the salt (or with another one),
    // hashes to other CIDs; only the stored salt reproduces the stored CID.
    let unsalted = personctl_ledger::codec::encode(&value).unwrap();
    assert_ne!(Cid::of(&unsalted), stored);
    let other_salt = Payload::with_salt(value.clone(), vec![0; 16]).unwrap();
    assert_ne!(other_salt.to_block().unwrap().cid(), stored);
    let same = Payload::with_salt(value, payload.salt().to_vec()).unwrap();
    assert_eq!(same.to_block().unwrap().cid(), stored);
}
