/**
 * `node --import tsx bench/line-separators.ts`: what escaping U+0085, U+2028
 * and U+2029 (src/event/line-safe-json.ts) costs a sink that sends the
 * stored JSON as it is (`StoredJsonEvent`), per event, on the data set's
 * stored bodies: the three `includes` that clean text stops at, beside a
 * regex test of the same text and, as the scale, JSON.stringify of the
 * event (what the json format pays per event when shaped). CPU time, median
 * of rounds.
 */
import { escapeLineSeparators } from '../src/event/line-safe-json.js';
import { sequencedRow } from '../src/store/stored-event.js';
import { DataSet } from './dataset.js';
import { fmt } from './stats.js';

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? '7');
const data = new DataSet(2000, Date.now());
const receivedAt = new Date().toISOString();
const clean = Array.from({ length: 2000 }, (_, i) => sequencedRow(data.event(i + 1), i + 1, receivedAt).body);
// One event in ten carries a separator in a value, far more than real traffic.
const dirty = clean.map((b, i) => (i % 10 === 0 ? b.replace('"user ', '"user\u2028') : b));
const events = clean.map((b) => JSON.parse(b) as unknown);
const SEPARATOR = /[\u0085\u2028\u2029]/;

let sink = 0;
/** Runs `work` on each item, adding what it returns so the JIT cannot drop it. */
const each =
  <T>(items: readonly T[], work: (item: T) => number) =>
  () => {
    for (const item of items) sink += work(item);
  };
const cases: Array<[string, () => void]> = [
  ['escapeLineSeparators, clean bodies', each(clean, (b) => escapeLineSeparators(b).length)],
  ['escapeLineSeparators, 1 in 10 with U+2028', each(dirty, (b) => escapeLineSeparators(b).length)],
  ['regex test, clean bodies', each(clean, (b) => (SEPARATOR.test(b) ? 1 : 0))],
  ['JSON.stringify of the event', each(events, (e) => JSON.stringify(e).length)],
];

const perEvent = new Map<string, number[]>(cases.map(([name]) => [name, []]));
for (let r = 0; r < ROUNDS + 2; r++) {
  for (const [name, run] of cases) {
    const start = process.cpuUsage();
    for (let k = 0; k < 50; k++) run();
    const used = process.cpuUsage(start);
    // The first two rounds warm the JIT up.
    if (r >= 2) perEvent.get(name)?.push(((used.user + used.system) * 1000) / (50 * clean.length));
  }
}
const avgChars = clean.reduce((n, b) => n + b.length, 0) / clean.length;
console.log(
  `line-separator escaping, CPU ns per event (stored bodies of ${fmt(avgChars)} chars), median of ${ROUNDS} rounds`,
);
for (const [name, xs] of perEvent) {
  const sorted = [...xs].sort((a, b) => a - b);
  console.log(`  ${name.padEnd(44)} ${fmt(sorted[Math.floor(sorted.length / 2)]!)} ns`);
}
if (sink < 0) console.log(sink);
