//! Transparency-log building blocks against published vectors (`fixtures/tlog/`): RFC 6962
//! hashing and the reference tree, transparency-dev's inclusion and consistency probes, a real
//! Certificate Transparency log's proofs, Go's signed notes and a sum.golang.org checkpoint;
//! then our own trees, proofs and checkpoints, and their tampered forms.

use base64::prelude::*;
use serde_json::Value;

use std::time::Duration;

use personctl_ledger::tlog::{
    check_consistency, check_inclusion, cosignatures, leaf_hash, open_note, open_witnessed,
    record_hash, sign_note, with_cosignatures, AddCheckpoint, AutoCheckpoint, Checkpoint,
    Cosignature, Hash, NoteKey, Tree, Witness, WitnessKey, EMPTY_HASH,
};
use personctl_ledger::{
    verify, BlockStore, Cid, Draft, Ledger, MemoryStore, Problem, Signer, SledStore, StreamId,
    TrustSet, VerifyOptions,
};

fn vectors() -> Value {
    let path = crate::fixtures().join("tlog/tlog-vectors.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn hash_b64(text: &str) -> Option<Hash> {
    let bytes = BASE64_STANDARD.decode(text).ok()?;
    Some(Hash(bytes.try_into().ok()?))
}

fn hash_hex(text: &str) -> Hash {
    Hash(hex::decode(text).unwrap().try_into().unwrap())
}

/// A number written as a JSON number or, beyond 2^53, as a decimal string.
fn number(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap()
}

/// A list of base64 hashes; `None` when one is not a hash (the proof is then malformed).
fn hashes(v: &Value) -> Option<Vec<Hash>> {
    match v {
        Value::Null => Some(Vec::new()),
        Value::Array(items) => items.iter().map(|h| hash_b64(h.as_str()?)).collect(),
        // Written as a Python list in a string.
        Value::String(s) => s
            .trim_matches(|c| c == '[' || c == ']')
            .split(", ")
            .filter(|h| !h.is_empty())
            .map(|h| hash_b64(h.trim_matches('\'')))
            .collect(),
        _ => None,
    }
}

#[test]
fn rfc6962_hashing_and_the_reference_tree() {
    let v = vectors();
    for case in v["rfc6962_hasher"]["cases"].as_array().unwrap() {
        let want = hash_hex(case["want"].as_str().unwrap());
        let got = match case["op"].as_str().unwrap() {
            "empty" => EMPTY_HASH,
            "leaf" => record_hash(&hex::decode(case["data"].as_str().unwrap()).unwrap()),
            _ => continue, // node hashes are checked through the tree's roots
        };
        assert_eq!(got, want, "{}", case["desc"]);
    }
    let tree = &v["rfc6962_reference_tree"];
    let mut ours = Tree::new();
    for leaf in tree["leaves"].as_array().unwrap() {
        ours.push_hash(record_hash(&hex::decode(leaf.as_str().unwrap()).unwrap()))
            .unwrap();
    }
    for (size, root) in tree["roots_by_size"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            ours.root_at(size as u64).unwrap(),
            hash_hex(root.as_str().unwrap()),
            "root of {size}"
        );
    }
}

