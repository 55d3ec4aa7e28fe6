/**
 * The sequencer's commit on PostgreSQL (`commitSequenced`), as
 * `sqlite-writer.ts` is SQLite's: one transaction per group of requests,
 * pipelined behind the group before it. The follower's commit is in
 * `pending-batches.ts`, deciding idempotency in `decide-requests.ts`, the
 * group's rows and their statements in `sequenced-rows.ts`.
 */
import type { Pool, PoolClient } from 'pg';
import type { AuditEvent } from '../../event/event.js';
import type { MerkleFrontier } from '../merkle/frontier.js';
import type { PreparedEvent } from '../store.js';
import { decideRequests, existingKeys, type FreshEvent, type RequestResult } from './decide-requests.js';
import { beginGroup, commitGroup, groupTicket, PENDING_PER_COMMIT } from './group-transaction.js';
import type { Month } from './partitions.js';
import type { PendingBatch } from './pending-batches.js';
import { onClient, RetryableConflict } from './postgres-connection.js';
import { loadFrontier } from './postgres-tree.js';
import { SequencedRows, type Writing } from './sequenced-rows.js';
import { LeaseLost } from './sequencer-lease.js';

/** NOTIFY channel on which the sequencer announces each new head (named again in `trailwarden_advance_head`, schema.ts). */
export const APPEND_CHANNEL = 'trailwarden_append';

/** What a commit reads from, and updates in, the store instance that runs it. */
export interface SequencerState {
  /** The instance's frontier as of its last commit; cloned, never changed here. */
  frontier(): MerkleFrontier;
  /** Tenants known to be in `tenants`; a commit adds the ones it wrote. */
  knownTenants: Set<string>;
  /** Months known to have a partition; a commit adds the ones it created. */
  knownMonths: Set<Month>;
  /** This instance's lease holder name; also tags its NOTIFY payloads so it can skip its own. */
  holder: string;
}

/**
 * A pipelined group's guess did not hold: a key it claimed exists already,
 * or the log is not at the size the group was built on (the group before it
 * failed). Nothing of it was kept; the store sequences it again on its own.
 */
export class StaleGroup extends Error {}

/**
 * A group that did not read the pending events (none were expected) found
 * some another node acknowledged: nothing of it was kept, and it must be
 * sequenced again after them.
 */
export class PendingArrived extends StaleGroup {}

/**
 * Groups in flight at once, at most (the store's pipeline depth): a group's
 * `pendingTaken` needs what the groups before it that can still be
 * committing took, one fewer than this.
 */
export const MAX_GROUPS_IN_FLIGHT = 4;

/** Where a sequencing group starts when the group before it is still committing. */
export interface GroupBase {
  /** The tree as the group before will leave it. */
  frontier: MerkleFrontier;
  /**
   * The `pending_batches` ids each group still committing before this one
   * took (one list per group, newest first): this one must not take them
   * again. Exact ids, not ranges: a follower's batch can commit after one
   * with a higher id, and one that no group took must not be skipped.
   */
  pendingTaken: ReadonlyArray<ReadonlyArray<number>>;
  /** Partitions and tenants the groups still committing write: this one must not write them too. */
  writing?: Writing;
  /**
   * The advisory lock the group before holds until its transaction ends
   * (`groupTicket` in group-transaction.ts): this group's fence takes it
   * first, so it waits in PostgreSQL for that group to commit or roll back.
   */
  ticket?: number;
}

/** How one sequencing transaction runs. */
export interface SequenceOptions {
  /**
   * Pipelined: resolves once the group before this one is built (rejects if
   * it failed first). Its keys are claimed optimistically and any surprise
   * fails the group with {@link StaleGroup}. Absent: the group starts from
   * what the database holds and reads the stored keys before deciding.
   */
  after?: Promise<GroupBase>;
  /**
   * Sequence pending events (other nodes' acknowledged appends) first.
   * False when none are expected (no other node has handed any over
   * lately): the group skips that read, so a pipelined group is written as
   * one statement without BEGIN (unless it writes a new tenant or
   * partition), and its write checks instead that nothing is pending but
   * what the groups before it took; if something is, the group fails with
   * {@link PendingArrived}, so an event another node acknowledged is never
   * sequenced after a later one of this node.
   */
  drainPending: boolean;
  /** Called once the group's rows are built, with where the next group starts. */
  onBuilt?: (next: GroupBase) => void;
}

/**
 * What a sequencing transaction did, as plain data: a closure here would keep
 * its scope, and with it the group before (through `after`) and so every
 * group ever committed, alive.
 */
export interface SequencedGroup {
  results: RequestResult[];
  frontier: MerkleFrontier;
  /** Pending events are left for another round. */
  more: boolean;
  /** The group sequenced pending events (other nodes are handing events over). */
  tookPending: boolean;
  /** Partitions and tenants the group wrote to, known to exist once it committed. */
  months: ReadonlySet<Month>;
  tenants: ReadonlySet<string>;
}

