// Verifier keys and signed notes (C2SP signed-note and tlog-cosignature, as docs/FORMAT.md
// states them), for the independent checkers in this directory.
import crypto from 'node:crypto';
import { sha256 } from '@noble/hashes/sha2.js';

/** Prints a negative verdict and exits 1. */
export const fail = (reason) => {
  console.log(JSON.stringify({ ok: false, reason }));
  process.exit(1);
};
export const bytes = (...parts) => Buffer.concat(parts.map((p) => Buffer.from(p)));
export const b64 = (s) => Buffer.from(s, 'base64');
export const same = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
export const ed25519 = (raw) =>
  crypto.createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') },
    format: 'jwk',
  });

/** A verifier key NAME+HEX(KEYID)+BASE64(TYPE || PUBLIC KEY) of signature type `type`. */
export const parseVkey = (vkey, type, what) => {
  const first = vkey.indexOf('+');
  const second = vkey.indexOf('+', first + 1);
  const [name, idHex, keyB64] = [vkey.slice(0, first), vkey.slice(first + 1, second), vkey.slice(second + 1)];
  const key = b64(keyB64);
  if (key.length !== 33 || key[0] !== type) fail(`${what} is not of type 0x0${type}`);
  const pub = key.subarray(1);
  const keyId = Buffer.from(sha256(bytes(Buffer.from(name), [0x0a, type], pub))).subarray(0, 4);
  if (keyId.toString('hex') !== idHex.toLowerCase()) fail(`${what}: the key ID does not match`);
  return { name, keyId, pub };
};

/** The signature payloads on `note` by the key `name` / `keyId` (base64-decoded). */
export const signatures = (note, { name, keyId }) => {
  const cut = note.lastIndexOf('\n\n');
  if (cut < 0) fail('not a signed note');
  return note
    .slice(cut + 2)
    .split('\n')
    .filter((l) => l.startsWith(`\u2014 ${name} `))
    .map((l) => b64(l.slice(name.length + 3)))
    .filter((sig) => same(sig.subarray(0, 4), keyId));
};

/** Opens a signed note with a log key (type 0x01): its text, which every signature by that key
 * signs (at least one). */
export const openNote = (note, key) => {
  const text = note.slice(0, note.lastIndexOf('\n\n') + 1);
  const sigs = signatures(note, key);
  if (sigs.length === 0) fail('no signature by the log key');
  for (const sig of sigs) {
    if (sig.length !== 68 || !crypto.verify(null, Buffer.from(text), ed25519(key.pub), sig.subarray(4))) {
      fail('a signature by the log key does not verify');
    }
  }
  return text;
};
