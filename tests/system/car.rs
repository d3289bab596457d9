//! CAR archives end to end: `export --car`, `verify --car` and `import --car` with the real
//! binary. Archives are also read back by a section parser written here from the CARv1
//! specification, and by the IPLD project's JavaScript implementation (`tests/interop`), so that
//! "standard tools can read it" is checked, not assumed.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::{commands, holding, keyed, ok, Home};

const NAME: &str = "Octavia Fenwright";
const EMAIL: &str = "octavia.fenwright@private.example";

/// Registers `a` (with an email address) and `b`, then links an `org/acme` chain to `b`'s head
/// through `causes`. Returns the org event's CID.
fn ledger(home: &Home, a: &str, b: &str) -> String {
    let scratch = Home::new();
    let lines = [
        json!({"person": a, "command": "register", "legal_name": NAME}),
        json!({"person": a, "command": "add-email", "address": EMAIL}),
        json!({"person": b, "command": "register", "legal_name": "Rupert Ashgrove"}),
        json!({"person": b, "command": "add-skill", "name": "rust", "level": 4}),
    ];
    let file = commands(&scratch, "people.jsonl", &lines);
    ok(&home.run(&["append", "--file", file.to_str().unwrap()]));
    let head = stream_heads(home)[&format!("person/{b}")].clone();
    let run = home.run(&[
        "--json",
        "append-event",
        "--stream",
        "org/acme",
        "--type",
        "MemberAdded",
        "--data",
        r#"{"role": "engineer"}"#,
        "--cause",
        head["head"].as_str().unwrap(),
    ]);
    ok(&run).records()[0].1["cid"].as_str().unwrap().to_string()
}

/// A keyed home holding `ledger`'s chains, its key, the two person ids, and a scratch directory
/// outside it for archives.
struct Origin {
    home: Home,
    did: String,
    a: String,
    b: String,
    /// The org chain's event, which names `b`'s head as its cause.
    org_event: String,
    work: Home,
}

fn origin() -> Origin {
    let (home, did) = keyed();
    let (a, b) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    let org_event = ledger(&home, &a, &b);
    Origin {
        home,
        did,
        a,
        b,
        org_event,
        work: Home::new(),
    }
}

/// `append add-skill` for `person`.
fn add_skill(home: &Home, person: &str, name: &str, level: &str) {
    ok(&home.run(&[
        "append",
        "add-skill",
        "--person",
        person,
        "--name",
        name,
        "--level",
        level,
    ]));
}

/// `streams --json` as a map from stream to its record.
fn stream_heads(home: &Home) -> std::collections::BTreeMap<String, Value> {
    ok(&home.run(&["--json", "streams"]))
        .records()
        .into_iter()
        .map(|(_, d)| (d["stream"].as_str().unwrap().to_string(), d))
        .collect()
}

fn export(home: &Home, file: &Path, select: &[&str]) -> Vec<(String, Value)> {
    let mut args = vec!["--json", "export", "--car", file.to_str().unwrap()];
    args.extend(select);
    ok(&home.run(&args)).records()
}

