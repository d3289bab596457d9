//! The read side against a real nats-server: `serve` stopped by a signal and killed mid-stream
//! resumes from its checkpoint and ends equal to a clean rebuild; erasure makes the read models
//! forget; a poison message is dead-lettered while later events are applied; `dlq retry`
//! applies what has become applicable; two homes follow one stream side by side, and a
//! consumer the server lost is recreated from the checkpoint.

use std::process::Child;
use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage;
use personctl_ledger::jetstream::{Blocks, Notice, Settings};
use personctl_ledger::{BlockStore, Ledger, SledStore, StreamId};
use serde_json::{json, Value};

use crate::backbone::with_jetstream;
use crate::nats::NatsServer;
use crate::{commands, holding, keyed, ok, Home, Run};

const SKILLS: [&str; 3] = ["rust", "nats", "cbor"];

fn person_commands(ids: &[String], range: std::ops::Range<usize>) -> Vec<Value> {
    let mut lines = Vec::new();
    for i in range {
        let id = &ids[i];
        lines.push(json!({"person": id, "command": "register", "legal_name": format!("Person{i} Surname{}", i % 5)}));
        lines.push(
            json!({"person": id, "command": "add-email", "address": format!("p{i}@corp.example")}),
        );
        lines.push(json!({"person": id, "command": "add-skill", "name": SKILLS[i % 3], "level": i % 5 + 1}));
        if i > 0 {
            lines.push(json!({"person": id, "command": "add-relationship", "other": ids[i - 1], "kind": "colleague"}));
        }
    }
    lines
}

fn append(home: &Home, url: &str, lines: &[Value]) {
    let scratch = Home::new();
    let file = commands(&scratch, "commands.jsonl", lines);
    ok(&home.run(&["--nats", url, "append", "--file", file.to_str().unwrap()]));
}

/// `serve --until-caught-up`: its summary record.
fn catch_up(home: &Home, url: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--nats", url, "--json", "serve", "--until-caught-up"];
    args.extend(extra);
    let run = home.run(&args);
    ok(&run).records().last().unwrap().1.clone()
}

fn query(home: &Home, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--json", "query"];
    all.extend(args);
    ok(&home.run(&all))
        .records()
        .into_iter()
        .map(|(_, d)| d)
        .collect()
}

/// Everything the read models answer about these persons, skills and words.
fn dump(home: &Home, ids: &[String], words: &[&str]) -> Vec<Vec<Value>> {
    let mut out = vec![query(home, &["summary"])];
    for id in ids {
        out.push(query(home, &["timeline", id]));
        out.push(query(home, &["network", id]));
    }
    for s in SKILLS {
        out.push(query(home, &["skills", s]));
    }
    for w in words {
        out.push(query(home, &["search", w]));
    }
    out
}

fn spawn_serve(home: &Home, url: &str) -> Child {
    home.spawn(&["--nats", url, "--json", "serve"])
}

fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn serve_resumes_from_its_checkpoint_equals_a_rebuild_and_forgets_erased_values() {
    let server = NatsServer::start();
    let url = server.url();
    let (writer, did) = keyed();
    let ids: Vec<String> = (0..20).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let first = person_commands(&ids, 0..10);
    append(&writer, &url, &first);

    let reader = Home::new();
    ok(&reader.run(&["trust", "add", &did]));
    let s1 = catch_up(&reader, &url, &[]);
    assert_eq!(
        (s1["applied"].clone(), s1["lag"].clone()),
        (json!(first.len()), json!(0))
    );
    let summary = query(&reader, &["summary", "--person", &ids[7]]);
    assert_eq!(summary[0]["legal_name"], "Person7 Surname2");
    assert_eq!(summary[0]["primary_email"], "p7@corp.example");
    assert_eq!(query(&reader, &["search", "surname2 person7"]).len(), 1);

    // More events, among them erasures: a whole person and one component.
    let second = person_commands(&ids, 10..20);
    append(&writer, &url, &second);
    for args in [
        vec![
            "--nats",
            url.as_str(),
            "erase",
            "--person",
            &ids[3],
            "--reason",
            "Art. 17",
        ],
        vec![
            "--nats",
            url.as_str(),
            "erase",
            "--person",
            &ids[4],
            "--component",
            "email",
            "--reason",
            "bounced",
        ],
    ] {
        ok(&writer.run(&args));
    }
    let total = first.len() + second.len() + 2;

    // Stopped by SIGTERM while working: it finishes the message at hand and reports.
    let child = spawn_serve(&reader, &url);
    std::thread::sleep(Duration::from_millis(400));
    // While it runs, it holds the read models: queries go to it over NATS.
    let locked = reader.run(&["query", "summary"]);
    assert_eq!(locked.code, 2);
    assert!(
        locked.stderr.contains("ask it with --nats"),
        "{}",
        locked.stderr
    );
    let asked = ok(&reader.run(&[
        "--nats", &url, "--json", "query", "summary", "--person", &ids[7],
    ]))
    .records();
    assert_eq!(asked[0].1["legal_name"], "Person7 Surname2");
    signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stopped = Run {
        code: 0,
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::new(),
    }
    .records()
    .last()
    .unwrap()
    .1
    .clone();
    // Killed outright: whatever it wrote is whole (checkpoint and effect in one transaction).
    let child = spawn_serve(&reader, &url);
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "KILL");
    child.wait_with_output().unwrap();
    let last = catch_up(&reader, &url, &[]);
    assert_eq!(last["lag"], 0);
    assert_eq!(last["checkpoint"], total);
    assert_eq!(last["dead_lettered"], 0);
    assert!(stopped["checkpoint"].as_u64().unwrap() >= first.len() as u64);

    // Every event once in the timelines; the erased values forgotten everywhere.
    let timeline = query(&reader, &["timeline", &ids[3]]);
    let heights: Vec<u64> = timeline
        .iter()
        .map(|e| e["height"].as_u64().unwrap())
        .collect();
    assert_eq!(heights, (0..heights.len() as u64).collect::<Vec<_>>());
    assert_eq!(timeline.last().unwrap()["type"], "Tombstone");
    let erased = &query(&reader, &["summary", "--person", &ids[3]])[0];
    assert_eq!(erased["lifecycle"], "Erased");
    assert_eq!(erased["legal_name"], "[masked]");
    assert_eq!(erased["primary_email"], Value::Null);
    assert!(query(&reader, &["search", "person3"]).is_empty());
    assert!(query(&reader, &["search", "p3@corp.example"]).is_empty());
    assert!(query(&reader, &["search", "p4@corp.example"]).is_empty());
    assert_eq!(
        query(&reader, &["search", "person4"]).len(),
        1,
        "only the email was erased"
    );
    let rust: Vec<String> = query(&reader, &["skills", "RUST"])
        .iter()
        .map(|s| s["person"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !rust.contains(&ids[3]) && rust.contains(&ids[6]),
        "{rust:?}"
    );
    let from_3: Vec<Value> = query(&reader, &["network", &ids[3]])
        .into_iter()
        .filter(|l| l["direction"] == "to")
        .collect();
    assert!(from_3.is_empty(), "{from_3:?}");
    let words = [
        "person12",
        "surname1",
        "corp",
        "p15@corp.example",
        "person3",
    ];
    let incremental = dump(&reader, &ids, &words);
    // Erasure reaches every file of the reader's home, read models included (sled keeps old
    // values in its files; serve compacts after an erasure), and the server's files.
    let gone = |at: &str| {
        for value in ["Person3 Surname3", "p3@corp.example", "p4@corp.example"] {
            for dir in [reader.path(), writer.path(), server.store_dir()] {
                let hits = holding(dir, value);
                assert!(hits.is_empty(), "{at}: {value:?} is still in {hits:?}");
            }
        }
    };
    gone("after serve");
    // With no serve running, `--nats query` reads the home itself.
    let direct = ok(&reader.run(&["--nats", &url, "--json", "query", "summary"])).records();
    assert_eq!(
        direct.into_iter().map(|(_, d)| d).collect::<Vec<_>>(),
        incremental[0]
    );

    // A clean rebuild from the chains gives the same read models.
    let rebuilt = ok(&reader.run(&["--nats", &url, "--json", "project", "--rebuild"])).records();
    assert_eq!(rebuilt[0].1["checkpoint"], total);
    assert_eq!(rebuilt[0].1["persons"], 20);
    assert_eq!(dump(&reader, &ids, &words), incremental);
    gone("after a rebuild");
    // And serve goes on from the rebuilt checkpoint: nothing to apply.
    let after = catch_up(&reader, &url, &[]);
    assert_eq!(
        (after["applied"].clone(), after["lag"].clone()),
        (json!(0), json!(0))
    );
}

