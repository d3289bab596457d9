//! Wycheproof's Ed25519 vectors: strict single verification and batch verification must both
//! give every vector the verdict it expects.

use personctl_ledger::{verify_many, Author, SigCheck, Signature};

use crate::fixtures;

struct Case {
    id: u64,
    key: Option<Author>,
    msg: Vec<u8>,
    sig: Option<Signature>,
    valid: bool,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixtures().join("wycheproof/ed25519_test.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for group in doc["testGroups"].as_array().unwrap() {
        let pk: [u8; 32] = hex::decode(group["publicKey"]["pk"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let key = Author::from_bytes(&pk).ok();
        for test in group["tests"].as_array().unwrap() {
            let sig = hex::decode(test["sig"].as_str().unwrap()).unwrap();
            let result = test["result"].as_str().unwrap();
            assert!(
                result == "valid" || result == "invalid",
                "unexpected verdict {result}"
            );
            out.push(Case {
                id: test["tcId"].as_u64().unwrap(),
                key,
                msg: hex::decode(test["msg"].as_str().unwrap()).unwrap(),
                sig: sig.try_into().ok().map(Signature),
                valid: result == "valid",
            });
        }
    }
    out
}

/// A verdict for a case whose key or signature cannot even be parsed is "invalid".
fn verdict_single(case: &Case) -> bool {
    match (&case.key, &case.sig) {
        (Some(key), Some(sig)) => key.verify(&case.msg, sig),
        _ => false,
    }
}

#[test]
fn strict_single_verification_matches_every_vector() {
    let cases = cases();
    assert_eq!(cases.len(), 151);
    for case in &cases {
        assert_eq!(verdict_single(case), case.valid, "tcId {}", case.id);
    }
}

#[test]
fn batch_verification_matches_every_vector_alone_and_together() {
    let cases = cases();
    let parsed: Vec<&Case> = cases
        .iter()
        .filter(|c| c.key.is_some() && c.sig.is_some())
        .collect();
    let checks: Vec<SigCheck<'_>> = parsed
        .iter()
        .map(|c| SigCheck {
            message: &c.msg,
            signature: c.sig.as_ref().unwrap(),
            author: c.key.as_ref().unwrap(),
        })
        .collect();
    // All together: the batch fails, so every verdict comes from the per-item fallback or the
    // pre-checks.
    let together = verify_many(&checks);
    for (case, ok) in parsed.iter().zip(&together) {
        assert_eq!(*ok, case.valid, "tcId {} in one batch", case.id);
    }
    // Only the valid ones together: the batch equation itself must accept them.
    let valid: Vec<SigCheck<'_>> = checks
        .iter()
        .zip(&parsed)
        .filter(|(_, c)| c.valid)
        .map(|(s, _)| *s)
        .collect();
    assert!(verify_many(&valid).iter().all(|&ok| ok));
    // Each alone.
    for (check, case) in checks.iter().zip(&parsed) {
        assert_eq!(
            verify_many(std::slice::from_ref(check)),
            vec![case.valid],
            "tcId {} alone",
            case.id
        );
    }
}
