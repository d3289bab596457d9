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

/// Runs one of the independent JavaScript checkers (`tests/interop/*.mjs`, written from
/// FORMAT.md alone) on `args`; returns whether it accepts them.
fn interop(script: &str, args: &[&str]) -> bool {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    assert!(
        dir.join("node_modules/@noble/hashes").is_dir(),
        "tests/interop is not installed: run the suite with tests/run.sh (it runs `npm ci --prefix tests/interop`)"
    );
    let out = std::process::Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .output()
        .expect("running node (Node.js 18 or newer is needed for the interop tests)");
    let verdict: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.success(), verdict["ok"] == true, "{verdict}");
    out.status.success()
}

/// The independent checker of proof bundles, with the log key and any witness keys.
fn independent_check(bundle: &std::path::Path, keys: &[&str]) -> bool {
    let mut args = vec![bundle.to_str().unwrap()];
    args.extend_from_slice(keys);
    interop("proof-check.mjs", &args)
}

/// `personctl witness` on a free port, for the life of the value.
struct RunningWitness {
    child: std::process::Child,
    url: String,
    vkey: String,
}

impl RunningWitness {
    fn start(home: &Home, log_vkeys: &[&str]) -> RunningWitness {
        let mut args = vec!["--json", "witness", "--listen", "127.0.0.1:0"];
        for v in log_vkeys {
            args.extend(["--log", v]);
        }
        let mut child = home
            .command(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let started: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{line}"));
        RunningWitness {
            child,
            url: format!("http://{}", started["data"]["listen"].as_str().unwrap()),
            vkey: started["data"]["vkey"].as_str().unwrap().to_string(),
        }
    }
}

impl Drop for RunningWitness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A copy of `home` (keys, store and all) at this moment.
fn copy_of(home: &Home) -> Home {
    let copy = Home::new();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", home.path().display()))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    copy
}

/// The log's verifier key, from a fresh checkpoint.
fn log_vkey(home: &Home) -> String {
    ok(&home.run(&["--json", "checkpoint"])).records()[0].1["vkey"]
        .as_str()
        .unwrap()
        .to_string()
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
        independent_check(&file, &[&vkey]),
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
            !independent_check(&path, &[&vkey]),
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

#[test]
fn witnesses_cosign_a_growing_log_and_refuse_a_split_view_and_a_rollback() {
    let (home, _) = keyed();
    let ada = registered(&home, "Ada Lovelace")["cid"]
        .as_str()
        .unwrap()
        .to_string();
    let vkey = log_vkey(&home);
    let (witness_home, _) = keyed();
    let witness = RunningWitness::start(&witness_home, &[&vkey]);
    let cosign = |home: &Home| {
        home.run(&[
            "--json",
            "checkpoint",
            "--witness",
            &witness.url,
            "--witness-key",
            &witness.vkey,
        ])
    };
    let first = cosign(&home);
    let data = &ok(&first).records()[0].1;
    assert_eq!(data["witnesses"]["quorum_met"], true, "{data}");
    let before_growth = copy_of(&home);

    // The log grows; the witness cosigns again, from what it holds (a consistency proof).
    register(&home, "Bob");
    let file = home.path().join("ada.proof.json");
    ok(&home.run(&[
        "prove",
        "--cid",
        &ada,
        "--out",
        file.to_str().unwrap(),
        "--witness",
        &witness.url,
        "--witness-key",
        &witness.vkey,
    ]));
    // Anyone checks the bundle with the log key and the witness key, offline; and so does the
    // independent checker.
    let stranger = Home::new();
    let check = |path: &std::path::Path, witness_key: &str| {
        stranger.run(&[
            "--json",
            "verify",
            "--proof",
            path.to_str().unwrap(),
            "--log-key",
            &vkey,
            "--witness-key",
            witness_key,
        ])
    };
    let good = check(&file, &witness.vkey);
    assert_eq!(
        ok(&good).records()[0].1["cosigned"][0],
        witness.vkey.split('+').next().unwrap()
    );
    assert!(independent_check(&file, &[&vkey, &witness.vkey]));
    // Another witness's key: its quorum is not met.
    let (other, _) = keyed();
    let other_key = RunningWitness::start(&other, &[&vkey]).vkey.clone();
    assert_eq!(check(&file, &other_key).code, 1);
    assert!(!independent_check(&file, &[&vkey, &other_key]));
    // An altered cosignature: refused by both.
    let mut bundle: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let note = bundle["checkpoint"].as_str().unwrap().to_string();
    let line = note.lines().last().unwrap();
    let sig = line.rsplit(' ').next().unwrap();
    let mut raw = BASE64_STANDARD.decode(sig).unwrap();
    raw[20] ^= 1;
    bundle["checkpoint"] = note.replace(sig, &BASE64_STANDARD.encode(raw)).into();
    let forged = home.path().join("forged.json");
    std::fs::write(&forged, bundle.to_string()).unwrap();
    assert_eq!(check(&forged, &witness.vkey).code, 1);
    assert!(!independent_check(&forged, &[&vkey, &witness.vkey]));

    // A split view: a copy of the home writes another history of the same size.
    let fork = copy_of(&before_growth);
    register(&fork, "Eve");
    let split = cosign(&fork);
    assert_eq!(split.code, 1, "{}", split.stdout);
    let data = &split.records()[0].1;
    assert_eq!(data["witnesses"]["quorum_met"], false);
    let reason = data["witnesses"]["refused"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("split view"), "{reason}");
    // A rollback: the copy from before the growth asks for a smaller log.
    let rolled = cosign(&before_growth);
    assert_eq!(rolled.code, 1, "{}", rolled.stdout);
    let reason = rolled.records()[0].1["witnesses"]["refused"][0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("rolled back"), "{reason}");
    // The honest log is still cosigned.
    register(&home, "Cy");
    ok(&cosign(&home));
}

#[test]
fn audit_proves_the_log_only_grew_and_anyone_checks_it_offline() {
    let (home, _) = keyed();
    register(&home, "Ada Lovelace");
    let vkey = log_vkey(&home);
    let old = home.path().join("old.note");
    std::fs::write(&old, latest_note(&home)).unwrap();
    let fork = copy_of(&home);
    let older = copy_of(&home);
    register(&home, "Bob");
    register(&home, "Cy");
    let growth = home.path().join("growth.txt");
    let audited = home.run(&[
        "--json",
        "audit",
        "--from",
        old.to_str().unwrap(),
        "--out",
        growth.to_str().unwrap(),
    ]);
    let data = &ok(&audited).records()[0].1;
    assert_eq!(data["ok"], true);
    let from = data["from"].as_u64().unwrap();
    assert_eq!(data["to"].as_u64(), Some(from + 2), "two events since");
    let offline = |proof: &std::path::Path| {
        Home::new().run(&[
            "--json",
            "audit",
            "--from",
            old.to_str().unwrap(),
            "--proof",
            proof.to_str().unwrap(),
            "--log-key",
            &vkey,
        ])
    };
    ok(&offline(&growth));
    let consistency = |proof: &std::path::Path| {
        interop(
            "consistency-check.mjs",
            &[old.to_str().unwrap(), proof.to_str().unwrap(), &vkey],
        )
    };
    assert!(consistency(&growth));
    // One proof hash altered: refused by both.
    let text = std::fs::read_to_string(&growth).unwrap();
    let hash = text.lines().nth(1).unwrap();
    let mut raw = BASE64_STANDARD.decode(hash).unwrap();
    raw[0] ^= 1;
    let altered = home.path().join("altered.txt");
    std::fs::write(
        &altered,
        text.replacen(hash, &BASE64_STANDARD.encode(raw), 1),
    )
    .unwrap();
    assert_eq!(offline(&altered).code, 1);
    assert!(!consistency(&altered));

    // A fork from the old state that wrote another history: not a growth of the newer
    // checkpoint (root-mismatch); and the newer checkpoint against the older log: truncated.
    register(&fork, "Eve");
    register(&fork, "Mallory");
    let newer = home.path().join("newer.note");
    std::fs::write(&newer, latest_note(&home)).unwrap();
    let against = |home: &Home| {
        home.run(&[
            "--json",
            "audit",
            "--from",
            newer.to_str().unwrap(),
            "--log-key",
            &vkey,
        ])
    };
    let rewritten = against(&fork);
    assert_eq!(rewritten.code, 1, "{}", rewritten.stdout);
    let message = rewritten.records()[0].1["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("root-mismatch"), "{message}");
    let truncated = against(&older);
    assert_eq!(truncated.code, 1, "{}", truncated.stdout);
    let message = truncated.records()[0].1["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("truncated-log"), "{message}");
}

#[test]
fn with_jetstream_every_home_signs_the_same_tree_and_a_forgetful_jetstream_is_caught() {
    let mut server = crate::nats::NatsServer::start();
    let url = server.url();
    // Two homes, each trusting the other's key.
    let ((a, did_a), (b, did_b)) = (keyed(), keyed());
    ok(&a.run(&["trust", "add", &did_b]));
    ok(&b.run(&["trust", "add", &did_a]));
    let on = |home: &Home, args: &[&str]| {
        let mut all = vec!["--json", "--nats", url.as_str()];
        all.extend_from_slice(args);
        home.run(&all)
    };
    for (home, name) in [(&a, "Ada"), (&b, "Bob"), (&a, "Cy")] {
        ok(&on(home, &["append", "register", "--legal-name", name]));
    }
    let shared = |home: &Home| {
        let run = on(home, &["checkpoint"]);
        let data = ok(&run).records()[0].1.clone();
        (
            data["size"].as_u64().unwrap(),
            data["root"].as_str().unwrap().to_string(),
            data["origin"].as_str().unwrap().to_string(),
        )
    };
    let (from_a, from_b) = (shared(&a), shared(&b));
    assert_eq!(from_a.0, 3);
    assert_eq!(from_a, from_b, "the same tree from JetStream's order");
    assert!(from_a.2.starts_with("personctl.jetstream/"), "{}", from_a.2);
    // Each store's own log is in the order it stored the events: different trees.
    let local =
        |home: &Home| ok(&home.run(&["--json", "checkpoint"])).records()[0].1["root"].clone();
    assert_ne!(local(&a), local(&b));
    ok(&on(&a, &["verify"]));

    // JetStream forgets acknowledged events (the tail of its message file is lost): the
    // published checkpoint catches it.
    server.kill();
    let blocks: Vec<_> = crate::walk(server.store_dir())
        .into_iter()
        .filter(|p| {
            p.to_string_lossy().contains("streams/PERSONCTL/msgs")
                && p.extension().is_some_and(|e| e == "blk")
        })
        .collect();
    assert!(
        !blocks.is_empty(),
        "no message block under {}",
        server.store_dir().display()
    );
    for block in &blocks {
        let len = std::fs::metadata(block).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(block).unwrap();
        file.set_len(len / 2).unwrap();
    }
    for index in crate::walk(server.store_dir()).into_iter().filter(|p| {
        p.to_string_lossy().contains("streams/PERSONCTL")
            && p.extension().is_some_and(|e| e == "idx" || e == "fss")
    }) {
        let _ = std::fs::remove_file(index);
    }
    server.restart();
    let run = on(&a, &["verify"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let checks: Vec<String> = run
        .of_type("failure")
        .iter()
        .map(|f| f["check"].as_str().unwrap().to_string())
        .collect();
    assert!(checks.contains(&"truncated-log".to_string()), "{checks:?}");
}

#[test]
fn appends_sign_checkpoints_automatically_every_n_events() {
    let (home, _) = keyed();
    let mut signed = Vec::new();
    for name in ["Ada", "Bob", "Cy", "Dee", "Eve"] {
        let run = home.run(&[
            "--json",
            "--checkpoint-every",
            "2",
            "append",
            "register",
            "--legal-name",
            name,
        ]);
        signed.extend(
            ok(&run)
                .of_type("checkpoint")
                .iter()
                .map(|c| c["size"].as_u64().unwrap()),
        );
    }
    assert_eq!(signed, [2, 4]);
    let ledger = Ledger::new(SledStore::open_read_only(home.store_path()).unwrap());
    let kept: Vec<u64> = ledger
        .store()
        .checkpoints()
        .unwrap()
        .iter()
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(kept, [2, 4]);
    ok(&home.run(&["verify"]));
    let zero = home.run(&["--checkpoint-every", "0", "streams"]);
    assert_eq!(zero.code, 2);
    assert!(
        zero.stderr.contains("--checkpoint-every"),
        "{}",
        zero.stderr
    );
}
