//! Identities (issue 20): inception, pre-rotation, revocation from a log position, and trust by
//! identity, judged by `verify`.

use personctl_ledger::identity::{identity_id, next_digest, KEY_ROTATED, KEY_SCHEMA};
use personctl_ledger::{
    verify, BlockStore, Draft, Expected, Ipld, Ledger, MemoryStore, Report, Signer, StreamId,
    TrustSet, VerifyOptions,
};

fn key() -> Signer {
    Signer::generate().unwrap()
}

fn touch(ledger: &Ledger<MemoryStore>, signer: &Signer, n: u32) -> personctl_ledger::Cid {
    let stream: StreamId = "thing/t1".parse().unwrap();
    let draft = Draft::new(stream, "Touched", 1)
        .with_data(Ipld::Integer(n.into()))
        .unwrap();
    ledger.append(signer, draft).unwrap().cid
}

fn codes(report: &Report) -> Vec<(Option<personctl_ledger::Cid>, &'static str)> {
    report
        .findings
        .iter()
        .map(|f| (f.cid, f.problem.code()))
        .collect()
}

fn check(ledger: &Ledger<MemoryStore>, trust: &TrustSet) -> Report {
    verify(ledger.store(), trust, &VerifyOptions::default(), &|_| ()).unwrap()
}

#[test]
fn a_rotated_identity_keeps_its_history_and_drops_its_old_key() {
    let ledger = Ledger::new(MemoryStore::new());
    let (first, second, third) = (key(), key(), key());
    let id = ledger.incept_identity(&first, &second.author()).unwrap();
    assert_eq!(
        id,
        identity_id(&first.author(), &next_digest(&second.author()))
    );
    assert_eq!(id.aggregate(), "key");
    let before = touch(&ledger, &first, 1);
    // Trust by identity alone: no raw key is trusted.
    let trust = TrustSet::new().with_identity(id.clone());
    assert!(
        check(&ledger, &trust).findings.is_empty(),
        "{:?}",
        codes(&check(&ledger, &trust))
    );

    let rotated = ledger
        .rotate_identity(&id, &second, &third.author())
        .unwrap();
    assert_eq!(rotated.current(), &second.author());
    let after = touch(&ledger, &second, 2);
    assert!(check(&ledger, &trust).findings.is_empty());
    // The old key after the rotation: revoked-key; its events before stay valid.
    let stale = touch(&ledger, &first, 3);
    assert_eq!(
        codes(&check(&ledger, &trust)),
        [(Some(stale), "revoked-key")]
    );
    let _ = (before, after);
    // Not trusting the identity: every event is untrusted.
    let none = check(&ledger, &TrustSet::new());
    assert!(none
        .findings
        .iter()
        .all(|f| f.problem.code() == "untrusted-author" || f.problem.code() == "revoked-key"));
    assert!(none.findings.len() >= 5);
}

#[test]
fn a_thief_of_the_current_key_cannot_rotate() {
    let ledger = Ledger::new(MemoryStore::new());
    let (current, next, thief_next) = (key(), key(), key());
    let id = ledger.incept_identity(&current, &next.author()).unwrap();
    // Through the library: refused up front.
    assert!(ledger
        .rotate_identity(&id, &current, &thief_next.author())
        .is_err());
    assert!(ledger
        .rotate_identity(&id, &thief_next, &thief_next.author())
        .is_err());
    // Written by hand with the stolen key: verify names it.
    #[derive(serde::Serialize)]
    struct Establish {
        key: serde_bytes::ByteBuf,
        next: serde_bytes::ByteBuf,
    }
    let forged = Draft::new(id.clone(), KEY_ROTATED, KEY_SCHEMA)
        .with_value(&Establish {
            key: serde_bytes::ByteBuf::from(thief_next.author().to_bytes().to_vec()),
            next: serde_bytes::ByteBuf::from(next_digest(&thief_next.author()).to_vec()),
        })
        .unwrap()
        .expecting(Expected::Height(0));
    let cid = ledger.append(&thief_next, forged).unwrap().cid;
    let trust = TrustSet::new().with_identity(id);
    let report = check(&ledger, &trust);
    assert!(
        codes(&report).contains(&(Some(cid), "bad-key-event")),
        "{:?}",
        codes(&report)
    );
}

