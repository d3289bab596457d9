//! Golden vectors: a fixed key and fixed inputs give exact block bytes, CIDs and signatures.
//!
//! The expected values live in `fixtures/golden/ledger-v1.json`. `PERSONCTL_BLESS=1` rewrites
//! that file and then fails on purpose: changing it is a wire-format change.

use personctl_ledger::{
    signing_message, BlockStore, Cid, Draft, Event, Expected, Ipld, Ledger, MemoryStore, Payload,
    Signer, StreamId,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::fixtures;

/// The key seed of every fixture: bytes 0x01 to 0x20.
pub(crate) fn fixture_signer() -> Signer {
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = i as u8 + 1;
    }
    Signer::from_seed(seed)
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Golden {
    author: String,
    blocks: Vec<GoldenBlock>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct GoldenBlock {
    name: String,
    cid: String,
    hex: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signed_hex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signature: Option<String>,
}

fn salt(n: u8) -> Vec<u8> {
    (0..16)
        .map(|i| n.wrapping_mul(16).wrapping_add(i))
        .collect()
}

fn map(entries: &[(&str, Ipld)]) -> Ipld {
    Ipld::Map(
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

fn build() -> Golden {
    build_ledger().1
}

/// The golden ledger (in memory) and its blocks as the golden file lists them.
fn build_ledger() -> (Ledger<MemoryStore>, Golden) {
    let signer = fixture_signer();
    let ledger = Ledger::new(MemoryStore::new());
    let person: StreamId = "person/golden-1".parse().unwrap();
    let org: StreamId = "org/golden-2".parse().unwrap();
    let draft = |stream: &StreamId,
                 expected,
                 ty: &str,
                 n: u8,
                 payload: Option<Payload>,
                 causes: Vec<Cid>| Draft {
        stream: stream.clone(),
        expected,
        event_type: ty.to_string(),
        schema: 1,
        payload,
        causes,
        correlation: Some(Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0001)),
        causation: Some(Uuid::from_u128(
            0x0192_0000_0000_7000_8000_0000_0000_0100 + n as u128,
        )),
        time_us: Some(1_700_000_000_000_000 + n as u64 * 1_000_000),
    };
    let p1 = Payload::with_salt(
        map(&[("legal_name", Ipld::String("Ada Lovelace".into()))]),
        salt(1),
    )
    .unwrap();
    let a = ledger
        .append(
            &signer,
            draft(
                &person,
                Expected::Empty,
                "PersonRegistered",
                1,
                Some(p1),
                vec![],
            ),
        )
        .unwrap();
    let b = ledger
        .append(
            &signer,
            draft(
                &person,
                Expected::Height(0),
                "PersonSuspended",
                2,
                None,
                vec![],
            ),
        )
        .unwrap();
    let p3 =
        Payload::with_salt(map(&[("member", Ipld::String("golden-1".into()))]), salt(3)).unwrap();
    let c = ledger
        .append(
            &signer,
            draft(
                &org,
                Expected::Empty,
                "MemberAdded",
                3,
                Some(p3),
                vec![b.cid],
            ),
        )
        .unwrap();

    // Floats: whole floats stay floats (docs/FORMAT.md, Encoding).
    let p4 = Payload::with_salt(
        map(&[
            ("score", Ipld::Float(2.0)),
            ("offset", Ipld::Float(0.0)),
            ("ratio", Ipld::Float(0.5)),
        ]),
        salt(4),
    )
    .unwrap();
    let d = ledger
        .append(
            &signer,
            draft(
                &person,
                Expected::Height(1),
                "ScoreRecorded",
                4,
                Some(p4),
                vec![],
            ),
        )
        .unwrap();
    // A tombstone masking that payload, as the erasure API writes it.
    let tombstone = personctl_ledger::Tombstone {
        masks: vec![d.payload.unwrap()],
        reason: "golden erasure".into(),
        scope: "component:score".into(),
    };
    let mut t_draft = tombstone.draft(person.clone()).unwrap();
    let salted =
        Payload::with_salt(t_draft.payload.take().unwrap().data().clone(), salt(5)).unwrap();
    t_draft.payload = Some(salted);
    t_draft.expected = Expected::Height(2);
    t_draft.correlation = Some(Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0001));
    t_draft.causation = Some(Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0105));
    t_draft.time_us = Some(1_700_000_005_000_000);
    let t = ledger.append(&signer, t_draft).unwrap();

    let mut blocks = Vec::new();
    let mut push = |name: &str, cid: Cid| {
        let block = ledger.store().get(&cid).unwrap().unwrap();
        let (signed_hex, signature) = match Event::decode(&block) {
            Ok(ev) => (
                Some(hex::encode(signing_message(block.bytes()).unwrap())),
                Some(hex::encode(ev.signature().0)),
            ),
            Err(_) => (None, None),
        };
        blocks.push(GoldenBlock {
            name: name.into(),
            cid: cid.to_string(),
            hex: hex::encode(block.bytes()),
            signed_hex,
            signature,
        });
    };
    push("payload of person/golden-1 at 0", a.payload.unwrap());
    push("person/golden-1 at 0 (genesis, PersonRegistered)", a.cid);
    push("person/golden-1 at 1 (PersonSuspended, no payload)", b.cid);
    push("payload of org/golden-2 at 0", c.payload.unwrap());
    push(
        "org/golden-2 at 0 (MemberAdded, causes person/golden-1 at 1)",
        c.cid,
    );
    push(
        "payload of person/golden-1 at 2 (floats: 2.0, 0.0, 0.5)",
        d.payload.unwrap(),
    );
    push("person/golden-1 at 2 (ScoreRecorded)", d.cid);
    push(
        "payload of person/golden-1 at 3 (a tombstone)",
        t.payload.unwrap(),
    );
    push(
        "person/golden-1 at 3 (Tombstone, masks the payload at 2)",
        t.cid,
    );
    let golden = Golden {
        author: signer.author().to_string(),
        blocks,
    };
    (ledger, golden)
}

#[test]
fn golden_vectors_are_reproduced_exactly() {
    let path = fixtures().join("golden/ledger-v1.json");
    let built = build();
    if std::env::var_os("PERSONCTL_BLESS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&built).unwrap() + "\n").unwrap();
        panic!(
            "wrote {}; re-run without PERSONCTL_BLESS and commit it with a reason",
            path.display()
        );
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let expected: Golden = serde_json::from_str(&text).unwrap();
    assert_eq!(built.author, expected.author);
    assert_eq!(built.blocks.len(), expected.blocks.len());
    for (b, e) in built.blocks.iter().zip(&expected.blocks) {
        assert_eq!(b, e, "golden block {:?} changed", e.name);
    }
}

#[test]
fn golden_blocks_decode_verify_and_hash_to_their_cids() {
    let text = std::fs::read_to_string(fixtures().join("golden/ledger-v1.json")).unwrap();
    let golden: Golden = serde_json::from_str(&text).unwrap();
    let author: personctl_ledger::Author = golden.author.parse().unwrap();
    for g in &golden.blocks {
        let bytes = hex::decode(&g.hex).unwrap();
        let cid: Cid = g.cid.parse().unwrap();
        let block = personctl_ledger::Block::verified(cid, bytes).unwrap();
        if let Some(sig) = &g.signature {
            let event = Event::decode(&block).unwrap();
            assert_eq!(event.author(), &author);
            assert_eq!(hex::encode(event.signature().0), *sig);
            let signed = hex::decode(g.signed_hex.as_ref().unwrap()).unwrap();
            assert!(signed.starts_with(personctl_ledger::SIGNING_PREFIX));
            assert!(author.verify(&signed, event.signature()), "{}", g.name);
        } else {
            Payload::decode(&block).unwrap();
        }
    }
}

/// The golden ledger as a CAR archive (`fixtures/golden/archive-v1.car`): two streams, one
/// naming the other in `causes`, a tombstone and its masked payload left out. Exact bytes, and
/// it verifies on its own against the fixture key.
#[cfg(feature = "car")]
#[test]
fn golden_archive_is_reproduced_exactly_and_verifies() {
    let (ledger, _) = build_ledger();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut bytes = Vec::new();
    runtime
        .block_on(personctl_ledger::car::export(
            ledger.store(),
            None,
            &mut bytes,
        ))
        .unwrap();
    let path = fixtures().join("golden/archive-v1.car");
    if std::env::var_os("PERSONCTL_BLESS").is_some() {
        std::fs::write(&path, &bytes).unwrap();
        panic!(
            "wrote {}; re-run without PERSONCTL_BLESS and commit it with a reason",
            path.display()
        );
    }
    let expected = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes == expected, "the golden archive changed");
    let archive = runtime
        .block_on(personctl_ledger::car::read(expected.as_slice()))
        .unwrap();
    let trust = [fixture_signer().author()].into_iter().collect();
    let report = archive.verify(&trust, false).unwrap();
    assert!(report.is_ok(), "{:?}", report.findings);
    assert_eq!(
        report.masked.len(),
        1,
        "the tombstone's masked payload is left out"
    );
    assert_eq!(archive.roots().len(), 2);
}
