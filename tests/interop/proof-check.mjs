// An independent checker of personctl's proof bundles, written from docs/FORMAT.md ("The log,
// checkpoints and proof bundles", "What is signed") alone: C2SP verifier keys and signed notes,
// the checkpoint text, the event's CID (CIDv1, dag-cbor, BLAKE3-256), its signature, the
// RFC 9162 inclusion proof, and the payload's CID. Node's own Ed25519, @noble/hashes for
// SHA-256 and BLAKE3, @ipld/dag-cbor to read the event's links.
// Usage: node proof-check.mjs BUNDLE.json VKEY [WITNESS_VKEY...]. With witness keys, every one
// of them must have cosigned the checkpoint (C2SP tlog-cosignature, cosignature/v1). Prints
// one JSON object; exit 0 when it verifies, 1 when it does not.
import fs from 'node:fs';
import crypto from 'node:crypto';
import * as dagCbor from '@ipld/dag-cbor';
import { blake3 } from '@noble/hashes/blake3.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { b64, bytes, ed25519, fail, openNote, parseVkey, same, signatures } from './note.mjs';
import { CID } from 'multiformats/cid';
import * as Digest from 'multiformats/hashes/digest';

const [bundlePath, vkey, ...witnessKeys] = process.argv.slice(2);
const bundle = JSON.parse(fs.readFileSync(bundlePath, 'utf8'));

// The verifier key, and the checkpoint as a signed note.
const logKey = parseVkey(vkey, 0x01, 'the verifier key');
const note = bundle.checkpoint;
const text = openNote(note, logKey);
const [origin, sizeText, rootB64] = text.split('\n');
const size = Number(sizeText);
const root = b64(rootB64);

// The event: its CID from its bytes, its signature over "personctl-ledger-event-v1" 0x00 0xad REST.
const event = b64(bundle.event);
const cid = CID.createV1(0x71, Digest.create(0x1e, blake3(event)));
const header = bytes([0xae, 0x63], Buffer.from('sig'), [0x58, 0x40]);
if (!same(event.subarray(0, 7), header)) fail('the event block does not start with its signature');
const value = dagCbor.decode(event);
const message = bytes(Buffer.from('personctl-ledger-event-v1'), [0x00, 0xad], event.subarray(71));
if (!crypto.verify(null, message, ed25519(value.author), event.subarray(7, 71))) {
  fail(`event ${cid}: its signature does not verify`);
}

// RFC 9162, 2.1.3.2: the inclusion proof of leaf SHA-256(0x00 || CID) at index under root.
const leaf = sha256(bytes([0x00], cid.bytes));
let fn = bundle.index;
let sn = size - 1;
let r = leaf;
if (!(fn < size)) fail('the index is outside the tree');
for (const p of bundle.proof.map(b64)) {
  if (sn === 0) fail('the proof is too long');
  if (fn % 2 === 1 || fn === sn) {
    r = sha256(bytes([0x01], p, r));
    while (fn % 2 === 0 && fn !== 0) {
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
  } else {
    r = sha256(bytes([0x01], r, p));
  }
  fn = Math.floor(fn / 2);
  sn = Math.floor(sn / 2);
}
if (sn !== 0 || !same(r, root)) fail(`event ${cid} is not leaf ${bundle.index} under the checkpoint`);

// The payload, when given, is the one the event links.
if (bundle.payload !== null) {
  const payload = CID.createV1(0x71, Digest.create(0x1e, blake3(b64(bundle.payload))));
  if (!value.payload || !payload.equals(value.payload)) fail('the payload is not the one the event links');
}
// Cosignatures: "— NAME BASE64(KEYID || TIME || SIG)", KEYID over 0x04, SIG over
// "cosignature/v1\ntime TIME\n" and the checkpoint text.
const cosigned = [];
for (const wkey of witnessKeys) {
  const witness = parseVkey(wkey, 0x04, 'a witness key');
  const [wname, wpub] = [witness.name, witness.pub];
  const lines = signatures(note, witness);
  if (lines.length === 0) fail(`no cosignature by ${wname}`);
  for (const sig of lines) {
    if (sig.length !== 76) fail(`the cosignature of ${wname} is not 76 bytes`);
    const time = sig.readBigUInt64BE(4);
    const signedText = Buffer.from(`cosignature/v1\ntime ${time}\n${text}`);
    if (!crypto.verify(null, signedText, ed25519(wpub), sig.subarray(12))) {
      fail(`the cosignature of ${wname} does not verify`);
    }
  }
  cosigned.push(wname);
}
console.log(JSON.stringify({ ok: true, cid: String(cid), origin, size, index: bundle.index, cosigned }));
