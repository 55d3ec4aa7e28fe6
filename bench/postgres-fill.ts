import { performance } from 'node:perf_hooks';
import { PostgresStore } from '../src/store/postgres/postgres-store.js';
import type { PreparedEvent } from '../src/store/store.js';
import { prepareEvent } from '../src/store/stored-event.js';
import { DAY_MS, DataSet } from './dataset.js';

/** Events per `PostgresStore.append` call of the fill. */
export const FILL_BATCH = 10_000;

/** Timestamps of the stored events span 60 days, so a monthly partitioning has three partitions. */
export const FILL_SPAN_MS = 60 * DAY_MS;

/**
 * Fills the database at `url` with `count` events of the bench's data set
 * through `PostgresStore.append`, keeping one append in flight while the next
 * batch is generated. Returns the data set (to build queries) and events/s.
 */
export async function fillPostgres(
  url: string,
  count: number,
  onProgress: (done: number) => void,
): Promise<{ data: DataSet; eventsPerSecond: number }> {
  const data = new DataSet(count, Date.now() - 60_000, FILL_SPAN_MS);
  const store = await PostgresStore.open(url, { poolSize: 2 });
  const start = performance.now();
  try {
    let pending: Promise<unknown> = Promise.resolve();
    for (let i = 1; i <= count; ) {
      const batch: PreparedEvent[] = [];
      for (const end = Math.min(count, i + FILL_BATCH - 1); i <= end; i++) {
        const event = data.event(i);
        batch.push(prepareEvent(event));
      }
      await pending;
      const done = i - 1;
      pending = store.append(batch).then(() => onProgress(done));
    }
    await pending;
  } finally {
    await store.close();
  }
  return { data, eventsPerSecond: (count * 1000) / (performance.now() - start) };
}
