//! The service against a real nats-server: two `serve --commands` instances in one queue group
//! take person commands by request-reply; a request retried with the same command id appends
//! nothing twice, whichever instance takes the retry; a refused command gets a structured
//! error; their metrics are scraped; every home verifies what the instances wrote. And
//! retention: `serve --policies --retention` with its clock past the period erases what is
//! due, leaving no value in any file.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::nats::{free_port_for_child, NatsServer};
use crate::{keyed, ok, Home};

fn spawn_service(home: &Home, url: &str, metrics: &str) -> Child {
    home.spawn(&[
        "--nats",
        url,
        "--json",
        "--metrics",
        metrics,
        "serve",
        "--commands",
    ])
}

/// A command service whose metrics listener is up, and that listener's address. The port is
/// free when chosen, but anything on the machine may take it before the child binds it: the
/// child then exits at once with a `--metrics` error, and another port is tried.
fn spawn_serving_metrics(home: &Home, url: &str) -> (Child, String) {
    for _ in 0..20 {
        let addr = format!("127.0.0.1:{}", free_port_for_child());
        let mut child = spawn_service(home, url, &addr);
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let out = child.wait_with_output().unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(
                    stderr.contains("--metrics"),
                    "the service stopped ({status}) for another reason: {stderr}"
                );
                break;
            }
            if std::net::TcpStream::connect(&addr).is_ok() {
                return (child, addr);
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no metrics listener at {addr} after 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("20 ports in a row were taken before the service could bind them");
}

/// Sends `body` to `ledger_commands.<command>` and returns the JSON reply.
async fn request(client: &async_nats::Client, command: &str, body: &Value) -> Value {
    let reply = tokio::time::timeout(
        Duration::from_secs(30),
        client.request(
            format!("ledger_commands.{command}"),
            serde_json::to_vec(body).unwrap().into(),
        ),
    )
    .await
    .expect("a reply within 30 s")
    .expect("a reply");
    serde_json::from_slice(&reply.payload).unwrap()
}

#[test]
fn two_command_services_share_requests_and_a_retried_command_id_appends_once() {
    let server = NatsServer::start();
    let url = server.url();
    let (a, did_a) = keyed();
    let (b, did_b) = keyed();
    for home in [&a, &b] {
        for did in [&did_a, &did_b] {
            ok(&home.run(&["trust", "add", did]));
        }
    }
    let (service_a, metrics_a) = spawn_serving_metrics(&a, &url);
    let (service_b, metrics_b) = spawn_serving_metrics(&b, &url);
    let metrics = [metrics_a, metrics_b];
    let mut services = [service_a, service_b];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ids: Vec<String> = (0..12)
        .map(|i| format!("0192cccc-0000-7000-8000-{i:012}"))
        .collect();
    let (replies, retries, refused, bad) = runtime.block_on(async {
        let client = async_nats::connect(&url).await.unwrap();
        // Both services answer once their subscriptions are in: wait for two queue members.
        let started = Instant::now();
        loop {
            let probe = client
                .request("ledger_commands.register", "{}".into())
                .await;
            if probe.is_ok() && started.elapsed() > Duration::from_secs(3) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "no service answered");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut replies = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let body = json!({"id": id, "legal_name": format!("Person {i}")});
            replies.push(request(&client, "register", &body).await);
        }
        // The same command id again, many times: whichever instance takes it, the same events
        // come back and nothing is appended.
        let mut retries = Vec::new();
        for _ in 0..8 {
            let body = json!({"id": ids[0], "legal_name": "Person 0"});
            retries.push(request(&client, "register", &body).await);
        }
        // A rule refuses an empty name: a structured error, nothing appended.
        let refused = request(
            &client,
            "rename",
            &json!({"person": ids[1], "legal_name": "", "id": "0192cccc-0000-7000-8000-ffffffffffff"}),
        )
        .await;
        let bad = request(&client, "register", &json!({"command": "rename"})).await;
        (replies, retries, refused, bad)
    });
    for (reply, id) in replies.iter().zip(&ids) {
        assert_eq!(reply["ok"], true, "{reply}");
        assert_eq!(reply["repeated"], false, "{reply}");
        assert_eq!(reply["person"], id.as_str());
        assert_eq!(reply["events"].as_array().unwrap().len(), 1, "{reply}");
        assert_eq!(reply["events"][0]["type"], "PersonRegistered");
    }
    for retry in &retries {
        assert_eq!(retry["ok"], true, "{retry}");
        assert_eq!(retry["repeated"], true, "{retry}");
        assert_eq!(retry["events"], replies[0]["events"]);
    }
    assert_eq!(refused["ok"], false);
    assert_eq!(refused["error"]["kind"], "rule", "{refused}");
    assert_eq!(bad["error"]["kind"], "invalid", "{bad}");
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("was sent for \"register\""),
        "{bad}"
    );

    // Each instance's metrics, scraped over HTTP: together they count every request, the
    // appended and published events, and the latency histograms.
    for service in &mut services {
        if let Some(status) = service.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(service.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            panic!("a command service stopped ({status}) while requests were sent: {stderr}");
        }
    }
    let scraped: Vec<String> = metrics.iter().map(|m| scrape(m)).collect();
    let total = |name: &str| -> f64 { scraped.iter().map(|s| sample(s, name)).sum() };
    assert_eq!(
        total("personctl_commands_total{outcome=\"appended\"}"),
        12.0,
        "{scraped:?}"
    );
    assert_eq!(total("personctl_commands_total{outcome=\"repeated\"}"), 8.0);
    assert_eq!(total("personctl_commands_total{outcome=\"rule\"}"), 1.0);
    assert_eq!(total("personctl_events_appended_total"), 12.0);
    assert_eq!(total("personctl_events_published_total"), 12.0);
    assert!(total("personctl_command_seconds_count") >= 21.0);
    assert!(total("personctl_publish_seconds_bucket{le=\"+Inf\"}") >= 12.0);
    for s in &scraped {
        assert!(
            s.contains("# TYPE personctl_command_seconds histogram"),
            "{s}"
        );
    }

    // Both instances stop on SIGTERM and report how many requests each answered: the queue
    // group spread them (neither answered all of them).
    let mut answered = Vec::new();
    for service in &mut services {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &service.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
    for service in services {
        let out = service.wait_with_output().unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        answered.push(last["data"]["commands"].as_u64().unwrap());
    }
    let total = 12 + 8 + 2;
    assert!(answered.iter().sum::<u64>() >= total, "{answered:?}");
    assert!(answered.iter().all(|&n| n > 0), "{answered:?}");

    // A third home that trusts both services pulls everything: one event per person, each
    // chain verifies, and the shared log agrees.
    let reader = Home::new();
    for did in [&did_a, &did_b] {
        ok(&reader.run(&["trust", "add", did]));
    }
    ok(&reader.run(&["--nats", &url, "sync"]));
    let run = reader.run(&["--nats", &url, "--json", "verify"]);
    ok(&run);
    assert_eq!(run.of_type("summary")[0]["events"], 12, "{}", run.stdout);
}