/// The roots of an export's `root` records, as `stream -> cid`.
fn roots(records: &[(String, Value)]) -> Vec<(String, String)> {
    records
        .iter()
        .filter(|(t, _)| t == "root")
        .map(|(_, d)| {
            (
                d["stream"].as_str().unwrap().to_string(),
                d["cid"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A home that trusts `did` (and has no key of its own).
fn trusting(did: &str) -> Home {
    let home = Home::new();
    ok(&home.run(&["trust", "add", did, "--label", "origin"]));
    home
}

/// The sections of a CARv1 file, parsed from the specification alone: a varint-prefixed header,
/// then varint-prefixed (CID, bytes) sections. Returns the header bytes and each (CID, bytes).
fn sections(bytes: &[u8]) -> (Vec<u8>, Vec<(cid::Cid, Vec<u8>)>) {
    fn varint(bytes: &[u8], at: &mut usize) -> usize {
        let (mut value, mut shift) = (0usize, 0);
        loop {
            let b = bytes[*at];
            *at += 1;
            value |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return value;
            }
            shift += 7;
        }
    }
    let mut at = 0;
    let len = varint(bytes, &mut at);
    let header = bytes[at..at + len].to_vec();
    at += len;
    let mut out = Vec::new();
    while at < bytes.len() {
        let len = varint(bytes, &mut at);
        let section = &bytes[at..at + len];
        let mut cursor = std::io::Cursor::new(section);
        let cid = cid::Cid::read_bytes(&mut cursor).unwrap();
        out.push((cid, section[cursor.position() as usize..].to_vec()));
        at += len;
    }
    (header, out)
}

/// Writes a CARv1 file from a header and sections (the inverse of `sections`).
/// A CIDv1 dag-cbor with a sha2-256 multihash: a valid CID, but not a ledger CID.
fn sha256_cid(bytes: &[u8]) -> cid::Cid {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    let mh = multihash::Multihash::<64>::wrap(0x12, &digest).unwrap();
    cid::Cid::new_v1(0x71, mh)
}

fn write_car(path: &Path, header: &[u8], blocks: &[(cid::Cid, Vec<u8>)]) {
    fn varint(mut n: usize, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    let mut out = Vec::new();
    varint(header.len(), &mut out);
    out.extend(header);
    for (cid, data) in blocks {
        let cid = cid.to_bytes();
        varint(cid.len() + data.len(), &mut out);
        out.extend(&cid);
        out.extend(data);
    }
    std::fs::write(path, out).unwrap();
}

/// Runs the JavaScript reference reader on a CAR file.
fn read_with_js(file: &Path) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    assert!(
        dir.join("node_modules/@ipld/car").is_dir(),
        "tests/interop is not installed: run the suite with tests/run.sh (it runs `npm ci --prefix tests/interop`)"
    );
    let out = Command::new("node")
        .arg(dir.join("car-check.mjs"))
        .arg(file)
        .output()
        .expect("running node (Node.js 18 or newer is needed for the interop test)");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&text).unwrap()
}

#[test]
fn an_export_is_read_by_standard_tools_verifies_and_imports_into_a_fresh_home() {
    let Origin {
        home,
        did,
        a,
        b,
        org_event,
        work,
    } = origin();
    let file = work.path().join("all.car");
    let records = export(&home, &file, &[]);
    let heads = stream_heads(&home);
    let expected_roots: Vec<(String, String)> = heads
        .iter()
        .map(|(s, d)| (s.clone(), d["head"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(roots(&records), expected_roots);
    let summary = &records.last().unwrap().1;
    assert_eq!(summary["events"], json!(5));
    assert_eq!(
        summary["payloads"],
        json!(5),
        "the org event carries data too"
    );

    // The specification's framing, parsed here: the header is {roots, version: 1}, and every
    // section's CID re-derives from its bytes.
    let bytes = std::fs::read(&file).unwrap();
    let (header, blocks) = sections(&bytes);
    let header: ipld_core::ipld::Ipld = serde_ipld_dagcbor::from_slice(&header).unwrap();
    let ipld_core::ipld::Ipld::Map(header) = header else {
        panic!("header is not a map")
    };
    assert_eq!(header["version"], ipld_core::ipld::Ipld::Integer(1));
    let ipld_core::ipld::Ipld::List(listed) = &header["roots"] else {
        panic!("no roots")
    };
    let listed: Vec<String> = listed
        .iter()
        .map(|r| match r {
            ipld_core::ipld::Ipld::Link(c) => c.to_string(),
            other => panic!("root {other:?}"),
        })
        .collect();
    assert_eq!(
        listed,
        expected_roots
            .iter()
            .map(|(_, c)| c.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(blocks.len(), 10);
    for (cid, data) in &blocks {
        let ours = personctl_ledger::Cid::of(data);
        assert_eq!(ours.to_raw(), *cid);
    }
    // The IPLD project's JavaScript implementation reads the same file the same way.
    let js = read_with_js(&file);
    assert_eq!(js["errors"], json!([]));
    assert_eq!(js["roots"], json!(listed));
    let js_cids: Vec<String> = js["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["cid"].as_str().unwrap().to_string())
        .collect();
    let our_cids: Vec<String> = blocks.iter().map(|(c, _)| c.to_string()).collect();
    assert_eq!(js_cids, our_cids);

    // verify --car audits the file without importing it; a home that trusts nobody says so.
    let other = trusting(&did);
    let run = other.run(&["--json", "verify", "--car", file.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.records().last().unwrap().1["events"], json!(5));
    assert!(
        stream_heads(&other).is_empty(),
        "verify --car imports nothing"
    );
    let (stranger, _) = keyed();
    let run = stranger.run(&["verify", "--car", file.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.contains("[untrusted-author]"), "{}", run.stdout);

    // Import: the same heads, the same persons, and a clean verification.
    let run = other.run(&["--json", "import", "--car", file.to_str().unwrap()]);
    let imported = ok(&run).records().last().unwrap().1.clone();
    assert_eq!(imported["blocks"], json!(10));
    assert_eq!(imported["moved"], json!(3));
    assert_eq!(stream_heads(&other), heads);
    ok(&other.run(&["verify"]));
    for id in [&a, &b] {
        let mine = ok(&home.run(&["--json", "replay", "--person", id]))
            .stdout
            .clone();
        let theirs = ok(&other.run(&["--json", "replay", "--person", id]))
            .stdout
            .clone();
        assert_eq!(mine, theirs);
    }
    let log = ok(&other.run(&["--json", "log", "--stream", "org/acme"]))
        .stdout
        .clone();
    assert!(log.contains(&org_event), "{log}");
    // A second import changes nothing.
    let again = ok(&other.run(&["--json", "import", "--car", file.to_str().unwrap()]))
        .records()
        .last()
        .unwrap()
        .1
        .clone();
    assert_eq!(
        (again["blocks"].clone(), again["unchanged"].clone()),
        (json!(0), json!(3))
    );
}

#[test]
fn a_partial_export_carries_its_causal_parents_and_leaves_masked_payloads_out() {
    let Origin {
        home, a, b, work, ..
    } = origin();
    // The org chain names b's head as a cause: b's chain comes along, cut at that event, and
    // its head there is a root too.
    let file = work.path().join("org.car");
    let records = export(&home, &file, &["--stream", "org/acme"]);
    let listed = roots(&records);
    assert_eq!(
        listed.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(),
        ["org/acme", &format!("person/{b}")]
    );
    ok(&home.run(&["verify", "--car", file.to_str().unwrap()]));

    // An erased person's export: the chain and its tombstone, none of the erased values.
    ok(&home.run(&["erase", "--person", &a, "--reason", "ticket 7"]));
    let file = work.path().join("a.car");
    let records = export(&home, &file, &["--person", &a]);
    let summary = &records.last().unwrap().1;
    assert_eq!(summary["masked"], json!(2), "{summary}");
    assert_eq!(summary["events"], json!(3));
    assert_eq!(holding(work.path(), NAME), Vec::<PathBuf>::new());
    assert_eq!(holding(work.path(), EMAIL), Vec::<PathBuf>::new());
    let run = home.run(&["--json", "verify", "--car", file.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.of_type("masked").len(), 2);
}

#[test]
fn a_damaged_archive_imports_nothing_and_names_the_offending_block() {
    let Origin {
        home, did, work, ..
    } = origin();
    let file = work.path().join("all.car");
    export(&home, &file, &[]);
    let (header, blocks) = sections(&std::fs::read(&file).unwrap());
    let target = trusting(&did);

    // Tampering with an archive whose framing reads is a verdict (exit 1), every finding a
    // record naming its CID, as for a store; nothing is imported.
    let tampered = |name: &str, sections: &[(cid::Cid, Vec<u8>)], check: &str, cid: &str| {
        let bad = work.path().join(name);
        write_car(&bad, &header, sections);
        for verb in ["verify", "import"] {
            let run = target.run(&["--json", verb, "--car", bad.to_str().unwrap()]);
            assert_eq!(run.code, 1, "{name} {verb}: {}", run.stderr);
            let failures = run.of_type("failure");
            assert!(
                failures
                    .iter()
                    .any(|f| f["check"] == check && f["cid"] == cid),
                "{name} {verb}: no {check} naming {cid}: {failures:?}"
            );
        }
        let streams = target.run(&["--json", "streams"]);
        assert!(
            streams.records().is_empty(),
            "{name}: something was imported"
        );
    };
    // One flipped byte: the block no longer hashes to its CID.
    let mut flipped = blocks.clone();
    let last = flipped[3].1.len() - 1;
    flipped[3].1[last] ^= 0x01;
    let victim = blocks[3].0.to_string();
    tampered("flipped.car", &flipped, "cid-mismatch", &victim);
    // Two blocks' bytes swapped: both mismatch.
    let mut swapped = blocks.clone();
    let (a, b) = (swapped[1].1.clone(), swapped[2].1.clone());
    swapped[1].1 = b;
    swapped[2].1 = a;
    tampered(
        "swapped.car",
        &swapped,
        "cid-mismatch",
        &blocks[1].0.to_string(),
    );
    tampered(
        "swapped.car",
        &swapped,
        "cid-mismatch",
        &blocks[2].0.to_string(),
    );
    // A section whose CID has another hash (sha2-256): not a ledger CID.
    let mut other_hash = blocks.clone();
    other_hash.push((sha256_cid(&blocks[0].1), blocks[0].1.clone()));
    let bad = work.path().join("other-hash.car");
    write_car(&bad, &header, &other_hash);
    let run = target.run(&["--json", "verify", "--car", bad.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run
        .of_type("failure")
        .iter()
        .any(|f| f["check"] == "corrupt-key"));

    // A payload left out: the archive reads, but does not verify.
    let payload = blocks
        .iter()
        .position(|(_, data)| personctl_ledger::Payload::decode(&block(data)).is_ok())
        .unwrap();
    let mut short = blocks.clone();
    let (gone, _) = short.remove(payload);
    let bad = work.path().join("short.car");
    write_car(&bad, &header, &short);
    let run = target.run(&["import", "--car", bad.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!("FAIL {gone}")) && run.stdout.contains("[missing-block]"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("nothing was imported"),
        "{}",
        run.stderr
    );

    // Not a CAR file at all, a missing file, and a truncated one.
    let junk = work.path().join("junk.car");
    std::fs::write(&junk, b"hello").unwrap();
    let truncated = work.path().join("truncated.car");
    let whole = std::fs::read(&file).unwrap();
    std::fs::write(&truncated, &whole[..whole.len() - 10]).unwrap();
    target.expect_errors(&[
        (&["import", "--car", junk.to_str().unwrap()], "junk.car"),
        (
            &["import", "--car", "/nonexistent/x.car"],
            "/nonexistent/x.car",
        ),
        (
            &["import", "--car", truncated.to_str().unwrap()],
            "truncated.car",
        ),
    ]);
    assert!(stream_heads(&target).is_empty(), "nothing was imported");
    ok(&target.run(&["verify"]));
}

fn block(data: &[u8]) -> personctl_ledger::Block {
    personctl_ledger::Block::new(data.to_vec())
}

#[test]
fn an_import_fast_forwards_refuses_a_diverged_chain_and_never_restores_erased_data() {
    let Origin {
        home,
        did,
        a,
        b,
        work,
        ..
    } = origin();
    let old = work.path().join("old.car");
    export(&home, &old, &[]);

    // A replica takes the archive, then the origin moves on: the new archive fast-forwards it.
    let (replica, _) = keyed();
    ok(&replica.run(&["trust", "add", &did]));
    ok(&replica.run(&["import", "--car", old.to_str().unwrap()]));
    add_skill(&home, &b, "go", "2");
    let newer = work.path().join("newer.car");
    export(&home, &newer, &[]);
    let run = replica.run(&["--json", "import", "--car", newer.to_str().unwrap()]);
    let moved = ok(&run).of_type("moved");
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0]["stream"], json!(format!("person/{b}")));
    assert_eq!(stream_heads(&replica), stream_heads(&home));

    // Both sides append to b's chain: the chains fork, and the import refuses.
    add_skill(&home, &b, "sql", "3");
    add_skill(&replica, &b, "c", "1");
    let forked = work.path().join("forked.car");
    export(&home, &forked, &[]);
    let before = stream_heads(&replica);
    replica.expect_errors(&[(
        &["import", "--car", forked.to_str().unwrap()],
        "has diverged from this store at height",
    )]);
    assert_eq!(stream_heads(&replica), before, "nothing was imported");

    // The origin erases a; importing the archive from before the erasure does not bring the
    // erased values back.
    ok(&home.run(&["erase", "--person", &a, "--reason", "ticket 9"]));
    assert_eq!(holding(&home.store_path(), NAME), Vec::<PathBuf>::new());
    let run = home.run(&["--json", "import", "--car", old.to_str().unwrap()]);
    let imported = ok(&run).records().last().unwrap().1.clone();
    assert_eq!(imported["blocks"], json!(0), "{imported}");
    assert_eq!(holding(&home.store_path(), NAME), Vec::<PathBuf>::new());
    assert_eq!(holding(&home.store_path(), EMAIL), Vec::<PathBuf>::new());
    ok(&home.run(&["verify"]));
}
