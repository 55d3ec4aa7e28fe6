import { leafHashOf } from '../event/canonical.js';
import type { StoredEvent } from '../event/event.js';
import type { PrunedLeaf } from '../store/retention-store.js';
import type { CheckpointRecord, Store } from '../store/store.js';
import type { LogEntry } from './log-entries.js';
import { redactionOf } from './retention-ledger.js';

const PAGE = 1000;

/** The reads `logEntries` merges: a store's, or a test's. */
export interface LogReader {
  /** The next `limit` kept events after `afterSeq`, ascending (count-based: pruned seqs leave gaps). */
  readKept(afterSeq: number, limit: number): Promise<StoredEvent[]>;
  /** Pruned leaves with `seq` in (`afterSeq`, `afterSeq + limit`], ascending. */
  readPruned(afterSeq: number, limit: number): Promise<PrunedLeaf[]>;
  /** The highest pruned seq (0 when none). */
  prunedMaxSeq(): Promise<number>;
}

/**
 * Every position of the log, kept events and pruned leaves merged in `seq`
 * order, a page at a time. Each page of kept events is read before the
 * pruned leaves of its seq range: the pruner only ever moves a row from
 * kept to pruned, so a seq pruned while verify reads a live folder is seen
 * at least once, never lost between the two reads. Seen twice (kept, then
 * pruned), the kept copy is dropped when its content still hashes to the
 * pruned leaf; any other seq held twice is left for verify to report.
 */
export async function* logEntries(reader: LogReader, page = PAGE): AsyncGenerator<LogEntry> {
  let after = 0;
  for (;;) {
    const kept = await reader.readKept(after, page);
    const full = kept.length === page;
    const last = kept.at(-1)?.seq ?? after;
    // After the last kept event: leaves past it, if any (read after the events, as above).
    const end = full ? last : Math.max(last, await reader.prunedMaxSeq());
    let i = 0;
    for (let from = after; from < end; from += page) {
      for (const leaf of await reader.readPruned(from, Math.min(page, end - from))) {
        for (let e = kept[i]; e !== undefined && e.seq < leaf.seq; e = kept[i]) {
          yield { kind: 'event', event: e };
          i += 1;
        }
        const twin = kept[i];
        if (twin?.seq === leaf.seq && isPrunedCopy(twin, leaf)) i += 1;
        yield { kind: 'pruned', leaf };
      }
    }
    for (; i < kept.length; i += 1) yield { kind: 'event', event: kept[i]! };
    if (!full) return;
    after = end;
  }
}

/** A kept row that is, unredacted, exactly the event the pruned leaf stands for. */
function isPrunedCopy(event: StoredEvent, leaf: PrunedLeaf): boolean {
  if (redactionOf(event) !== undefined) return false;
  try {
    return leafHashOf(event).equals(leaf.leafHash);
  } catch {
    return false;
  }
}

/** Every position of a store's log, kept or pruned, in `seq` order, for `verifyLog`'s `entries`. */
export function storeEntries(store: Store): AsyncGenerator<LogEntry> {
  return logEntries({
    readKept: (afterSeq, limit) => store.readRange(afterSeq, limit),
    readPruned: (afterSeq, limit) => store.retention.prunedLeaves(afterSeq, limit),
    prunedMaxSeq: async () => (await store.retention.prunedTotals()).maxSeq,
  });
}

/** Every event of a store in `seq` order, a page at a time, for `verifyLog`. */
export async function* storeEvents(store: Store): AsyncGenerator<StoredEvent> {
  let after = 0;
  for (;;) {
    const page = await store.readRange(after, PAGE);
    yield* page;
    if (page.length < PAGE) return;
    after = page.at(-1)!.seq;
  }
}

/** Every checkpoint a store keeps, ascending by tree size. */
export async function storeCheckpoints(store: Store): Promise<CheckpointRecord[]> {
  const all: CheckpointRecord[] = [];
  for (;;) {
    const page = await store.listCheckpoints({ fromSize: (all.at(-1)?.treeSize ?? -1) + 1, limit: PAGE });
    all.push(...page);
    if (page.length < PAGE) return all;
  }
}
