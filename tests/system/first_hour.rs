//! The first hour of a new user (issue 18): each surprise they met, through the real binary.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::nats::NatsServer;
use crate::{keyed, ok, personctl, register, Home, Run};

/// Asserts that `run` exited with `code` and said `text` on stderr.
#[track_caller]
fn says(run: &Run, code: i32, text: &str) {
    assert_eq!(run.code, code, "{}", run.stderr);
    assert!(run.stderr.contains(text), "{}", run.stderr);
}

#[test]
fn query_before_read_models_says_how_to_build_them_and_project_builds_them() {
    let (home, _) = keyed();
    register(&home, "Ada Lovelace");
    let run = home.run(&["query", "summary"]);
    says(&run, 2, "no read models");
    says(&run, 2, "personctl project");
    // `project` alone builds them when there are none; again, it describes them.
    let built = ok(&home.run(&["project"])).stdout.clone();
    assert!(
        built.contains("rebuilt the read models of 1 person "),
        "{built}"
    );
    let again = ok(&home.run(&["project"])).stdout.clone();
    assert!(again.contains("read models of 1 person"), "{again}");
    let summary = ok(&home.run(&["--json", "query", "summary"])).records();
    assert_eq!(summary[0].1["legal_name"], "Ada Lovelace");
}

#[test]
fn tail_and_append_share_a_home() {
    let server = NatsServer::start();
    let url = server.url();
    let (home, _) = keyed();
    ok(&home.run(&[
        "--nats",
        &url,
        "append",
        "register",
        "--legal-name",
        "First",
    ]));
    // tail holds the home while append writes to it.
    let tail = home
        .command(&["--nats", &url, "--json", "tail", "--count", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let run = home.run(&[
        "--nats",
        &url,
        "--json",
        "append",
        "register",
        "--legal-name",
        "Second",
    ]);
    let cid = ok(&run).records()[0].1["cid"].as_str().unwrap().to_string();
    let out = tail.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&cid), "tail saw the event: {stdout}");
}

#[test]
fn the_demo_prints_commands_that_work_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("demo");
    let out = Command::new(personctl())
        .args(["demo", "--dir", home.to_str().unwrap()])
        .env_remove("PERSONCTL_HOME")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    // The test binary is not on PATH: the lines name it by its full path.
    let verify = stdout
        .lines()
        .map(str::trim)
        .find(|l| l.ends_with(" verify"))
        .expect("a verify line");
    assert!(verify.starts_with('/'), "{verify}");
    let export = stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("export PERSONCTL_HOME="))
        .unwrap();
    let script = format!("{export}\n{verify}\n");
    let run = Command::new("sh").arg("-c").arg(&script).output().unwrap();
    let text = String::from_utf8(run.stdout).unwrap();
    assert!(run.status.success(), "{script}: {text}");
    assert!(text.starts_with("OK: "), "{text}");
}

/// Every verb's help at 80 columns: nothing wider, and examples in each.
#[test]
fn help_fits_80_columns_and_every_verb_has_examples() {
    let verbs = [
        "keygen",
        "trust",
        "append",
        "append-event",
        "replay",
        "show",
        "states",
        "verify",
        "log",
        "streams",
        "sync",
        "tail",
        "erase",
        "gc",
        "serve",
        "query",
        "project",
        "dlq",
        "export",
        "import",
        "bench",
        "demo",
        "completions",
        "man",
    ];
    let help = |args: &[&str]| {
        let out = Command::new(personctl())
            .args(args)
            .env("COLUMNS", "80")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    for text in std::iter::once(help(&["--help"])).chain(verbs.iter().map(|v| help(&[v, "--help"])))
    {
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "over 80 columns: {line:?}");
        }
    }
    for verb in verbs {
        assert!(help(&[verb, "--help"]).contains("Examples:"), "{verb}");
    }
    // A person command's own help, and a close miss.
    let (home, _) = keyed();
    let run = home.run(&["append", "add-email", "--help"]);
    assert!(
        ok(&run)
            .stdout
            .contains("add-email, verify-email, remove-email"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("add-skill"), "{}", run.stdout);
    let run = home.run(&["append", "add-skil", "--name", "Rust", "--level", "3"]);
    says(&run, 2, "did you mean `add-skill`?");
}

