/**
 * `npm run build && node --import tsx bench/verify-archive.ts`: time and
 * peak RSS of `trailwarden verify --archive` (the built CLI) on a synthetic
 * archive of BENCH_ARCHIVE_EVENTS events (default 1,000,000) in the layout of
 * the archive sinks: the data set's events (several tenants), one gzip object
 * per tenant per delivery batch of 1,000, a signed note every 10,000 events.
 * The goal is memory bounded by the open objects, not by the archive.
 */
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { escapeLineSeparators } from '../src/event/line-safe-json.js';
import { signCheckpoint, verifierKeyString } from '../src/log/checkpoint.js';
import { rawPublicKey } from '../src/log/signing-key.js';
import { MerkleFrontier } from '../src/store/merkle/frontier.js';
import { sequencedRow } from '../src/store/stored-event.js';
import { DataSet } from './dataset.js';

const EVENTS = Number(process.env['BENCH_ARCHIVE_EVENTS'] ?? '1000000');
const BATCH = 1000;
const NOTE_EVERY = 10_000;
/** When set, the verifying process gets this V8 heap limit (MB): it must still finish. */
const HEAP_MB = process.env['BENCH_VERIFY_HEAP_MB'];
const ORIGIN = 'bench.trailwarden/log';
const pad = (n: number) => String(n).padStart(16, '0');

/** When set, the archive is written there and kept (for profiling). */
const KEEP = process.env['BENCH_ARCHIVE_DIR'];
const dir = KEEP ?? mkdtempSync(join(tmpdir(), 'tw-bench-archive-'));
try {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const signer = { name: ORIGIN, privateKey, publicKeyRaw: rawPublicKey(publicKey) };
  const data = new DataSet(EVENTS, Date.now());
  const frontier = new MerkleFrontier();
  const start = Date.parse('2026-03-15T00:00:00.000Z');
  let objects = 0;
  let bytes = 0;
  mkdirSync(join(dir, 'trailwarden/_checkpoints'), { recursive: true });
  for (let first = 1; first <= EVENTS; first += BATCH) {
    const groups = new Map<string, { seqs: number[]; lines: string[] }>();
    for (let seq = first; seq < first + BATCH && seq <= EVENTS; seq += 1) {
      // One event a second keeps an hour partition to 3,600 events.
      const receivedAt = new Date(start + seq * 1000).toISOString();
      const row = sequencedRow(data.event(seq - 1), seq, receivedAt);
      frontier.append(row.leaf);
      const key = `tenant=${row.tenantId}/dt=${receivedAt.slice(0, 10)}/hour=${receivedAt.slice(11, 13)}`;
      const group = groups.get(key) ?? { seqs: [], lines: [] };
      group.seqs.push(seq);
      group.lines.push(`${escapeLineSeparators(row.body)}\n`);
      groups.set(key, group);
      if (seq % NOTE_EVERY === 0 || seq === EVENTS) {
        const note = signCheckpoint({ origin: ORIGIN, treeSize: seq, rootHash: frontier.root() }, signer);
        writeFileSync(join(dir, `trailwarden/_checkpoints/${pad(seq)}.note`), note);
      }
    }
    for (const [key, group] of groups) {
      const folder = join(dir, 'trailwarden', key);
      mkdirSync(folder, { recursive: true });
      const body = gzipSync(group.lines.join(''));
      bytes += body.length;
      objects += 1;
      writeFileSync(join(folder, `${pad(group.seqs[0]!)}-${pad(group.seqs.at(-1)!)}.jsonl.gz`), body);
    }
  }
  const vkey = verifierKeyString(signer.name, signer.publicKeyRaw);
  if (KEEP !== undefined) console.log(`archive kept in ${dir}, verifier key ${vkey}`);
  const bin = new URL('../bin/trailwarden.js', import.meta.url).pathname;
  const heap = HEAP_MB === undefined ? [] : [`--max-old-space-size=${HEAP_MB}`];
  const argv = [...heap, bin, 'verify', '--archive', dir, '--vkey', vkey];
  const run = spawnSync('/usr/bin/time', ['-f', '%M %e', process.execPath, ...argv], { encoding: 'utf8' });
  const [rssKb = 'NaN', seconds = 'NaN'] = run.stderr.trim().split('\n').at(-1)!.split(' ');
  process.stdout.write(run.stdout);
  console.log(
    `verify --archive: ${EVENTS} events in ${objects} gzip objects (${(bytes / 1e6).toFixed(1)} MB): ` +
      `exit ${run.status}, ${Number(seconds).toFixed(1)} s (${Math.round(EVENTS / Number(seconds))} events/s), ` +
      `peak RSS ${(Number(rssKb) / 1024).toFixed(0)} MB${HEAP_MB === undefined ? '' : ` (heap limit ${HEAP_MB} MB)`}`,
  );
} finally {
  if (KEEP === undefined) rmSync(dir, { recursive: true, force: true });
}