#[test]
fn transparency_dev_probes_get_the_same_verdicts() {
    let v = vectors();
    let mut checked = 0;
    for p in v["merkle_inclusion_probes"]["probes"].as_array().unwrap() {
        let verdict = (|| {
            let proof = hashes(&p["proof"])?;
            let (root, leaf) = (
                hash_b64(p["root"].as_str()?)?,
                hash_b64(p["leafHash"].as_str()?)?,
            );
            let (index, size) = (number(&p["leafIdx"]), number(&p["treeSize"]));
            Some(check_inclusion(&proof, size, root, index, leaf).is_ok())
        })()
        .unwrap_or(false);
        assert_eq!(
            verdict,
            !p["wantErr"].as_bool().unwrap(),
            "inclusion: {}",
            p["file"]
        );
        checked += 1;
    }
    let mut not_hashes = 0;
    for p in v["merkle_consistency_probes"]["probes"].as_array().unwrap() {
        // A few edge probes use "don't care" roots that are not 32-byte hashes: our roots are
        // SHA-256 hashes by type, so such an input never reaches a check (it cannot parse).
        let is_hash = |k: &str| p[k].as_str().and_then(hash_b64).is_some();
        if !(is_hash("root1") && is_hash("root2")) {
            not_hashes += 1;
            continue;
        }
        let verdict = (|| {
            let proof = hashes(&p["proof"])?;
            let (r1, r2) = (
                hash_b64(p["root1"].as_str()?)?,
                hash_b64(p["root2"].as_str()?)?,
            );
            let (s1, s2) = (number(&p["size1"]), number(&p["size2"]));
            Some(check_consistency(&proof, s2, r2, s1, r1).is_ok())
        })()
        .unwrap_or(false);
        assert_eq!(
            verdict,
            !p["wantErr"].as_bool().unwrap(),
            "consistency: {}",
            p["file"]
        );
        checked += 1;
    }
    assert!(
        checked >= 170 && not_hashes < 25,
        "{checked} probes, {not_hashes} skipped"
    );
}

#[test]
fn a_real_certificate_transparency_log_proves_inclusion_and_consistency() {
    let ct = &vectors()["ct_argon2020"];
    let size = number(&ct["tree_size"]);
    let root = hash_b64(ct["root"].as_str().unwrap()).unwrap();
    let leaf = record_hash(
        &BASE64_STANDARD
            .decode(ct["leaf_input"].as_str().unwrap())
            .unwrap(),
    );
    let path = hashes(&ct["audit_path"]).unwrap();
    let index = number(&ct["leaf_index"]);
    check_inclusion(&path, size, root, index, leaf).unwrap();
    assert!(check_inclusion(&path, size, root, index + 1, leaf).is_err());
    let (old, old_root) = (
        number(&ct["first_size"]),
        hash_b64(ct["first_root"].as_str().unwrap()).unwrap(),
    );
    let proof = hashes(&ct["consistency"]).unwrap();
    check_consistency(&proof, size, root, old, old_root).unwrap();
    assert!(check_consistency(&proof, size, root, old, root).is_err());
}

#[test]
fn published_notes_and_a_sum_golang_org_checkpoint_open() {
    let v = vectors();
    let example = &v["c2sp_signed_note_example"];
    let key = NoteKey::from_vkey(example["vkey"].as_str().unwrap()).unwrap();
    assert_eq!(key.to_vkey(), example["vkey"].as_str().unwrap());
    let (text, names) = open_note(example["note"].as_str().unwrap(), &[key]).unwrap();
    assert_eq!(
        (text.as_str(), names),
        (
            "This is an example message.\n",
            vec!["example.com/foo".to_string()]
        )
    );

    let go = &v["go_sumdb_note"];
    let text = go["text"].as_str().unwrap();
    let peter = NoteKey::from_vkey(go["peter_vkey"].as_str().unwrap()).unwrap();
    let note = format!("{text}\n{}", go["peter_sig"].as_str().unwrap());
    assert_eq!(
        open_note(&note, std::slice::from_ref(&peter)).unwrap().0,
        text
    );
    // Altered text, or a key that signed nothing here: refused.
    assert!(open_note(&note.replacen("problem", "question", 1), &[peter]).is_err());
    let enoch = NoteKey::from_vkey(go["enoch_vkey"].as_str().unwrap()).unwrap();
    assert!(open_note(&note, &[enoch]).is_err());
    for bad in go["bad_vkeys"].as_array().unwrap() {
        assert!(NoteKey::from_vkey(bad.as_str().unwrap()).is_err(), "{bad}");
    }
    for good in v["vkeys"]["valid"].as_array().unwrap() {
        let good = good.as_str().unwrap();
        // Ed25519 keys (type 0x01) parse; other types are not ours to check.
        let ed25519 = good
            .splitn(3, '+')
            .nth(2)
            .and_then(|k| BASE64_STANDARD.decode(k).ok())
            .is_some_and(|k| k.first() == Some(&1));
        assert_eq!(NoteKey::from_vkey(good).is_ok(), ed25519, "{good}");
    }
    for bad in v["vkeys"]["invalid"].as_array().unwrap() {
        assert!(NoteKey::from_vkey(bad.as_str().unwrap()).is_err(), "{bad}");
    }

    let sumdb = &v["sumdb_checkpoint"];
    let key = NoteKey::from_vkey(sumdb["vkey"].as_str().unwrap()).unwrap();
    let checkpoint = Checkpoint::open(sumdb["note"].as_str().unwrap(), &key).unwrap();
    assert_eq!(checkpoint.origin, sumdb["origin"].as_str().unwrap());
    assert_eq!(checkpoint.size, number(&sumdb["size"]));
    assert_eq!(
        Some(checkpoint.root),
        hash_b64(sumdb["root"].as_str().unwrap())
    );
}

