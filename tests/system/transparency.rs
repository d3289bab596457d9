//! The home's log (issue 19, first part): signed checkpoints, proofs that check offline with
//! the verifier key alone, and their tampered forms; erasure leaves the tree as it was.

use base64::prelude::*;
use serde_json::Value;

use personctl_ledger::tlog::Checkpoint;
use personctl_ledger::{BlockStore, Head, Ledger, SledStore};

use crate::{keyed, ok, register, registered, Home};

/// The newest signed checkpoint kept in the home's store.
fn latest_note(home: &Home) -> String {
    let store = SledStore::open_read_only(home.store_path()).unwrap();
    Ledger::new(store)
        .latest_checkpoint()
        .unwrap()
        .expect("a kept checkpoint")
}

/// Runs the independent JavaScript checker (`tests/interop/proof-check.mjs`, written from
/// FORMAT.md alone) on a bundle; returns whether it accepts it.
fn independent_check(bundle: &std::path::Path, vkey: &str) -> bool {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    assert!(
        dir.join("node_modules/@noble/hashes").is_dir(),
        "tests/interop is not installed: run the suite with tests/run.sh (it runs `npm ci --prefix tests/interop`)"
    );
    let out = std::process::Command::new("node")
        .arg(dir.join("proof-check.mjs"))
        .arg(bundle)
        .arg(vkey)
        .output()
        .expect("running node (Node.js 18 or newer is needed for the interop tests)");
    let verdict: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.success(), verdict["ok"] == true, "{verdict}");
    out.status.success()
}