/// The metrics text served at `addr` (HTTP/1.0 GET, read to the end).
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1."), "{response}");
    assert!(response.contains(" 200 "), "{response}");
    response
}

/// The value of the sample `name` (with its labels, as printed) in a scrape; 0 when absent.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map(|v| v.trim().parse::<f64>().unwrap())
        .sum()
}

#[test]
fn retention_erases_what_is_due_once_the_clock_passes_its_period_and_leaves_no_value_on_disk() {
    const KEPT: &str = "Grace Hopper-Kept";
    const GONE: &str = "Ada Lovelace-Gone";
    const EMAIL: &str = "ada.gone@example.org";
    let server = NatsServer::start();
    let url = server.url();
    let (home, _) = keyed();
    let [kept, gone] = [KEPT, GONE].map(|name| {
        let run = home.run(&[
            "--nats",
            &url,
            "--json",
            "append",
            "register",
            "--legal-name",
            name,
        ]);
        ok(&run).of_type("appended")[0]["person"]
            .as_str()
            .unwrap()
            .to_string()
    });
    ok(&home.run(&[
        "--nats",
        &url,
        "append",
        "add-email",
        "--person",
        &gone,
        "--address",
        EMAIL,
    ]));
    ok(&home.run(&["--nats", &url, "append", "archive", "--person", &gone]));
    let policy = home.path().join("retention.json");
    std::fs::write(
        &policy,
        r#"{"rules": [{"when": ["archived", "deceased"], "after_days": 30, "erase": "person"}]}"#,
    )
    .unwrap();
    let policy = policy.to_str().unwrap();
    let day_us = 86_400_000_000u64;
    let now = personctl_ledger::now_us();
    let at = |days: u64| crate::output_time(now + days * day_us);
    let due = |days: u64| {
        let run = home.run(&[
            "--json",
            "retention",
            "show",
            "--retention",
            policy,
            "--now",
            &at(days),
        ]);
        ok(&run).of_type("due")
    };
    assert!(due(10).is_empty(), "not due before its period");
    let listed = due(31);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["person"], gone.as_str());
    assert_eq!(
        (listed[0]["rule"].clone(), listed[0]["erase"].clone()),
        (json!(1), json!("person"))
    );
    for value in [GONE, EMAIL, KEPT] {
        assert!(
            !crate::holding(home.path(), value).is_empty(),
            "{value} stored"
        );
    }

    // serve with the policies, its clock 31 days on: the tombstone is signed, published, and
    // every value is gone from the home (store and read models) and from JetStream's files.
    let run = home.run(&[
        "--nats",
        &url,
        "--json",
        "serve",
        "--until-caught-up",
        "--policies",
        "--retention",
        policy,
        "--now",
        &at(31),
    ]);
    ok(&run);
    for value in [GONE, EMAIL] {
        assert_eq!(
            crate::holding(home.path(), value),
            Vec::<std::path::PathBuf>::new(),
            "{value}"
        );
        assert_eq!(
            crate::holding(server.store_dir(), value),
            Vec::<std::path::PathBuf>::new(),
            "{value} in JetStream's files"
        );
    }
    assert!(
        !crate::holding(home.path(), KEPT).is_empty(),
        "the active person stays"
    );
    assert!(due(31).is_empty(), "nothing is due twice");
    let summary = ok(&home.run(&["--json", "query", "summary", "--person", &gone])).records();
    assert_eq!(summary[0].1["lifecycle"], "Erased", "{summary:?}");
    // The other person keeps its values (its onboarding timed out meanwhile: the saga
    // suspended it, which no rule erases).
    let summary = ok(&home.run(&["--json", "query", "summary", "--person", &kept])).records();
    assert_eq!(summary[0].1["legal_name"], KEPT, "{summary:?}");
    assert_eq!(summary[0].1["lifecycle"], "Suspended", "{summary:?}");
    ok(&home.run(&["--nats", &url, "verify"]));
}