#[test]
fn our_trees_prove_every_leaf_and_every_prefix_and_sign_checkpoints() {
    let cids: Vec<Cid> = (0u32..21).map(|i| Cid::of(&i.to_le_bytes())).collect();
    let tree = Tree::of(&cids).unwrap();
    for size in 1..=tree.size() {
        let root = tree.root_at(size).unwrap();
        for index in 0..size {
            let proof = tree.prove_inclusion(index, size).unwrap();
            let leaf = leaf_hash(&cids[index as usize]);
            check_inclusion(&proof, size, root, index, leaf).unwrap();
            let other = leaf_hash(&cids[(index as usize + 1) % cids.len()]);
            assert!(check_inclusion(&proof, size, root, index, other).is_err());
        }
        for old in 1..=size {
            let proof = tree.prove_consistency(old, size).unwrap();
            let old_root = tree.root_at(old).unwrap();
            check_consistency(&proof, size, root, old, old_root).unwrap();
        }
    }
    // A split view: two trees of one size with different roots are not consistent.
    let mut forked = cids.clone();
    forked[3] = Cid::of(b"another history");
    let fork = Tree::of(&forked).unwrap();
    let proof = tree.prove_consistency(10, 21).unwrap();
    assert!(check_consistency(&proof, 21, tree.root(), 10, fork.root_at(10).unwrap()).is_err());
    assert!(tree.prove_inclusion(21, 21).is_err() && tree.prove_consistency(5, 22).is_err());

    // Checkpoints signed with a ledger key open with its verifier key, and only unaltered.
    let signer = Signer::from_seed([9; 32]);
    let checkpoint = Checkpoint {
        origin: "personctl.example/home".into(),
        size: tree.size(),
        root: tree.root(),
    };
    let note = checkpoint.sign("personctl.example/home", &signer).unwrap();
    let key = NoteKey::new("personctl.example/home", signer.author()).unwrap();
    let vkey = NoteKey::from_vkey(&key.to_vkey()).unwrap();
    assert_eq!(Checkpoint::open(&note, &vkey).unwrap(), checkpoint);
    let shorter = note.replacen("\n21\n", "\n20\n", 1);
    assert!(
        Checkpoint::open(&shorter, &vkey).is_err(),
        "a truncated log's claim"
    );
    let stranger = NoteKey::new(
        "personctl.example/home",
        Signer::from_seed([8; 32]).author(),
    )
    .unwrap();
    assert!(Checkpoint::open(&note, &stranger).is_err());
    assert!(sign_note("two\n\nparagraphs\n", "n", &signer).is_err());
}

/// Appends `n` events with payloads to a few streams, in batches.
fn fill(ledger: &Ledger<impl BlockStore>, signer: &Signer, n: usize) -> Vec<Cid> {
    let mut out = Vec::new();
    for batch in 0..n.div_ceil(4) {
        let drafts = (0..4.min(n - batch * 4))
            .map(|i| {
                let stream: StreamId = format!("thing/{}", (batch + i) % 3).parse().unwrap();
                Draft::new(stream, "Touched", 1)
                    .with_value(&format!("payload {batch}.{i}"))
                    .unwrap()
            })
            .collect::<Vec<_>>();
        // One draft per stream per batch: batches move several heads at once.
        for draft in drafts {
            out.push(ledger.append(signer, draft).unwrap().cid);
        }
    }
    out
}