/// The read side's consumers on the ledger stream: (name, last stream sequence delivered,
/// messages delivered and not acknowledged).
fn feeds(url: &str) -> Vec<(String, u64, usize)> {
    use futures_util::StreamExt;
    with_jetstream(url, |js| async move {
        let stream = js.get_stream("PERSONCTL").await.unwrap();
        let mut out = Vec::new();
        let mut infos = stream.consumers();
        while let Some(info) = infos.next().await {
            let info = info.unwrap();
            out.push((
                info.name.clone(),
                info.delivered.stream_sequence,
                info.num_ack_pending,
            ));
        }
        out
    })
}

/// Waits until `until` holds for the read side's consumers (at most 60 s).
fn wait_for_feeds(url: &str, what: &str, until: impl Fn(&[(String, u64, usize)]) -> bool) {
    let started = Instant::now();
    loop {
        let now = feeds(url);
        if until(&now) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what}: still {now:?} after 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_homes_serve_one_stream_side_by_side_and_a_lost_consumer_is_recreated() {
    let server = NatsServer::start();
    let url = server.url();
    let (writer, did) = keyed();
    let ids: Vec<String> = (0..10).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let first = person_commands(&ids, 0..5);
    append(&writer, &url, &first);
    let readers = [Home::new(), Home::new()];
    for reader in &readers {
        ok(&reader.run(&["trust", "add", &did]));
    }
    let last = |url: &str| {
        with_jetstream(url, |js| async move {
            js.get_stream("PERSONCTL")
                .await
                .unwrap()
                .info()
                .await
                .unwrap()
                .state
                .last_sequence
        })
    };
    // Each home follows with a consumer of its own: starting the second takes nothing from
    // the first.
    let children: Vec<Child> = readers.iter().map(|r| spawn_serve(r, &url)).collect();
    let head = last(&url);
    wait_for_feeds(&url, "both caught up", |f| {
        f.len() == 2
            && f.iter()
                .all(|(_, seq, pending)| *seq == head && *pending == 0)
    });
    // The server forgets them (an operator deletes them, or a restart loses them): each
    // follower recreates its own from its checkpoint and goes on.
    let names: Vec<String> = feeds(&url).into_iter().map(|(n, ..)| n).collect();
    with_jetstream(&url, |js| async move {
        let stream = js.get_stream("PERSONCTL").await.unwrap();
        for name in names {
            stream.delete_consumer(&name).await.unwrap();
        }
    });
    let second = person_commands(&ids, 5..10);
    append(&writer, &url, &second);
    let head = last(&url);
    wait_for_feeds(&url, "both caught up again", |f| {
        f.len() == 2
            && f.iter()
                .all(|(_, seq, pending)| *seq == head && *pending == 0)
    });
    let mut summaries = Vec::new();
    for child in children {
        signal(&child, "TERM");
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{stderr}");
        let run = Run {
            code: 0,
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr,
        };
        summaries.push(run.records().last().unwrap().1.clone());
    }
    for summary in &summaries {
        assert_eq!(summary["checkpoint"], head, "{summary}");
        assert_eq!(
            summary["applied"],
            (first.len() + second.len()) as u64,
            "{summary}"
        );
        assert_eq!(summary["reopened"], 1, "{summary}");
    }
    // Both homes hold the same read models, and equal a rebuild.
    let words = ["person7", "corp"];
    let dumps: Vec<_> = readers.iter().map(|r| dump(r, &ids, &words)).collect();
    assert_eq!(dumps[0], dumps[1]);
    ok(&readers[0].run(&["--nats", &url, "project", "--rebuild"]));
    assert_eq!(dump(&readers[0], &ids, &words), dumps[0]);
}

#[test]
fn a_poison_message_is_dead_lettered_while_later_events_are_applied_and_retry_applies_it() {
    let server = NatsServer::start();
    let url = server.url();
    let (writer, did) = keyed();
    let ids: Vec<String> = (0..3).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    append(&writer, &url, &person_commands(&ids, 0..1));

    // Poison: a message on a person subject that is not a notice at all.
    let poison_subject = format!("ledger.person.{}", uuid::Uuid::now_v7());
    // And a notice whose blocks are not in the bucket yet: an event appended elsewhere.
    let offline = Home::new();
    let offline_did = ok(&offline.run(&["keygen"])).stdout.trim().to_string();
    let late = ok(&offline.run(&["--json", "append", "register", "--legal-name", "Late Comer"]))
        .records()[0]
        .1
        .clone();
    let late_person = late["person"].as_str().unwrap().to_string();
    let (late_event, late_blocks) = {
        let store = SledStore::open(offline.store_path()).unwrap();
        let ledger = Ledger::new(&store);
        let stream: StreamId = format!("person/{late_person}").parse().unwrap();
        let head = store.head(&stream).unwrap().unwrap();
        let event = ledger.event(&head.cid).unwrap();
        let blocks = vec![
            store.get(&head.cid).unwrap().unwrap(),
            store.get(&event.payload().unwrap()).unwrap().unwrap(),
        ];
        (event, blocks)
    };
    let late_subject = Settings::default().subject(late_event.stream());
    with_jetstream(&url, |js| {
        let (poison_subject, subject, notice) = (
            poison_subject.clone(),
            late_subject.clone(),
            Notice::of(&late_event),
        );
        async move {
            js.publish(poison_subject, "not a notice".into())
                .await
                .unwrap()
                .await
                .unwrap();
            js.send_publish(
                subject,
                PublishMessage::build().payload(notice.encode().unwrap().into()),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
    });
    // Later events, after both.
    append(&writer, &url, &person_commands(&ids, 1..3));

    let reader = Home::new();
    ok(&reader.run(&["trust", "add", &did]));
    let started = Instant::now();
    let s = catch_up(
        &reader,
        &url,
        &["--max-attempts", "3", "--retry-delay-ms", "10"],
    );
    assert_eq!(s["dead_lettered"], 2, "{s}");
    assert_eq!(s["lag"], 0);
    assert!(started.elapsed() < Duration::from_secs(30));
    let names: Vec<String> = query(&reader, &["summary"])
        .iter()
        .map(|p| p["legal_name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 3, "later events applied: {names:?}");

    let letters = query_dlq(&reader, &url, "list");
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0]["subject"], poison_subject);
    assert_eq!(letters[0]["attempts"], 3);
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not a notice"),
        "{}",
        letters[0]
    );
    assert_eq!(letters[1]["cid"], late_event.cid().to_string());

    // The late event's blocks arrive; a retry applies it, the poison stays.
    with_jetstream(&url, |js| async move {
        let blocks = Blocks::open(&js, &Settings::default()).await.unwrap();
        for b in &late_blocks {
            blocks.put(b).await.unwrap();
        }
    });
    // Its author is not trusted here yet: the read models refuse it.
    let retried = query_dlq(&reader, &url, "retry");
    let kinds: Vec<&str> = retried
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["still-failing", "still-failing"]);
    assert!(
        retried[1]["reason"]
            .as_str()
            .unwrap()
            .contains("is not trusted here"),
        "{}",
        retried[1]
    );
    ok(&reader.run(&["trust", "add", &offline_did]));
    let retried = query_dlq(&reader, &url, "retry");
    let kinds: Vec<&str> = retried
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["still-failing", "retried"]);
    let left = query_dlq(&reader, &url, "list");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["subject"], poison_subject);
    assert_eq!(
        query(&reader, &["summary", "--person", &late_person])[0]["legal_name"],
        "Late Comer"
    );
}

