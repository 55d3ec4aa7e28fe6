import type { RawStoredEvent, Store } from '../store/store.js';

/**
 * The kept rows of `seqs` (ascending), unparsed; a pruned one is simply
 * absent. Seqs close together are read as one range, one far off gets a
 * read of its own: an erasure's seqs are one person's events, scattered
 * through the log.
 */
export async function keptRows(store: Store, seqs: readonly number[]): Promise<RawStoredEvent[]> {
  const wanted = new Set(seqs);
  const rows: RawStoredEvent[] = [];
  let i = 0;
  while (i < seqs.length) {
    const first = seqs[i] ?? 0;
    let j = i;
    while (j + 1 < seqs.length && (seqs[j + 1] ?? 0) - first < 4 * seqs.length) j++;
    const last = seqs[j] ?? first;
    // Count-based: with pruned gaps the range may reach past `last`; only wanted seqs are kept.
    for (const row of await store.readRangeRaw(first - 1, last - first + 1)) {
      if (wanted.has(row.seq)) rows.push(row);
    }
    i = j + 1;
  }
  return rows;
}
