//! `personctl bench`: one run measures every stage next to its ceiling, verifies what it
//! appended, and (with `--nats`) adds the JetStream and read-side stages against a real server.
//! The figures themselves are machine-dependent and asserted nowhere; what is asserted is that
//! every stage ran on the events it claims and reports consistent numbers.

use crate::nats::NatsServer;
use crate::{ok, Home, Run};

/// The stages of the embedded run, ceilings first.
const EMBEDDED: [&str; 18] = [
    "encode + CID (1 core)",
    "sign (1 core)",
    "sign (all cores)",
    "verify single (1 core)",
    "verify batch/1024 (1 core)",
    "verify batch/1024 (all cores)",
    "decode + CID (all cores)",
    "append to sled, batched",
    "verify whole store",
    "append to sled, 1 event per call, 32 writers",
    "append to sled, 1 event per call, 128 writers",
    "append to sled, batched, log tree kept",
    "log tree rebuilt (1,000,000 leaves)",
    "verify, identities and grants",
    "domain commands, batched",
    "replay all into the World",
    "replay all, authors judged",
    "rebuild one 10,000-event chain",
];

/// Every `bench` record's data, by stage name.
fn stages(run: &Run) -> Vec<(String, serde_json::Value)> {
    run.of_type("bench")
        .into_iter()
        .map(|d| (d["stage"].as_str().expect("a stage name").to_string(), d))
        .collect()
}

fn stage<'a>(all: &'a [(String, serde_json::Value)], name: &str) -> &'a serde_json::Value {
    &all.iter()
        .find(|(s, _)| s == name)
        .unwrap_or_else(|| panic!("no stage {name:?} in {all:?}"))
        .1
}

/// Small sizes: 400 events over 20 streams in batches of 50.
const ARGS: [&str; 7] = [
    "bench",
    "--events",
    "400",
    "--streams",
    "20",
    "--batch",
    "50",
];

#[test]
fn one_run_reports_every_stage_next_to_its_ceiling() {
    let home = Home::new();
    let mut args = vec!["--json"];
    args.extend(ARGS);
    let run = home.run(&args);
    ok(&run);
    let all = stages(&run);
    let names: Vec<&str> = all.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(names, EMBEDDED);
    // The Hypercore peer ran next to the same stages, or its absence is said.
    let peer = run.of_type("peer");
    if peer.is_empty() {
        let skipped = run.of_type("skipped");
        assert!(
            skipped
                .iter()
                .any(|s| s["stages"].as_str().unwrap().starts_with("Hypercore peer")),
            "{}",
            run.stdout
        );
    } else {
        assert_eq!(peer[0]["stage"], "hypercore append, batched");
        assert_eq!(peer[0]["ours"][0]["stage"], "append to sled, batched");
        assert!(peer[0]["ours"][0]["times"].as_f64().unwrap() > 0.0);
    }
    for (name, d) in &all {
        let events = d["events"].as_u64().unwrap();
        let seconds = d["seconds"].as_f64().unwrap();
        let rate = d["events_per_second"].as_f64().unwrap();
        assert!(events > 0 && seconds > 0.0, "{name}: {d}");
        assert!(
            (rate - events as f64 / seconds).abs() <= 1.0,
            "{name}: the rate is events / seconds: {d}"
        );
        // Every measured stage names a ceiling of this run, and its ratio to that ceiling.
        if let Some(ceiling) = d["ceiling"].as_str() {
            let c = stage(&all, ceiling);
            // The log's and the identities' stages are compared with the plain stage they
            // add to; every other one with a ceiling.
            let against_plain = [
                "append to sled, batched, log tree kept",
                "verify, identities and grants",
            ];
            assert!(
                c["ceiling"].is_null() || against_plain.contains(&name.as_str()),
                "{name}: {ceiling} is not a ceiling"
            );
            let expected = rate / c["events_per_second"].as_f64().unwrap();
            let ratio = d["ratio"].as_f64().unwrap();
            assert!(
                (ratio - expected).abs() < 0.01,
                "{name}: {ratio} vs {expected}"
            );
        } else if name != "log tree rebuilt (1,000,000 leaves)" {
            // (The tree rebuild is a figure of its own: the bound is 2 s.)
            assert!(d["note"].as_str().unwrap().starts_with("ceiling"), "{name}");
        }
    }
    // The measured stages ran on the sizes asked for, and the store they wrote verified.
    assert_eq!(stage(&all, "append to sled, batched")["events"], 400);
    assert_eq!(stage(&all, "verify whole store")["events"], 400);
    assert_eq!(
        stage(&all, "verify whole store")["ceiling"],
        "verify batch/1024 (all cores)"
    );
    assert_eq!(stage(&all, "domain commands, batched")["events"], 400);
    assert_eq!(stage(&all, "replay all into the World")["events"], 400);
    // The same replay with every author resolved to its identity, and what that added.
    let judged = stage(&all, "replay all, authors judged");
    assert_eq!(judged["events"], 400);
    assert!(
        judged["note"]
            .as_str()
            .unwrap()
            .contains("% over the plain replay"),
        "{judged}"
    );
    assert_eq!(
        stage(&all, "rebuild one 10,000-event chain")["events"],
        10_000
    );
    // The log's stages: the same appends with the tree kept, a 1,000,000-leaf tree, the
    // latency to a covering checkpoint for every event, a proof's size and check.
    let tree = stage(&all, "append to sled, batched, log tree kept");
    assert_eq!(tree["events"], 400);
    assert_eq!(tree["ceiling"], "append to sled, batched");
    assert_eq!(
        stage(&all, "log tree rebuilt (1,000,000 leaves)")["events"],
        1_000_000
    );
    let latency = &run.of_type("checkpoint_latency")[0];
    assert_eq!(latency["events"], 400, "{latency}");
    let p99 = latency["p99_ms"].as_f64().unwrap();
    assert!(
        p99.is_finite() && p99 >= 0.0,
        "every event was covered: {latency}"
    );
    let proof = &run.of_type("proof")[0];
    assert_eq!(
        proof["inclusion_hashes"], 20,
        "ceil(log2 1,000,000): {proof}"
    );
    assert_eq!(proof["inclusion_bytes"], 640);
    assert!(proof["check_us"].as_f64().unwrap() > 0.0, "{proof}");
    assert_eq!(
        proof["bundle_leaves"], 400,
        "the latency stage's log: {proof}"
    );
    // Identities: the store verified, next to the plain verify.
    let ids = stage(&all, "verify, identities and grants");
    assert!(ids["events"].as_u64().unwrap() > 400, "{ids}");
    assert_eq!(ids["ceiling"], "verify whole store");
    // Memory and disk.
    let rss = &run.of_type("peak_rss")[0];
    assert!(rss["bytes"].as_u64().unwrap() > 1 << 20, "{rss}");
    let disk = &run.of_type("disk")[0];
    // 400 batched events and 80 from each one-event-per-call stage.
    assert_eq!(disk["events"], 400 + 2 * 80);
    let per_event = disk["bytes_per_event"].as_u64().unwrap();
    let blocks = disk["block_bytes_per_event"].as_u64().unwrap();
    assert!(blocks > 100 && per_event >= blocks, "{disk}");
    // The World's memory per person is the criterion bench's (it needs a counting allocator,
    // which personctl does not carry).
    assert!(run.of_type("memory").is_empty());
    // Without a server, the JetStream stages are named as not run.
    // (The Hypercore peer is either run or skipped with its own reason: see above.)
    let skipped: Vec<_> = run
        .of_type("skipped")
        .into_iter()
        .filter(|s| !s["stages"].as_str().unwrap().starts_with("Hypercore peer"))
        .collect();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["reason"], "no --nats URL");
}

