//! The person commands end to end: `append` (one command, or a JSON Lines file), `replay`,
//! `show`, `states`, and their errors.

use crate::Home;

/// A home with a key and one registered person; returns the person's id.
fn with_ada() -> (Home, String) {
    let home = Home::new();
    assert_eq!(home.run(&["keygen"]).code, 0);
    let run = home.run(&[
        "append",
        "register",
        "--legal-name",
        "Ada Lovelace",
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let records = run.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].1["event"], "PersonRegistered");
    let id = records[0].1["person"].as_str().unwrap().to_string();
    (home, id)
}

#[test]
fn commands_from_the_command_line_build_a_person() {
    let (home, id) = with_ada();
    let steps: &[&[&str]] = &[
        &[
            "append",
            "add-email",
            "--person",
            &id,
            "--address",
            "Ada@Example.org",
        ],
        &[
            "append",
            "verify-email",
            "--person",
            &id,
            "--address",
            "ada@example.org",
        ],
        &[
            "append",
            "add-skill",
            "--person",
            &id,
            "--name",
            "Mathematics",
            "--level",
            "5",
        ],
        &[
            "append",
            "set-birth-date",
            "--person",
            &id,
            "--date",
            "1815-12-10",
        ],
        &[
            "append",
            "set-preferences",
            "--person",
            &id,
            "--language",
            "en",
            "--channels",
            "email,post",
        ],
        &[
            "append",
            "add-address",
            "--person",
            &id,
            "--label",
            "home",
            "--city",
            "London",
            "--country",
            "UK",
        ],
        &[
            "append",
            "rename",
            "--person",
            &id,
            "--legal-name",
            "Augusta Ada King",
            "--reason",
            "marriage",
        ],
    ];
    for step in steps {
        let run = home.run(step);
        assert_eq!(run.code, 0, "{step:?}: {}", run.stderr);
        assert!(
            run.stdout.contains(&format!("person/{id}")),
            "{step:?}: {}",
            run.stdout
        );
    }
    let show = home.run(&["show", "--person", &id, "--json"]);
    let (_, p) = &show.records()[0];
    assert_eq!(p["legal_name"], "Augusta Ada King");
    assert_eq!(p["lifecycle"], "Active");
    assert_eq!(p["birth_date"], "1815-12-10");
    assert_eq!(p["contact"]["emails"][0]["verified"], true);
    assert_eq!(p["professional"]["skills"][0]["level"], 5);
    assert_eq!(
        p["preferences"]["channels"],
        serde_json::json!(["email", "post"])
    );
    let text = home.run(&["show", "--person", &id]).stdout;
    assert!(
        text.contains("Augusta Ada King") && text.contains("Ada@Example.org (verified)"),
        "{text}"
    );
    assert_eq!(home.run(&["verify"]).code, 0);
}

#[test]
fn rule_violations_exit_2_name_the_rule_and_append_nothing() {
    let (home, id) = with_ada();
    home.run(&[
        "append",
        "add-email",
        "--person",
        &id,
        "--address",
        "ada@example.org",
    ]);
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "append",
                "add-email",
                "--person",
                &id,
                "--address",
                "ADA@example.org",
            ],
            "email \"ada@example.org\" already exists",
        ),
        (
            &["append", "remove-skill", "--person", &id, "--name", "Rust"],
            "no skill \"rust\"",
        ),
        (
            &["append", "rename", "--person", &id, "--legal-name", " "],
            "the legal name must not be empty",
        ),
        (
            &["append", "merge", "--person", &id, "--into", &id],
            "cannot be merged into itself",
        ),
        (
            &["append", "reactivate", "--person", &id],
            "`reactivate` is not allowed for a person in state Active",
        ),
        (
            &[
                "append",
                "add-skill",
                "--person",
                &id,
                "--name",
                "X",
                "--level",
                "nine",
            ],
            "--level \"nine\" is not a whole number",
        ),
        (
            &[
                "append",
                "add-emial",
                "--person",
                &id,
                "--address",
                "a@b.org",
            ],
            "unknown command \"add-emial\"; did you mean `add-email`?",
        ),
        (
            &[
                "append",
                "add-email",
                "--person",
                &id,
                "--adress",
                "a@b.org",
            ],
            "unknown flag --adress; did you mean --address?",
        ),
        (
            &["append", "add-email", "--address", "a@b.org"],
            "person is required",
        ),
        (
            &[
                "append",
                "add-email",
                "--person",
                "not-a-uuid",
                "--address",
                "a@b.org",
            ],
            "\"not-a-uuid\" is not a UUID",
        ),
    ];
    home.expect_errors(cases);
    let replay = home.run(&["replay", "--person", &id, "--json"]).records();
    assert_eq!(
        replay[0].1["height"], 1,
        "only register and the first email were appended"
    );
}