#[test]
fn a_revoked_key_is_valid_before_its_point_and_not_after() {
    let ledger = Ledger::new(MemoryStore::new());
    let (first, second, third) = (key(), key(), key());
    let id = ledger.incept_identity(&first, &second.author()).unwrap();
    let early = touch(&ledger, &first, 1);
    let point = ledger.log_size().unwrap();
    let late = touch(&ledger, &first, 2);
    // The owner rotates to the pre-committed key, then revokes the first from `point`.
    ledger
        .rotate_identity(&id, &second, &third.author())
        .unwrap();
    let identity = ledger
        .revoke_key(&id, &second, &first.author(), point)
        .unwrap();
    assert_eq!(identity.keys[0].revoked_from, Some(point));
    let trust = TrustSet::new().with_identity(id.clone());
    assert_eq!(
        codes(&check(&ledger, &trust)),
        [(Some(late), "revoked-key")]
    );
    let _ = early;
    // Only the current key may revoke.
    assert!(ledger.revoke_key(&id, &first, &second.author(), 0).is_err());
    // Raw trust in the revoked key does not bring it back.
    let raw: TrustSet = [first.author(), second.author()].into_iter().collect();
    assert!(codes(&check(&ledger, &raw)).contains(&(Some(late), "revoked-key")));
    // A store without identities verifies on raw keys as before.
    let plain = Ledger::new(MemoryStore::new());
    touch(&plain, &first, 1);
    let raw: TrustSet = [first.author()].into_iter().collect();
    assert!(check(&plain, &raw).findings.is_empty());
    assert_eq!(plain.store().heads().unwrap().len(), 1);
}

#[test]
fn grants_decide_who_may_write_and_append_refuses_the_others_up_front() {
    let ledger = Ledger::new(MemoryStore::new());
    let (admin_key, admin_next) = (key(), key());
    let (writer_key, writer_next) = (key(), key());
    let (other_key, other_next) = (key(), key());
    let admin = ledger
        .incept_identity(&admin_key, &admin_next.author())
        .unwrap();
    let writer = ledger
        .incept_identity(&writer_key, &writer_next.author())
        .unwrap();
    let other = ledger
        .incept_identity(&other_key, &other_next.author())
        .unwrap();
    let trust = TrustSet::new()
        .with_identity(admin.clone())
        .with_identity(writer.clone())
        .with_identity(other.clone());
    let before = touch(&ledger, &writer_key, 1);
    assert!(
        check(&ledger, &trust).findings.is_empty(),
        "no policy: trust alone"
    );

    ledger
        .grant_write(&admin, &admin_key, &writer, "thing", &[])
        .unwrap();
    let granted = touch(&ledger, &writer_key, 2);
    let stranger = touch(&ledger, &other_key, 3);
    let report = check(&ledger, &trust);
    let found = codes(&report);
    assert!(found.contains(&(Some(before), "unauthorized")), "{found:?}");
    assert!(
        found.contains(&(Some(stranger), "unauthorized")),
        "{found:?}"
    );
    assert!(!found.iter().any(|(c, _)| *c == Some(granted)), "{found:?}");
    assert_eq!(
        found.len(),
        2,
        "key and policy events are exempt: {found:?}"
    );
    // Only some event types.
    let typed = Ledger::new(MemoryStore::new());
    let a = typed
        .incept_identity(&admin_key, &admin_next.author())
        .unwrap();
    let w = typed
        .incept_identity(&writer_key, &writer_next.author())
        .unwrap();
    typed
        .grant_write(&a, &admin_key, &w, "thing", &["Renamed".to_string()])
        .unwrap();
    let t = TrustSet::new().with_identity(a).with_identity(w);
    touch(&typed, &writer_key, 1);
    assert_eq!(codes(&check(&typed, &t)).len(), 1, "Touched is not granted");

    // An untrusted admin's policy is not in force.
    let without_admin = TrustSet::new()
        .with_identity(writer.clone())
        .with_identity(other.clone());
    let report = check(&ledger, &without_admin);
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.problem.code() == "untrusted-author"
                && f.stream.as_ref().is_some_and(|s| s.aggregate() != "thing")),
        "only the admin's own chains are untrusted: {:?}",
        codes(&report)
    );

    // Withdrawn: later writes are unauthorized.
    ledger
        .revoke_write(&admin, &admin_key, &writer, "thing")
        .unwrap();
    let late = touch(&ledger, &writer_key, 4);
    assert!(codes(&check(&ledger, &trust)).contains(&(Some(late), "unauthorized")));
    // Only the admin's current key writes its policy.
    assert!(ledger
        .grant_write(&admin, &writer_key, &writer, "thing", &[])
        .is_err());

    // Enforced up front: nothing is written.
    let guarded = Ledger::new(ledger.into_store()).enforce_policies(trust.clone());
    let draft = Draft::new("thing/t1".parse().unwrap(), "Touched", 1)
        .with_data(Ipld::Integer(5))
        .unwrap();
    let size = guarded.log_size().unwrap();
    let err = guarded.append(&other_key, draft.clone()).unwrap_err();
    assert!(
        matches!(err, personctl_ledger::Error::Unauthorized { .. }),
        "{err}"
    );
    assert_eq!(guarded.log_size().unwrap(), size);
    guarded
        .grant_write(&admin, &admin_key, &other, "thing", &[])
        .unwrap();
    guarded.append(&other_key, draft).unwrap();
}