#[test]
fn errors_name_the_field_the_person_and_the_fix() {
    let (home, _) = keyed();
    let id = register(&home, "Ada Lovelace");
    let run = home.run(&[
        "append",
        "set-birth-date",
        "--person",
        &id,
        "--date",
        "1815-13-10",
    ]);
    says(&run, 2, "date: \"1815-13-10\"");
    says(&run, 2, "YYYY-MM-DD");
    // A missing field is named as the flag to give, and in a file as its JSON name.
    let run = home.run(&["append", "rename", "--person", &id]);
    says(&run, 2, "--legal-name is required");
    let file = crate::commands(
        &home,
        "c.jsonl",
        &[serde_json::json!({"command": "rename", "person": id})],
    );
    let run = home.run(&["append", "--file", file.to_str().unwrap()]);
    assert!(
        run.stderr.contains("legal_name: rename requires it"),
        "{}",
        run.stderr
    );
    let nobody = "0193f0c2-6e8a-7bd2-9d1b-5c1e0f2a3b4c";
    let run = home.run(&[
        "append",
        "add-email",
        "--person",
        nobody,
        "--address",
        "a@b.org",
    ]);
    says(&run, 2, &format!("no person {nobody}"));
    // Under --json, the error is a JSON line on stderr.
    let run = home.run(&[
        "--json",
        "append",
        "add-email",
        "--person",
        nobody,
        "--address",
        "x",
    ]);
    let error: Value = serde_json::from_str(run.stderr.trim()).expect("one JSON line");
    assert_eq!(error["type"], "error");
    assert_eq!(error["data"]["exit"], 2);
    // An archive by an author this home does not trust: the command that would trust it.
    let car = home.path().join("ada.car");
    ok(&home.run(&["export", "--car", car.to_str().unwrap()]));
    let other = Home::new();
    let run = other.run(&["import", "--car", car.to_str().unwrap()]);
    says(&run, 1, "personctl trust add did:key:z6Mk");
}

#[test]
fn export_prints_one_line_and_roots_only_as_json() {
    let (home, _) = keyed();
    for name in ["A", "B", "C"] {
        register(&home, name);
    }
    let car = home.path().join("all.car");
    let text = ok(&home.run(&["export", "--car", car.to_str().unwrap()]))
        .stdout
        .clone();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("of 3 chains"), "{text}");
    std::fs::remove_file(&car).unwrap();
    let json = home.run(&["--json", "export", "--car", car.to_str().unwrap()]);
    assert_eq!(ok(&json).of_type("root").len(), 3);
}

#[test]
fn logs_have_no_colour_when_redirected_and_obey_quiet_and_verbose() {
    let (home, did) = keyed();
    register(&home, "Ada Lovelace");
    ok(&home.run(&["trust", "remove", &did]));
    // No trusted key: verify warns (and fails).
    let run = home.run(&["verify"]);
    assert!(run.stderr.contains("WARN"), "{}", run.stderr);
    assert!(
        !run.stderr.contains('\u{1b}'),
        "ANSI escapes in redirected stderr"
    );
    let quiet = home.run(&["-q", "verify"]);
    assert!(!quiet.stderr.contains("WARN"), "{}", quiet.stderr);
    let verbose = home.run(&["-vv", "verify"]);
    assert!(verbose.stderr.contains("DEBUG"), "{}", verbose.stderr);
    assert!(
        verbose.stderr.lines().all(|l| !l.contains(" sled::")),
        "dependencies stay quiet: {}",
        verbose.stderr
    );
}

#[test]
fn completions_a_man_page_and_an_erasure_dry_run() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(personctl())
            .args(["completions", shell])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success() && text.contains("personctl"),
            "{shell}"
        );
        assert!(text.contains("append-event"), "{shell}: every verb");
    }
    let out = Command::new(personctl()).arg("man").output().unwrap();
    let man = String::from_utf8(out.stdout).unwrap();
    assert!(
        man.starts_with(".ie") || man.contains(".TH personctl"),
        "{man}"
    );

    let (home, _) = keyed();
    let id = register(&home, "Ada Lovelace");
    ok(&home.run(&[
        "append",
        "add-phone",
        "--person",
        &id,
        "--number",
        "+44 20 7946 0000",
    ]));
    let before = ok(&home.run(&["--json", "streams"])).records();
    let run = home.run(&[
        "--json",
        "erase",
        "--person",
        &id,
        "--component",
        "phone",
        "--reason",
        "asked",
        "--dry-run",
    ]);
    let masks = ok(&run).of_type("would-mask");
    assert_eq!(masks.len(), 1, "{}", run.stdout);
    assert_eq!(masks[0]["type"], "PhoneAdded");
    assert_eq!(ok(&run).of_type("dry-run")[0]["masked"], 1);
    // Nothing was written.
    assert_eq!(ok(&home.run(&["--json", "streams"])).records(), before);
    // Erased for real: replay's text names each event whose values are masked.
    ok(&home.run(&[
        "erase",
        "--person",
        &id,
        "--component",
        "phone",
        "--reason",
        "asked",
    ]));
    let replayed = ok(&home.run(&["replay", "--person", &id])).stdout.clone();
    assert!(replayed.contains("masked: 1 PhoneAdded"), "{replayed}");
}

#[test]
fn counts_read_as_english_and_log_has_a_header() {
    let (home, _) = keyed();
    let id = register(&home, "Ada Lovelace");
    let verify = ok(&home.run(&["verify"])).stdout.clone();
    assert!(
        verify.starts_with("OK: 1 event, 1 payload, 1 stream "),
        "{verify}"
    );
    assert!(verify.contains("; 0 failures"), "{verify}");
    let log = ok(&home.run(&["log", "--person", &id])).stdout.clone();
    let header = log.lines().next().unwrap();
    assert!(
        header.contains("height") && header.contains("verdict"),
        "{log}"
    );
    // JSON has no header line.
    let json = ok(&home.run(&["--json", "log", "--person", &id]))
        .stdout
        .clone();
    assert!(json.lines().all(|l| l.starts_with('{')), "{json}");
}
