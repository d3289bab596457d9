//! Tampered sled stores, audited by `personctl verify`: every kind of damage is reported with
//! the right CID and exit code 1, both for the whole store and for one stream (`--stream`).

use personctl_ledger::{
    Block, BlockStore, Cid, Draft, Event, Expected, Head, Ipld, Ledger, Signer, SledStore,
    StreamId, UnsignedEvent,
};

use crate::{fixture_signer, Home};

/// A home whose store has two streams of five events each (every event with a payload), written
/// with the fixture key, which the home trusts.
struct Fixture {
    home: Home,
    ledger: Ledger<SledStore>,
    a: StreamId,
    b: StreamId,
    /// Event CIDs of stream a and b, genesis first.
    a_events: Vec<Cid>,
    b_events: Vec<Cid>,
    a_payloads: Vec<Cid>,
}

fn fixture() -> Fixture {
    let home = Home::new();
    let store = SledStore::open(home.store_path()).unwrap();
    let signer = fixture_signer();
    store.trust_add(&signer.author(), "fixture").unwrap();
    let ledger = Ledger::new(store);
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
        home,
        ledger,
        a,
        b,
    }
}

/// Runs `personctl verify --json` (optionally on one stream) with the store closed; returns
/// the exit code and the failures as (check, cid).
fn verify_cli(f: Fixture, stream: Option<&StreamId>) -> (Fixture, i32, Vec<(String, String)>) {
    let Fixture {
        home,
        ledger,
        a,
        b,
        a_events,
        b_events,
        a_payloads,
    } = f;
    drop(ledger); // sled allows one process at a time
    let mut args = vec!["verify".to_string(), "--json".to_string()];
    if let Some(s) = stream {
        args.extend(["--stream".to_string(), s.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = home.run(&args);
    let mut failures = Vec::new();
    let mut summary = None;
    for (ty, data) in run.records() {
        match ty.as_str() {
            "failure" => failures.push((
                data["check"].as_str().unwrap().to_string(),
                data["cid"].as_str().unwrap_or("-").to_string(),
            )),
            "summary" => summary = Some(data),
            other => panic!("unexpected record type {other}"),
        }
    }
    let summary = summary.expect("a summary record");
    assert_eq!(
        summary["failures"].as_u64().unwrap() as usize,
        failures.len()
    );
    assert_eq!(summary["ok"].as_bool().unwrap(), failures.is_empty());
    let ledger = Ledger::new(SledStore::open(home.store_path()).unwrap());
    (
        Fixture {
            home,
            ledger,
            a,
            b,
            a_events,
            b_events,
            a_payloads,
        },
        run.code,
        failures,
    )
}

fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at] ^= 0x01;
    out
}

fn raw(f: &Fixture, cid: &Cid) -> Vec<u8> {
    f.ledger.store().get(cid).unwrap().unwrap().into_bytes()
}

/// Points stream a's head at `cid` and `height`, without any check.
fn set_head(f: &Fixture, cid: Cid, height: u64) {
    f.ledger
        .store()
        .set_head_unchecked(&f.a, Head { cid, height })
        .unwrap();
}

/// Removes the block stored under `cid`; the damage to expect.
fn remove_stored(f: &Fixture, cid: Cid) -> Vec<(&'static str, Cid)> {
    assert!(f.ledger.store().remove(&cid).unwrap());
    vec![("missing-block", cid)]
}

/// Flips one bit of the block stored under `cid`, in place; the damage to expect.
fn flip_stored(f: &Fixture, cid: Cid, at: usize) -> Vec<(&'static str, Cid)> {
    let flipped = flip(&raw(f, &cid), at);
    f.ledger.store().insert_unchecked(&cid, &flipped).unwrap();
    vec![("cid-mismatch", cid)]
}

/// Applies `tamper`, then requires exit code 1 and every `(check, cid)` it returns among the
/// failures, for the whole store and (when the damage is visible from stream a) for stream a.
fn check(
    name: &str,
    tamper: impl FnOnce(&Fixture) -> Vec<(&'static str, Cid)>,
    stream_scope_too: bool,
) {
    let f = fixture();
    let (f, code, failures) = verify_cli(f, None);
    assert_eq!(
        (code, failures.len()),
        (0, 0),
        "{name}: the untouched fixture verifies: {failures:?}"
    );
    let expected = tamper(&f);
    let a = f.a.clone();
    let mut scopes = vec![None];
    if stream_scope_too {
        scopes.push(Some(a));
    }
    let mut f = f;
    for scope in scopes {
        let (again, code, failures) = verify_cli(f, scope.as_ref());
        f = again;
        assert_eq!(
            code, 1,
            "{name} ({scope:?}): exit code; failures {failures:?}"
        );
        for (check, cid) in &expected {
            let hit = failures
                .iter()
                .any(|(c, x)| c == check && *x == cid.to_string());
            assert!(
                hit,
                "{name} ({scope:?}): no {check} failure for {cid}; got {failures:#?}"
            );
        }
    }
}

#[test]
fn flipped_byte_in_an_event_block() {
    check("event byte", |f| flip_stored(f, f.a_events[2], 40), true);
}

#[test]
fn flipped_byte_in_a_payload_block() {
    check("payload byte", |f| flip_stored(f, f.a_payloads[3], 3), true);
}

#[test]
fn removed_event_block() {
    check("removed event", |f| remove_stored(f, f.a_events[1]), true);
}

#[test]
fn removed_payload_block() {
    check(
        "removed payload",
        |f| remove_stored(f, f.a_payloads[4]),
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
            set_head(f, other, 4);
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
            set_head(f, forged.cid(), 4);
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
            set_head(f, f.a_events[2], 2);
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
            set_head(f, f.a_events[4], 7);
            vec![("head-mismatch", f.a_events[4])]
        },
        true,
    );
}

#[test]
fn removed_genesis_block() {
    check("removed genesis", |f| remove_stored(f, f.a_events[0]), true);
}
