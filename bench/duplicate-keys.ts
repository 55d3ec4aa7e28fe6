/**
 * `node --import tsx bench/duplicate-keys.ts`: what the duplicate-key scanner
 * (src/event/duplicate-keys.ts) costs on ingest, beside JSON.parse of the
 * same text in the same run — the parse every body pays anyway. CPU time
 * (`process.cpuUsage`), the median of alternating rounds, so a busy
 * neighbour on the machine shifts both figures alike.
 *
 * Bodies: the core bench's own POST /v1/events bodies (bench/ingest.ts:
 * arrays of 100 events, and single events), the data set's stored-shape
 * events as NDJSON lines, and two heavy shapes a producer could send (every
 * event at the metadata key limit; one object of 50,000 keys, past the
 * scanner's linear scan).
 *
 * Last, what the scan adds to the whole CPU work of an ingested event
 * without storage (bench/cpu-floor.ts's steps: body decoding and parsing,
 * validation, JCS, content and leaf hashes, the stored row), on the core
 * bench bodies: the same work with and without it, in alternating rounds.
 */
import { findDuplicateKey } from '../src/event/duplicate-keys.js';
import { DEFAULT_EVENT_LIMITS } from '../src/event/limits.js';
import { validateEvent } from '../src/event/validate.js';
import { prepareEvent, sequencedRow } from '../src/store/stored-event.js';
import { DataSet } from './dataset.js';
import { ingestBodies } from './ingest.js';
import { fmt } from './stats.js';

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? '7');
const ROUND_MS = Number(process.env['BENCH_MS'] ?? '300');

interface Corpus {
  name: string;
  /** Texts as the server has them after UTF-8 decoding. */
  texts: string[];
  events: number;
  bytes: number;
}

function corpus(name: string, texts: string[], eventsPerText: number): Corpus {
  const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t), 0);
  return { name, texts, events: texts.length * eventsPerText, bytes };
}

const decode = (b: Buffer) => b.toString('utf8');
const data = new DataSet(6400, Date.now());
const metadataAtLimit = Array.from({ length: 10 }, (_, v) =>
  JSON.stringify(
    Array.from({ length: 10 }, (_, k) => ({
      action: 'user.updated',
      actor: { type: 'user', id: `usr_${v}_${k}` },
      metadata: Object.fromEntries(Array.from({ length: 256 }, (_, m) => [`attribute_${m}`, m])),
    })),
  ),
);
const corpora: Corpus[] = [
  corpus('core bench bodies, 100 events each', ingestBodies(100).map(decode), 100),
  corpus('core bench bodies, 1 event each', ingestBodies(1).map(decode), 1),
  corpus(
    'data set events, one NDJSON line each',
    Array.from({ length: 6400 }, (_, i) => JSON.stringify(data.event(i + 1))),
    1,
  ),
  corpus('10 events with 256 metadata keys each', metadataAtLimit, 10),
  corpus(
    'one object of 50,000 keys',
    [JSON.stringify(Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`k${i}`, i])))],
    1,
  ),
];

/** CPU µs per pass over the corpus, measured over about ROUND_MS. */
function cpuPerPass<T>(items: readonly T[], work: (item: T) => unknown): number {
  let passes = 0;
  const start = process.cpuUsage();
  const wallStart = performance.now();
  do {
    for (const item of items) work(item);
    passes++;
  } while (performance.now() - wallStart < ROUND_MS);
  const used = process.cpuUsage(start);
  return (used.user + used.system) / passes;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

let sink = 0;
const parse = (t: string) => {
  sink += JSON.parse(t) === null ? 1 : 0;
};
const scan = (t: string) => {
  if (findDuplicateKey(t) !== undefined) throw new Error('the bench bodies have no duplicate keys');
};

console.log(`duplicate-key scanner vs JSON.parse, CPU time, median of ${ROUNDS} rounds of ~${ROUND_MS} ms`);
console.log(`node ${process.version}`);
for (const c of corpora) {
  // Warm both up so neither is measured while the JIT still compiles it.
  cpuPerPass(c.texts, parse);
  cpuPerPass(c.texts, scan);
  const parseUs: number[] = [];
  const scanUs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    // Alternate which goes first, so drift in the machine's speed hits both.
    if (r % 2 === 0) {
      parseUs.push(cpuPerPass(c.texts, parse));
      scanUs.push(cpuPerPass(c.texts, scan));
    } else {
      scanUs.push(cpuPerPass(c.texts, scan));
      parseUs.push(cpuPerPass(c.texts, parse));
    }
  }
  const p = median(parseUs);
  const s = median(scanUs);
  const mbps = (us: number) => c.bytes / us; // bytes per µs = MB/s
  console.log(`\n${c.name}: ${c.texts.length} texts, ${fmt(c.bytes / c.events)} bytes per event`);
  console.log(
    `  JSON.parse  ${fmt(p / c.events, 3)} µs/event  ${fmt(mbps(p))} MB/s   (rounds: ${parseUs.map((x) => fmt(x / c.events, 3)).join(' ')})`,
  );
  console.log(
    `  scanner     ${fmt(s / c.events, 3)} µs/event  ${fmt(mbps(s))} MB/s   (rounds: ${scanUs.map((x) => fmt(x / c.events, 3)).join(' ')})`,
  );
  console.log(`  scanner / JSON.parse = ${fmt(s / p, 2)}`);
}

// The ingest work of bench/cpu-floor.ts without the INSERT, its body step
// written out (decode, JSON.parse) so the two variants differ in the scan alone.
const bodies = ingestBodies(100);
const now = new Date();
const receivedAt = now.toISOString();
let seq = 0;
const ingestWork = (withScan: boolean) => (body: Buffer) => {
  const text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  const raws = JSON.parse(text) as unknown[];
  if (withScan) scan(text);
  for (const raw of raws) {
    const v = validateEvent(raw, {
      limits: DEFAULT_EVENT_LIMITS,
      now,
      tenantId: 'default',
      strictActions: false,
    });
    if (!v.ok) throw new Error(`bench event refused: ${JSON.stringify(v.problems)}`);
    const p = prepareEvent(v.event, v.canonical);
    sink += sequencedRow(p.event, ++seq, receivedAt, p.canonical).body.length;
  }
};
const variants: Array<[name: string, work: (body: Buffer) => void]> = [
  ['without the scan', ingestWork(false)],
  ['with the scan', ingestWork(true)],
];
for (const [, work] of variants) cpuPerPass(bodies, work);
const ingestUs = new Map<string, number[]>(variants.map(([name]) => [name, []]));
const INGEST_ROUNDS = 3 * ROUNDS;
for (let r = 0; r < INGEST_ROUNDS; r++) {
  for (const [name, work] of r % 2 === 0 ? variants : [...variants].reverse()) {
    ingestUs.get(name)?.push(cpuPerPass(bodies, work) / (bodies.length * 100));
  }
}
const without = ingestUs.get('without the scan') ?? [];
const withScan = ingestUs.get('with the scan') ?? [];
const added = median(withScan.map((w, r) => w - (without[r] ?? Number.NaN)));
console.log(
  `\ningest work without storage (cpu-floor's steps), core bench bodies, median of ${INGEST_ROUNDS} alternating rounds:`,
);
console.log(
  `  without the scan ${fmt(median(without), 2)} µs/event, with it ${fmt(median(withScan), 2)} µs/event`,
);
console.log(
  `  the scan adds ${fmt(added, 2)} µs/event (median of the paired rounds' differences) = ${fmt((100 * added) / median(without), 1)} %`,
);
if (sink < 0) console.log(sink);
