//! Identities through the real binary (issue 20): rotate then append, the old key after a
//! rotation, a thief with only the current key, revocation from a log position, and an archive
//! that carries the identity chain.

use serde_json::Value;

use crate::{ok, Home, Run};

/// A home with no trusted raw key and one identity, created and trusted; returns its id.
fn home_with_identity() -> (Home, String) {
    let home = Home::new();
    let run = home.run(&["--json", "identity", "create", "--label", "service"]);
    let id = ok(&run).records()[0].1["identity"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(id.starts_with("key/"), "{id}");
    (home, id)
}

fn register_as(home: &Home, key: &[&str], name: &str) -> String {
    let mut args = vec!["--json"];
    args.extend_from_slice(key);
    args.extend(["append", "register", "--legal-name", name]);
    ok(&home.run(&args)).records()[0].1["cid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The (cid, check) of every failure of `verify --json`.
fn failures(run: &Run) -> Vec<(String, String)> {
    run.of_type("failure")
        .iter()
        .map(|f| {
            (
                f["cid"].as_str().unwrap_or_default().to_string(),
                f["check"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn keys_dir(home: &Home, id: &str) -> std::path::PathBuf {
    home.path()
        .join("keys/identities")
        .join(id.strip_prefix("key/").unwrap())
}

#[test]
fn a_rotated_identity_signs_on_and_its_old_key_is_refused() {
    let (home, id) = home_with_identity();
    let as_id = ["--identity", id.as_str()];
    register_as(&home, &as_id, "Ada");
    ok(&home.run(&["verify"]));
    let old = home.path().join("old.pem");
    std::fs::copy(keys_dir(&home, &id).join("current.pem"), &old).unwrap();

    let rotated = home.run(&["--json", "identity", "rotate", "--id", &id]);
    let data = &ok(&rotated).records()[0].1;
    assert_eq!(data["keys"].as_array().unwrap().len(), 2);
    assert!(keys_dir(&home, &id).join("retired-1.pem").exists());
    register_as(&home, &as_id, "Bob");
    ok(&home.run(&["verify"]));

    // The old key, after the rotation.
    let stale = register_as(&home, &["--key", old.to_str().unwrap()], "Eve");
    let run = home.run(&["--json", "verify"]);
    assert_eq!(run.code, 1);
    assert_eq!(failures(&run), [(stale.clone(), "revoked-key".to_string())]);
    // show gives the key history; log names the identity of each event, and the stale one's
    // verdict.
    let show = home.run(&["identity", "show", "--id", &id]);
    assert!(ok(&show).stdout.contains("until"), "{}", show.stdout);
    let streams = ok(&home.run(&["--json", "streams"])).records();
    let mut signed_by_identity = 0;
    for (_, s) in streams {
        let stream = s["stream"].as_str().unwrap();
        if !stream.starts_with("person/") {
            continue;
        }
        let log = home.run(&["--json", "log", "--stream", stream]);
        let event = &log.of_type("event")[0];
        if event["cid"] == stale.as_str() {
            assert_eq!(log.code, 1);
            assert!(event["identity"].is_null(), "{event}");
            assert!(
                event["verdict"].as_str().unwrap().contains("rotated out"),
                "{event}"
            );
        } else {
            assert_eq!(event["identity"], id.as_str(), "{event}");
            signed_by_identity += 1;
        }
    }
    assert_eq!(signed_by_identity, 2);
    // A replay of everyone judges every author the same way and marks the stale event alone.
    let replay = ok(&home.run(&["--json", "replay"])).records();
    let marked: Vec<&serde_json::Value> = replay
        .iter()
        .filter(|(t, d)| t == "person" && d.get("untrusted_events").is_some())
        .map(|(_, d)| &d["untrusted_events"])
        .collect();
    assert_eq!(marked, [&serde_json::json!([stale])]);
    assert_eq!(replay.last().unwrap().1["untrusted_events"], 1);
}

#[test]
fn a_thief_with_only_the_current_key_cannot_rotate() {
    let (home, id) = home_with_identity();
    let stolen = keys_dir(&home, &id).join("current.pem");
    // Without the next key there is no rotation.
    let thief = Home::new();
    std::fs::create_dir_all(keys_dir(&thief, &id)).unwrap();
    std::fs::copy(&stolen, keys_dir(&thief, &id).join("current.pem")).unwrap();
    std::fs::remove_file(keys_dir(&home, &id).join("next.pem")).unwrap();
    let run = home.run(&["identity", "rotate", "--id", &id]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("next.pem"), "{}", run.stderr);
    // A rotation forged by hand with the stolen key: verify names it.
    let key = home.run(&["--json", "identity", "show", "--id", &id]);
    let current = ok(&key).records()[0].1["current"]
        .as_str()
        .unwrap()
        .to_string();
    let bytes = current
        .parse::<personctl_ledger::Author>()
        .unwrap()
        .to_bytes();
    let data = serde_json::json!({"key": {"/": {"bytes": base64_unpadded(&bytes)}}, "next": {"/": {"bytes": base64_unpadded(&[7u8; 32])}}});
    let forged = home.run(&[
        "--key",
        stolen.to_str().unwrap(),
        "append-event",
        "--stream",
        &id,
        "--type",
        "KeyRotated",
        "--data",
        &data.to_string(),
    ]);
    // (JSON carries no bytes: the forged payload's key is a map, as a careless forger's
    // would be; the library's tests forge a well-formed one.)
    ok(&forged);
    let run = home.run(&["--json", "verify"]);
    assert_eq!(run.code, 1);
    assert!(
        failures(&run).iter().any(|(_, c)| c == "bad-key-event"),
        "{:?}",
        failures(&run)
    );
}

fn base64_unpadded(bytes: &[u8]) -> String {
    use base64::prelude::*;
    BASE64_STANDARD_NO_PAD.encode(bytes)
}

#[test]
fn a_key_revoked_from_a_position_keeps_what_it_signed_before() {
    let (home, id) = home_with_identity();
    let as_id = ["--identity", id.as_str()];
    let old = home.path().join("old.pem");
    std::fs::copy(keys_dir(&home, &id).join("current.pem"), &old).unwrap();
    register_as(&home, &as_id, "Ada");
    let size = ok(&home.run(&["--json", "--identity", &id, "checkpoint"])).records()[0].1["size"]
        .as_u64()
        .unwrap();
    let late = register_as(&home, &as_id, "Bob");
    // The owner rotates (the next key is theirs alone), then revokes the old key from `size`.
    ok(&home.run(&["identity", "rotate", "--id", &id]));
    let revoked = home.run(&[
        "--json",
        "identity",
        "revoke",
        "--id",
        &id,
        "--revoked-key",
        &personctl_key(&old),
        "--from",
        &size.to_string(),
    ]);
    let keys = ok(&revoked).records()[0].1["keys"].clone();
    assert_eq!(keys[0]["revoked_from"], Value::from(size));
    let run = home.run(&["--json", "verify"]);
    assert_eq!(failures(&run), [(late, "revoked-key".to_string())]);

    // An archive carries the identity chain; another home that trusts the identity checks it.
    let car = home.path().join("all.car");
    ok(&home.run(&["export", "--car", car.to_str().unwrap()]));
    let other = Home::new();
    ok(&other.run(&["trust", "add", &id]));
    let run = other.run(&["--json", "verify", "--car", car.to_str().unwrap()]);
    let checks: Vec<String> = failures(&run).into_iter().map(|(_, c)| c).collect();
    assert_eq!(checks, ["revoked-key"], "{}", run.stdout);
    // An archive of one person carries the identity chain its events need.
    let person = ok(&home.run(&["--json", "streams"]))
        .records()
        .into_iter()
        .map(|(_, d)| d["stream"].as_str().unwrap().to_string())
        .find(|s| s.starts_with("person/"))
        .unwrap();
    let one = home.path().join("one.car");
    ok(&home.run(&[
        "export",
        "--car",
        one.to_str().unwrap(),
        "--stream",
        &person,
    ]));
    let run = other.run(&["--json", "verify", "--car", one.to_str().unwrap()]);
    assert!(
        failures(&run).iter().all(|(_, c)| c == "revoked-key"),
        "{}",
        run.stdout
    );
    let summary = &run.of_type("summary")[0];
    assert!(summary["streams"].as_u64().unwrap() >= 2, "{summary}");
}

/// The did:key of a key file.
fn personctl_key(path: &std::path::Path) -> String {
    let pem = std::fs::read_to_string(path).unwrap();
    personctl_ledger::Signer::from_pkcs8_pem(&pem)
        .unwrap()
        .author()
        .to_string()
}

#[test]
fn an_unauthorized_writer_is_refused_by_append_and_reported_by_verify() {
    let (home, admin) = home_with_identity();
    let writer = ok(&home.run(&["--json", "identity", "create", "--label", "hr"])).records()[0].1
        ["identity"]
        .as_str()
        .unwrap()
        .to_string();
    let other = ok(&home.run(&["--json", "identity", "create", "--label", "policies"])).records()
        [0]
    .1["identity"]
        .as_str()
        .unwrap()
        .to_string();
    // Before any policy: trust alone.
    let early = register_as(&home, &["--identity", &other], "Ada");
    ok(&home.run(&[
        "grant",
        "--admin",
        &admin,
        "--grantee",
        &writer,
        "--aggregate",
        "person",
    ]));
    register_as(&home, &["--identity", &writer], "Bob");
    // Refused up front: nothing is written.
    let refused = home.run(&[
        "--identity",
        &other,
        "append",
        "register",
        "--legal-name",
        "Eve",
    ]);
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    assert!(refused.stderr.contains("no grant"), "{}", refused.stderr);
    // verify reports what was written before the policy by a writer without a grant.
    let run = home.run(&["--json", "verify"]);
    assert_eq!(failures(&run), [(early, "unauthorized".to_string())]);
    // A grant of some event types only; then withdrawn.
    ok(&home.run(&[
        "grant",
        "--admin",
        &admin,
        "--grantee",
        &other,
        "--aggregate",
        "person",
        "--event",
        "PersonRegistered",
    ]));
    register_as(&home, &["--identity", &other], "Cy");
    ok(&home.run(&[
        "revoke-grant",
        "--admin",
        &admin,
        "--grantee",
        &other,
        "--aggregate",
        "person",
    ]));
    let refused = home.run(&[
        "--identity",
        &other,
        "append",
        "register",
        "--legal-name",
        "Dee",
    ]);
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    // Only the admin's keys write its policy.
    let run = home.run(&[
        "grant",
        "--admin",
        &writer,
        "--grantee",
        &writer,
        "--aggregate",
        "org",
    ]);
    ok(&run);
    let verified = home.run(&["--json", "verify"]);
    assert_eq!(failures(&verified).len(), 1, "{}", verified.stdout);
}

#[test]
fn over_jetstream_an_identity_is_adopted_through_its_rotation_and_its_old_key_is_not() {
    let server = crate::nats::NatsServer::start();
    let url = server.url();
    let (writer, id) = home_with_identity();
    let as_id = ["--nats", url.as_str(), "--identity", id.as_str()];
    let ada = ok(&writer.run(&[
        "--json",
        "--nats",
        &url,
        "--identity",
        &id,
        "append",
        "register",
        "--legal-name",
        "Ada",
    ]))
    .records()[0]
        .1["person"]
        .as_str()
        .unwrap()
        .to_string();
    let old = writer.path().join("old.pem");
    std::fs::copy(keys_dir(&writer, &id).join("current.pem"), &old).unwrap();
    ok(&writer.run(&["--nats", &url, "identity", "rotate", "--id", &id]));
    register_as(&writer, &as_id, "Bob");

    // A reader that trusts the identity alone (no raw key) adopts every event, both keys',
    // and its read models apply them: nothing is dead-lettered.
    let reader = Home::new();
    ok(&reader.run(&["trust", "add", &id]));
    let persons = ok(&reader.run(&["--nats", &url, "--json", "replay"]))
        .records()
        .into_iter()
        .filter(|(t, _)| t == "person")
        .count();
    assert_eq!(persons, 2);
    ok(&reader.run(&["--nats", &url, "verify"]));
    let served = ok(&reader.run(&["--nats", &url, "--json", "serve", "--until-caught-up"]))
        .records()
        .last()
        .unwrap()
        .1
        .clone();
    assert_eq!(served["dead_lettered"], 0, "{served}");
    assert!(served["applied"].as_u64().unwrap() >= 2, "{served}");

    // A thief with the rotated-out key, from a home that trusts that raw key, writes onto
    // Ada's chain and publishes.
    let thief = Home::new();
    ok(&thief.run(&["trust", "add", &personctl_key(&old)]));
    ok(&thief.run(&[
        "--nats",
        &url,
        "--key",
        old.to_str().unwrap(),
        "append",
        "add-email",
        "--person",
        &ada,
        "--address",
        "eve@thief.example",
    ]));

    // Homes that trust the identity do not adopt it (`revoked-key`), nor build on it.
    let sync = reader.run(&["--nats", &url, "sync"]);
    assert_eq!(sync.code, 2, "{}", sync.stderr);
    assert!(
        sync.stderr.contains("revoked-key") || sync.stderr.contains("rotated out"),
        "{}",
        sync.stderr
    );
    assert!(!sync.stderr.contains("trust add"), "{}", sync.stderr);
    let run = reader.run(&["--json", "verify"]);
    assert_eq!(ok(&run).of_type("failure").len(), 0, "{}", run.stdout);
    let onto = writer.run(&[
        "--nats",
        &url,
        "--identity",
        &id,
        "append",
        "add-phone",
        "--person",
        &ada,
        "--number",
        "+441234567890",
    ]);
    assert_eq!(onto.code, 2, "{}", onto.stderr);
    assert!(onto.stderr.contains("not adopted"), "{}", onto.stderr);
}

#[test]
fn signing_as_an_identity_finishes_a_rotation_a_crash_interrupted() {
    let (home, id) = home_with_identity();
    let dir = keys_dir(&home, &id);
    let before = home.path().join("before");
    std::fs::create_dir(&before).unwrap();
    for name in ["current.pem", "next.pem"] {
        std::fs::copy(dir.join(name), before.join(name)).unwrap();
    }
    ok(&home.run(&["identity", "rotate", "--id", &id]));
    // The rotation is committed; put the key files back as a crash before the renames left
    // them: the old current and next, and the new next still pending.
    std::fs::rename(dir.join("next.pem"), dir.join("next.pem.new")).unwrap();
    std::fs::remove_file(dir.join("retired-1.pem")).unwrap();
    for name in ["current.pem", "next.pem"] {
        std::fs::copy(before.join(name), dir.join(name)).unwrap();
    }
    // The next write as the identity settles the keys first and signs with the new key.
    register_as(&home, &["--identity", &id], "Ada");
    ok(&home.run(&["verify"]));
    assert!(dir.join("retired-1.pem").exists());
    assert!(!dir.join("next.pem.new").exists());
}