/** SQLSTATEs `trailwarden_advance_head` raises (schema.ts, migration 6). */
const LEASE_GONE = 'TWL01';
const HEAD_ELSEWHERE = 'TWH01';
/** SQLSTATEs `trailwarden_sequence_group` raises (schema.ts, migration 12). */
const KEY_STORED = 'TWK01';
const PENDING_ARRIVED = 'TWP01';

/** Where a group starts: the tree it extends, the pending batches it takes, and what the groups before it do. */
interface GroupStart {
  frontier: MerkleFrontier;
  pending: PendingBatch[];
  /** Partitions and tenants the groups still committing before this one write (pipelined only). */
  before: Writing | undefined;
  /** The pending batches those groups took (see {@link GroupBase.pendingTaken}). */
  beforeTaken: ReadonlyArray<ReadonlyArray<number>>;
  /** The ticket of the group before, whose end this group's fence waits for. */
  waitFor: number | undefined;
}

/** A group's rows, built on its start: the pending events first, then the requests kept. */
interface BuiltGroup {
  rows: SequencedRows;
  /** The tree size the group starts at (its frontier has grown past it). */
  startSize: number;
  pendingEvents: Array<{ event: AuditEvent; seq: number }>;
  results: RequestResult[];
  fresh: FreshEvent[];
}

/**
 * The sequencer's commit, one transaction on its own connection: first the
 * events other nodes acknowledged (`pending_batches`, oldest first), then this
 * instance's own requests, each event getting the next `seq` and extending
 * the Merkle tree. The last statement is the fence
 * (`trailwarden_advance_head`, sent with the COMMIT): the lease must still be
 * held and the log still at the size the group was built on, or nothing is
 * kept; a pipelined group's fence first waits, in PostgreSQL, for the group
 * before it to end (`groupTicket` in group-transaction.ts). Three round
 * trips in all: BEGIN with the pending read, the write, the fence with
 * COMMIT — or one, for a pipelined group that reads no pending events and
 * writes no new tenant or partition (the usual case on a node alone;
 * `SequencedRows.writeAlone`). `more` tells the caller pending events are
 * left for another round.
 */
export function commitSequenced(
  pool: Pool,
  requests: PreparedEvent[][],
  state: SequencerState,
  opts: SequenceOptions,
): Promise<SequencedGroup> {
  const pipelined = opts.after !== undefined;
  // One statement, no BEGIN or COMMIT (`SequencedRows.writeAlone`), unless the group turns out to
  // write a tenant or partition, or nothing.
  const plannedAlone = pipelined && !opts.drainPending;
  const ticket = groupTicket();
  return onClient(pool, async (c) => {
    let sentAlone = false;
    try {
      const start = opts.after
        ? await startAfter(c, ticket, opts.after, plannedAlone)
        : await startAtHead(c, ticket, state, opts.drainPending);
      const group = await buildGroup(c, start, requests, pipelined);
      const { rows, startSize } = group;
      const writes = rows.toWrite(state, start.before);
      // A new tenant or partition is written in the group's transaction (see toWrite): that takes a BEGIN.
      const alone =
        plannedAlone &&
        writes.months.size === 0 &&
        writes.tenants.size === 0 &&
        rows.frontier.size > startSize;
      const sent = alone
        ? rows.writeAlone(c, group.fresh, start.beforeTaken.flat(), {
            holder: state.holder,
            from: startSize,
            ticket,
            before: start.waitFor,
          })
        : undefined;
      // Awaited below; sent before the next group is built, so its statement reaches PostgreSQL first.
      sent?.catch(() => undefined);
      sentAlone = sent !== undefined;
      opts.onBuilt?.(nextBase(start, rows.frontier, writes, state, ticket));

      if (sent) {
        await sent;
        return outcome(group);
      }
      if (plannedAlone) await beginGroup(c, { ticket, head: false, pending: false, skip: [] });
      if (rows.frontier.size > startSize)
        await writeGroup(c, group, start, writes, opts.drainPending, pipelined);
      await commitGroup(c, state.holder, start.waitFor, startSize, rows.frontier.size);
      return outcome(group);
    } catch (err) {
      // trailwarden_follow takes the ticket of the group before at session level and lets it go at
      // once; a cancel (a statement_timeout set on the role, say) landing between the two would
      // leave it held by this pooled connection, and a later group with that ticket would wait for
      // it for good. Nothing else holds session-level advisory locks on these connections.
      if (sentAlone) await c.query('SELECT pg_advisory_unlock_all()').catch(() => undefined);
      throw groupFailure(err, pipelined);
    }
  });
}

/**
 * A pipelined group starts on the tree the group before will leave, once
 * that group is built; unless it is planned as one statement, BEGIN goes
 * out with the read of the pending batches those before it did not take.
 */
async function startAfter(
  c: PoolClient,
  ticket: number,
  after: Promise<GroupBase>,
  plannedAlone: boolean,
): Promise<GroupStart> {
  const base = await after.catch(() => {
    throw new StaleGroup('the group before this one failed');
  });
  const frontier = base.frontier.clone();
  const { pending } = plannedAlone
    ? { pending: [] }
    : await beginGroup(c, { ticket, head: false, pending: true, skip: base.pendingTaken });
  return { frontier, pending, before: base.writing, beforeTaken: base.pendingTaken, waitFor: base.ticket };
}

