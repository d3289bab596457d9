//! Verification of tampered sled stores: every kind of damage is reported with the right CID.

use personctl_ledger::{
    verify, Block, BlockStore, Cid, Draft, Event, Expected, Head, Ipld, Ledger, Report, Scope,
    Signer, SledStore, StreamId, TrustSet, UnsignedEvent, VerifyOptions,
};

use crate::golden::fixture_signer;

/// A store with two streams of five events each (every event with a payload).
struct Fixture {
    _dir: tempfile::TempDir,
    ledger: Ledger<SledStore>,
    a: StreamId,
    b: StreamId,
    /// Event CIDs of stream a and b, genesis first.
    a_events: Vec<Cid>,
    b_events: Vec<Cid>,
    a_payloads: Vec<Cid>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::new(SledStore::open(dir.path()).unwrap());
    let signer = fixture_signer();
    let (a, b): (StreamId, StreamId) = ("person/a".parse().unwrap(), "person/b".parse().unwrap());
    let mut drafts = Vec::new();
    for i in 0..5 {
        for s in [&a, &b] {
            let d = Draft::new(s.clone(), "Touched", 1)
                .with_data(Ipld::Integer(i))
                .unwrap();
            drafts.push(d);
        }
    }
    let out = ledger.append_batch(&signer, drafts).unwrap();
    let pick = |s: &StreamId| {
        out.iter()
            .filter(|x| &x.stream == s)
            .map(|x| x.cid)
            .collect::<Vec<_>>()
    };
    let a_payloads = out
        .iter()
        .filter(|x| x.stream == a)
        .map(|x| x.payload.unwrap())
        .collect();
    Fixture {
        a_events: pick(&a),
        b_events: pick(&b),
        a_payloads,
        _dir: dir,
        ledger,
        a,
        b,
    }
}

fn trust() -> TrustSet {
    [fixture_signer().author()].into_iter().collect()
}

fn run(f: &Fixture, scope: Scope) -> Report {
    verify(
        f.ledger.store(),
        &trust(),
        &VerifyOptions {
            scope,
            exact: false,
        },
        &|_| {},
    )
    .unwrap()
}

fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at] ^= 0x01;
    out
}

fn raw(f: &Fixture, cid: &Cid) -> Vec<u8> {
    f.ledger.store().get(cid).unwrap().unwrap().into_bytes()
}

