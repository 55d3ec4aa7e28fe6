/**
 * `node --import tsx --import ./bench/past-clock.mjs bench/fill-in-past.ts DIR N`
 * (after `npm run build`): fills DIR with N events through `Store.append`,
 * received as far in the past as BENCH_CLOCK_OFFSET_MS says (past-clock.mjs).
 * The store comes from the build: its SQLite writer thread then starts from
 * a file and inherits the preloaded clock (a thread started from the
 * TypeScript sources is an eval'd bootstrap, which does not). Prints events/s.
 */
import { performance } from 'node:perf_hooks';
import { DataSet } from './dataset.js';

type OpenStore = typeof import('../src/store/open-store.js').openStore;
type PrepareEvent = typeof import('../src/store/stored-event.js').prepareEvent;

const [dir, countArg] = process.argv.slice(2);
const count = Number(countArg);
if (dir === undefined || !(count > 0)) throw new Error('usage: fill-in-past.ts DIR COUNT');
const built = new URL('../dist/', import.meta.url);
const { openStore } = (await import(new URL('store/open-store.js', built).href)) as { openStore: OpenStore };
const { prepareEvent } = (await import(new URL('store/stored-event.js', built).href)) as {
  prepareEvent: PrepareEvent;
};

const data = new DataSet(count, Date.now() - 60_000);
const store = await openStore({ store: 'sqlite', dataDir: dir });
const start = performance.now();
try {
  for (let i = 1; i <= count; ) {
    const batch = [];
    for (const end = Math.min(count, i + 4_999); i <= end; i++) batch.push(prepareEvent(data.event(i)));
    await store.append(batch);
  }
} finally {
  await store.close();
}
process.stdout.write(`${Math.round((count * 1000) / (performance.now() - start))}\n`);
