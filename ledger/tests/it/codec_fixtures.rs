//! The IPLD DAG-CBOR codec fixtures, through the ledger's codec layer.

use personctl_ledger::codec;
use sha2::{Digest, Sha256};

use crate::fixtures;

/// The SHA2-256 CIDv1 (dag-cbor) of `bytes`, as the fixtures name their files.
fn sha256_cid(bytes: &[u8]) -> cid::Cid {
    let digest = Sha256::digest(bytes);
    cid::Cid::new_v1(
        0x71,
        multihash::Multihash::<64>::wrap(0x12, &digest).unwrap(),
    )
}

#[test]
fn every_positive_fixture_round_trips_and_matches_its_cid() {
    let dir = fixtures().join("ipld-codec-fixtures/dag-cbor");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let case = entry.unwrap().path();
        for file in std::fs::read_dir(&case).unwrap() {
            let file = file.unwrap().path();
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            let Some(cid_text) = name.strip_suffix(".dag-cbor") else {
                continue;
            };
            let bytes = std::fs::read(&file).unwrap();
            let value = codec::decode_ipld(&name, &bytes)
                .unwrap_or_else(|e| panic!("{}: {e}", case.display()));
            let again = codec::encode(&value).unwrap();
            assert_eq!(again, bytes, "{}: re-encoding differs", case.display());
            let expected: cid::Cid = cid_text.parse().unwrap();
            assert_eq!(
                sha256_cid(&again),
                expected,
                "{}: CID differs",
                case.display()
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 100,
        "only {checked} fixtures found in {}",
        dir.display()
    );
}

#[derive(serde::Deserialize)]
struct Negative {
    name: String,
    hex: String,
}

fn negatives(path: &str) -> Vec<Negative> {
    let text = std::fs::read_to_string(fixtures().join(path)).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_negative_fixture_is_rejected() {
    let mut all = negatives("ipld-codec-fixtures/negative/decode-duplicate-keys.json");
    all.extend(negatives("dag-cbor-negative.json"));
    assert!(all.len() > 25);
    for case in all {
        let bytes = hex::decode(&case.hex).unwrap();
        let result = codec::decode_ipld(&case.name, &bytes);
        assert!(
            result.is_err(),
            "{} ({}) was accepted as {:?}",
            case.name,
            case.hex,
            result
        );
        let message = result.unwrap_err().to_string();
        assert!(
            message.starts_with(&case.name),
            "error does not name its input: {message}"
        );
    }
}