#[test]
fn the_store_keeps_its_log_with_each_commit_and_finds_it_again_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::generate().unwrap();
    let ledger = Ledger::new(SledStore::open(dir.path()).unwrap());
    let first = fill(&ledger, &signer, 10);
    // The tree is built once asked for, then grows with each commit.
    let at_ten = ledger.log_checkpoint("example.org/log").unwrap();
    assert_eq!(at_ten.size, 10);
    let more = fill(&ledger, &signer, 7);
    let grown = ledger.log_checkpoint("example.org/log").unwrap();
    let all: Vec<Cid> = first.iter().chain(&more).copied().collect();
    assert_eq!(
        ledger.log().unwrap(),
        all,
        "events only, in the order stored"
    );
    assert_eq!(
        grown.root,
        Tree::of(&all).unwrap().root(),
        "grown = rebuilt"
    );
    assert_eq!(ledger.check_against(&at_ten).unwrap(), None);
    let proof = ledger.prove_consistency(10, 17).unwrap();
    check_consistency(&proof, 17, grown.root, 10, at_ten.root).unwrap();
    drop(ledger);

    // Reopened, the commit records give the same order and the same tree.
    let ledger = Ledger::new(SledStore::open(dir.path()).unwrap());
    assert_eq!(ledger.log().unwrap(), all);
    assert_eq!(ledger.log_checkpoint("example.org/log").unwrap(), grown);

    // Erasure removes payloads, never leaves: the tree stays.
    let payload = ledger.event(&all[3]).unwrap().payload().unwrap();
    assert!(ledger.store().remove(&payload).unwrap());
    assert_eq!(ledger.log_checkpoint("example.org/log").unwrap(), grown);
    // Removing an event (a withdrawn one) takes its leaf out, here and after reopening.
    let last = *all.last().unwrap();
    assert!(ledger.store().remove(&last).unwrap());
    let shorter = ledger.log_checkpoint("example.org/log").unwrap();
    assert_eq!(shorter.root, Tree::of(&all[..16]).unwrap().root());
    assert_eq!(
        ledger.check_against(&grown).unwrap(),
        Some(Problem::TruncatedLog {
            checkpoint: 17,
            log: 16
        })
    );
    drop(ledger);
    let ledger = Ledger::new(SledStore::open(dir.path()).unwrap());
    assert_eq!(ledger.log_checkpoint("example.org/log").unwrap(), shorter);

    // The memory store keeps the same log.
    let memory = Ledger::new(MemoryStore::new());
    let cids = fill(&memory, &signer, 5);
    assert_eq!(memory.log().unwrap(), cids);
}

#[test]
fn signed_checkpoints_are_kept_and_checked_by_verify() {
    let signer = Signer::generate().unwrap();
    let ledger = Ledger::new(MemoryStore::new());
    fill(&ledger, &signer, 6);
    let signed = ledger.sign_checkpoint("example.org/log", &signer).unwrap();
    assert_eq!(signed.checkpoint.size, 6);
    assert_eq!(
        ledger.latest_checkpoint().unwrap(),
        Some(signed.note.clone())
    );
    let trust: TrustSet = [signer.author()].into_iter().collect();
    let options = VerifyOptions::default();
    assert!(verify(ledger.store(), &trust, &options, &|_| ())
        .unwrap()
        .findings
        .is_empty());
    // A kept checkpoint that the log no longer starts with fails verify.
    let chain = ledger.log().unwrap();
    ledger.store().remove(chain.last().unwrap()).unwrap();
    let report = verify(ledger.store(), &trust, &options, &|_| ()).unwrap();
    let codes: Vec<&str> = report.findings.iter().map(|f| f.problem.code()).collect();
    assert!(codes.contains(&"truncated-log"), "{codes:?}");
    // Unless no trusted key signed it: then it states nothing.
    let report = verify(ledger.store(), &TrustSet::new(), &options, &|_| ()).unwrap();
    assert!(!report
        .findings
        .iter()
        .any(|f| f.problem.code() == "truncated-log"));
    // A cosigned copy of a checkpoint of this log is kept; another log's is refused.
    let other = Ledger::new(MemoryStore::new());
    fill(&other, &signer, 6);
    let theirs = other.sign_checkpoint("example.org/log", &signer).unwrap();
    assert!(ledger.keep_checkpoint(&theirs.note, &signed.key).is_err());
}

