// Reads a CAR file with @ipld/car (the IPLD project's reference JavaScript implementation),
// re-derives every block's CID (CIDv1, dag-cbor, BLAKE3-256) and decodes every block as strict
// DAG-CBOR with @ipld/dag-cbor. Prints one JSON object: the roots, the CIDs in file order, and
// the kind of each block ("event" or "payload"). Exits 1 on any mismatch.
import fs from 'node:fs';
import { CarReader } from '@ipld/car';
import * as dagCbor from '@ipld/dag-cbor';
import { blake3 } from '@noble/hashes/blake3.js';
import { CID } from 'multiformats/cid';
import * as Digest from 'multiformats/hashes/digest';

const reader = await CarReader.fromBytes(fs.readFileSync(process.argv[2]));
const roots = (await reader.getRoots()).map(String);
const blocks = [];
const errors = [];
for await (const { cid, bytes } of reader.blocks()) {
  const again = CID.createV1(0x71, Digest.create(0x1e, blake3(bytes)));
  if (!again.equals(cid)) errors.push(`${cid}: bytes hash to ${again}`);
  let value;
  try {
    value = dagCbor.decode(bytes);
  } catch (e) {
    errors.push(`${cid}: not DAG-CBOR: ${e.message}`);
    continue;
  }
  const kind = 'sig' in value ? 'event' : 'salt' in value ? 'payload' : 'unknown';
  blocks.push({ cid: String(cid), kind });
}
console.log(JSON.stringify({ roots, blocks, errors }));
process.exit(errors.length === 0 ? 0 : 1);
