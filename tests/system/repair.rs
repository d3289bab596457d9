//! JetStream losing what it acknowledged (issue 23), against a real nats-server whose store is
//! wiped while it is stopped: `verify --nats` names the loss (`lost`), plain `sync` cannot see
//! it, `sync --repair` publishes every event again in chain order; with only the block bucket
//! lost, `verify --nats` names each block (`bucket-missing`) and the repair stores them again;
//! and a fresh reader then rebuilds everything. A subject that meanwhile holds another
//! writer's history is reported and never overwritten.

use serde_json::{json, Value};

use crate::nats::NatsServer;
use crate::{commands, keyed, ok, Home, Run};

fn verify(home: &Home, url: &str) -> Run {
    home.run(&["--nats", url, "--json", "verify"])
}

fn checks(run: &Run) -> Vec<String> {
    run.of_type("failure")
        .iter()
        .map(|f| f["check"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn sync_repair_gives_jetstream_back_what_it_acknowledged_and_lost() {
    let mut server = NatsServer::start();
    let url = server.url();
    let (home, did) = keyed();
    let ids: Vec<String> = (0..20)
        .map(|i| format!("0192ffff-0000-7000-8000-{i:012}"))
        .collect();
    let lines: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| json!({"person": id, "command": "register", "legal_name": format!("Lost {i}")}))
        .collect();
    let file = commands(&home, "people.jsonl", &lines);
    ok(&home.run(&["--nats", &url, "append", "--file", file.to_str().unwrap()]));
    ok(&verify(&home, &url));

    // The server loses everything it acknowledged (its store is wiped while it is down).
    server.lose_everything();

    // verify names the loss, stream by stream; plain sync cannot see it (the marks say
    // published) and changes nothing.
    let run = verify(&home, &url);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let found = checks(&run);
    assert_eq!(
        found.iter().filter(|c| *c == "lost").count(),
        20,
        "{found:?}"
    );
    let message = run.of_type("failure")[0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("sync --repair"), "{message}");
    // Asked alone, the one server's replicas say the same, naming the server, block by block.
    let alone = home.run(&["--nats", &url, "--json", "verify", "--replicas"]);
    assert_eq!(alone.code, 1, "{}", alone.stdout);
    let found = checks(&alone);
    let count = |check: &str| found.iter().filter(|c| *c == check).count();
    assert_eq!(count("replica-lost"), 20, "{found:?}");
    assert_eq!(count("replica-bucket-missing"), 40, "{found:?}");
    for failure in alone.of_type("failure") {
        let message = failure["message"].as_str().unwrap();
        if failure["check"].as_str().unwrap().starts_with("replica-") {
            assert!(message.starts_with("server "), "{message}");
        }
    }
    let plain = ok(&home.run(&["--nats", &url, "--json", "sync"])).of_type("synced");
    assert_eq!(plain[0]["published"], 0);
    assert_eq!(verify(&home, &url).code, 1);

    // The repair: every stream offered again (its blocks go with the events).
    let run = home.run(&["--nats", &url, "--json", "sync", "--repair"]);
    ok(&run);
    assert_eq!(run.of_type("lost").len(), 20, "{}", run.stdout);
    let repaired = &run.of_type("repaired")[0];
    assert_eq!(repaired["republished"], 20, "{repaired}");
    assert_eq!(
        repaired["blocks"], 0,
        "published with their events: {repaired}"
    );
    ok(&verify(&home, &url));
    ok(&home.run(&["--nats", &url, "verify", "--replicas"]));
    // A second repair finds nothing to do.
    let again = ok(&home.run(&["--nats", &url, "--json", "sync", "--repair"])).of_type("repaired");
    assert_eq!(
        (again[0]["streams"].clone(), again[0]["blocks"].clone()),
        (json!(0), json!(0))
    );

    // Now only the bucket is lost (its stream's files removed while the server is down): the
    // notices are all there, and the repair stores every event and payload block again.
    server.kill();
    let buckets: Vec<_> = crate::walk(server.store_dir())
        .into_iter()
        .filter_map(|p| {
            let dir = p.parent()?.to_path_buf();
            dir.to_str()?.contains("KV_PERSONCTL_BLOCKS").then_some(dir)
        })
        .collect();
    assert!(!buckets.is_empty(), "the bucket's files");
    for dir in buckets {
        let _ = std::fs::remove_dir_all(dir);
    }
    server.restart();
    let run = verify(&home, &url);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let found = checks(&run);
    assert_eq!(found.len(), 40, "{found:?}");
    assert!(found.iter().all(|c| c == "bucket-missing"), "{found:?}");
    let run = home.run(&["--nats", &url, "--json", "sync", "--repair"]);
    ok(&run);
    let repaired = &run.of_type("repaired")[0];
    assert_eq!(
        (repaired["streams"].clone(), repaired["blocks"].clone()),
        (json!(0), json!(40)),
        "every event and payload block: {repaired}"
    );
    ok(&verify(&home, &url));

    // A fresh reader rebuilds every person from JetStream alone.
    let reader = Home::new();
    ok(&reader.run(&["trust", "add", &did]));
    ok(&reader.run(&["--nats", &url, "sync"]));
    let run = reader.run(&["--nats", &url, "--json", "verify"]);
    ok(&run);
    assert_eq!(run.of_type("summary")[0]["events"], 20);
}

#[test]
fn a_repair_never_overwrites_another_history_on_a_subject() {
    let mut server = NatsServer::start();
    let url = server.url();
    let (home, did) = keyed();
    let person = "0192ffff-0000-7000-8000-0000000000aa";
    ok(&home.run(&[
        "--nats",
        &url,
        "append",
        "register",
        "--person",
        person,
        "--legal-name",
        "Mine",
    ]));
    server.lose_everything();
    // Meanwhile another writer (trusted here) registers the same id: JetStream now holds a
    // history the home never acknowledged.
    let (other, other_did) = keyed();
    ok(&other.run(&["trust", "add", &did]));
    ok(&other.run(&[
        "--nats",
        &url,
        "append",
        "register",
        "--person",
        person,
        "--legal-name",
        "Theirs",
    ]));
    ok(&home.run(&["trust", "add", &other_did]));

    let run = home.run(&["--nats", &url, "--json", "sync", "--repair"]);
    let elsewhere = run.of_type("elsewhere");
    assert_eq!(elsewhere.len(), 1, "{} {}", run.stdout, run.stderr);
    assert_eq!(elsewhere[0]["stream"], format!("person/{person}"));
    // Nothing of the home's history went over JetStream's, and the pull that follows refuses
    // to drop the home's acknowledged event: the divergence is an error for a person to settle.
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(person) || run.stderr.contains("acknowledged"),
        "{}",
        run.stderr
    );
    let reader = Home::new();
    ok(&reader.run(&["trust", "add", &other_did]));
    ok(&reader.run(&["--nats", &url, "sync"]));
    let shown = ok(&reader.run(&["--json", "show", "--person", person])).records();
    assert_eq!(shown[0].1["legal_name"], "Theirs", "{shown:?}");
}

#[test]
fn a_hole_in_a_subject_is_named_by_the_repair_and_readers_still_rebuild_the_chain() {
    use async_nats::jetstream::message::PublishMessage;
    use personctl_ledger::jetstream::{Blocks, Notice, Settings};
    use personctl_ledger::{BlockStore, Ledger, SledStore, StreamId};

    let server = NatsServer::start();
    let url = server.url();
    let (home, did) = keyed();
    // Five events of one person, kept here (no --nats).
    let person = ok(&home.run(&["--json", "append", "register", "--legal-name", "Hole 0"]))
        .records()[0]
        .1["person"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 1..5 {
        ok(&home.run(&[
            "append",
            "rename",
            "--person",
            &person,
            "--legal-name",
            &format!("Hole {i}"),
        ]));
    }
    let stream: StreamId = format!("person/{person}").parse().unwrap();
    let (events, blocks) = {
        let store = SledStore::open(home.store_path()).unwrap();
        let ledger = Ledger::new(&store);
        let mut events: Vec<_> = ledger
            .walk_back(&stream)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        events.reverse();
        let mut blocks = Vec::new();
        for e in &events {
            blocks.push(store.get(&e.cid()).unwrap().unwrap());
            blocks.push(store.get(&e.payload().unwrap()).unwrap().unwrap());
        }
        (events, blocks)
    };
    // JetStream as a power cut can leave it: the subject lost height 2 from its middle and
    // kept the rest; every block is in the bucket.
    ok(&Home::new().run(&["--nats", &url, "sync"]));
    let subject = Settings::default().subject(&stream);
    crate::backbone::with_jetstream(&url, |js| {
        let notices: Vec<Notice> = events
            .iter()
            .filter(|e| e.height() != 2)
            .map(Notice::of)
            .collect();
        async move {
            let bucket = Blocks::open(&js, &Settings::default()).await.unwrap();
            for b in &blocks {
                bucket.put(b).await.unwrap();
            }
            for n in notices {
                js.send_publish(
                    subject.clone(),
                    PublishMessage::build().payload(n.encode().unwrap().into()),
                )
                .await
                .unwrap()
                .await
                .unwrap();
            }
        }
    });
    let run = verify(&home, &url);
    assert_eq!(checks(&run), ["message-mismatch"], "{}", run.stdout);

    // The repair cannot put height 2 back in its place: it names the hole and exits 1.
    let run = home.run(&["--nats", &url, "--json", "sync", "--repair"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let gaps = run.of_type("gap");
    assert_eq!(gaps.len(), 1, "{}", run.stdout);
    assert_eq!(gaps[0]["heights"], json!([2, 2]));
    assert_eq!(gaps[0]["sequence"], 3);
    assert_eq!(gaps[0]["cid"], events[3].cid().to_string());
    assert!(
        run.stderr.contains("middle of this subject"),
        "{}",
        run.stderr
    );

    // A reader rebuilds the whole chain all the same: it walks it by CID through the bucket.
    let reader = Home::new();
    ok(&reader.run(&["trust", "add", &did]));
    ok(&reader.run(&["--nats", &url, "sync"]));
    let summary = ok(&reader.run(&["--json", "verify"])).of_type("summary");
    assert_eq!(summary[0]["events"], 5);

    // Mending the order is a person's decision: with no `not-stored` finding this home holds
    // every event the stream names, so the stream is removed and the repair publishes every
    // chain again, in chain order.
    assert!(!checks(&verify(&home, &url)).contains(&"not-stored".to_string()));
    crate::backbone::with_jetstream(&url, |js| async move {
        js.delete_stream("PERSONCTL").await.unwrap();
    });
    let run = home.run(&["--nats", &url, "--json", "sync", "--repair"]);
    ok(&run);
    assert_eq!(
        run.of_type("repaired")[0]["republished"],
        5,
        "{}",
        run.stdout
    );
    assert!(run.of_type("gap").is_empty());
    ok(&verify(&home, &url));
}