#[test]
fn a_real_witness_cosignature_verifies_and_altered_ones_do_not() {
    let v = vectors();
    let case = &v["arche2025h1_cosigned_checkpoint"];
    let note = case["note"].as_str().unwrap();
    let remora = WitnessKey::from_vkey(case["cosigner_vkey"].as_str().unwrap()).unwrap();
    assert_eq!(remora.to_vkey(), case["cosigner_vkey"].as_str().unwrap());
    let found = cosignatures(note, std::slice::from_ref(&remora)).unwrap();
    assert_eq!(
        found,
        [Cosignature {
            witness: "remora.n621.de".into(),
            time: number(&case["cosignature_timestamp"]),
        }]
    );
    // Another checkpoint text under the same cosignature: refused.
    let altered = note.replacen("1432088532", "1432088533", 1);
    assert!(cosignatures(&altered, std::slice::from_ref(&remora)).is_err());
    // A log key is not a witness key, and the other way round.
    let log_vkey = case["log_vkey"].as_str().unwrap();
    assert!(WitnessKey::from_vkey(log_vkey).is_err());
    assert!(NoteKey::from_vkey(case["cosigner_vkey"].as_str().unwrap()).is_err());
    // C2SP's add-checkpoint example body parses.
    let ex = &v["tlog_witness_example"];
    let body = AddCheckpoint::parse(ex["body"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(body.old, number(&ex["old_size"]));
    assert_eq!(body.proof.len() as u64, number(&ex["proof_lines"]));
    assert_eq!(body.to_body(), ex["body"].as_str().unwrap());
}

#[test]
fn a_witness_cosigns_growth_and_refuses_a_split_view_a_rollback_and_bad_proofs() {
    let dir = tempfile::tempdir().unwrap();
    let (log_signer, witness_signer) = (Signer::generate().unwrap(), Signer::generate().unwrap());
    let origin = "example.org/log";
    let log_key = NoteKey::new(origin, log_signer.author()).unwrap();
    let witness = Witness::open(
        dir.path(),
        "example.org/witness",
        witness_signer,
        vec![log_key.clone()],
    )
    .unwrap();
    let wkey = witness.key();
    let ledger = Ledger::new(MemoryStore::new());
    fill(&ledger, &log_signer, 5);
    let five = ledger.sign_checkpoint(origin, &log_signer).unwrap();

    // First sight: old 0, no proof. The cosignature verifies.
    let answer = witness.add_checkpoint(
        ledger.growth(0, &five).unwrap().to_body().as_bytes(),
        1_700_000_000,
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let cosigned = with_cosignatures(&five.note, &answer.body);
    let (_, cos) = open_witnessed(&cosigned, &log_key, std::slice::from_ref(&wkey), 1).unwrap();
    assert_eq!(cos[0].time, 1_700_000_000);
    assert!(open_witnessed(&five.note, &log_key, std::slice::from_ref(&wkey), 1).is_err());
    // An altered cosignature is refused.
    let forged = cosigned.replacen(&answer.body[answer.body.len() - 6..], "AAAAA\n", 1);
    assert!(cosignatures(&forged, std::slice::from_ref(&wkey)).is_err());

    // Growth with a consistency proof; a stale `old` gets 409 and the size the witness holds.
    fill(&ledger, &log_signer, 4);
    let nine = ledger.sign_checkpoint(origin, &log_signer).unwrap();
    let stale = witness.add_checkpoint(ledger.growth(0, &nine).unwrap().to_body().as_bytes(), 1);
    assert_eq!((stale.status, stale.body.as_str()), (409, "5\n"));
    let grown = witness.add_checkpoint(ledger.growth(5, &nine).unwrap().to_body().as_bytes(), 2);
    assert_eq!(grown.status, 200, "{}", grown.body);
    assert_eq!(witness.latest(&log_key).unwrap().unwrap().size, 9);
    // The same checkpoint again: cosigned again (idempotent).
    let again = witness.add_checkpoint(ledger.growth(9, &nine).unwrap().to_body().as_bytes(), 3);
    assert_eq!(again.status, 200, "{}", again.body);

    // A split view: a fork of the log with the same size and key, another root.
    let fork = Ledger::new(MemoryStore::new());
    fill(&fork, &log_signer, 9);
    let forked = fork.sign_checkpoint(origin, &log_signer).unwrap();
    assert_eq!(forked.checkpoint.size, 9);
    assert_ne!(forked.checkpoint.root, nine.checkpoint.root);
    let split = witness.add_checkpoint(fork.growth(9, &forked).unwrap().to_body().as_bytes(), 4);
    assert_eq!((split.status, split.body.as_str()), (409, "9\n"));
    assert_eq!(witness.latest(&log_key).unwrap().unwrap(), nine.checkpoint);

    // A proof that does not lead from what it holds: 422. A rollback (smaller): 400 or 409.
    fill(&fork, &log_signer, 2);
    let eleven = fork.sign_checkpoint(origin, &log_signer).unwrap();
    let bad = witness.add_checkpoint(fork.growth(9, &eleven).unwrap().to_body().as_bytes(), 5);
    assert_eq!(bad.status, 422, "{}", bad.body);
    let body = AddCheckpoint {
        old: 9,
        proof: vec![],
        note: five.note.clone(),
    };
    assert_eq!(
        witness.add_checkpoint(body.to_body().as_bytes(), 6).status,
        400
    );

    // Another log: 404; the right origin with another key: 403; garbage: 400.
    let stranger = Signer::generate().unwrap();
    let theirs = Ledger::new(MemoryStore::new());
    fill(&theirs, &stranger, 1);
    let other = theirs
        .sign_checkpoint("example.org/other", &stranger)
        .unwrap();
    assert_eq!(
        witness
            .add_checkpoint(theirs.growth(0, &other).unwrap().to_body().as_bytes(), 7)
            .status,
        404
    );
    let impostor = theirs.sign_checkpoint(origin, &stranger).unwrap();
    assert_eq!(
        witness
            .add_checkpoint(theirs.growth(0, &impostor).unwrap().to_body().as_bytes(), 7)
            .status,
        403
    );
    assert_eq!(witness.add_checkpoint(b"old x\n\nnothing", 7).status, 400);

    // Its state survives a restart.
    drop(witness);
    let witness = Witness::open(
        dir.path(),
        "example.org/witness",
        Signer::generate().unwrap(),
        vec![log_key.clone()],
    )
    .unwrap();
    assert_eq!(witness.latest(&log_key).unwrap().unwrap(), nine.checkpoint);
}

/// The witness key of the golden vectors: seed bytes 33..=64.
fn golden_witness() -> Signer {
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = i as u8 + 33;
    }
    Signer::from_seed(seed)
}

/// Our own formats, computed from fixed inputs: the leaves (the CIDs of the DAG-CBOR blocks of
/// the integers 0, 1 and 2), their hashes, the roots, an inclusion and a consistency proof, a
/// signed checkpoint, a cosignature and an add-checkpoint body. docs/FORMAT.md annotates them;
/// a change here is a wire-format change.
fn golden_tlog() -> Value {
    let leaves: Vec<Cid> = [0u8, 1, 2]
        .iter()
        .map(|&n| personctl_ledger::Block::new(vec![n]).cid())
        .collect();
    let tree = Tree::of(&leaves).unwrap();
    let b64 = |h: &Hash| BASE64_STANDARD.encode(h.0);
    let hex = |h: &Hash| h.0.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let signer = crate::golden::fixture_signer();
    let origin = "example.org/personctl";
    let checkpoint = Checkpoint {
        origin: origin.into(),
        size: 3,
        root: tree.root(),
    };
    let note = checkpoint.sign(origin, &signer).unwrap();
    let witness = golden_witness();
    let cosignature = personctl_ledger::tlog::cosign(
        &checkpoint.text().unwrap(),
        "example.org/witness",
        &witness,
        1_700_000_000,
    )
    .unwrap();
    let body = AddCheckpoint {
        old: 2,
        proof: tree.prove_consistency(2, 3).unwrap(),
        note: note.clone(),
    };
    serde_json::json!({
        "leaves": leaves.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        "leaf_hashes_hex": leaves.iter().map(|c| hex(&leaf_hash(c))).collect::<Vec<_>>(),
        "roots_b64": (1..=3).map(|n| b64(&tree.root_at(n).unwrap())).collect::<Vec<_>>(),
        "inclusion_1_of_3_b64": tree.prove_inclusion(1, 3).unwrap().iter().map(b64).collect::<Vec<_>>(),
        "consistency_2_to_3_b64": tree.prove_consistency(2, 3).unwrap().iter().map(b64).collect::<Vec<_>>(),
        "log_vkey": NoteKey::new(origin, signer.author()).unwrap().to_vkey(),
        "checkpoint_text": checkpoint.text().unwrap(),
        "signed_checkpoint": note,
        "witness_vkey": WitnessKey::new("example.org/witness", witness.author()).unwrap().to_vkey(),
        "cosignature_time": 1_700_000_000u64,
        "cosignature_line": cosignature,
        "add_checkpoint_body": body.to_body(),
    })
}

#[test]
fn our_log_formats_match_their_golden_vectors() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/golden/tlog-v1.json"
    );
    let computed = golden_tlog();
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|_| panic!("{path} is missing; these vectors would be:\n{computed:#}"));
    let golden: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(golden, computed, "a wire-format change: {computed:#}");
    // And they check as a verifier would.
    let key = NoteKey::from_vkey(golden["log_vkey"].as_str().unwrap()).unwrap();
    let wkey = WitnessKey::from_vkey(golden["witness_vkey"].as_str().unwrap()).unwrap();
    let note = with_cosignatures(
        golden["signed_checkpoint"].as_str().unwrap(),
        golden["cosignature_line"].as_str().unwrap(),
    );
    let (checkpoint, cosigned) = open_witnessed(&note, &key, &[wkey], 1).unwrap();
    assert_eq!((checkpoint.size, cosigned[0].time), (3, 1_700_000_000));
    let body =
        AddCheckpoint::parse(golden["add_checkpoint_body"].as_str().unwrap().as_bytes()).unwrap();
    let old = Checkpoint {
        origin: checkpoint.origin.clone(),
        size: 2,
        root: hash_b64(golden["roots_b64"][1].as_str().unwrap()).unwrap(),
    };
    assert_eq!(body.check(Some(&old), &key).unwrap(), checkpoint);
}

