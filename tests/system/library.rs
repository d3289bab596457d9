//! The ledger as a library for another domain: `ledger/examples/organisation.rs` (organisations
//! with members, on the public API alone) writes into a personctl home, and `personctl verify`,
//! `log` and `export --car` treat its chains like any other.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{json, Value};

use personctl_ledger::jetstream::{Link, Settings};
use personctl_ledger::{BlockStore, Draft, Error, Expected, Ledger, MemoryStore, Retry, StreamId};

use crate::nats::NatsServer;
use crate::{fixture_signer, keyed, ok, Home, Run};

/// Path of a freshly built organisation example.
fn example() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            // The workspace's examples, as `cargo test --workspace` builds them: the same
            // features, so nothing is compiled again.
            .args(["build", "--quiet", "--workspace", "--examples"])
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
    organisation_with(&[], home, args)
}

/// Runs the example with `options` before HOME.
fn organisation_with(options: &[&str], home: &Home, args: &[&str]) -> Run {
    let out = Command::new(example())
        .args(options)
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
    assert!(
        line.starts_with("org/acme 1 bafyr4i") && line.ends_with(" lost-races 0"),
        "{line}"
    );
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
    // It writes as its own identity, whose key chain is one more stream.
    let org_id = ok(&organisation(&home, &["acme", "identity"]))
        .stdout
        .trim()
        .to_string();
    assert!(org_id.starts_with("key/"), "{org_id}");
    let run = home.run(&["--json", "verify"]);
    let summary = ok(&run).records().last().unwrap().1.clone();
    assert_eq!(
        (summary["events"].clone(), summary["streams"].clone()),
        (json!(6), json!(3))
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
    assert_eq!(
        roots,
        [org_id, "org/acme".to_string(), format!("person/{id}")]
    );
    ok(&home.run(&["verify", "--car", file.to_str().unwrap()]));
}

#[test]
fn the_second_domain_publishes_and_erases_through_jetstream_and_personctl_accepts_it() {
    let server = NatsServer::start();
    let url = server.url();
    let (a, _) = keyed();
    let b = Home::new();
    // One organisation identity, its keys copied to both homes (the example trusts it on
    // first use; B reads its key chain from JetStream).
    ok(&organisation_nats(&a, &url, &["acme", "found", "Acme Ltd"]));
    let id = std::fs::read_to_string(a.path().join("keys/organisation.id")).unwrap();
    let dir = format!(
        "keys/identities/{}",
        id.trim().strip_prefix("key/").unwrap()
    );
    std::fs::create_dir_all(b.path().join(&dir)).unwrap();
    std::fs::copy(
        a.path().join("keys/organisation.id"),
        b.path().join("keys/organisation.id"),
    )
    .unwrap();
    for name in ["current.pem", "next.pem"] {
        std::fs::copy(
            a.path().join(&dir).join(name),
            b.path().join(&dir).join(name),
        )
        .unwrap();
    }
    // B has never seen the organisation: it reads it from JetStream before deciding.
    let joined = organisation_nats(&b, &url, &["acme", "join", "p-1", "engineer"]);
    assert!(
        ok(&joined).stdout.starts_with("org/acme 1 "),
        "{}",
        joined.stdout
    );
    ok(&organisation_nats(
        &b,
        &url,
        &["acme", "join", "p-2", "designer"],
    ));
    // A erases p-1 (after reading B's joins): tombstone acknowledged, then local and bucket.
    let erased = organisation_nats(&a, &url, &["acme", "erase", "p-1"]);
    let line = ok(&erased).stdout.trim().to_string();
    assert!(
        line.starts_with("org/acme 3 ") && line.ends_with("erased 1 removed 1 bucket 1"),
        "{line}"
    );
    // B follows: p-1's payload is gone there too, and the state no longer names p-1.
    let shown: Value =
        serde_json::from_str(&ok(&organisation_nats(&b, &url, &["acme", "show"])).stdout).unwrap();
    assert_eq!(
        shown,
        json!({"name": "Acme Ltd", "members": {"p-2": "designer"}})
    );
    let blocks: Vec<_> = crate::holding(&b.store_path(), "engineer");
    assert!(
        blocks.is_empty(),
        "p-1's role is still stored at {blocks:?}"
    );
    // personctl audits both homes against JetStream: the chains, the tombstone, the log.
    for home in [&a, &b] {
        let run = home.run(&["--nats", &url, "--json", "verify"]);
        let summary = ok(&run).records().last().unwrap().1.clone();
        assert_eq!(summary["events"], json!(5), "{summary}");
    }
}

/// Where an admin's write policy is in force, the second domain writes only with a grant:
/// refused up front before it, written after it, and `verify` agrees.
#[test]
fn the_second_domain_writes_only_once_its_identity_is_granted() {
    let home = Home::new();
    let admin = ok(&home.run(&["--json", "identity", "create", "--label", "admin"])).records()[0].1
        ["identity"]
        .as_str()
        .unwrap()
        .to_string();
    let org_id = ok(&organisation(&home, &["acme", "identity"]))
        .stdout
        .trim()
        .to_string();
    // A policy in force: the admin grants itself persons, not the organisation anything.
    ok(&home.run(&[
        "grant",
        "--admin",
        &admin,
        "--grantee",
        &admin,
        "--aggregate",
        "person",
    ]));
    let refused = organisation(&home, &["acme", "found", "Acme Ltd"]);
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    assert!(refused.stderr.contains("not allowed"), "{}", refused.stderr);
    assert!(home.run(&["--json", "log", "--stream", "org/acme"]).code != 0);
    ok(&home.run(&[
        "grant",
        "--admin",
        &admin,
        "--grantee",
        &org_id,
        "--aggregate",
        "org",
    ]));
    ok(&organisation(&home, &["acme", "found", "Acme Ltd"]));
    ok(&home.run(&["verify"]));
    // Its grant withdrawn, it is refused again.
    ok(&home.run(&[
        "revoke-grant",
        "--admin",
        &admin,
        "--grantee",
        &org_id,
        "--aggregate",
        "org",
    ]));
    let refused = organisation(&home, &["acme", "join", "p-1", "engineer"]);
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    ok(&home.run(&["verify"]));
}

fn organisation_nats(home: &Home, url: &str, args: &[&str]) -> Run {
    organisation_with(&["--nats", url], home, args)
}

/// The library's write path decides again when another writer wins the race between the
/// decision and its publication (here, deterministically, from inside the decision).
#[test]
fn a_decision_that_loses_a_race_is_made_again_on_the_winners_state() {
    let server = NatsServer::start();
    let (link_a, link_b) = (
        Link::connect(&server.url(), Settings::default()).unwrap(),
        Link::connect(&server.url(), Settings::default()).unwrap(),
    );
    let (a, b) = (
        Ledger::new(MemoryStore::new()),
        Ledger::new(MemoryStore::new()),
    );
    let signer = fixture_signer();
    let stream: StreamId = "org/acme".parse().unwrap();
    let at_head = |l: &Ledger<MemoryStore>, ty: &str| -> Result<Vec<Draft>, Error> {
        let expected = match l.store().head(&stream)? {
            Some(h) => Expected::Height(h.height),
            None => Expected::Empty,
        };
        Ok(vec![Draft::new(stream.clone(), ty, 1).expecting(expected)])
    };
    let (founded, lost) = a
        .append_decided(&signer, &stream, Some(&link_a), Retry::default(), |l| {
            at_head(l, "Founded")
        })
        .unwrap();
    assert_eq!((founded[0].height, lost), (0, 0));
    let mut decisions = Vec::new();
    let (joined, lost) = b
        .append_decided(&signer, &stream, Some(&link_b), Retry::default(), |l| {
            decisions.push(l.store().head(&stream)?.map(|h| h.height));
            if decisions.len() == 1 {
                // A rival publishes on the same head first.
                let rival = Draft::new(stream.clone(), "Renamed", 1).expecting(Expected::Height(0));
                a.append_published(&signer, rival, Some(&link_a), Retry::default())?;
            }
            at_head(l, "Joined")
        })
        .unwrap();
    assert_eq!(lost, 1, "the first decision lost");
    assert_eq!(
        decisions,
        [Some(0), Some(1)],
        "decided again on the winner's head"
    );
    assert_eq!(joined[0].height, 2);
    // A draft pinned to a head the log has moved past is a conflict, not appended again.
    let stale = Draft::new(stream.clone(), "Late", 1).expecting(Expected::Height(1));
    let err = a
        .append_published(&signer, stale, Some(&link_a), Retry::default())
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    // Both stores now hold the same chain, and JetStream acknowledged every event of it.
    assert_eq!(
        a.chain(&stream).unwrap(),
        b.chain(&stream).unwrap(),
        "one chain"
    );
    assert_eq!(a.chain(&stream).unwrap().len(), 3);
}
