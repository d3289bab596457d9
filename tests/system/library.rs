//! The ledger as a library for another domain: `ledger/examples/organisation.rs` (organisations
//! with members, on the public API alone) writes into a personctl home, and `personctl verify`,
//! `log` and `export --car` treat its chains like any other.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::{keyed, ok, Home, Run};

/// Path of a freshly built organisation example.
fn example() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "personctl-ledger",
                "--example",
                "organisation",
            ])
            .status()
            .expect("running cargo build for the organisation example");
        assert!(status.success(), "building the organisation example failed");
        let exe = std::env::current_exe().unwrap();
        let bin = exe
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("examples/organisation");
        assert!(bin.is_file(), "no example binary at {}", bin.display());
        bin
    })
}

fn organisation(home: &Home, args: &[&str]) -> Run {
    let out = Command::new(example())
        .arg(home.path())
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

#[test]
fn a_second_domain_on_the_ledger_verifies_with_personctl() {
    let (home, _) = keyed();
    let run = home.run(&[
        "--json",
        "append",
        "register",
        "--legal-name",
        "Ada Lovelace",
    ]);
    let person = ok(&run).records()[0].1.clone();
    let (id, head) = (
        person["person"].as_str().unwrap().to_string(),
        person["cid"].as_str().unwrap().to_string(),
    );

    ok(&organisation(&home, &["acme", "found", "Acme Ltd"]));
    let joined = organisation(&home, &["acme", "join", &id, "engineer", &head]);
    let line = ok(&joined).stdout.trim().to_string();
    assert!(line.starts_with("org/acme 1 bafyr4i"), "{line}");
    ok(&organisation(&home, &["acme", "join", "p-2", "designer"]));
    ok(&organisation(&home, &["acme", "leave", "p-2"]));
    // Refused commands are errors and append nothing.
    for args in [
        vec!["acme", "join", id.as_str(), "again"],
        vec!["acme", "leave", "p-9"],
        vec!["acme", "found", "Twice"],
        vec!["other", "join", "p-1", "x"],
        vec!["acme", "join", "p-3", "x", "not-a-cid"],
    ] {
        let run = organisation(&home, &args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stdout);
        assert!(run.stderr.starts_with("organisation: "), "{}", run.stderr);
    }
    let shown: Value =
        serde_json::from_str(&ok(&organisation(&home, &["acme", "show"])).stdout).unwrap();
    assert_eq!(
        shown,
        json!({"name": "Acme Ltd", "members": {id.clone(): "engineer"}})
    );

    // personctl audits the organisation chain with the persons: signatures, trust, links.
    let run = home.run(&["--json", "verify"]);
    let summary = ok(&run).records().last().unwrap().1.clone();
    assert_eq!(
        (summary["events"].clone(), summary["streams"].clone()),
        (json!(5), json!(2))
    );
    let log = ok(&home.run(&["--json", "log", "--stream", "org/acme"])).records();
    let types: Vec<&str> = log.iter().filter_map(|(_, d)| d["type"].as_str()).collect();
    assert_eq!(
        types,
        [
            "OrganisationFounded",
            "MemberJoined",
            "MemberJoined",
            "MemberLeft"
        ]
    );
    // The join names the person's registration as its cause: a CAR of the organisation carries
    // the person chain too, and verifies on its own.
    let file = home.path().join("acme.car");
    let run = home.run(&[
        "--json",
        "export",
        "--car",
        file.to_str().unwrap(),
        "--stream",
        "org/acme",
    ]);
    let roots: Vec<String> = ok(&run)
        .of_type("root")
        .iter()
        .map(|d| d["stream"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(roots, ["org/acme".to_string(), format!("person/{id}")]);
    ok(&home.run(&["verify", "--car", file.to_str().unwrap()]));
}
