import { performance } from 'node:perf_hooks';
import { openStore } from '../src/store/open-store.js';
import type { PreparedEvent } from '../src/store/store.js';
import { prepareEvent } from '../src/store/stored-event.js';
import { DataSet } from './dataset.js';

const FILL_BATCH = 5000;

/**
 * Fills a fresh data folder with `count` events through the Store API
 * (`append` in batches of `FILL_BATCH`), skipping HTTP and validation.
 * Returns the data set (to name stored events later) and events/s.
 */
export async function fillStore(
  dataDir: string,
  count: number,
  onProgress: (done: number) => void,
): Promise<{ data: DataSet; eventsPerSecond: number }> {
  const data = new DataSet(count, Date.now() - 60_000);
  const store = await openStore({ store: 'sqlite', dataDir });
  const start = performance.now();
  try {
    for (let i = 1; i <= count; ) {
      const batch: PreparedEvent[] = [];
      for (const end = Math.min(count, i + FILL_BATCH - 1); i <= end; i++) {
        const event = data.event(i);
        batch.push(prepareEvent(event));
      }
      await store.append(batch);
      onProgress(i - 1);
    }
  } finally {
    await store.close();
  }
  return { data, eventsPerSecond: (count * 1000) / (performance.now() - start) };
}
