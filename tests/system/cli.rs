//! The command line: set-up, appends, audit trail, exit codes, error messages, output streams.

use std::os::unix::fs::PermissionsExt;

use crate::{keyed, Home};

#[test]
fn keygen_writes_an_owner_only_key_trusts_it_and_never_overwrites() {
    let (home, did) = keyed();
    let key = home.path().join("keys/default.pem");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(std::fs::read_to_string(&key)
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    let list = home.run(&["trust", "list", "--json"]);
    let records = list.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].1["author"], did.as_str());

    let before = std::fs::read(&key).unwrap();
    let again = home.run(&["keygen"]);
    assert_eq!(again.code, 2);
    assert!(
        again.stderr.contains("never overwritten") && again.stderr.contains("default.pem"),
        "{}",
        again.stderr
    );
    assert_eq!(
        std::fs::read(&key).unwrap(),
        before,
        "the existing key is untouched"
    );
}

#[test]
fn append_verify_and_log_a_chain() {
    let (home, did) = keyed();
    let first = home.run(&[
        "append-event",
        "--stream",
        "person/p1",
        "--type",
        "PersonRegistered",
        "--data",
        r#"{"legal_name":"Grace Hopper"}"#,
        "--expect-empty",
        "--json",
    ]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let first = first.records().remove(0).1;
    assert_eq!(first["height"], 0);
    let cause = home.run(&[
        "append-event",
        "--stream",
        "org/navy",
        "--type",
        "OrganisationFounded",
    ]);
    let cause_cid = cause.stdout.trim().to_string();
    let second = home.run(&[
        "append-event",
        "--stream",
        "person/p1",
        "--type",
        "PersonRenamed",
        "--expect-height",
        "0",
        "--cause",
        &cause_cid,
    ]);
    assert_eq!(second.code, 0, "{}", second.stderr);

    let verify = home.run(&["verify"]);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
    assert!(
        verify
            .stdout
            .starts_with("OK: 3 events, 1 payload, 2 streams"),
        "{}",
        verify.stdout
    );

    let log = home.run(&["log", "--person", "p1", "--json"]);
    assert_eq!(log.code, 0);
    let events = log.records();
    assert_eq!(events.len(), 2);
    for (i, (ty, data)) in events.iter().enumerate() {
        assert_eq!(ty, "event");
        assert_eq!(data["height"], i as u64);
        assert_eq!(data["verdict"], "ok");
        assert_eq!(data["author"], did.as_str());
    }
    assert_eq!(events[0].1["cid"], first["cid"]);
    assert_eq!(events[1].1["causes"][0], cause_cid.as_str());
    assert_eq!(events[0].1["payload"], first["payload"]);

    let streams = home.run(&["streams", "--json"]).records();
    assert_eq!(
        streams
            .iter()
            .map(|(_, d)| d["stream"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["org/navy", "person/p1"]
    );
}

#[test]
fn a_stale_expected_height_is_a_conflict_naming_both_heights_and_appends_nothing() {
    let (home, _) = keyed();
    for _ in 0..3 {
        assert_eq!(
            home.run(&["append-event", "--stream", "person/p", "--type", "Touched"])
                .code,
            0
        );
    }
    let run = home.run(&[
        "append-event",
        "--stream",
        "person/p",
        "--type",
        "Touched",
        "--expect-height",
        "0",
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("conflict on stream person/p: expected head at height 0, found at height 2"),
        "{}",
        run.stderr
    );
    let run = home.run(&[
        "append-event",
        "--stream",
        "person/p",
        "--type",
        "Touched",
        "--expect-empty",
    ]);
    assert!(
        run.stderr
            .contains("expected head empty stream, found at height 2"),
        "{}",
        run.stderr
    );
    let log = home
        .run(&["log", "--stream", "person/p", "--json"])
        .records();
    assert_eq!(log.len(), 3);
}

#[test]
fn bad_input_is_an_error_naming_the_input() {
    let (home, _) = keyed();
    let cases: &[(&[&str], &str)] = &[
        (
            &["append-event", "--stream", "person", "--type", "T"],
            "--stream \"person\"",
        ),
        (
            &["append-event", "--stream", "person/a.b", "--type", "T"],
            "may not contain '.'",
        ),
        (
            &[
                "append-event",
                "--stream",
                "person/a",
                "--type",
                "has space",
            ],
            "event type \"has space\"",
        ),
        (
            &[
                "append-event",
                "--stream",
                "person/a",
                "--type",
                "T",
                "--data",
                "{not json",
            ],
            "--data is not valid JSON",
        ),
        (
            &[
                "append-event",
                "--stream",
                "person/a",
                "--type",
                "T",
                "--cause",
                "bafyfoo",
            ],
            "--cause \"bafyfoo\"",
        ),
        (
            &[
                "append-event",
                "--stream",
                "person/a",
                "--type",
                "T",
                "--cause",
                "bafyr4ialbyod2yzfgnufpaudtdlftrlbbsxz22tboix5xqszhjwkmyerrq",
            ],
            "is not in the store",
        ),
        (&["verify", "--stream", "person/none"], "no such stream"),
        (&["log", "--person", "nobody"], "no stream person/nobody"),
        (
            &["trust", "add", "did:key:zNope"],
            "trust add \"did:key:zNope\"",
        ),
        (
            &[
                "trust",
                "remove",
                "did:key:z6MkneMkZqwqRiU5mJzSG3kDwzt9P8C59N4NGTfBLfSGE7c7",
            ],
            "that key is not trusted",
        ),
        (
            &[
                "append-event",
                "--key",
                "/nonexistent/key.pem",
                "--stream",
                "person/a",
                "--type",
                "T",
            ],
            "/nonexistent/key.pem",
        ),
    ];
    home.expect_errors(cases);
    // Nothing was appended by any of them.
    assert_eq!(home.run(&["streams"]).stdout, "");
}

#[test]
fn verify_without_a_store_is_an_error_not_a_verdict() {
    let home = Home::new();
    let run = home.run(&["verify"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains(&format!("no store at {}", home.store_path().display())),
        "{}",
        run.stderr
    );
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let home = Home::new();
    assert_eq!(home.run(&["no-such-command"]).code, 2);
    assert_eq!(
        home.run(&["verify", "--stream", "a/b", "--person", "c"])
            .code,
        2
    );
    let help = home.run(&["--help"]);
    assert_eq!(help.code, 0);
    assert!(help
        .stdout
        .contains("Exit codes: 0 ok; 1 a negative verdict"));
}

#[test]
fn stdout_carries_only_the_report_even_with_debug_logging() {
    let (home, _) = keyed();
    home.run(&["append-event", "--stream", "person/x", "--type", "Touched"]);
    let out = std::process::Command::new(crate::personctl())
        .args(["verify", "--json"])
        .env("PERSONCTL_HOME", home.path())
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with(r#"{"data":"#));
    assert!(
        String::from_utf8(out.stderr).unwrap().contains("verified"),
        "debug logs go to stderr"
    );
}

#[test]
fn untrusting_the_author_turns_the_verdict_negative() {
    let (home, did) = keyed();
    home.run(&["append-event", "--stream", "person/x", "--type", "Touched"]);
    assert_eq!(home.run(&["trust", "remove", &did]).code, 0);
    let run = home.run(&["verify"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("[untrusted-author]") && run.stdout.contains(&did),
        "{}",
        run.stdout
    );
    assert_eq!(home.run(&["log", "--stream", "person/x"]).code, 1);
    assert_eq!(home.run(&["trust", "add", &did]).code, 0);
    assert_eq!(home.run(&["verify"]).code, 0);
}

#[test]
fn demo_builds_a_ledger_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("demo");
    let home = Home::new();
    let run = home.run(&["demo", "--dir", target.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let records = run.records();
    let (ty, summary) = records.last().unwrap();
    assert_eq!(ty, "summary");
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["persons"], 5);
    assert_eq!(
        summary["events"], summary["replayed"],
        "every appended event is replayed"
    );
    let persons: Vec<_> = records.iter().filter(|(ty, _)| ty == "person").collect();
    assert_eq!(persons.len(), 5);
    let lifecycles: Vec<&str> = persons
        .iter()
        .map(|(_, p)| p["lifecycle"].as_str().unwrap())
        .collect();
    for state in ["Active", "Archived", "Deceased", "MergedInto("] {
        assert!(
            lifecycles.iter().any(|l| l.starts_with(state)),
            "{state} missing from {lifecycles:?}"
        );
    }
    // The demo's home is a normal home.
    let out = std::process::Command::new(crate::personctl())
        .args(["verify"])
        .env("PERSONCTL_HOME", &target)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        home.run(&["demo", "--dir", target.to_str().unwrap()]).code,
        2,
        "refuses an existing directory"
    );
}
