//! `docs/FORMAT.md` cannot drift from the code: its annotated hex dumps are made here from the
//! golden vectors (`fixtures/golden/ledger-v1.json`, which `golden.rs` checks against the code)
//! and compared with the document's generated section, byte for byte.
//!
//! The annotations come from `cbor-diag` (the same annotated-hex form as RFC 8949's examples).
//! `PERSONCTL_BLESS=1` rewrites the section and then fails on purpose, as `golden.rs` does.

use personctl_ledger::{Block, Cid, Event, SIGNING_PREFIX};

use crate::fixtures;

const BEGIN: &str = "<!-- BEGIN generated vectors: ledger/tests/it/format_doc.rs writes this section from fixtures/golden/ledger-v1.json; do not edit by hand -->";
const END: &str = "<!-- END generated vectors -->";

/// The blocks the document shows, by their names in the golden file.
const SHOWN: [&str; 2] = [
    "payload of person/golden-1 at 0",
    "person/golden-1 at 0 (genesis, PersonRegistered)",
];

fn annotated(bytes: &[u8]) -> String {
    cbor_diag::parse_bytes(bytes)
        .unwrap_or_else(|e| panic!("not CBOR: {e}"))
        .to_hex()
}

fn cid_breakdown(cid: &Cid) -> String {
    let b = cid.to_bytes();
    format!(
        "01  # CID version 1\n71  # codec: dag-cbor (0x71)\n1e  # multihash: BLAKE3 (0x1e)\n20  # digest length: 32\n{}  # BLAKE3 of the block's bytes\n",
        hex::encode(&b[4..])
    )
}

/// The generated section.
fn section() -> String {
    let text = std::fs::read_to_string(fixtures().join("golden/ledger-v1.json")).unwrap();
    let golden: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = String::new();
    out.push_str(BEGIN);
    out.push('\n');
    out.push_str(&format!(
        "\nThe fixture key (seed bytes `0x01` to `0x20`) is `{}`.\n",
        golden["author"].as_str().unwrap()
    ));
    for name in SHOWN {
        let g = golden["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .unwrap_or_else(|| panic!("no golden block {name:?}"));
        let bytes = hex::decode(g["hex"].as_str().unwrap()).unwrap();
        let cid: Cid = g["cid"].as_str().unwrap().parse().unwrap();
        let block = Block::verified(cid, bytes.clone()).expect("the golden CID re-derives");
        let kind = if g.get("signed_hex").is_some() {
            "Event block"
        } else {
            "Payload block"
        };
        out.push_str(&format!(
            "\n### {kind}: {name}\n\n{} bytes; CID `{cid}`, in binary:\n\n```text\n{}```\n\n```text\n{}```\n",
            bytes.len(),
            cid_breakdown(&cid),
            annotated(&bytes)
        ));
        if let Some(signed) = g["signed_hex"].as_str() {
            let signed = hex::decode(signed).unwrap();
            let event = Event::decode(&block).unwrap();
            assert!(signed.starts_with(SIGNING_PREFIX));
            let (prefix, map) = signed.split_at(SIGNING_PREFIX.len());
            out.push_str(&format!(
                "\nThe bytes signed ({} bytes): the domain prefix, then the same map without `sig`:\n\n```text\n{}  # \"personctl-ledger-event-v1\" 0x00\n{}```\n\nThe signature (the `sig` value above) is `{}`, by the public key `{}` (the `author` value).\n",
                signed.len(),
                hex::encode(prefix),
                annotated(map),
                g["signature"].as_str().unwrap(),
                hex::encode(event.author().to_bytes()),
            ));
        }
    }
    out.push('\n');
    out.push_str(END);
    out
}

#[test]
fn format_md_shows_the_golden_blocks_exactly() {
    let path = fixtures().join("../docs/FORMAT.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (start, end) = match (doc.find(BEGIN), doc.find(END)) {
        (Some(s), Some(e)) if s < e => (s, e + END.len()),
        _ => panic!("{} has no generated vectors section", path.display()),
    };
    let generated = section();
    if std::env::var_os("PERSONCTL_BLESS").is_some() {
        let updated = format!("{}{generated}{}", &doc[..start], &doc[end..]);
        std::fs::write(&path, updated).unwrap();
        panic!(
            "wrote the vectors section of {}; re-run without PERSONCTL_BLESS",
            path.display()
        );
    }
    assert_eq!(
        &doc[start..end],
        generated,
        "docs/FORMAT.md's vectors differ from fixtures/golden/ledger-v1.json: regenerate with PERSONCTL_BLESS=1 (and say why in the commit)"
    );
}

#[test]
fn the_documented_dumps_parse_back_to_the_golden_bytes() {
    // Independently of the comparison above: every dump in the section, read as annotated hex
    // (comments dropped), is a golden block, signed message or CID.
    let text = std::fs::read_to_string(fixtures().join("golden/ledger-v1.json")).unwrap();
    let golden: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut known: Vec<Vec<u8>> = Vec::new();
    for g in golden["blocks"].as_array().unwrap() {
        known.push(hex::decode(g["hex"].as_str().unwrap()).unwrap());
        let cid: Cid = g["cid"].as_str().unwrap().parse().unwrap();
        known.push(cid.to_bytes().to_vec());
        if let Some(s) = g["signed_hex"].as_str() {
            known.push(hex::decode(s).unwrap());
        }
    }
    let doc = std::fs::read_to_string(fixtures().join("../docs/FORMAT.md")).unwrap();
    let section = &doc[doc.find(BEGIN).unwrap()..doc.find(END).unwrap()];
    let mut dumps = 0;
    for (i, chunk) in section.split("```text\n").enumerate().skip(1) {
        let body = chunk.split("```").next().unwrap();
        let hex: String = body
            .lines()
            .map(|l| l.split('#').next().unwrap())
            .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
            .collect();
        let bytes = hex::decode(&hex).unwrap_or_else(|e| panic!("dump {i}: {e}"));
        assert!(known.contains(&bytes), "dump {i} is no golden value");
        dumps += 1;
    }
    assert_eq!(dumps, 5, "two CIDs, two blocks, one signed message");
}