#[test]
fn a_proof_checks_offline_and_every_tampering_is_caught() {
    let (home, _) = keyed();
    let first = registered(&home, "Ada Lovelace");
    let person = first["person"].as_str().unwrap().to_string();
    let ada = first["cid"].as_str().unwrap().to_string();
    register(&home, "Bob");
    let file = home.path().join("ada.proof.json");
    let proved = home.run(&[
        "--json",
        "prove",
        "--cid",
        &ada,
        "--out",
        file.to_str().unwrap(),
    ]);
    let vkey = ok(&proved).records()[0].1["vkey"]
        .as_str()
        .unwrap()
        .to_string();

    // Anyone, with no home and the verifier key alone.
    let stranger = Home::new();
    let check = |path: &std::path::Path, key: &str| {
        stranger.run(&[
            "--json",
            "verify",
            "--proof",
            path.to_str().unwrap(),
            "--log-key",
            key,
        ])
    };
    let good = check(&file, &vkey);
    assert!(
        independent_check(&file, &vkey),
        "the independent checker accepts it"
    );
    let verdict = &ok(&good).records()[0].1;
    assert_eq!(verdict["ok"], true);
    assert_eq!(
        (verdict["index"].as_u64(), verdict["size"].as_u64()),
        (Some(0), Some(2))
    );

    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let tampered = |name: &str, change: &dyn Fn(&mut Value)| {
        let mut b = bundle.clone();
        change(&mut b);
        let path = home.path().join(name);
        std::fs::write(&path, b.to_string()).unwrap();
        let run = check(&path, &vkey);
        assert_eq!(run.code, 1, "{name}: {}", run.stdout);
        assert!(
            !independent_check(&path, &vkey),
            "{name}: the independent checker refuses it"
        );
        run.records()[0].1["message"].as_str().unwrap().to_string()
    };
    // Another index, another event's bytes, a checkpoint claiming a shorter log, another
    // payload: each refused, and said why.
    assert!(tampered("index.json", &|b| b["index"] = 1.into()).contains("under the checkpoint"));
    let event = BASE64_STANDARD
        .decode(bundle["event"].as_str().unwrap())
        .unwrap();
    let mut altered = event.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    let msg = tampered("event.json", &|b| {
        b["event"] = BASE64_STANDARD.encode(&altered).into()
    });
    assert!(msg.contains("event"), "{msg}");
    let msg = tampered("short.json", &|b| {
        let note = b["checkpoint"]
            .as_str()
            .unwrap()
            .replacen("\n2\n", "\n1\n", 1);
        b["checkpoint"] = note.into();
    });
    assert!(msg.contains("checkpoint"), "{msg}");
    let msg = tampered("payload.json", &|b| {
        b["payload"] = BASE64_STANDARD.encode(b"someone else's data").into()
    });
    assert!(msg.contains("payload"), "{msg}");
    // Another log's key: refused too.
    let (other, _) = keyed();
    let other_key = ok(&other.run(&["--json", "checkpoint"])).records()[0].1["vkey"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(check(&file, &other_key).code, 1);
    // A malformed bundle or key is an error, not a verdict.
    assert_eq!(check(&file, "not a key").code, 2);

    // Erasure masks payloads, never events: the tree of the first two leaves stays the same,
    // and the proof made before still checks.
    let note = bundle["checkpoint"].as_str().unwrap();
    let before = note.lines().nth(2).unwrap().to_string();
    ok(&home.run(&["erase", "--person", &person, "--reason", "asked"]));
    ok(&check(&file, &vkey));
    let ledger = Ledger::new(SledStore::open_read_only(home.store_path()).unwrap());
    assert_eq!(
        ledger.log().unwrap().len(),
        3,
        "the tombstone is the third leaf"
    );
    let text = note.split("\n\n").next().unwrap().to_string() + "\n";
    let signed = Checkpoint::parse(&text).unwrap();
    assert_eq!(BASE64_STANDARD.encode(signed.root.0), before);
    assert_eq!(ledger.check_against(&signed).unwrap(), None);
    // The checkpoints signed are kept in the store, the newest last.
    let latest = ledger.latest_checkpoint().unwrap().unwrap();
    assert_eq!(latest, note);
}

#[test]
fn a_clean_truncation_and_a_rewritten_history_fail_against_a_checkpoint() {
    let (home, _) = keyed();
    let person = register(&home, "Ada Lovelace");
    let add_emails = |addresses: [&str; 2]| {
        for address in addresses {
            ok(&home.run(&[
                "append",
                "add-email",
                "--person",
                &person,
                "--address",
                address,
            ]));
        }
    };
    add_emails(["a@example.org", "b@example.org"]);
    ok(&home.run(&["checkpoint"]));
    let signed = home.path().join("signed.note");
    std::fs::write(&signed, latest_note(&home)).unwrap();
    let against =
        |home: &Home| home.run(&["--json", "verify", "--checkpoint", signed.to_str().unwrap()]);
    // The log grew since: still consistent.
    ok(&home.run(&[
        "append",
        "add-skill",
        "--person",
        &person,
        "--name",
        "Maths",
        "--level",
        "5",
    ]));
    ok(&against(&home));

    // Drop the two newest events and fix the head, as a careful forger would: the store alone
    // still verifies, the checkpoint does not.
    let stream = format!("person/{person}").parse().unwrap();
    {
        let store = SledStore::open(home.store_path()).unwrap();
        let ledger = Ledger::new(&store);
        let chain = ledger.chain(&stream).unwrap();
        for cid in &chain[chain.len() - 2..] {
            let payload = ledger.event(cid).unwrap().payload().unwrap();
            store.remove(cid).unwrap();
            store.remove(&payload).unwrap();
        }
        let kept = chain[chain.len() - 3];
        store
            .set_head_unchecked(
                &stream,
                Head {
                    cid: kept,
                    height: 1,
                },
            )
            .unwrap();
    }
    let checks = |run: &crate::Run| -> Vec<String> {
        assert_eq!(run.code, 1, "{}", run.stdout);
        run.of_type("failure")
            .iter()
            .map(|f| f["check"].as_str().unwrap().to_string())
            .collect()
    };
    // The checkpoint kept in the store catches it...
    assert_eq!(checks(&home.run(&["--json", "verify"])), ["truncated-log"]);
    // ...and when the forger deletes the kept checkpoints too, the one a verifier remembers.
    std::fs::remove_dir_all(home.store_path().join("checkpoints")).unwrap();
    ok(&home.run(&["verify"]));
    assert_eq!(checks(&against(&home)), ["truncated-log"]);

    // Write other events in their place: as many as signed, another history.
    add_emails(["c@example.org", "d@example.org"]);
    let run = against(&home);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(run.of_type("failure")[0]["check"], "root-mismatch");
}