#[test]
fn lifecycle_walls_and_the_record_death_rule() {
    let (home, id) = with_ada();
    assert_eq!(
        home.run(&[
            "append",
            "set-birth-date",
            "--person",
            &id,
            "--date",
            "1815-12-10"
        ])
        .code,
        0
    );
    let run = home.run(&[
        "append",
        "record-death",
        "--person",
        &id,
        "--date",
        "1800-01-01",
    ]);
    assert!(
        run.stderr
            .contains("date of birth 1815-12-10 would lie after the date of death 1800-01-01"),
        "{}",
        run.stderr
    );
    assert_eq!(
        home.run(&[
            "append",
            "record-death",
            "--person",
            &id,
            "--date",
            "1852-11-27"
        ])
        .code,
        0
    );
    let run = home.run(&["append", "suspend", "--person", &id, "--reason", "x"]);
    assert!(
        run.stderr
            .contains("`suspend` is not allowed for a person in state Deceased"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_file_stops_at_the_first_invalid_line_keeping_the_lines_before() {
    let (home, id) = with_ada();
    let file = home.path().join("commands.jsonl");
    let lines = [
        format!(r#"{{"person": "{id}", "command": "add-email", "address": "ada@example.org"}}"#),
        String::new(),
        format!(r#"{{"person": "{id}", "command": "add-skill", "name": "Poetry", "level": 3}}"#),
        format!(r#"{{"person": "{id}", "command": "add-email", "address": "ADA@example.org"}}"#),
        format!(r#"{{"person": "{id}", "command": "suspend", "reason": "never reached"}}"#),
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let run = home.run(&["append", "--file", file.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("commands.jsonl:4:") && run.stderr.contains("already exists"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.records().len(),
        2,
        "the events of lines 1 and 3 are reported"
    );
    let p = &home.run(&["show", "--person", &id, "--json"]).records()[0].1;
    assert_eq!(p["lifecycle"], "Active", "line 5 was not applied");
    assert_eq!(p["professional"]["skills"][0]["name"], "Poetry");

    // A malformed line: the lines before are appended, nothing of it.
    std::fs::write(&file, format!("{}\n{{not json\n", lines[4])).unwrap();
    let run = home.run(&["append", "--file", file.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("commands.jsonl:2:"), "{}", run.stderr);
    let p = &home.run(&["show", "--person", &id, "--json"]).records()[0].1;
    assert_eq!(p["lifecycle"], "Suspended");

    // A register line without a person gets a new id.
    std::fs::write(
        &file,
        r#"{"command": "register", "legal_name": "Grace Hopper"}"#,
    )
    .unwrap();
    let run = home.run(&["append", "--file", file.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        home.run(&["replay", "--json"])
            .records()
            .iter()
            .filter(|(t, _)| t == "person")
            .count(),
        2
    );
}

#[test]
fn merge_links_both_chains_and_verifies() {
    let (home, ada) = with_ada();
    let run = home.run(&["append", "register", "--legal-name", "Ada Byron", "--json"]);
    let byron = run.records()[0].1["person"].as_str().unwrap().to_string();
    let run = home.run(&[
        "append", "merge", "--person", &byron, "--into", &ada, "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let events: Vec<String> = run
        .records()
        .iter()
        .map(|(_, d)| d["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events, ["PersonMergeReceived", "PersonMergedInto"]);
    let log = home.run(&["log", "--person", &ada, "--json"]).records();
    let byron_log = home.run(&["log", "--person", &byron, "--json"]).records();
    assert_eq!(
        log[1].1["causes"][0], byron_log[0].1["cid"],
        "the survivor names the merged person's head"
    );
    let p = &home.run(&["show", "--person", &byron, "--json"]).records()[0].1;
    assert_eq!(p["lifecycle"], format!("MergedInto({ada})"));
    assert_eq!(home.run(&["verify"]).code, 0);
}

#[test]
fn replay_at_a_height_or_cid_and_replay_everyone() {
    let (home, id) = with_ada();
    home.run(&["append", "suspend", "--person", &id]);
    home.run(&["append", "reactivate", "--person", &id]);
    let at1 = &home
        .run(&["replay", "--person", &id, "--at", "1", "--json"])
        .records()[0]
        .1;
    assert_eq!(
        (at1["lifecycle"].as_str(), at1["height"].as_u64()),
        (Some("Suspended"), Some(1))
    );
    let cid = at1["cid"].as_str().unwrap().to_string();
    let at_cid = &home
        .run(&["replay", "--person", &id, "--at", &cid, "--json"])
        .records()[0]
        .1;
    assert_eq!(at_cid["height"], 1);
    let bad = home.run(&["replay", "--person", &id, "--at", "7"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("no event at height 7"),
        "{}",
        bad.stderr
    );
    let bad = home.run(&["replay", "--at", "1"]);
    assert_eq!(bad.code, 2, "--at needs --person");
    let all = home.run(&["replay", "--json"]).records();
    let (ty, summary) = all.last().unwrap();
    assert_eq!(
        (
            ty.as_str(),
            summary["persons"].as_u64(),
            summary["events"].as_u64()
        ),
        ("summary", Some(1), Some(3))
    );
    let unknown = home.run(&["show", "--person", "0192f000-0000-7000-8000-000000000000"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown
            .stderr
            .contains("no person 0192f000-0000-7000-8000-000000000000"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn states_prints_the_transition_table() {
    let home = Home::new();
    let run = home.run(&["states", "--json"]);
    assert_eq!(run.code, 0);
    let rows: Vec<(String, String, String)> = run
        .records()
        .into_iter()
        .filter(|(t, _)| t == "transition")
        .map(|(_, d)| {
            (
                d["from"].as_str().unwrap().into(),
                d["action"].as_str().unwrap().into(),
                d["to"].as_str().unwrap().into(),
            )
        })
        .collect();
    for expected in [
        ("Active", "Suspend", "Suspended"),
        ("Suspended", "Reactivate", "Active"),
        ("Active", "MergeInto", "MergedInto"),
    ] {
        let e = (
            expected.0.to_string(),
            expected.1.to_string(),
            expected.2.to_string(),
        );
        assert!(rows.contains(&e), "{expected:?} missing");
    }
    assert!(
        rows.iter()
            .filter(|(from, _, _)| from == "MergedInto")
            .all(|(_, action, _)| action.starts_with("Erase")),
        "MergedInto is terminal but for erasure"
    );
    assert!(rows.contains(&("Deceased".into(), "Erase".into(), "Erased".into())));
    assert!(
        !rows.iter().any(|(from, _, _)| from == "Erased"),
        "Erased is terminal"
    );
    assert!(home
        .run(&["states"])
        .stdout
        .contains("Suspended     --Reactivate------> Active"));
}

/// Regression: a relationship's other person once used the field name `person`, which the
/// command's own `person` (the subject) swallowed, so relationships could not be added from
/// the command line or a file.
#[test]
fn relationship_commands_name_the_other_person_without_colliding_with_the_subject() {
    let (home, ada) = with_ada();
    let grace = home
        .run(&[
            "append",
            "register",
            "--legal-name",
            "Grace Hopper",
            "--json",
        ])
        .records()[0]
        .1["person"]
        .as_str()
        .unwrap()
        .to_string();
    let run = home.run(&[
        "append",
        "add-relationship",
        "--person",
        &grace,
        "--other",
        &ada,
        "--kind",
        "admirer",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let file = home.path().join("rel.jsonl");
    std::fs::write(&file, format!(r#"{{"person": "{ada}", "command": "add-relationship", "other": "{grace}", "kind": "colleague"}}"#)).unwrap();
    let run = home.run(&["append", "--file", file.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let g = &home.run(&["show", "--person", &grace, "--json"]).records()[0].1;
    assert_eq!(g["social"]["relationships"][0]["other"], ada.as_str());
    let a = &home.run(&["show", "--person", &ada, "--json"]).records()[0].1;
    assert_eq!(a["social"]["relationships"][0]["other"], grace.as_str());
    let run = home.run(&[
        "append",
        "remove-relationship",
        "--person",
        &grace,
        "--other",
        &ada,
        "--kind",
        "admirer",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let g = &home.run(&["show", "--person", &grace, "--json"]).records()[0].1;
    assert!(
        g["social"].is_null(),
        "the component goes with its last relationship: {g}"
    );
}
