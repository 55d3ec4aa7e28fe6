import type { StoredEvent } from '../event/event.js';
import type { PrunedLeaf } from '../store/retention-store.js';
import { loggedPrune } from './retention-ledger.js';

/**
 * One position of the log as verify reads it: a kept event, or the leaf a
 * pruned one left (seq, tenant, leaf hash, the run that pruned it).
 */
export type LogEntry = { kind: 'event'; event: StoredEvent } | { kind: 'pruned'; leaf: PrunedLeaf };

/** The `seq` an entry stands at. */
export function entrySeq(entry: LogEntry): number {
  return entry.kind === 'event' ? entry.event.seq : entry.leaf.seq;
}

/** A stream of events as a stream of entries (a copy of the log that holds no pruned leaves). */
export async function* eventEntries(
  events: AsyncIterable<StoredEvent> | Iterable<StoredEvent>,
): AsyncGenerator<LogEntry> {
  for await (const event of events) yield { kind: 'event', event };
}

/** A break in the `seq` sequence, named. */
export interface SeqBreak {
  seq: number;
  problem: 'inserted' | 'reordered' | 'deleted';
  message: string;
}

/**
 * Names a break in the `seq` sequence. A jump is a deletion unless the missing
 * `seq` turns up later, which makes it a reordering; finding out reads on
 * through the stream holding only the one number sought (and the furthest
 * logged prune run, to say when the gap may be pruning that this copy of the
 * log cannot show: `leaves` false).
 */
export async function classifySeq(
  seq: number,
  expected: number,
  rest: AsyncIterator<LogEntry>,
  leaves: boolean,
): Promise<SeqBreak> {
  const previous = expected - 1;
  if (seq === previous) {
    return { seq, problem: 'inserted', message: `seq ${seq} appears twice: an event was inserted` };
  }
  if (seq < previous) {
    return {
      seq,
      problem: 'reordered',
      message: `seq ${seq} appears after seq ${previous}: events were reordered`,
    };
  }
  let prunedThrough: { seq: number; runId: string } | undefined;
  for (let next = await rest.next(); !next.done; next = await rest.next()) {
    const entry = next.value;
    if (entrySeq(entry) === expected) {
      return {
        seq: expected,
        problem: 'reordered',
        message: `seq ${expected} appears after seq ${seq}: events were reordered`,
      };
    }
    const prune = entry.kind === 'event' ? loggedPrune(entry.event) : undefined;
    if (prune && prune.throughSeq >= expected && prune.throughSeq > (prunedThrough?.seq ?? 0)) {
      prunedThrough = { seq: prune.throughSeq, runId: prune.runId };
    }
  }
  const missing = seq - 1 === expected ? `seq ${expected} is` : `seqs ${expected}..${seq - 1} are`;
  if (prunedThrough === undefined) {
    return { seq: expected, problem: 'deleted', message: `${missing} missing: events were deleted` };
  }
  const logged = `the log records a prune run through seq ${prunedThrough.seq} (${prunedThrough.runId})`;
  return {
    seq: expected,
    problem: 'deleted',
    message: leaves
      ? `${missing} missing, neither kept nor left as pruned leaves: events were deleted (${logged}, but no pruned leaf stands for them)`
      : `${missing} missing, and ${logged}: this copy of the log (an export) holds no pruned leaves, so it cannot ` +
        'show that they were pruned rather than deleted, nor be checked against any checkpoint past them. ' +
        'Verify the data folder or the database instead (trailwarden verify --data-dir or --config)',
  };
}

/** An iterator over a sync or async source. */
export function iterate<T>(source: AsyncIterable<T> | Iterable<T>): AsyncIterator<T> {
  if (Symbol.asyncIterator in source) return source[Symbol.asyncIterator]();
  const it = source[Symbol.iterator]();
  return {
    next: async () => it.next(),
    return: async () => it.return?.() ?? { done: true, value: undefined },
  };
}
