//! `personctl` with `--nats` against real nats-servers: a fresh reader rebuilds everything from
//! JetStream alone, racing writers never fork, a server killed mid-batch loses nothing, a
//! 3-node cluster survives a node, and no message carries personal data.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use personctl_ledger::jetstream::Notice;

use crate::nats::{Cluster, NatsServer};
use crate::{appended, commands, keyed, ok, walk, Home, Run};

/// Runs `f` with a JetStream context on the servers `urls` (comma-separated).
pub(crate) fn with_jetstream<T, Fut: std::future::Future<Output = T>>(
    urls: &str,
    f: impl FnOnce(async_nats::jetstream::Context) -> Fut,
) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let servers: Vec<async_nats::ServerAddr> =
            urls.split(',').map(|u| u.parse().unwrap()).collect();
        let client = async_nats::connect(servers.as_slice()).await.unwrap();
        f(async_nats::jetstream::new(client)).await
    })
}

/// Every message of the PERSONCTL stream: (sequence, subject, body, header values).
pub(crate) fn messages(urls: &str) -> Vec<(u64, String, Notice, Vec<String>)> {
    with_jetstream(urls, |js| async move {
        // A cluster that just lost a node answers 503 while it elects a leader: ask again.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut stream = loop {
            match js.get_stream("PERSONCTL").await {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("waiting for the stream: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("the stream stayed unavailable: {e}"),
            }
        };
        let last = stream.info().await.unwrap().state.last_sequence;
        let mut out = Vec::new();
        for seq in 1..=last {
            let m = stream.get_raw_message(seq).await.unwrap();
            let headers = m
                .headers
                .iter()
                .flat_map(|(k, vs)| {
                    let k = k.to_string();
                    vs.iter().map(move |v| format!("{k}: {}", v.as_str()))
                })
                .collect();
            out.push((
                seq,
                m.subject.to_string(),
                Notice::decode(&m.payload).unwrap(),
                headers,
            ));
        }
        out
    })
}

