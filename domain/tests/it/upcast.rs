//! A chain written with older event schema versions (`fixtures/golden/person-v1-chain.json`,
//! signed with the fixture key) still verifies and replays to the right state.
//!
//! `PERSONCTL_BLESS=1` rewrites the fixture from the code below and then fails on purpose.

use personctl_domain::event::{email_added_v1_payload, registered_v1_payload};
use personctl_domain::lifecycle::Lifecycle;
use personctl_domain::model::Email;
use personctl_domain::{PersonId, Persons};
use personctl_ledger::{
    verify, Block, BlockStore, Cid, Commit, Draft, Expected, Head, HeadUpdate, Ipld, Ledger,
    MemoryStore, Payload, TrustSet, VerifyOptions,
};
use serde::{Deserialize, Serialize};

use crate::fixture_signer;

#[derive(Serialize, Deserialize)]
struct Fixture {
    note: String,
    person: String,
    head: String,
    height: u64,
    blocks: Vec<FixtureBlock>,
}

#[derive(Serialize, Deserialize)]
struct FixtureBlock {
    cid: String,
    hex: String,
}

fn path() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/golden/person-v1-chain.json")
}

fn person() -> PersonId {
    PersonId::from_uuid(uuid::Uuid::from_u128(
        0x0191_0000_0000_7000_8000_0000_0000_0001,
    ))
}

/// Writes the old chain: PersonRegistered v1 (`name`), EmailAdded v1 (`email`), then a current
/// PersonRenamed v1.
fn build() -> Fixture {
    let ledger = Ledger::new(MemoryStore::new());
    let signer = fixture_signer();
    let stream = person().stream();
    let map = |entries: &[(&str, &str)]| {
        Ipld::Map(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), Ipld::String(v.to_string())))
                .collect(),
        )
    };
    let events: Vec<(&str, u64, Ipld)> = vec![
        (
            "PersonRegistered",
            1,
            registered_v1_payload(person(), "Ada Byron"),
        ),
        ("EmailAdded", 1, email_added_v1_payload("ada@example.org")),
        (
            "PersonRenamed",
            1,
            map(&[
                ("old", "Ada Byron"),
                ("new", "Ada Lovelace"),
                ("reason", "marriage"),
            ]),
        ),
    ];
    let mut head = None;
    for (i, (ty, schema, data)) in events.into_iter().enumerate() {
        let mut d = Draft::new(stream.clone(), ty, schema);
        d.expected = if i == 0 {
            Expected::Empty
        } else {
            Expected::Height(i as u64 - 1)
        };
        d.payload = Some(Payload::with_salt(data, vec![i as u8 + 0x40; 16]).unwrap());
        d.time_us = Some(1_600_000_000_000_000 + i as u64);
        d.correlation = Some(uuid::Uuid::from_u128(
            0x0191_0000_0000_7000_8000_0000_0000_1000 + i as u128,
        ));
        head = Some(ledger.append(&signer, d).unwrap());
    }
    let head = head.unwrap();
    let mut blocks = Vec::new();
    ledger
        .store()
        .scan(&mut |b| {
            let b = b.unwrap();
            blocks.push(FixtureBlock {
                cid: b.cid().to_string(),
                hex: hex::encode(b.bytes()),
            });
            true
        })
        .unwrap();
    Fixture {
        note: "person chain with PersonRegistered v1 and EmailAdded v1, fixture key (seed 0x01..0x20); see domain/tests/it/upcast.rs".into(),
        person: person().to_string(),
        head: head.cid.to_string(),
        height: head.height,
        blocks,
    }
}

#[test]
fn an_old_chain_verifies_and_replays_through_the_upcasters() {
    if std::env::var_os("PERSONCTL_BLESS").is_some() {
        std::fs::write(
            path(),
            serde_json::to_string_pretty(&build()).unwrap() + "\n",
        )
        .unwrap();
        panic!(
            "wrote {}; re-run without PERSONCTL_BLESS and commit it with a reason",
            path().display()
        );
    }
    let fixture: Fixture = serde_json::from_str(&std::fs::read_to_string(path()).unwrap()).unwrap();
    let store = MemoryStore::new();
    let mut commit = Commit::default();
    for b in &fixture.blocks {
        let cid: Cid = b.cid.parse().unwrap();
        commit
            .blocks
            .push(Block::verified(cid, hex::decode(&b.hex).unwrap()).unwrap());
    }
    let id: PersonId = fixture.person.parse().unwrap();
    let head = Head {
        cid: fixture.head.parse().unwrap(),
        height: fixture.height,
    };
    commit.heads.push(HeadUpdate {
        stream: id.stream(),
        expected: None,
        new: head,
    });
    store.commit(&commit).unwrap();

    let trust: TrustSet = [fixture_signer().author()].into_iter().collect();
    assert!(verify(&store, &trust, &VerifyOptions::default(), &|_| {})
        .unwrap()
        .is_ok());

    let persons = Persons::new(Ledger::new(&store));
    let schemas: Vec<(String, u64)> = persons
        .ledger()
        .walk_forward(&id.stream())
        .unwrap()
        .map(|e| e.map(|e| (e.event_type().to_string(), e.schema())).unwrap())
        .collect();
    assert_eq!(
        schemas[0],
        ("PersonRegistered".to_string(), 1),
        "the fixture holds old versions"
    );
    assert_eq!(schemas[1], ("EmailAdded".to_string(), 1));

    let person = persons.replay(id, None).unwrap().person.unwrap();
    assert_eq!(person.identity.legal_name, "Ada Lovelace");
    assert_eq!(person.lifecycle, Lifecycle::Active);
    assert_eq!(
        person.contact.unwrap().emails,
        vec![Email {
            address: "ada@example.org".into(),
            verified: false
        }]
    );
    assert_eq!(
        persons
            .replay(id, Some(personctl_domain::At::Height(0)))
            .unwrap()
            .person
            .unwrap()
            .identity
            .legal_name,
        "Ada Byron"
    );
}

#[test]
fn unknown_versions_and_types_are_errors_not_guesses() {
    use personctl_domain::event::{decode, DecodeError};
    let data = Payload::with_salt(registered_v1_payload(person(), "x"), vec![7; 16])
        .unwrap()
        .to_block()
        .unwrap();
    assert!(matches!(
        decode("PersonRegistered", 3, Some(&data)),
        Err(DecodeError::UnknownSchema {
            schema: 3,
            known: 2,
            ..
        })
    ));
    assert!(matches!(
        decode("PersonTeleported", 1, Some(&data)),
        Err(DecodeError::UnknownType(_))
    ));
    assert!(
        matches!(
            decode("PersonRegistered", 2, Some(&data)),
            Err(DecodeError::Payload { .. })
        ),
        "v1 fields under v2"
    );
}
