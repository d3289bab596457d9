//! GDPR erasure end to end: `personctl erase` of one component and of a whole person, on the
//! embedded store and with JetStream. Chains still verify, replay shows the skeleton, the audit
//! trail says who erased what and why, and no erased value is left in any file of the data
//! directory or of the JetStream server.

use std::path::PathBuf;

use personctl_ledger::{BlockStore, Cid, Ledger, SledStore, StreamId, Tombstone};
use serde_json::{json, Value};

use crate::nats::NatsServer;
use crate::{commands, fixture_signer, holding, keyed, ok, Home, Run};

const NAME: &str = "Zelda Quarrington";
const EMAIL: &str = "zelda.quarrington@private.example";
const PHONE_1: &str = "+447700900111";
const PHONE_2: &str = "+447700900222";
const BIRTH: &str = "1987-06-05";
const OTHER: &str = "Yannick Brightwater";

/// Registers person `a` with every personal value above and person `b` with a name.
fn people(home: &Home, nats: &[&str], a: &str, b: &str) {
    let lines = [
        json!({"person": a, "command": "register", "legal_name": NAME}),
        json!({"person": a, "command": "add-email", "address": EMAIL}),
        json!({"person": a, "command": "add-phone", "number": PHONE_1}),
        json!({"person": a, "command": "add-phone", "number": PHONE_2}),
        json!({"person": a, "command": "set-birth-date", "date": BIRTH}),
        json!({"person": a, "command": "verify-email", "address": EMAIL}),
        json!({"person": b, "command": "register", "legal_name": OTHER}),
    ];
    // The command file lives outside the data directory, which the tests search.
    let scratch = Home::new();
    let file = commands(&scratch, "people.jsonl", &lines);
    let mut args = nats.to_vec();
    args.extend(["append", "--file", file.to_str().unwrap()]);
    ok(&home.run(&args));
}

/// Runs `erase ARGS` (with `nats` options) and returns its one `erased` record.
fn erase(home: &Home, nats: &[&str], args: &[&str]) -> Value {
    let mut all = nats.to_vec();
    all.extend(["--json", "erase"]);
    all.extend(args);
    erased(&home.run(&all))
}

/// The one `erased` record of a `--json erase` run.
fn erased(run: &Run) -> Value {
    let records = ok(run).records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].0, "erased");
    records[0].1.clone()
}

/// `verify --json`: exit code, masked records, summary.
fn audit(home: &Home, nats: &[&str]) -> (i32, Vec<Value>, Value) {
    let mut args = nats.to_vec();
    args.extend(["--json", "verify"]);
    let run = home.run(&args);
    let summary = run.records().last().unwrap().1.clone();
    (run.code, run.of_type("masked"), summary)
}

fn replayed(home: &Home, nats: &[&str], id: &str) -> Value {
    let mut args = nats.to_vec();
    args.extend(["--json", "replay", "--person", id]);
    let records = ok(&home.run(&args)).records();
    records[0].1.clone()
}