#[test]
fn only_clients_with_publish_permission_on_the_command_subjects_reach_the_service() {
    // The server's users, as README (Operate) recommends: the service may do anything, the
    // front desk may send commands, the reader may not.
    let server = NatsServer::start_with_config(Some(
        r#"authorization { users = [
            {user: service, password: service-pw}
            {user: frontdesk, password: frontdesk-pw, permissions: {publish: ["ledger_commands.>"], subscribe: ["_INBOX.>"]}}
            {user: reader, password: reader-pw, permissions: {publish: {deny: ["ledger_commands.>"]}, subscribe: ["_INBOX.>"]}}
        ]}"#,
    ));
    let port = server.url().rsplit(':').next().unwrap().to_string();
    let as_user = |user: &str| format!("nats://{user}:{user}-pw@127.0.0.1:{port}");
    let (home, _) = keyed();
    let service = home
        .command(&[
            "--nats",
            &as_user("service"),
            "--json",
            "serve",
            "--commands",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (allowed, refused) = runtime.block_on(async {
        let plain = format!("nats://127.0.0.1:{port}");
        let connect = |user: &str| {
            async_nats::ConnectOptions::with_user_and_password(user.into(), format!("{user}-pw"))
                .connect(plain.clone())
        };
        let frontdesk = connect("frontdesk").await.unwrap();
        let started = Instant::now();
        let body = json!({"id": "0192dddd-0000-7000-8000-000000000001", "legal_name": "Allowed"});
        let allowed = loop {
            let reply = tokio::time::timeout(
                Duration::from_secs(2),
                frontdesk.request(
                    "ledger_commands.register",
                    serde_json::to_vec(&body).unwrap().into(),
                ),
            )
            .await;
            if let Ok(Ok(reply)) = reply {
                break serde_json::from_slice::<Value>(&reply.payload).unwrap();
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the service never answered"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        // The reader's publish is refused by the server: no service ever sees it, so the
        // request gets no reply.
        let reader = connect("reader").await.unwrap();
        let body = json!({"id": "0192dddd-0000-7000-8000-000000000002", "legal_name": "Refused"});
        let refused = tokio::time::timeout(
            Duration::from_secs(3),
            reader.request(
                "ledger_commands.register",
                serde_json::to_vec(&body).unwrap().into(),
            ),
        )
        .await;
        (allowed, refused)
    });
    assert_eq!(allowed["ok"], true, "{allowed}");
    assert!(
        !matches!(refused, Ok(Ok(_))),
        "the reader got a reply: {refused:?}"
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = service.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Only the allowed command was appended.
    let run = home.run(&["--json", "verify"]);
    ok(&run);
    assert_eq!(run.of_type("summary")[0]["events"], 1, "{}", run.stdout);
    assert!(crate::holding(home.path(), "Refused").is_empty());
}
