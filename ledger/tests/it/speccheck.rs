//! The 12 ed25519-speccheck vectors ("Taming the many EdDSAs"): personctl's verdict on each,
//! identical on the single path ([`Author::verify`]) and the batch path ([`verify_many`]),
//! alone and mixed into batches of valid signatures, over many draws of the batch's random
//! coefficients. The verdicts follow from the criteria in docs/FORMAT.md (canonical `A` and
//! `R`, neither of small order, `s < ℓ`, cofactored equation).

use personctl_ledger::{verify_many, Author, SigCheck, Signature, Signer};

use crate::fixtures;

/// The expected verdict of vector 0..11: only 3 (mixed-order `A` and `R`), 4 (passes only
/// the cofactored equation) and 5 (full-order `R`, cofactored) are valid.
const EXPECTED: [bool; 12] = [
    false, false, false, true, true, true, false, false, false, false, false, false,
];

struct Case {
    message: Vec<u8>,
    key: Option<Author>,
    signature: Signature,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixtures().join("ed25519-speccheck/cases.json")).unwrap();
    let doc: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    doc.iter()
        .map(|c| {
            let key: [u8; 32] = hex::decode(c["pub_key"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            let sig: [u8; 64] = hex::decode(c["signature"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            Case {
                message: hex::decode(c["message"].as_str().unwrap()).unwrap(),
                key: Author::from_bytes(&key).ok(),
                signature: Signature(sig),
            }
        })
        .collect()
}

#[test]
fn every_vector_gets_its_verdict_on_both_paths_alone_and_in_batches() {
    let cases = cases();
    assert_eq!(cases.len(), 12);
    // Vectors 10 and 11 have a non-canonical A: it does not even parse as an author.
    assert!(cases[10].key.is_none() && cases[11].key.is_none());
    let signer = Signer::from_seed([9; 32]);
    let author = signer.author();
    let valid: Vec<(Vec<u8>, Signature)> = (0..63u32)
        .map(|i| {
            let m = format!("valid {i}").into_bytes();
            let s = signer.sign(&m);
            (m, s)
        })
        .collect();
    for (n, case) in cases.iter().enumerate() {
        let Some(key) = &case.key else {
            assert!(!EXPECTED[n], "vector {n}");
            continue;
        };
        assert_eq!(
            key.verify(&case.message, &case.signature),
            EXPECTED[n],
            "vector {n}, single"
        );
        let alone = SigCheck {
            message: &case.message,
            signature: &case.signature,
            author: key,
        };
        // Many draws of the random coefficients: a verdict that depended on them (as the
        // cofactorless batch equation's does for torsion components) would flip.
        for draw in 0..64 {
            assert_eq!(
                verify_many(&[alone]),
                vec![EXPECTED[n]],
                "vector {n}, batch alone"
            );
            let mut batch: Vec<SigCheck<'_>> = valid
                .iter()
                .map(|(m, s)| SigCheck {
                    message: m,
                    signature: s,
                    author: &author,
                })
                .collect();
            batch.insert(draw % 64, alone);
            let verdicts = verify_many(&batch);
            for (i, v) in verdicts.iter().enumerate() {
                let want = if i == draw % 64 { EXPECTED[n] } else { true };
                assert_eq!(*v, want, "vector {n} at {i} of a batch, draw {draw}");
            }
        }
    }
}