/** A group with nothing in flight before it starts from the head the database holds (BEGIN reads it). */
async function startAtHead(
  c: PoolClient,
  ticket: number,
  state: SequencerState,
  drainPending: boolean,
): Promise<GroupStart> {
  const started = await beginGroup(c, { ticket, head: true, pending: drainPending, skip: [] });
  let frontier = state.frontier().clone();
  // The commit that ran before may have been lost with its connection, or another instance held the lease.
  if (started.head !== frontier.size) frontier = await loadFrontier(c);
  return { frontier, pending: started.pending, before: undefined, beforeTaken: [], waitFor: undefined };
}

/**
 * Sequences the pending events, then this instance's requests, on the
 * group's frontier. A pipelined group claims its keys optimistically (its
 * write fails if one exists); otherwise the stored keys are read first.
 */
async function buildGroup(
  c: PoolClient,
  start: GroupStart,
  requests: PreparedEvent[][],
  pipelined: boolean,
): Promise<BuiltGroup> {
  const startSize = start.frontier.size;
  const rows = new SequencedRows(start.frontier);
  const pendingEvents: Array<{ event: AuditEvent; seq: number }> = [];
  for (const batch of start.pending) {
    for (const event of JSON.parse(batch.events) as AuditEvent[]) {
      pendingEvents.push({ event, seq: rows.add(event, batch.received_at) });
    }
  }
  if (requests.length === 0) return { rows, startSize, pendingEvents, results: [], fresh: [] };
  const receivedAt = new Date().toISOString();
  let next = rows.frontier.size + 1;
  const { results, fresh } = decideRequests(
    requests,
    pipelined ? new Map() : await existingKeys(c, requests),
    () => next++,
  );
  for (const f of fresh) {
    if (rows.add(f.prepared.event, receivedAt, f.prepared.canonical) !== f.seq)
      throw new Error('sequencing went out of step');
  }
  return { rows, startSize, pendingEvents, results, fresh };
}

/** Where the next group starts: this group's tree, and what this group and those before it take and write. */
function nextBase(
  start: GroupStart,
  frontier: MerkleFrontier,
  writes: Writing,
  state: SequencerState,
  ticket: number,
): GroupBase {
  return {
    frontier,
    pendingTaken: [start.pending.map((p) => p.id), ...start.beforeTaken].slice(0, MAX_GROUPS_IN_FLIGHT - 1),
    ticket,
    writing: {
      months: union(writes.months, start.before?.months, state.knownMonths),
      tenants: union(writes.tenants, start.before?.tenants, state.knownTenants),
    },
  };
}

/** The group's new tenants and partitions, then its rows in one statement; a surprise fails the group. */
async function writeGroup(
  c: PoolClient,
  group: BuiltGroup,
  start: GroupStart,
  writes: Writing,
  drainPending: boolean,
  pipelined: boolean,
): Promise<void> {
  await group.rows.prepare(c, writes);
  const written = await group.rows.write(
    c,
    group.fresh,
    { batches: start.pending, events: group.pendingEvents },
    drainPending ? undefined : start.beforeTaken.flat(),
  );
  if (written === 'pending arrived') {
    throw new PendingArrived('another node handed over events while this group was built without them');
  }
  if (written !== 'written') {
    // Pipelined: a resent event (the keys were not read first). Otherwise another node claimed one meanwhile.
    throw pipelined
      ? new StaleGroup(`the group's guess did not hold (${written})`)
      : new RetryableConflict(`another node wrote meanwhile (${written})`);
  }
}

/** What the group did, as plain data (see {@link SequencedGroup}). */
function outcome(group: BuiltGroup): SequencedGroup {
  return {
    results: group.results,
    frontier: group.rows.frontier,
    // Fewer than PENDING_PER_COMMIT taken means every batch not skipped was taken.
    more: group.pendingEvents.length >= PENDING_PER_COMMIT,
    tookPending: group.pendingEvents.length > 0,
    months: group.rows.months,
    tenants: group.rows.tenants,
  };
}

/** The error a failed group is reported with: the SQLSTATEs of the fence and the group statement by meaning. */
function groupFailure(err: unknown, pipelined: boolean): unknown {
  const code = (err as { code?: unknown }).code;
  if (code === LEASE_GONE) return new LeaseLost();
  if (code === KEY_STORED) return new StaleGroup((err as Error).message);
  if (code === PENDING_ARRIVED) return new PendingArrived((err as Error).message);
  if (code === HEAD_ELSEWHERE) {
    return pipelined
      ? new StaleGroup((err as Error).message)
      : new RetryableConflict('the log grew meanwhile');
  }
  return err;
}

/** `mine` and what of `before` is not `known` (committed) yet. */
function union<T>(mine: ReadonlySet<T>, before: ReadonlySet<T> | undefined, known: ReadonlySet<T>): Set<T> {
  const all = new Set(mine);
  for (const x of before ?? []) if (!known.has(x)) all.add(x);
  return all;
}