#[test]
fn with_nats_the_same_run_adds_jetstream_next_to_raw_publish() {
    let server = NatsServer::start();
    let home = Home::new();
    let url = server.url();
    let mut args = vec!["--nats", url.as_str(), "--json"];
    args.extend(ARGS);
    let run = home.run(&args);
    ok(&run);
    let all = stages(&run);
    let names: Vec<&str> = all.iter().map(|(s, _)| s.as_str()).collect();
    // The embedded stages come first, in the same run.
    assert_eq!(names[..EMBEDDED.len()], EMBEDDED);
    assert!(run
        .of_type("skipped")
        .iter()
        .all(|s| s["stages"].as_str().unwrap().starts_with("Hypercore peer")));
    for name in [
        "raw publish, 1 message/event",
        "raw publish, 3 messages/event",
        "raw publish, personctl's messages",
        "personctl append + JetStream",
        "rebuild read models",
    ] {
        let d = stage(&all, name);
        assert!(
            d["events_per_second"].as_f64().unwrap() > 0.0,
            "{name}: {d}"
        );
    }
    assert_eq!(stage(&all, "personctl append + JetStream")["events"], 400);
    assert_eq!(stage(&all, "raw publish, 3 messages/event")["events"], 400);
    // The latency stages ran on --events events (in whole ticks of 50), each one seen.
    for kind in ["latency", "projection_lag", "append_to_projection"] {
        let d = &run.of_type(kind)[0];
        assert_eq!(d["events"], 400, "{kind}: {d}");
        let (p50, p95, max) = (
            d["p50_ms"].as_f64().unwrap(),
            d["p95_ms"].as_f64().unwrap(),
            d["max_ms"].as_f64().unwrap(),
        );
        assert!(0.0 < p50 && p50 <= p95 && p95 <= max, "{kind}: {d}");
    }
    let ratio = &run.of_type("ratio")[0];
    for of in ["of_raw_1_message", "of_raw_3_messages", "of_raw_shaped"] {
        assert!(ratio[of].as_f64().unwrap() > 0.0, "{of}: {ratio}");
    }
}

/// `--subjects`: what a subject costs the server, in personctl's block layout and grouped.
#[test]
fn subjects_measures_both_layouts_on_the_server() {
    let server = NatsServer::start();
    let home = Home::new();
    let url = server.url();
    let run = home.run(&["--nats", &url, "--json", "bench", "--subjects", "300"]);
    let records = run.of_type("subjects");
    assert_eq!(records.len(), 2, "{}", run.stdout);
    ok(&run);
    assert_eq!(records[0]["layout"], "a subject per message");
    assert_eq!(records[0]["subjects"], 300);
    assert_eq!(records[0]["messages"], 300);
    assert_eq!(records[1]["layout"], "1,000 subjects");
    // One message kept per subject, as in the block bucket: 300 messages on 300 subjects.
    assert_eq!(records[1]["published"], 300);
    assert!(records[0]["stream_bytes"].as_u64().unwrap() > 300 * 230);
    // No --monitor: the memory is unknown, and said so.
    assert!(records[0]["memory_grown"].is_null());
    // Without a server it is an error that says what to give.
    let run = home.run(&["bench", "--subjects", "10"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--nats"), "{}", run.stderr);
}