#[test]
fn erasing_a_component_then_the_person_keeps_the_chain_verifiable_and_leaves_no_value_on_disk() {
    let (home, _) = keyed();
    let (a, b) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    people(&home, &[], &a, &b);
    for value in [NAME, EMAIL, PHONE_1, PHONE_2, BIRTH, OTHER] {
        assert!(!holding(home.path(), value).is_empty(), "{value} stored");
    }

    // One phone number.
    let one = erase(
        &home,
        &[],
        &[
            "--person",
            &a,
            "--component",
            "phone:+44 7700 900111",
            "--reason",
            "ticket 17: number reassigned",
        ],
    );
    let t1 = one["tombstone"].as_str().unwrap().to_string();
    assert_eq!(
        (one["masked"].clone(), one["removed"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(holding(home.path(), PHONE_1), Vec::<PathBuf>::new());
    assert!(
        !holding(home.path(), PHONE_2).is_empty(),
        "the other phone stays"
    );
    let (code, masked, summary) = audit(&home, &[]);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(masked.len(), 1);
    assert_eq!(masked[0]["tombstone"], t1.as_str());
    let p = replayed(&home, &[], &a);
    assert_eq!(p["lifecycle"], "Active");
    let phones = p["contact"]["phones"].to_string();
    assert!(
        phones.contains(PHONE_2) && !phones.contains("900111"),
        "{phones}"
    );
    assert_eq!(p["legal_name"], NAME);

    // The whole person.
    let all = erase(
        &home,
        &[],
        &["--person", &a, "--reason", "GDPR Art. 17, ticket 18"],
    );
    let t2 = all["tombstone"].as_str().unwrap().to_string();
    // Registered, email added, the other phone, birth date, email verified.
    assert_eq!(all["masked"], 5);
    for value in [NAME, EMAIL, PHONE_1, PHONE_2, BIRTH] {
        assert_eq!(
            holding(home.path(), value),
            Vec::<PathBuf>::new(),
            "{value}"
        );
    }
    assert!(
        !holding(home.path(), OTHER).is_empty(),
        "others are untouched"
    );
    let (code, masked, summary) = audit(&home, &[]);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["masked"], 6);
    assert_eq!(masked.len(), 6);
    assert_eq!(
        masked
            .iter()
            .filter(|m| m["tombstone"] == t2.as_str())
            .count(),
        5
    );

    // Replay: the skeleton.
    let p = replayed(&home, &[], &a);
    assert_eq!(p["lifecycle"], "Erased");
    assert_eq!(p["legal_name"], "[masked]");
    assert_eq!(p["contact"], Value::Null);
    assert_eq!(p["birth_date"], Value::Null);
    let events = p["events"].as_array().unwrap();
    let shape: Vec<(u64, &str, bool)> = events
        .iter()
        .map(|e| {
            (
                e["height"].as_u64().unwrap(),
                e["type"].as_str().unwrap(),
                e["masked"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (0, "PersonRegistered", true),
            (1, "EmailAdded", true),
            (2, "PhoneAdded", true),
            (3, "PhoneAdded", true),
            (4, "BirthDateSet", true),
            (5, "EmailVerified", true),
            (6, "Tombstone", false),
            (7, "Tombstone", false),
        ]
    );
    assert_eq!(events[7]["cid"], t2.as_str());

    // The audit trail: who erased what, when and why.
    let log = ok(&home.run(&["--json", "log", "--person", &a])).records();
    let last = &log.last().unwrap().1;
    assert_eq!(last["cid"], t2.as_str());
    assert_eq!(last["erasure"]["reason"], "GDPR Art. 17, ticket 18");
    assert_eq!(last["erasure"]["scope"], "person");
    assert_eq!(last["erasure"]["masks"].as_array().unwrap().len(), 5);
    assert!(last["author"].as_str().unwrap().starts_with("did:key:"));
    assert!(last["time"].as_str().is_some());
    assert_eq!(log[2].1["masked_by"], t1.as_str());
    let human = ok(&home.run(&["log", "--person", &a])).stdout.clone();
    assert!(
        human.contains("erased component:phone") && human.contains("GDPR Art. 17, ticket 18"),
        "{human}"
    );

    // Erasing again is harmless; nothing else may follow.
    for args in [
        vec!["--json", "erase", "--person", &a, "--reason", "again"],
        vec![
            "--json",
            "erase",
            "--person",
            &a,
            "--component",
            "email",
            "--reason",
            "again",
        ],
    ] {
        let again = erased(&home.run(&args));
        assert_eq!(again["tombstone"], Value::Null);
    }
    let unknown = uuid::Uuid::now_v7().to_string();
    home.expect_errors(&[
        (
            &[
                "append",
                "add-email",
                "--person",
                &a,
                "--address",
                "z@new.example",
            ],
            "state Erased",
        ),
        (
            &["erase", "--person", &unknown, "--reason", "r"],
            "no person",
        ),
        (&["erase", "--person", &b, "--reason", "  "], "reason"),
        (
            &[
                "erase",
                "--person",
                &b,
                "--component",
                "shoe",
                "--reason",
                "r",
            ],
            "unknown kind \"shoe\"",
        ),
        (
            &["erase", "--person", "not-a-uuid", "--reason", "r"],
            "not a person id",
        ),
    ]);
    let (code, _, _) = audit(&home, &[]);
    assert_eq!(code, 0);
}

#[test]
fn a_payload_deleted_without_a_tombstone_fails_and_an_unfinished_erasure_is_finished_by_gc() {
    let (home, _) = keyed();
    let (a, b) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    people(&home, &[], &a, &b);
    ok(&home.run(&["trust", "add", &fixture_signer().author().to_string()]));
    let stream_b: StreamId = format!("person/{b}").parse().unwrap();

    // A tombstone appended without the purge (as after a crash between the two).
    let b_name = {
        let store = SledStore::open(home.store_path()).unwrap();
        let ledger = Ledger::new(store);
        let head = ledger.store().head(&stream_b).unwrap().unwrap();
        let name = ledger.event(&head.cid).unwrap().payload().unwrap();
        let tombstone = Tombstone {
            masks: vec![name],
            reason: "test".into(),
            scope: "person".into(),
        };
        ledger
            .append(
                &fixture_signer(),
                tombstone.draft(stream_b.clone()).unwrap(),
            )
            .unwrap();
        name
    };
    let run = home.run(&["--json", "verify"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let failures: Vec<Value> = run
        .records()
        .into_iter()
        .filter(|(t, _)| t == "failure")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["check"], "unpurged");
    assert_eq!(failures[0]["cid"], b_name.to_string());
    assert!(!holding(home.path(), OTHER).is_empty());
    let gc = ok(&home.run(&["--json", "gc"])).records();
    assert_eq!(gc[0].1["removed"], 1);
    assert_eq!(holding(home.path(), OTHER), Vec::<PathBuf>::new());
    let (code, masked, _) = audit(&home, &[]);
    assert_eq!((code, masked.len()), (0, 1));

    // A payload removed without any tombstone: a failure naming it.
    let email: Cid = {
        let store = SledStore::open(home.store_path()).unwrap();
        let ledger = Ledger::new(store);
        let chain = ledger
            .chain(&format!("person/{a}").parse().unwrap())
            .unwrap();
        let email = ledger.event(&chain[1]).unwrap().payload().unwrap();
        assert!(ledger.store().remove(&email).unwrap());
        email
    };
    let run = home.run(&["--json", "verify"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let failures: Vec<(String, String)> = run
        .records()
        .into_iter()
        .filter(|(t, _)| t == "failure")
        .map(|(_, d)| {
            (
                d["check"].as_str().unwrap().to_string(),
                d["cid"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(failures, [("missing-block".to_string(), email.to_string())]);
}

#[test]
fn erasure_with_jetstream_reaches_the_bucket_and_every_replica() {
    let server = NatsServer::start();
    let url = server.url();
    let nats = ["--nats", url.as_str()];
    let (writer, did) = keyed();
    let (a, b) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    people(&writer, &nats, &a, &b);
    // A replica that has read the person (and so holds its blocks).
    let replica = Home::new();
    ok(&replica.run(&["trust", "add", &did]));
    assert_eq!(replayed(&replica, &nats, &a)["legal_name"], NAME);
    assert!(!holding(replica.path(), EMAIL).is_empty());
    assert!(!holding(server.store_dir(), EMAIL).is_empty());

    // One component, then the whole person.
    let phone = format!("phone:{PHONE_1}");
    let one = erase(
        &writer,
        &nats,
        &[
            "--person",
            &a,
            "--component",
            &phone,
            "--reason",
            "number reassigned",
        ],
    );
    assert_eq!(
        (one["masked"].clone(), one["erased_from_bucket"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(holding(server.store_dir(), PHONE_1), Vec::<PathBuf>::new());
    assert!(!holding(server.store_dir(), PHONE_2).is_empty());
    let all = erase(
        &writer,
        &nats,
        &["--person", &a, "--reason", "GDPR Art. 17"],
    );
    assert_eq!(all["masked"], 5);
    assert_eq!(all["erased_from_bucket"], 5);
    for value in [NAME, EMAIL, PHONE_1, PHONE_2, BIRTH] {
        for dir in [writer.path(), server.store_dir()] {
            assert_eq!(holding(dir, value), Vec::<PathBuf>::new(), "{value}");
        }
    }
    assert!(
        !holding(server.store_dir(), OTHER).is_empty(),
        "others stay"
    );

    // The replica pulls the tombstone and removes its own copies.
    let p = replayed(&replica, &nats, &a);
    assert_eq!(p["lifecycle"], "Erased");
    for value in [NAME, EMAIL, PHONE_1, PHONE_2, BIRTH] {
        assert_eq!(
            holding(replica.path(), value),
            Vec::<PathBuf>::new(),
            "{value}"
        );
    }
    // A fresh reader rebuilds the skeleton from JetStream and the bucket alone.
    let fresh = Home::new();
    ok(&fresh.run(&["trust", "add", &did]));
    assert_eq!(replayed(&fresh, &nats, &a), p);
    for home in [&writer, &replica, &fresh] {
        // Level with JetStream (the readers pulled only person a), then cross-checked.
        ok(&home.run(&["--nats", &url, "sync"]));
        let (code, masked, summary) = audit(home, &nats);
        assert_eq!(code, 0, "{summary}");
        assert_eq!(masked.len(), 6);
    }
    // Erasing twice (and gc) is harmless.
    let again = erased(&writer.run(&[
        "--nats", &url, "--json", "erase", "--person", &a, "--reason", "x",
    ]));
    assert_eq!(
        (
            again["tombstone"].clone(),
            again["erased_from_bucket"].clone()
        ),
        (Value::Null, json!(0))
    );
    let gc = ok(&writer.run(&["--nats", &url, "--json", "gc"])).records();
    assert_eq!(gc[0].1, json!({"removed": 0, "erased_from_bucket": 0}));
}