/// Applies `tamper`, then requires every `(check, cid)` it returns among the findings of both a
/// whole-store and (where the damage lies on stream a) a single-stream verification.
fn check(
    name: &str,
    tamper: impl FnOnce(&Fixture) -> Vec<(&'static str, Cid)>,
    stream_scope_too: bool,
) {
    let f = fixture();
    assert!(
        run(&f, Scope::All).is_ok(),
        "{name}: the untouched fixture verifies"
    );
    let expected = tamper(&f);
    let mut scopes = vec![Scope::All];
    if stream_scope_too {
        scopes.push(Scope::Stream(f.a.clone()));
    }
    for scope in scopes {
        let report = run(&f, scope.clone());
        assert!(!report.is_ok(), "{name} ({scope:?}): not detected");
        for (code, cid) in &expected {
            let hit = report
                .findings
                .iter()
                .any(|x| x.problem.code() == *code && x.cid == Some(*cid));
            assert!(
                hit,
                "{name} ({scope:?}): no {code} finding for {cid}; got {:#?}",
                report.findings
            );
        }
    }
}

#[test]
fn flipped_byte_in_an_event_block() {
    check(
        "event byte",
        |f| {
            let cid = f.a_events[2];
            f.ledger
                .store()
                .insert_unchecked(&cid, &flip(&raw(f, &cid), 40))
                .unwrap();
            vec![("cid-mismatch", cid)]
        },
        true,
    );
}

#[test]
fn flipped_byte_in_a_payload_block() {
    check(
        "payload byte",
        |f| {
            let cid = f.a_payloads[3];
            f.ledger
                .store()
                .insert_unchecked(&cid, &flip(&raw(f, &cid), 3))
                .unwrap();
            vec![("cid-mismatch", cid)]
        },
        true,
    );
}

#[test]
fn removed_event_block() {
    check(
        "removed event",
        |f| {
            let cid = f.a_events[1];
            assert!(f.ledger.store().remove(&cid).unwrap());
            vec![("missing-block", cid)]
        },
        true,
    );
}

#[test]
fn removed_payload_block() {
    check(
        "removed payload",
        |f| {
            let cid = f.a_payloads[4];
            assert!(f.ledger.store().remove(&cid).unwrap());
            vec![("missing-block", cid)]
        },
        true,
    );
}

#[test]
fn block_swapped_for_a_validly_signed_block_of_another_chain() {
    check(
        "swapped bytes",
        |f| {
            let cid = f.a_events[3];
            f.ledger
                .store()
                .insert_unchecked(&cid, &raw(f, &f.b_events[3]))
                .unwrap();
            vec![("cid-mismatch", cid)]
        },
        true,
    );
}

#[test]
fn head_swapped_for_the_head_of_another_chain() {
    check(
        "swapped head",
        |f| {
            let other = f.b_events[4];
            f.ledger
                .store()
                .set_head_unchecked(
                    &f.a,
                    Head {
                        cid: other,
                        height: 4,
                    },
                )
                .unwrap();
            vec![("wrong-stream", other), ("unreachable", f.a_events[4])]
        },
        false,
    );
}

#[test]
fn forged_signature() {
    check(
        "forged signature",
        |f| {
            // Flip a bit of the signature inside the head block and store it under its own CID.
            let forged = Block::new(flip(&raw(f, &f.a_events[4]), 20));
            Event::decode(&forged).expect("still a well-formed event");
            f.ledger.store().put(&forged).unwrap();
            f.ledger
                .store()
                .set_head_unchecked(
                    &f.a,
                    Head {
                        cid: forged.cid(),
                        height: 4,
                    },
                )
                .unwrap();
            vec![("bad-signature", forged.cid())]
        },
        true,
    );
}

#[test]
fn untrusted_author() {
    check(
        "untrusted author",
        |f| {
            let stranger = Signer::from_seed([0xee; 32]);
            let mut d = Draft::new(f.a.clone(), "Touched", 1);
            d.expected = Expected::Height(4);
            let a = f.ledger.append(&stranger, d).unwrap();
            vec![("untrusted-author", a.cid)]
        },
        true,
    );
}

#[test]
fn fork_at_an_existing_height() {
    check(
        "fork",
        |f| {
            let prev = f.ledger.event(&f.a_events[1]).unwrap();
            let twin = UnsignedEvent {
                time_us: prev.time_us() + 1,
                height: 2,
                prev: Some(prev.cid()),
                ..prev.body().clone()
            };
            let (_, block) = twin.sign(&fixture_signer()).unwrap();
            f.ledger.store().put(&block).unwrap();
            vec![("fork", block.cid())]
        },
        false,
    );
}

#[test]
fn truncated_chain() {
    check(
        "truncated",
        |f| {
            f.ledger
                .store()
                .set_head_unchecked(
                    &f.a,
                    Head {
                        cid: f.a_events[2],
                        height: 2,
                    },
                )
                .unwrap();
            vec![("truncated", f.a_events[3]), ("truncated", f.a_events[4])]
        },
        false,
    );
}

#[test]
fn head_record_with_the_wrong_height() {
    check(
        "head height",
        |f| {
            f.ledger
                .store()
                .set_head_unchecked(
                    &f.a,
                    Head {
                        cid: f.a_events[4],
                        height: 7,
                    },
                )
                .unwrap();
            vec![("head-mismatch", f.a_events[4])]
        },
        true,
    );
}

#[test]
fn removed_genesis_block() {
    check(
        "removed genesis",
        |f| {
            let cid = f.a_events[0];
            f.ledger.store().remove(&cid).unwrap();
            vec![("missing-block", cid)]
        },
        true,
    );
}

#[test]
fn a_clean_store_verifies_in_both_scopes_and_exact_mode() {
    let f = fixture();
    for scope in [
        Scope::All,
        Scope::Stream(f.a.clone()),
        Scope::Stream(f.b.clone()),
    ] {
        let report = verify(
            f.ledger.store(),
            &trust(),
            &VerifyOptions {
                scope: scope.clone(),
                exact: true,
            },
            &|_| {},
        )
        .unwrap();
        assert!(report.is_ok(), "{scope:?}: {:?}", report.findings);
    }
    let report = run(&f, Scope::All);
    assert_eq!(
        (report.events, report.payloads, report.streams),
        (10, 10, 2)
    );
    assert_eq!(f.ledger.chain(&f.a).unwrap(), f.a_events);
    let forward: Vec<Cid> = f
        .ledger
        .walk_forward(&f.b)
        .unwrap()
        .map(|e| e.unwrap().cid())
        .collect();
    assert_eq!(forward, f.b_events);
}
