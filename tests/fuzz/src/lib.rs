//! The bodies of personctl's fuzz targets, and their seeds.
//!
//! Each body takes arbitrary bytes and checks a property that must hold for every input, not
//! only for valid ones: nothing panics, anything that decodes re-encodes to the same bytes, a
//! store opens whatever its segment holds. `cargo fuzz run TARGET` (nightly, libFuzzer; see
//! README.md beside this file) explores them guided by coverage; the main test suite runs the
//! same bodies on mutated seeds (`tests/system/fuzz.rs`), so a change that breaks a property
//! fails CI without nightly.

use std::path::Path;

use personctl_domain::command::{from_json, from_json_value};
use personctl_domain::PersonId;
use personctl_ledger::jetstream::Notice;
use personctl_ledger::store::Repair;
use personctl_ledger::{
    car, codec, verify, Block, BlockStore, Draft, Event, Ipld, Ledger, MemoryStore, Payload,
    Signer, SledStore, StreamId, TrustSet, VerifyOptions,
};

/// The targets, by name.
pub const TARGETS: [&str; 5] = ["block", "car", "notice", "command", "store"];

/// Runs target `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "block" => block(data),
        "car" => car(data),
        "notice" => notice(data),
        "command" => command(data),
        "store" => store(data),
        other => panic!("no fuzz target {other:?}"),
    }
}

/// Strict block decoding: whatever decodes as DAG-CBOR re-encodes to exactly the same bytes;
/// decoding as an event or a payload never panics.
pub fn block(data: &[u8]) {
    if let Ok(value) = codec::decode_ipld(&"fuzz input", data) {
        let again = codec::encode(&value).expect("a decoded value encodes");
        assert_eq!(again, data, "decoded, but re-encodes to other bytes");
    }
    let block = Block::new(data.to_vec());
    if let Ok(event) = Event::decode(&block) {
        let _ = personctl_ledger::signing_message(block.bytes());
        let _ = (event.stream(), event.height(), event.payload());
    }
    let _ = Payload::decode(&block);
}

/// CAR reading: any bytes are read or refused without a panic, and an archive that reads
/// verifies (or not) without one, on both verification paths.
pub fn car(data: &[u8]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    if let Ok(archive) = runtime.block_on(car::read(data)) {
        let _ = archive.verify(&TrustSet::new(), false);
        let _ = archive.verify(&TrustSet::new(), true);
    }
}

/// JetStream notices: whatever decodes re-encodes to the same bytes.
pub fn notice(data: &[u8]) {
    if let Ok(notice) = Notice::decode(data) {
        assert_eq!(notice.encode().expect("a notice encodes"), data);
    }
}

/// Command JSON: whatever parses has a JSON form that parses back to the same command, and
/// deciding it on a new person never panics.
pub fn command(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok((person, command)) = from_json(text) else {
        return;
    };
    let mut value = serde_json::to_value(&command).expect("a command serializes");
    if let Some(p) = person {
        value["person"] = p.to_string().into();
    }
    let (again_person, again) = from_json_value(value).expect("its own JSON form parses");
    assert_eq!((again_person, &again), (person, &command));
    let id: PersonId = "0193f0c2-6e8a-7bd2-9d1b-5c1e0f2a3b4c"
        .parse()
        .expect("a UUID");
    let _ = personctl_domain::decide(person.unwrap_or(id), None, &command);
}

/// Store open and recovery: a store whose segment holds any bytes opens, read-only and for
/// writing, both see the same chains, verification runs, and a second open has no torn tail
/// left to cut.
pub fn store(data: &[u8]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::create_dir_all(dir.path().join("blocks")).expect("blocks/");
    std::fs::write(dir.path().join("blocks/00000000.seg"), data).expect("the segment");
    let reader = SledStore::open_read_only(dir.path()).expect("a read-only open never fails");
    let heads = reader.heads().expect("heads");
    let _ = verify(
        &reader,
        &TrustSet::new(),
        &VerifyOptions::default(),
        &|_| {},
    );
    drop(reader);
    let writer = SledStore::open(dir.path()).expect("an open for writing never fails");
    assert_eq!(
        writer.heads().expect("heads"),
        heads,
        "reader and writer differ"
    );
    drop(writer);
    let again = SledStore::open(dir.path()).expect("a second open");
    assert!(
        !again
            .repairs()
            .iter()
            .any(|r| matches!(r, Repair::TornTail { .. })),
        "a torn tail survived its cut: {:?}",
        again.repairs()
    );
}