/// `dlq list|retry --json`: each record's data, with its type as `kind`.
fn query_dlq(home: &Home, url: &str, action: &str) -> Vec<Value> {
    ok(&home.run(&["--nats", url, "--json", "dlq", action]))
        .records()
        .into_iter()
        .map(|(kind, mut d)| {
            d["kind"] = json!(kind);
            d
        })
        .collect()
}

/// The chains of a home's store: stream → events (type, causes, correlation), genesis first.
fn chains(
    home: &Home,
) -> std::collections::BTreeMap<String, Vec<(String, Vec<String>, uuid::Uuid)>> {
    let store = SledStore::open(home.store_path()).unwrap();
    let ledger = Ledger::new(&store);
    let mut out = std::collections::BTreeMap::new();
    for (stream, _) in store.heads().unwrap() {
        let mut events: Vec<_> = ledger
            .walk_back(&stream)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.event_type().to_string(),
                    e.causes().iter().map(|c| c.to_string()).collect(),
                    e.body().correlation,
                )
            })
            .collect();
        events.reverse();
        out.insert(stream.to_string(), events);
    }
    out
}

#[test]
fn policies_link_their_causes_fire_once_and_onboarding_completes_or_compensates() {
    let server = NatsServer::start();
    let url = server.url();
    let (writer, writer_did) = keyed();
    let (service, service_did) = keyed();
    ok(&service.run(&["trust", "add", &writer_did]));
    let ids: Vec<String> = (0..3).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let (a, b, c) = (&ids[0], &ids[1], &ids[2]);
    append(
        &writer,
        &url,
        &[
            json!({"person": a, "command": "register", "legal_name": "Ada"}),
            json!({"person": a, "command": "add-email", "address": "ada@example.org"}),
            json!({"person": a, "command": "verify-email", "address": "ada@example.org"}),
            json!({"person": a, "command": "add-skill", "name": "Rust", "level": 4}),
            json!({"person": b, "command": "register", "legal_name": "Bob"}),
            json!({"person": c, "command": "register", "legal_name": "Cy"}),
            json!({"person": c, "command": "add-email", "address": "cy@example.org"}),
        ],
    );
    // A month later (an injected clock): the time-based policies are due.
    let month_later = crate::output_time(personctl_ledger::now_us() + 30 * 86_400_000_000);
    let args = [
        "--policies",
        "--now",
        month_later.as_str(),
        "--inactive-days",
        "1000",
    ];
    let first = catch_up(&service, &url, &args);
    assert_eq!(first["dead_lettered"], 0);
    let before = chains(&service);
    let person = |id: &str| before[&format!("person/{id}")].clone();
    let onboarding = |id: &str| -> Vec<String> {
        before[&format!("onboarding/{id}")]
            .iter()
            .map(|e| e.0.clone())
            .collect()
    };

    // Welcome and skill recommendation: caused by the registration / the skill, same correlation.
    let ada = person(a);
    let registration = &ada[0];
    let store_cid = |id: &str, height: usize| -> String {
        let store = SledStore::open(service.store_path()).unwrap();
        let stream: StreamId = format!("person/{id}").parse().unwrap();
        Ledger::new(&store).chain(&stream).unwrap()[height].to_string()
    };
    let registered_cid = store_cid(a, 0);
    let welcome: Vec<_> = ada
        .iter()
        .filter(|e| e.0 == "AttributeAdded" && e.1 == vec![registered_cid.clone()])
        .collect();
    assert_eq!(welcome.len(), 1, "{ada:?}");
    assert_eq!(
        welcome[0].2, registration.2,
        "the trigger's correlation is carried on"
    );
    let skill_cid = store_cid(a, 3);
    assert_eq!(
        ada.iter()
            .filter(|e| e.1 == vec![skill_cid.clone()])
            .count(),
        1,
        "one skill recommendation"
    );
    let attributes = query(&service, &["summary", "--person", a]);
    assert_eq!(attributes[0]["lifecycle"], "Active");

    // Onboarding: completed for Ada; failed and compensated (suspended) for Bob and Cy.
    assert_eq!(
        onboarding(a),
        [
            "OnboardingStarted",
            "OnboardingEmailAdded",
            "OnboardingEmailVerified",
            "OnboardingCompleted"
        ]
    );
    assert_eq!(onboarding(b), ["OnboardingStarted", "OnboardingFailed"]);
    assert_eq!(
        onboarding(c),
        [
            "OnboardingStarted",
            "OnboardingEmailAdded",
            "OnboardingFailed"
        ]
    );
    for id in [b, c] {
        let chain = person(id);
        let last = chain.last().unwrap();
        assert_eq!(last.0, "PersonSuspended", "{chain:?}");
        let failed = {
            let store = SledStore::open(service.store_path()).unwrap();
            let stream: StreamId = format!("onboarding/{id}").parse().unwrap();
            store.head(&stream).unwrap().unwrap().cid.to_string()
        };
        assert_eq!(last.1, vec![failed], "the compensation names the failure");
        assert_eq!(
            query(&service, &["summary", "--person", id])[0]["lifecycle"],
            "Suspended"
        );
    }
    // Data quality: Cy's email is still unverified after a month.
    assert!(person(c)
        .iter()
        .any(|e| e.0 == "AttributeAdded" && e.1 == vec![store_cid(c, 1)]));

    // Never twice: with the read models wiped (every message applied again) and again as is.
    std::fs::remove_dir_all(service.path().join("projections")).unwrap();
    let again = catch_up(&service, &url, &args);
    assert_eq!(again["dead_lettered"], 0);
    assert_eq!(chains(&service), before);
    let idle = catch_up(&service, &url, &args);
    assert_eq!(idle["applied"], 0);
    assert_eq!(chains(&service), before);

    // Three years on, nobody has done anything: the auto-archive policy archives everyone
    // still Active or Suspended, caused by each person's last event.
    let later = crate::output_time(personctl_ledger::now_us() + 3 * 365 * 86_400_000_000);
    catch_up(
        &service,
        &url,
        &[
            "--policies",
            "--now",
            later.as_str(),
            "--inactive-days",
            "365",
        ],
    );
    let archived = chains(&service);
    for id in [a, b, c] {
        let stream = format!("person/{id}");
        let (old, new) = (&before[&stream], &archived[&stream]);
        assert_eq!(new.len(), old.len() + 1, "{new:?}");
        let last = new.last().unwrap();
        assert_eq!(last.0, "PersonArchived");
        let store = SledStore::open(service.store_path()).unwrap();
        let chain = Ledger::new(&store).chain(&stream.parse().unwrap()).unwrap();
        assert_eq!(last.1, vec![chain[old.len() - 1].to_string()]);
        drop(store);
        assert_eq!(
            query(&service, &["summary", "--person", id])[0]["lifecycle"],
            "Archived"
        );
    }
    let before = archived;

    // Everything the service signed verifies, for the writer too.
    ok(&writer.run(&["trust", "add", &service_did]));
    ok(&writer.run(&["--nats", &url, "sync"]));
    assert_eq!(chains(&writer), before);
    ok(&writer.run(&["--nats", &url, "verify"]));
}
