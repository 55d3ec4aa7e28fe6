/**
 * How a sequencing group's transaction opens and closes: its ticket (the
 * advisory lock that chains the groups in flight), BEGIN with the reads a
 * group starts from, and the fenced COMMIT. `postgres-writer.ts` runs the
 * group between them.
 */
import { randomInt } from 'node:crypto';
import pg, { type PoolClient, type QueryResult } from 'pg';
import type { PendingBatch } from './pending-batches.js';
import { SEQUENCER_MARK } from './schema.js';

/**
 * Pending events one sequencing transaction takes: whole batches while
 * fewer than this many are taken (at least one batch). The sequencer's own
 * requests wait behind the groups in flight, so a group stays short: with
 * 5,000 (about 350 ms of work here) they waited seconds while other nodes'
 * clients went on; 1,000 keeps the wait near 100 ms at little cost per event.
 */
export const PENDING_PER_COMMIT = 1000;

/**
 * First key of the transaction-level advisory locks that chain the groups in
 * flight ("tw"); the second is the group's ticket. Two-key locks are a
 * keyspace apart from the one-key migration lock.
 */
const GROUP_LOCK_SPACE = 0x7477;
/** Tickets of this process's groups; the start is random so other nodes' rarely meet them (a meeting only makes one wait). */
let lastTicket = randomInt(2 ** 31 - 1);

/**
 * A new group's ticket: its transaction holds this advisory lock from its
 * start (BEGIN, or the one statement of `writeAlone`) to its end, and the
 * next group's fence waits for it first (a one-statement group through
 * `trailwarden_follow`, which also waits for a group whose statement has
 * not reached PostgreSQL yet; with three nodes that function in the
 * three-round-trip fence measured ~5 % slower than the lock, so that fence
 * keeps the lock). So a group sends its fence and COMMIT as soon as its
 * rows are written, and PostgreSQL holds them until the group before has
 * committed (then the fence finds the head where it expects) or rolled back
 * (then the fence fails it): no round trip through Node between two commits. A
 * key that both groups insert (an event resent while its first request was
 * still being sequenced) makes the first wait for the second's row while the
 * second waits for the first's lock: PostgreSQL sees that cycle and fails
 * one, and both are sequenced again.
 */
export function groupTicket(): number {
  lastTicket = lastTicket >= 2 ** 31 - 1 ? 1 : lastTicket + 1;
  return lastTicket;
}

/**
 * BEGIN and, in the same round trip, the head (when asked) and the oldest
 * pending events except the ones the group before this one took. Values are
 * written into the text (integers only): a query of several statements
 * takes no parameters.
 */
export async function beginGroup(
  c: PoolClient,
  want: { ticket: number; head: boolean; pending: boolean; skip: ReadonlyArray<ReadonlyArray<number>> },
): Promise<{ head: number | undefined; pending: PendingBatch[] }> {
  const statements = [
    'BEGIN',
    // Declares this transaction a sequencer of the current schema (see SEQUENCER_MARK).
    `SET LOCAL ${SEQUENCER_MARK.setting} = '${SEQUENCER_MARK.value}'`,
    // Held till the transaction ends; the next group's fence waits on it (see groupTicket).
    `SELECT pg_advisory_xact_lock(${GROUP_LOCK_SPACE}, ${int(want.ticket)})`,
  ];
  // Where each answer is among the statements' results.
  const headAt = want.head ? statements.push('SELECT size FROM log_head') - 1 : -1;
  if (want.pending) {
    const skipped = want.skip.flat();
    // Oldest first, whole batches, while fewer than PENDING_PER_COMMIT events are taken before each.
    statements.push(
      `SELECT id, received_at, events FROM (
         SELECT id, received_at, events, sum(size) OVER (ORDER BY id) - size AS before
         FROM pending_batches
         WHERE ${skipped.length > 0 ? `id NOT IN (${skipped.map(int).join(', ')})` : 'true'}
       ) b WHERE before < ${PENDING_PER_COMMIT} ORDER BY id`,
    );
  }
  const results = (await c.query(statements.join('; '))) as unknown as QueryResult[];
  return {
    head: headAt >= 0 ? Number(results[headAt]?.rows[0]?.['size'] ?? 0) : undefined,
    pending: want.pending ? (results.at(-1)!.rows as PendingBatch[]) : [],
  };
}

/** Waits for the group before (its ticket), checks the fence when the log grew, and commits: one round trip. */
export async function commitGroup(
  c: PoolClient,
  holder: string,
  waitFor: number | undefined,
  from: number,
  to: number,
): Promise<void> {
  // Even a group that wrote nothing waits, so the one after it cannot overtake the group before.
  // The group before takes its ticket in its BEGIN or its one statement, sent before this group
  // was built and long before this fence: the lock alone is enough here.
  const afterBefore =
    waitFor === undefined ? '' : `SELECT pg_advisory_xact_lock(${GROUP_LOCK_SPACE}, ${int(waitFor)}); `;
  const fence =
    to > from
      ? `SELECT trailwarden_advance_head(${pg.escapeLiteral(holder)}, ${int(from)}, ${int(to)}); `
      : '';
  await c.query(`${afterBefore}${fence}COMMIT`);
}

/** An integer for a statement's text; anything else is a bug, never written. */
function int(n: number): string {
  if (!Number.isSafeInteger(n)) throw new Error(`not an integer: ${n}`);
  return String(n);
}
