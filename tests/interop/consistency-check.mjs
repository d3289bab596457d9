// An independent checker of personctl's consistency proofs (`personctl audit --out`), written
// from docs/FORMAT.md alone: the older signed checkpoint, and a file of "old SIZE", one base64
// hash per line, a blank line, the newer signed checkpoint; both notes signed by the log key;
// the proof checked with RFC 9162, 2.1.4.2, over SHA-256 with 0x01 node prefixes.
// Usage: node consistency-check.mjs OLD.note PROOF VKEY. Prints one JSON object; exit 0 when
// the newer tree extends the older one, 1 when it does not.
import fs from 'node:fs';
import { sha256 } from '@noble/hashes/sha2.js';
import { b64, bytes, fail, openNote, parseVkey, same } from './note.mjs';

const [oldPath, proofPath, vkey] = process.argv.slice(2);
const logKey = parseVkey(vkey, 0x01, 'the verifier key');

// Opens a signed note with the log key; returns [origin, size, root].
const open = (note) => {
  const [origin, size, root] = openNote(note, logKey).split('\n');
  return [origin, Number(size), b64(root)];
};

const [origin, first, firstRoot] = open(fs.readFileSync(oldPath, 'utf8'));
const body = fs.readFileSync(proofPath, 'utf8');
const blank = body.indexOf('\n\n');
const head = body.slice(0, blank).split('\n');
if (head[0] !== `old ${first}`) fail(`the proof starts from ${head[0]}, not old ${first}`);
const path = head.slice(1).map(b64);
const [newOrigin, second, secondRoot] = open(body.slice(blank + 2));
if (newOrigin !== origin) fail('checkpoints of two logs');
if (second < first) fail('the log shrank');

if (first === second) {
  if (path.length !== 0 || !same(firstRoot, secondRoot)) fail('equal sizes, other roots');
} else if (first > 0) {
  // RFC 9162, 2.1.4.2.
  const node = (l, r) => sha256(bytes([0x01], l, r));
  if (path.length === 0) fail('an empty proof');
  if ((first & (first - 1)) === 0) path.unshift(firstRoot);
  let fn = first - 1;
  let sn = second - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) fail('the proof is too long');
    if (fn % 2 === 1 || fn === sn) {
      fr = node(c, fr);
      sr = node(c, sr);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      sr = node(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0 || !same(fr, firstRoot) || !same(sr, secondRoot)) fail('the proof does not verify');
}
console.log(JSON.stringify({ ok: true, origin, from: first, to: second }));
