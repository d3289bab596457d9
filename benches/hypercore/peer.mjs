// Hypercore 11 peer: appends N entries of SIZE bytes, batched (BATCH per append call) and one
// per call, to a fresh on-disk core; prints one JSON line per stage.
import Hypercore from 'hypercore'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const args = Object.fromEntries(process.argv.slice(2).map((a, i, all) => a.startsWith('--') ? [a.slice(2), all[i + 1]] : null).filter(Boolean))
const events = Number(args.events ?? 100000)
const size = Number(args.size ?? 221)
const batch = Number(args.batch ?? 1000)
const single = Number(args.single ?? Math.min(events, 20000))

async function stage (name, n, run) {
  const dir = mkdtempSync(join(tmpdir(), 'hypercore-peer-'))
  const core = new Hypercore(dir)
  await core.ready()
  const entry = Buffer.alloc(size, 7)
  const started = process.hrtime.bigint()
  await run(core, entry)
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  await core.close()
  rmSync(dir, { recursive: true, force: true })
  console.log(JSON.stringify({ stage: name, events: n, seconds, size }))
}

await stage('hypercore append, batched', events, async (core, entry) => {
  for (let i = 0; i < events; i += batch) {
    const n = Math.min(batch, events - i)
    await core.append(Array.from({ length: n }, () => entry))
  }
})
await stage('hypercore append, 1 entry per call', single, async (core, entry) => {
  for (let i = 0; i < single; i++) await core.append(entry)
})