#[test]
fn automatic_checkpoints_follow_the_count_and_the_clock() {
    let signer = Signer::generate().unwrap();
    let ledger = Ledger::new(MemoryStore::new());
    let mut by_count = AutoCheckpoint::new("example.org/log", Some(3), None);
    fill(&ledger, &signer, 2);
    assert!(by_count.tick(&ledger, &signer).unwrap().is_none());
    fill(&ledger, &signer, 1);
    let signed = by_count
        .tick(&ledger, &signer)
        .unwrap()
        .expect("3 events: due");
    assert_eq!(signed.checkpoint.size, 3);
    assert_eq!(ledger.latest_checkpoint().unwrap(), Some(signed.note));
    assert!(by_count.tick(&ledger, &signer).unwrap().is_none());
    // A new one picks up where the kept checkpoints are.
    fill(&ledger, &signer, 2);
    let mut fresh = AutoCheckpoint::new("example.org/log", Some(3), None);
    assert!(
        fresh.tick(&ledger, &signer).unwrap().is_none(),
        "2 since the kept one"
    );

    let mut by_clock =
        AutoCheckpoint::new("example.org/log", None, Some(Duration::from_millis(30)));
    assert!(
        by_clock.tick(&ledger, &signer).unwrap().is_none(),
        "first tick starts the clock"
    );
    std::thread::sleep(Duration::from_millis(40));
    assert_eq!(
        by_clock
            .tick(&ledger, &signer)
            .unwrap()
            .unwrap()
            .checkpoint
            .size,
        5
    );
    std::thread::sleep(Duration::from_millis(40));
    assert!(
        by_clock.tick(&ledger, &signer).unwrap().is_none(),
        "nothing new to cover"
    );
}
