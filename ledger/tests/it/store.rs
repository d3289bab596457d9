//! The sled store on disk: persistence across reopen, crash leftovers, erasure in place, and
//! damage to its own commit records.

use std::io::Write;

use personctl_ledger::{
    verify, BlockStore, Draft, Error, Ipld, Ledger, SledStore, StreamId, TrustSet, VerifyOptions,
};

use crate::golden::fixture_signer;

fn trust() -> TrustSet {
    [fixture_signer().author()].into_iter().collect()
}

fn append_some(ledger: &Ledger<SledStore>, stream: &StreamId, n: i128, tag: &str) {
    let drafts = (0..n)
        .map(|i| {
            Draft::new(stream.clone(), "Touched", 1)
                .with_data(Ipld::String(format!("{tag}-{i}")))
                .unwrap()
        })
        .collect();
    ledger.append_batch(&fixture_signer(), drafts).unwrap();
}

fn files_contain(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            hits.extend(files_contain(&path, needle));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                hits.push(path.display().to_string());
            }
        }
    }
    hits
}

#[test]
fn a_reopened_store_has_the_same_heads_and_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let s: StreamId = "person/p".parse().unwrap();
    let (heads, chain) = {
        let ledger = Ledger::new(SledStore::open(dir.path()).unwrap());
        append_some(&ledger, &s, 5, "a");
        append_some(&ledger, &s, 3, "b");
        (ledger.store().heads().unwrap(), ledger.chain(&s).unwrap())
    };
    let ledger = Ledger::new(SledStore::open(dir.path()).unwrap());
    assert_eq!(ledger.store().heads().unwrap(), heads);
    assert_eq!(ledger.chain(&s).unwrap(), chain);
    assert_eq!(chain.len(), 8);
    append_some(&ledger, &s, 2, "c");
    assert!(
        verify(ledger.store(), &trust(), &VerifyOptions::default(), &|_| {})
            .unwrap()
            .is_ok()
    );
}

#[test]
fn bytes_left_by_a_crash_before_the_commit_are_invisible() {
    let dir = tempfile::tempdir().unwrap();
    let s: StreamId = "person/p".parse().unwrap();
    {
        let ledger = Ledger::new(SledStore::open(dir.path()).unwrap());
        append_some(&ledger, &s, 3, "a");
    }
    // A crash after the segment write but before the sled commit leaves a record (here a
    // torn one) at the end of the segment.
    let segment = dir.path().join("blocks/00000000.seg");
    let orphan = personctl_ledger::Block::new(b"\xa1aa\x01".to_vec());
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap();
    file.write_all(&5u32.to_le_bytes()).unwrap();
    file.write_all(&orphan.cid().to_bytes()).unwrap();
    file.write_all(&orphan.bytes()[..2]).unwrap();
    drop(file);

    let ledger = Ledger::new(SledStore::open(dir.path()).unwrap());
    assert!(!ledger.store().contains(&orphan.cid()).unwrap());
    assert_eq!(ledger.store().head(&s).unwrap().unwrap().height, 2);
    append_some(&ledger, &s, 2, "b");
    drop(ledger);
    let ledger = Ledger::new(SledStore::open(dir.path()).unwrap());
    assert_eq!(ledger.chain(&s).unwrap().len(), 5);
    let report = verify(ledger.store(), &trust(), &VerifyOptions::default(), &|_| {}).unwrap();
    assert!(report.is_ok(), "{:?}", report.findings);
    assert_eq!(report.events, 5);
}

#[test]
fn a_removed_block_is_gone_from_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let s: StreamId = "person/p".parse().unwrap();
    let ledger = Ledger::new(SledStore::open(dir.path()).unwrap());
    let secret = "grace.hopper.7f3a@example.org";
    let d = Draft::new(s.clone(), "EmailAdded", 1)
        .with_data(Ipld::String(secret.into()))
        .unwrap();
    let a = ledger.append(&fixture_signer(), d).unwrap();
    assert!(
        !files_contain(dir.path(), secret.as_bytes()).is_empty(),
        "the value is stored at first"
    );
    assert!(ledger.store().remove(&a.payload.unwrap()).unwrap());
    assert!(
        !ledger.store().remove(&a.payload.unwrap()).unwrap(),
        "removing twice is harmless"
    );
    drop(ledger);
    assert_eq!(
        files_contain(dir.path(), secret.as_bytes()),
        Vec::<String>::new()
    );
    let ledger = Ledger::new(SledStore::open(dir.path()).unwrap());
    assert!(ledger.store().get(&a.payload.unwrap()).unwrap().is_none());
    assert!(
        ledger.store().get(&a.cid).unwrap().is_some(),
        "the event stays"
    );
}

#[test]
fn a_second_open_of_the_same_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = SledStore::open(dir.path()).unwrap();
    let second = std::thread::spawn({
        let path = dir.path().to_path_buf();
        move || match SledStore::open(&path) {
            Err(e @ Error::InUse { .. }) => Some(e.to_string()),
            Err(other) => panic!("not InUse: {other}"),
            Ok(_) => None,
        }
    })
    .join()
    .unwrap();
    assert!(
        matches!(second, Some(ref e) if e.contains("in use by another process")),
        "a second writer must be refused while the first is alive: {second:?}"
    );
}