/// A key from seed bytes `first..first + 32`.
fn seeded(first: u8) -> Signer {
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = first.wrapping_add(i as u8);
    }
    Signer::from_seed(seed)
}

/// Key and policy events from fixed keys, salts, times and ids: an inception by the fixture
/// key, a rotation to the key of seed 33.., the fixture key revoked from position 5, and a
/// grant in the identity's own policy. docs/FORMAT.md documents the rules these follow.
fn golden_identity() -> serde_json::Value {
    use personctl_ledger::identity::{KEY_INCEPTED, KEY_REVOKED};
    use personctl_ledger::policy::{policy_stream, POLICY_SCHEMA, WRITE_GRANTED};
    use personctl_ledger::Payload;
    let (first, second, third) = (crate::golden::fixture_signer(), seeded(33), seeded(65));
    let ledger = Ledger::new(MemoryStore::new());
    let bytes = |b: &[u8]| Ipld::Bytes(b.to_vec());
    let map = |entries: Vec<(&str, Ipld)>| {
        Ipld::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    };
    let id = identity_id(&first.author(), &next_digest(&second.author()));
    let draft = |stream: &StreamId, expected, ty: &str, schema, n: u8, data: Ipld| Draft {
        stream: stream.clone(),
        expected,
        event_type: ty.to_string(),
        schema,
        payload: Some(Payload::with_salt(data, vec![n; 16]).unwrap()),
        causes: vec![],
        correlation: Some(uuid::Uuid::from_u128(
            0x0192_0000_0000_7000_8000_0000_0000_0002,
        )),
        causation: Some(uuid::Uuid::from_u128(
            0x0192_0000_0000_7000_8000_0000_0000_0200 + n as u128,
        )),
        time_us: Some(1_700_000_100_000_000 + n as u64 * 1_000_000),
    };
    let mut out = Vec::new();
    let mut push = |name: &str, appended: personctl_ledger::Appended| {
        for cid in [appended.payload.unwrap(), appended.cid] {
            let block = ledger.store().get(&cid).unwrap().unwrap();
            out.push(serde_json::json!({"name": name, "cid": cid.to_string(), "hex": hex::encode(block.bytes())}));
        }
    };
    let a = ledger
        .append(
            &first,
            draft(
                &id,
                Expected::Empty,
                KEY_INCEPTED,
                KEY_SCHEMA,
                1,
                map(vec![
                    ("key", bytes(&first.author().to_bytes())),
                    ("next", bytes(&next_digest(&second.author()))),
                ]),
            ),
        )
        .unwrap();
    push("KeyIncepted (payload, then event)", a);
    let b = ledger
        .append(
            &second,
            draft(
                &id,
                Expected::Height(0),
                KEY_ROTATED,
                KEY_SCHEMA,
                2,
                map(vec![
                    ("key", bytes(&second.author().to_bytes())),
                    ("next", bytes(&next_digest(&third.author()))),
                ]),
            ),
        )
        .unwrap();
    push("KeyRotated", b);
    let c = ledger
        .append(
            &second,
            draft(
                &id,
                Expected::Height(1),
                KEY_REVOKED,
                KEY_SCHEMA,
                3,
                map(vec![
                    ("key", bytes(&first.author().to_bytes())),
                    ("from", Ipld::Integer(5)),
                ]),
            ),
        )
        .unwrap();
    push("KeyRevoked", c);
    let d = ledger
        .append(
            &second,
            draft(
                &policy_stream(&id).unwrap(),
                Expected::Empty,
                WRITE_GRANTED,
                POLICY_SCHEMA,
                4,
                map(vec![
                    ("identity", Ipld::String(id.to_string())),
                    ("aggregate", Ipld::String("person".into())),
                    ("events", Ipld::List(vec![])),
                ]),
            ),
        )
        .unwrap();
    push("WriteGranted", d);
    // They follow the rules.
    let identity = ledger.identity(&id).unwrap();
    assert_eq!(identity.keys[0].revoked_from, Some(5));
    let trust = TrustSet::new().with_identity(id.clone());
    assert!(
        check(&ledger, &trust).findings.is_empty(),
        "{:?}",
        codes(&check(&ledger, &trust))
    );
    serde_json::json!({
        "identity": id.to_string(),
        "keys": [first.author().to_string(), second.author().to_string(), third.author().to_string()],
        "blocks": out,
    })
}

#[test]
fn key_and_policy_events_match_their_golden_vectors() {
    let path = crate::fixtures().join("golden/identity-v1.json");
    let computed = golden_identity();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing; it would be:\n{computed:#}", path.display()));
    let golden: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(golden, computed, "a wire-format change: {computed:#}");
}