fn signer() -> Signer {
    Signer::from_seed([7; 32])
}

/// Two streams of three events each, the second's last caused by the first's head.
fn sample(ledger: &Ledger<impl BlockStore>) {
    let a: StreamId = "person/fuzz-a".parse().expect("a stream");
    let b: StreamId = "org/fuzz-b".parse().expect("a stream");
    for (stream, n) in [(&a, 3), (&b, 2)] {
        for i in 0..n {
            let draft = Draft::new(stream.clone(), "Touched", 1)
                .with_data(Ipld::String(format!("{stream} {i}")))
                .expect("a draft");
            ledger.append(&signer(), draft).expect("an append");
        }
    }
    let cause = ledger
        .store()
        .head(&a)
        .expect("a head")
        .expect("a head")
        .cid;
    let draft = Draft::new(b, "Caused", 1)
        .with_data(Ipld::String("caused".into()))
        .expect("a draft")
        .caused_by([cause]);
    ledger.append(&signer(), draft).expect("an append");
}

/// The seeds of target `name`: valid inputs of its kind, from `fixtures` (the repository's
/// `fixtures/` directory) and made here.
pub fn seeds(name: &str, fixtures: &Path) -> Vec<Vec<u8>> {
    let memory = Ledger::new(MemoryStore::new());
    sample(&memory);
    let mut blocks = Vec::new();
    memory
        .store()
        .scan(&mut |b| {
            blocks.push(b.expect("a stored block").into_bytes());
            true
        })
        .expect("a scan");
    match name {
        "block" => {
            let mut out = blocks;
            let golden = fixtures.join("golden/ledger-v1.json");
            let text = std::fs::read_to_string(golden).expect("the golden vectors");
            let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            for b in json["blocks"].as_array().expect("blocks") {
                let hex = b["hex"].as_str().expect("hex");
                out.push(
                    (0..hex.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                        .collect(),
                );
            }
            let dir = fixtures.join("ipld-codec-fixtures/dag-cbor");
            for case in std::fs::read_dir(dir).expect("codec fixtures").flatten() {
                for file in std::fs::read_dir(case.path()).into_iter().flatten().flatten() {
                    out.push(std::fs::read(file.path()).expect("a fixture"));
                }
            }
            out
        }
        "car" => {
            let mut out = Vec::new();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime");
            runtime
                .block_on(car::export(memory.store(), None, &mut out))
                .expect("an export");
            vec![out]
        }
        "notice" => blocks
            .iter()
            .filter_map(|b| Event::decode(&Block::new(b.clone())).ok())
            .map(|e| Notice::of(&e).encode().expect("a notice"))
            .collect(),
        "command" => [
            r#"{"command": "register", "legal_name": "Grace Hopper", "person": "0193f0c2-6e8a-7bd2-9d1b-5c1e0f2a3b4c"}"#,
            r#"{"command": "add-email", "person": "0193f0c2-6e8a-7bd2-9d1b-5c1e0f2a3b4c", "address": "grace@example.org"}"#,
            r#"{"command": "set-birth-date", "date": "1906-12-09"}"#,
            r#"{"command": "add-skill", "name": "COBOL", "level": 5}"#,
            r#"{"command": "set-preferences", "language": "en", "channels": ["email", "sms"]}"#,
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect(),
        "store" => {
            let dir = tempfile::tempdir().expect("a temporary directory");
            sample(&Ledger::new(SledStore::open(dir.path()).expect("a store")));
            vec![std::fs::read(dir.path().join("blocks/00000000.seg")).expect("the segment")]
        }
        other => panic!("no fuzz target {other:?}"),
    }
}