/// Waits until the PERSONCTL stream holds at least one message.
fn wait_for_first_message(url: &str, within: Duration) {
    with_jetstream(url, |js| async move {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(mut s) = js.get_stream("PERSONCTL").await {
                if s.info().await.map(|i| i.state.messages).unwrap_or(0) > 0 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "no message within {within:?}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

/// `personctl --nats URL --json append --file FILE` in `home`, not yet started.
fn append_file(home: &Home, url: &str, file: &Path) -> std::process::Command {
    home.command(&[
        "--nats",
        url,
        "--json",
        "append",
        "--file",
        file.to_str().unwrap(),
    ])
}

#[test]
fn a_fresh_reader_rebuilds_every_person_from_jetstream_and_no_message_carries_personal_data() {
    let server = NatsServer::start();
    let url = server.url();
    let (writer, did) = keyed();
    let ids: Vec<String> = (0..12).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let mut lines = Vec::new();
    let mut personal = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let name = format!("Zelda Quarrington-{i}");
        let email = format!("zelda.q{i}@private.example");
        lines.push(serde_json::json!({"person": id, "command": "register", "legal_name": name}));
        lines.push(serde_json::json!({"person": id, "command": "add-email", "address": email}));
        lines.push(
            serde_json::json!({"person": id, "command": "add-phone", "number": format!("+4477009{i:05}")}),
        );
        personal.extend([name, email, format!("+4477009{i:05}")]);
    }
    lines.push(serde_json::json!({"person": ids[1], "command": "merge", "into": ids[0]}));
    let file = commands(&writer, "people.jsonl", &lines);
    let run = Run::from(append_file(&writer, &url, &file).output().unwrap());
    ok(&run);
    let events = appended(&run).len();
    assert!(events >= lines.len(), "{events} events");

    // A reader with an empty home: the same persons, from JetStream and the bucket alone.
    let reader = Home::new();
    ok(&reader.run(&["trust", "add", &did]));
    let mine = ok(&writer.run(&["--json", "replay"])).records();
    let theirs = ok(&reader.run(&["--nats", &url, "--json", "replay"])).records();
    let persons = |records: &[(String, serde_json::Value)]| -> Vec<serde_json::Value> {
        records
            .iter()
            .filter(|(ty, _)| ty == "person")
            .map(|(_, d)| d.clone())
            .collect()
    };
    assert_eq!(persons(&theirs), persons(&mine));
    assert_eq!(persons(&mine).len(), ids.len());
    // Both stores verify, and JetStream matches each of them.
    for home in [&writer, &reader] {
        let run = ok(&home.run(&["--nats", &url, "--json", "verify"])).records();
        let summary = &run.last().unwrap().1;
        assert_eq!(summary["events"], events);
        assert_eq!(summary["messages"], events);
    }

    // No message body or header holds a personal value; the server's files hold them only in
    // the block bucket (salted payload blocks, which erasure purges).
    let all = messages(&url);
    assert_eq!(all.len(), events);
    for (seq, subject, notice, headers) in &all {
        let text = format!("{subject} {notice:?} {headers:?}");
        for value in &personal {
            assert!(
                !text.contains(value.as_str()),
                "message {seq} holds {value:?}"
            );
        }
        assert!(headers.iter().any(|h| h.starts_with("Nats-Msg-Id: ")));
    }
    for path in walk(server.store_dir()) {
        let bytes = std::fs::read(&path).unwrap();
        for value in &personal {
            if bytes.windows(value.len()).any(|w| w == value.as_bytes()) {
                assert!(
                    path.to_string_lossy().contains("KV_PERSONCTL_BLOCKS"),
                    "{value:?} found in {}",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn two_processes_racing_on_one_person_never_fork_nor_lose_an_acknowledged_event() {
    let server = NatsServer::start();
    let url = server.url();
    let (a, did_a) = keyed();
    let (b, did_b) = keyed();
    let run = ok(&a.run(&[
        "--nats",
        &url,
        "--json",
        "append",
        "register",
        "--legal-name",
        "Racy",
    ]))
    .records();
    let id = run[0].1["person"].as_str().unwrap().to_string();
    // Two writers of one person trust each other: a home adopts no one else's events.
    ok(&a.run(&["trust", "add", &did_b]));
    ok(&b.run(&["trust", "add", &did_a]));
    const EACH: usize = 500;
    let mut children = Vec::new();
    for (home, tag) in [(&a, "a"), (&b, "b")] {
        let lines: Vec<_> = (0..EACH)
            .map(|i| serde_json::json!({"person": id, "command": "add-attribute", "name": format!("{tag}-{i}"), "value": "v"}))
            .collect();
        let file = commands(home, "race.jsonl", &lines);
        let child = append_file(home, &url, &file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        children.push(child);
    }
    let mut acknowledged = Vec::new();
    for child in children {
        let run = Run::from(child.wait_with_output().unwrap());
        ok(&run);
        let cids = appended(&run);
        assert_eq!(cids.len(), EACH);
        acknowledged.extend(cids);
    }

    // One chain of 1 + 1,000 events, heights contiguous, holding every acknowledged event.
    let c = Home::new();
    ok(&c.run(&["trust", "add", &did_a]));
    ok(&c.run(&["trust", "add", &did_b]));
    let log = ok(&c.run(&["--nats", &url, "--json", "log", "--person", &id])).records();
    let heights: Vec<u64> = log
        .iter()
        .map(|(_, d)| d["height"].as_u64().unwrap())
        .collect();
    assert_eq!(heights, (0..=2 * EACH as u64).collect::<Vec<_>>());
    let chain: HashSet<String> = log
        .iter()
        .map(|(_, d)| d["cid"].as_str().unwrap().to_string())
        .collect();
    for cid in &acknowledged {
        assert!(
            chain.contains(cid),
            "acknowledged event {cid} is not on the chain"
        );
    }
    assert!(log.iter().all(|(_, d)| d["verdict"] == "ok"));
    // JetStream holds exactly that chain, in order, once.
    let all = messages(&url);
    assert_eq!(all.len(), 2 * EACH + 1, "no fork, no duplicate");
    let order: Vec<String> = all.iter().map(|(_, _, n, _)| n.cid.to_string()).collect();
    let logged: Vec<String> = log
        .iter()
        .map(|(_, d)| d["cid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(order, logged);
    // Both writers' stores end on that chain too, once level with JetStream.
    for home in [&a, &b] {
        ok(&home.run(&["trust", "add", &did_a]));
        ok(&home.run(&["trust", "add", &did_b]));
        ok(&home.run(&["--nats", &url, "sync"]));
        ok(&home.run(&["--nats", &url, "verify"]));
    }
}

#[test]
fn a_server_killed_mid_batch_loses_nothing_and_sync_publishes_every_event_exactly_once() {
    let mut server = NatsServer::start();
    let url = server.url();
    let (a, _) = keyed();
    const PERSONS: usize = 5_000;
    let lines: Vec<_> = (0..PERSONS)
        .map(|i| serde_json::json!({"command": "register", "legal_name": format!("P {i}")}))
        .collect();
    let file = commands(&a, "many.jsonl", &lines);
    let child = a
        .command(&["--nats", &url, "append", "--file", file.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_first_message(&url, Duration::from_secs(300));
    server.kill();
    let run = Run::from(child.wait_with_output().unwrap());
    assert_eq!(run.code, 2, "the append was cut off: {}", run.stderr);
    assert!(
        run.stderr.contains("kept pending") && run.stderr.contains("personctl sync"),
        "{}",
        run.stderr
    );
    // Everything is stored locally.
    let streams = ok(&a.run(&["--json", "streams"])).records();
    assert_eq!(streams.len(), PERSONS);

    server.restart();
    let sync = ok(&a.run(&["--nats", &url, "--json", "sync"])).records();
    let synced = &sync.last().unwrap().1;
    assert!(synced["published"].as_u64().unwrap() > 0, "{synced}");
    let all = messages(&url);
    let mut count: HashMap<String, usize> = HashMap::new();
    for (_, _, n, _) in &all {
        *count.entry(n.cid.to_string()).or_default() += 1;
    }
    let heads: HashSet<String> = streams
        .iter()
        .map(|(_, d)| d["head"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(all.len(), PERSONS, "one message per event");
    assert!(count.values().all(|&n| n == 1), "a duplicate message");
    assert_eq!(count.keys().cloned().collect::<HashSet<_>>(), heads);
    ok(&a.run(&["--nats", &url, "verify"]));
    // A second sync has nothing to do.
    let again = ok(&a.run(&["--nats", &url, "--json", "sync"])).records();
    assert_eq!(again.last().unwrap().1["published"], 0);
}

#[test]
fn with_the_server_down_append_keeps_the_events_pending_and_sync_publishes_them() {
    let mut server = NatsServer::start();
    let url = server.url();
    let (a, _) = keyed();
    let first = a.run(&[
        "--nats",
        &url,
        "--json",
        "append",
        "register",
        "--legal-name",
        "A",
    ]);
    let id = ok(&first).records()[0].1["person"]
        .as_str()
        .unwrap()
        .to_string();
    server.kill();
    // Offline: the command is decided on the local state, stored, and left pending (exit 2).
    let run = a.run(&[
        "--nats",
        &url,
        "--json",
        "append",
        "add-email",
        "--person",
        &id,
        "--address",
        "a@example.org",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("1 event(s) are stored here and kept pending")
            && run.stderr.contains("personctl sync")
            && run.stderr.contains(&url),
        "{}",
        run.stderr
    );
    let stored = run.of_type("appended");
    assert_eq!(stored.len(), 1, "{}", run.stdout);
    let cid = stored[0]["cid"].as_str().unwrap().to_string();
    // A raw event, too.
    let raw = a.run(&[
        "--nats",
        &url,
        "append-event",
        "--stream",
        "org/acme",
        "--type",
        "Founded",
    ]);
    assert_eq!(raw.code, 2, "{}", raw.stderr);
    assert!(
        raw.stderr
            .contains("the event is stored here and kept pending"),
        "{}",
        raw.stderr
    );
    // Both stay in the store (verify without the server: ok), and sync publishes them.
    ok(&a.run(&["verify"]));
    server.restart();
    let synced = ok(&a.run(&["--nats", &url, "--json", "sync"])).records();
    assert_eq!(synced.last().unwrap().1["published"], 2, "{synced:?}");
    let published: HashSet<String> = messages(&url)
        .into_iter()
        .map(|(_, _, n, _)| n.cid.to_string())
        .collect();
    assert!(
        published.contains(&cid),
        "the offline event is on JetStream"
    );
    ok(&a.run(&["--nats", &url, "verify"]));
}

#[test]
fn a_three_node_cluster_keeps_every_acknowledged_event_when_a_node_dies() {
    let mut cluster = Cluster::start(3);
    let urls = cluster.urls();
    let (a, _) = keyed();
    let args = ["--nats", urls.as_str(), "--nats-replicas", "3", "--json"];
    let with =
        |rest: &[&str]| -> Vec<String> { args.iter().chain(rest).map(|s| s.to_string()).collect() };
    // The cluster elects its JetStream leader; sync creates the replicated stream.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let sync = with(&["sync"]);
        let run = a.run(&sync.iter().map(String::as_str).collect::<Vec<_>>());
        if run.code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cluster not ready: {}",
            run.stderr
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut acknowledged = Vec::new();
    for round in 0..10 {
        let lines: Vec<_> = (0..200)
            .map(|i| serde_json::json!({"command": "register", "legal_name": format!("R{round} {i}")}))
            .collect();
        let file = commands(&a, &format!("round{round}.jsonl"), &lines);
        let append = with(&["append", "--file", file.to_str().unwrap()]);
        let append: Vec<&str> = append.iter().map(String::as_str).collect();
        let run = if round == 3 {
            // Kill a node while this append runs.
            let child = a.spawn(&append);
            std::thread::sleep(Duration::from_millis(150));
            cluster.servers[0].kill();
            Run::from(child.wait_with_output().unwrap())
        } else {
            a.run(&append)
        };
        ok(&run);
        acknowledged.extend(appended(&run));
    }
    assert_eq!(acknowledged.len(), 2_000);
    let live = cluster.servers[1..]
        .iter()
        .map(NatsServer::url)
        .collect::<Vec<_>>()
        .join(",");
    let all: HashSet<String> = messages(&live)
        .into_iter()
        .map(|(_, _, n, _)| n.cid.to_string())
        .collect();
    for cid in &acknowledged {
        assert!(all.contains(cid), "acknowledged event {cid} missing");
    }
    // The cross-check places a consumer; with a node gone the cluster may take a while to place
    // it (seen under load in CI), so the verdict is awaited, not the first attempt.
    let verify = with(&["verify"]);
    let verify: Vec<&str> = verify.iter().map(String::as_str).collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let run = a.run(&verify);
        if run.code == 0 {
            break;
        }
        assert!(
            run.code == 2 && run.stderr.contains("timed out") && Instant::now() < deadline,
            "verify: {}\n{}",
            run.stderr,
            run.stdout
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
