import { randomInt } from 'node:crypto';
import pg, { type Pool, type PoolClient, type QueryResult } from 'pg';
import type { CanonicalEvent } from '../../event/canonical.js';
import type { AuditEvent } from '../../event/event.js';
import type { MerkleFrontier } from '../merkle/frontier.js';
import { isStoredNode } from '../merkle/stored-nodes.js';
import type { AppendOutcome, PreparedEvent } from '../store.js';
import { indexedValues, sequencedRow } from '../stored-event.js';
import { byteaArray, int4Array, int8Array, textArray } from './binary-array.js';
import { ensureMonthlyPartitions, type Month, monthOfIso } from './partitions.js';
import { onClient, RetryableConflict } from './postgres-connection.js';
import { loadFrontier } from './postgres-tree.js';
import { SEQUENCER_MARK } from './schema.js';
import { LeaseLost } from './sequencer-lease.js';

/** NOTIFY channel on which the sequencer announces each new head (named again in `trailwarden_advance_head`, schema.ts). */
export const APPEND_CHANNEL = 'trailwarden_append';
/** NOTIFY channel on which a node announces events it acknowledged for the sequencer. */
export const PENDING_CHANNEL = 'trailwarden_pending';

/**
 * Pending events one sequencing transaction takes: whole batches while
 * fewer than this many are taken (at least one batch). The sequencer's own
 * requests wait behind the groups in flight, so a group stays short: with
 * 5,000 (about 350 ms of work here) they waited seconds while other nodes'
 * clients went on; 1,000 keeps the wait near 100 ms at little cost per event.
 */
const PENDING_PER_COMMIT = 1000;

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

/** A request's result: its outcomes, or the index of its event that conflicted (nothing of it kept). */
export type RequestResult = AppendOutcome[] | number;

interface KnownKey {
  contentHash: string;
  seq: number | null;
}

/**
 * Decides each request against the keys already stored and the earlier
 * requests of the group: new, duplicate, or a conflict that drops the
 * request alone. New events get `seq` from `assign` (null: left to the
 * sequencer).
 */
function classify(
  requests: PreparedEvent[][],
  existing: Map<string, KnownKey>,
  assign: () => number | null,
): { results: RequestResult[]; fresh: Array<{ prepared: PreparedEvent; seq: number | null }> } {
  const results: RequestResult[] = [];
  const fresh: Array<{ prepared: PreparedEvent; seq: number | null }> = [];
  for (const events of requests) {
    const mine = new Map<string, KnownKey>();
    const outcomes: AppendOutcome[] = [];
    /** Repeats of an event earlier in this request: their seq is known once the request's seqs are. */
    const repeats: Array<{ outcome: AppendOutcome; k: string }> = [];
    const added: Array<{ prepared: PreparedEvent; seq: number | null }> = [];
    let conflict = -1;
    for (const [index, prepared] of events.entries()) {
      const k = key(prepared.event.tenant_id, prepared.event.event_id);
      const prior = mine.get(k) ?? existing.get(k);
      if (prior) {
        if (prior.contentHash !== prepared.contentHash) {
          conflict = index;
          break;
        }
        const outcome: AppendOutcome = { status: 'duplicate', seq: prior.seq };
        if (mine.has(k)) repeats.push({ outcome, k });
        outcomes.push(outcome);
        continue;
      }
      added.push({ prepared, seq: null });
      mine.set(k, { contentHash: prepared.contentHash, seq: null });
      outcomes.push({ status: 'created', seq: null });
    }
    if (conflict >= 0) {
      results.push(conflict);
      continue;
    }
    // Seqs are handed out only to requests that are kept, so they stay gap-free.
    for (const a of added) {
      a.seq = assign();
      mine.get(key(a.prepared.event.tenant_id, a.prepared.event.event_id))!.seq = a.seq;
    }
    let next = 0;
    for (const o of outcomes) if (o.status === 'created') o.seq = added[next++]!.seq;
    for (const r of repeats) r.outcome.seq = mine.get(r.k)!.seq;
    for (const [k, v] of mine) existing.set(k, v);
    fresh.push(...added);
    results.push(outcomes);
  }
  return { results, fresh };
}

/** The stored key and content hash of each (tenant, event_id) of the group that exists. */
async function existingKeys(c: PoolClient, requests: PreparedEvent[][]): Promise<Map<string, KnownKey>> {
  const all = requests.flat();
  const found = await c.query<{
    tenant_id: string;
    event_id: string;
    seq: number | null;
    content_hash: string;
  }>(
    `SELECT k.tenant_id, k.event_id, k.seq, k.content_hash
     FROM unnest($1::text[], $2::text[]) AS q(tenant_id, event_id)
     JOIN event_keys k ON k.tenant_id = q.tenant_id AND k.event_id = q.event_id`,
    [textArray(all.map((e) => e.event.tenant_id)), textArray(all.map((e) => e.event.event_id))],
  );
  return new Map(
    found.rows.map((r) => [key(r.tenant_id, r.event_id), { contentHash: r.content_hash, seq: r.seq }]),
  );
}

/**
 * The follower's append: the events are committed to `pending_batches`, one
 * row for the whole group (and their keys to `event_keys`, so idempotency
 * holds across nodes at once), and acknowledged without waiting for the
 * sequencer, which is woken by NOTIFY.
 * Optimistic: most events are new, so keys and events go in at once (one
 * statement between BEGIN and COMMIT); only when a key exists already is
 * that rolled back, the stored keys read, and the group decided again.
 */
export function commitPending(pool: Pool, requests: PreparedEvent[][]): Promise<RequestResult[]> {
  return onClient(pool, async (c) => {
    await c.query('BEGIN');
    let decided = classify(requests, new Map(), () => null);
    if (!(await queuePending(c, decided.fresh))) {
      await c.query('ROLLBACK');
      await c.query('BEGIN');
      decided = classify(requests, await existingKeys(c, requests), () => null);
      if (!(await queuePending(c, decided.fresh))) {
        // Another node claimed one of these keys after existingKeys read them: retry the whole transaction.
        throw new RetryableConflict('an event_id was stored by another node meanwhile');
      }
    }
    await c.query('COMMIT');
    return decided.results;
  });
}

/** Claims the keys of `fresh` and queues its events for the sequencer; false when a key existed already. */
async function queuePending(
  c: PoolClient,
  fresh: Array<{ prepared: PreparedEvent; seq: number | null }>,
): Promise<boolean> {
  if (fresh.length === 0) return true;
  const r = await c.query<{ claimed: number }>({
    // Named: PostgreSQL parses and plans it once per connection, not once per commit.
    name: 'trailwarden_queue_pending',
    text: `WITH claimed AS (
       INSERT INTO event_keys (tenant_id, event_id, content_hash, seq)
       SELECT t, e, h, NULL FROM unnest($1::text[], $2::text[], $3::text[]) AS x(t, e, h)
       ON CONFLICT DO NOTHING RETURNING 1
     ), queued AS (
       INSERT INTO pending_batches (received_at, size, events) VALUES ($4, $5, $6)
     )
     SELECT (SELECT count(*) FROM claimed) AS claimed, pg_notify($7, $8)`,
    values: [
      textArray(fresh.map((f) => f.prepared.event.tenant_id)),
      textArray(fresh.map((f) => f.prepared.event.event_id)),
      textArray(fresh.map((f) => f.prepared.contentHash)),
      new Date().toISOString(),
      fresh.length,
      JSON.stringify(fresh.map((f) => f.prepared.event)),
      PENDING_CHANNEL,
      String(fresh.length),
    ],
  });
  return r.rows[0]?.claimed === fresh.length;
}

/**
 * How each column of `events` goes over the wire, in the order of the insert
 * below: seq, received_at (as text, cast in the statement), the indexed
 * columns of `indexedValues`, leaf_hash and body.
 */
const EVENT_COLUMNS: ReadonlyArray<(values: never[]) => Buffer> = [
  int8Array,
  ...Array.from({ length: 10 }, () => textArray),
  byteaArray,
  textArray,
];

/** Rows for `events`, column by column, and the tree nodes completed, for one multi-row insert each. */
class SequencedRows {
  readonly cols: unknown[][] = EVENT_COLUMNS.map(() => []);
  readonly nodes: { level: number[]; idx: number[]; hash: Buffer[] } = { level: [], idx: [], hash: [] };
  readonly months = new Set<Month>();
  readonly tenants = new Set<string>();

  constructor(readonly frontier: MerkleFrontier) {}

  /** Sequences one event at the frontier's next seq; returns that seq. */
  add(event: AuditEvent, receivedAt: string, canonical?: CanonicalEvent): number {
    const seq = this.frontier.size + 1;
    const r = sequencedRow(event, seq, receivedAt, canonical);
    const values = [r.seq, receivedAt, ...indexedValues(r), r.leaf, r.body];
    for (const [col, v] of values.entries()) this.cols[col]!.push(v);
    for (const n of this.frontier.append(r.leaf)) {
      if (!isStoredNode(n.level)) continue;
      this.nodes.level.push(n.level);
      this.nodes.idx.push(n.index);
      this.nodes.hash.push(n.hash);
    }
    this.months.add(monthOfIso(receivedAt));
    this.tenants.add(event.tenant_id);
    return seq;
  }

  /**
   * Partitions and `tenants` rows this group needs that the database may
   * not have yet, leaving out those the groups before it write. Those groups
   * have not committed, so writing the same row here would make their insert
   * wait for this transaction, which waits for them to commit: a deadlock
   * PostgreSQL cannot see. If one of them fails, so does this group (its
   * fence), and it is sequenced again on its own.
   */
  toWrite(state: SequencerState, before: Writing | undefined): Writing {
    return {
      months: new Set(
        [...this.months].filter((m) => !state.knownMonths.has(m) && before?.months.has(m) !== true),
      ),
      tenants: new Set(
        [...this.tenants].filter((t) => !state.knownTenants.has(t) && before?.tenants.has(t) !== true),
      ),
    };
  }

  /** Writes the partitions and `tenants` rows of {@link toWrite}. */
  async prepare(c: PoolClient, writes: Writing): Promise<void> {
    const newMonths = [...writes.months];
    // Normally made ahead by the sequencer; an event received long ago (it waited in pending) may need its own.
    if (newMonths.length > 0) await ensureMonthlyPartitions(c, newMonths);
    const newTenants = [...writes.tenants];
    if (newTenants.length > 0) {
      await c.query('INSERT INTO tenants (tenant_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING', [
        newTenants,
      ]);
    }
  }

  /**
   * Writes the group in one statement (each round trip wakes the other side,
   * which is dear on a busy machine): the keys of the new events, the `seq`
   * of the pending events' keys, the pending batches taken, the tree nodes
   * and the events. Anything but `written` means the caller rolls back:
   * a key existed already, a pending batch taken was gone, or (`guard`
   * given: the group read no pending events) a pending batch other than
   * those in `guard` is there, so an event another node acknowledged may
   * be older than this group's.
   */
  async write(
    c: PoolClient,
    fresh: Array<{ prepared: PreparedEvent; seq: number | null }>,
    pending: { batches: PendingBatch[]; events: Array<{ event: AuditEvent; seq: number }> },
    guard: ReadonlyArray<number> | undefined,
  ): Promise<'written' | 'key stored' | 'pending gone' | 'pending arrived'> {
    const r = await c.query<{ claimed: number; taken: number; arrived: number }>({
      // Named: PostgreSQL parses and plans this long statement once per connection, not once per group.
      name: 'trailwarden_sequence_group',
      text: `WITH claimed AS (
         INSERT INTO event_keys (tenant_id, event_id, content_hash, seq)
         SELECT * FROM unnest($17::text[], $18::text[], $19::text[], $20::bigint[])
         ON CONFLICT DO NOTHING RETURNING 1
       ), taken AS (
         DELETE FROM pending_batches WHERE id = ANY($24::bigint[]) RETURNING 1
       ), placed AS (
         UPDATE event_keys k SET seq = u.seq FROM unnest($21::text[], $22::text[], $23::bigint[]) AS u(t, e, seq)
         WHERE k.tenant_id = u.t AND k.event_id = u.e
       ), tree AS (
         INSERT INTO tree_nodes (level, idx, hash) SELECT * FROM unnest($14::int[], $15::bigint[], $16::bytea[])
       ), arrived AS (
         SELECT count(*) AS n FROM pending_batches p
         WHERE $25::boolean AND p.id <> ALL($26::bigint[])
       ), stored AS (
         INSERT INTO events (seq, received_at, event_id, tenant_id, ts, action, actor_id, resource_type,
           resource_id, outcome, search, leaf_hash, body)
         SELECT seq, received_at::timestamptz, event_id, tenant_id, ts, action, actor_id, resource_type,
           resource_id, outcome, search, leaf_hash, body
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
           $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bytea[], $13::text[])
           AS r(seq, received_at, event_id, tenant_id, ts, action, actor_id, resource_type,
             resource_id, outcome, search, leaf_hash, body)
       )
       SELECT (SELECT count(*) FROM claimed) AS claimed, (SELECT count(*) FROM taken) AS taken,
         (SELECT n FROM arrived) AS arrived`,
      values: [
        ...this.encoded(fresh),
        textArray(pending.events.map((p) => p.event.tenant_id)),
        textArray(pending.events.map((p) => p.event.event_id)),
        int8Array(pending.events.map((p) => p.seq)),
        int8Array(pending.batches.map((p) => p.id)),
        guard !== undefined,
        int8Array(guard ?? []),
      ],
    });
    const row = r.rows[0];
    if (row?.claimed !== fresh.length) return 'key stored';
    // Fewer taken than read: another transaction sequenced some of them (never expected; refuse rather than store twice).
    if (row.taken !== pending.batches.length) return 'pending gone';
    return row.arrived > 0 ? 'pending arrived' : 'written';
  }

  /** The first 20 parameters of both group statements: the events' columns, the tree nodes, the new events' keys. */
  private encoded(fresh: Array<{ prepared: PreparedEvent; seq: number | null }>): Buffer[] {
    return [
      ...this.cols.map((values, i) => EVENT_COLUMNS[i]!(values as never[])),
      int4Array(this.nodes.level),
      int8Array(this.nodes.idx),
      byteaArray(this.nodes.hash),
      textArray(fresh.map((f) => f.prepared.event.tenant_id)),
      textArray(fresh.map((f) => f.prepared.event.event_id)),
      textArray(fresh.map((f) => f.prepared.contentHash)),
      int8Array(fresh.map((f) => f.seq)),
    ];
  }

  /**
   * The whole group as one statement in its own transaction
   * (`trailwarden_sequence_group`, migration 12): what `write` does, then
   * the wait for the group before (`before`, its ticket) and the fence. No
   * BEGIN and no COMMIT, so one round trip instead of three, each of which
   * waits for a turn of the busy event loop (one node, alternating probe
   * pairs: docs/BENCHMARKS.md). Only for a group that reads no pending
   * events and writes no new tenant or partition; a surprise raises and
   * nothing is kept (mapped to StaleGroup / PendingArrived by the caller).
   */
  writeAlone(
    c: PoolClient,
    fresh: Array<{ prepared: PreparedEvent; seq: number | null }>,
    takenBefore: ReadonlyArray<number>,
    fence: { holder: string; from: number; ticket: number; before: number | undefined },
  ): Promise<unknown> {
    return c.query({
      name: 'trailwarden_sequence_group_alone',
      text: `SELECT trailwarden_sequence_group(${Array.from({ length: 26 }, (_, i) => `$${i + 1}`).join(', ')})`,
      values: [
        ...this.encoded(fresh),
        int8Array(takenBefore),
        fence.holder,
        fence.from,
        this.frontier.size,
        fence.ticket,
        fence.before ?? null,
      ],
    });
  }
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

/** Partitions and tenants a group writes besides its events. */
export interface Writing {
  months: ReadonlySet<Month>;
  tenants: ReadonlySet<string>;
}

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
   * ({@link groupTicket}): this group's fence takes it first, so it waits
   * in PostgreSQL for that group to commit or roll back.
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
   * lately): the group skips that read, so its BEGIN goes out before the
   * group before it is built, and its write checks instead that nothing is
   * pending but what the groups before it took; if something is, the group
   * fails with {@link PendingArrived}, so an event another node
   * acknowledged is never sequenced after a later one of this node.
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
function groupTicket(): number {
  lastTicket = lastTicket >= 2 ** 31 - 1 ? 1 : lastTicket + 1;
  return lastTicket;
}

/** SQLSTATEs `trailwarden_advance_head` raises (schema.ts, migration 6). */
const LEASE_GONE = 'TWL01';
const HEAD_ELSEWHERE = 'TWH01';
/** SQLSTATEs `trailwarden_sequence_group` raises (schema.ts, migration 12). */
const KEY_STORED = 'TWK01';
const PENDING_ARRIVED = 'TWP01';

/**
 * The sequencer's commit, one transaction on its own connection: first the
 * events other nodes acknowledged (`pending_batches`, oldest first), then this
 * instance's own requests, each event getting the next `seq` and extending
 * the Merkle tree. The last statement is the fence
 * (`trailwarden_advance_head`, sent with the COMMIT): the lease must still be
 * held and the log still at the size the group was built on, or nothing is
 * kept; a pipelined group's fence first waits, in PostgreSQL, for the group
 * before it to end ({@link groupTicket}). Three round trips in all: BEGIN
 * with the pending read, the write, the fence with COMMIT — or one, for a
 * pipelined group that reads no pending events and writes no new tenant or
 * partition (the usual case on a node alone; `SequencedRows.writeAlone`).
 * `more` tells the caller pending events are left for another round.
 */
export function commitSequenced(
  pool: Pool,
  requests: PreparedEvent[][],
  state: SequencerState,
  opts: SequenceOptions,
): Promise<SequencedGroup> {
  const pipelined = opts.after !== undefined;
  /** One statement for the whole group, no BEGIN or COMMIT (`SequencedRows.writeAlone`); dropped if the group turns out to write a tenant or partition. */
  let single = pipelined && !opts.drainPending;
  const ticket = groupTicket();
  return onClient(pool, async (c) => {
    let begun = false;
    let sentAlone = false;
    try {
      let frontier: MerkleFrontier;
      let pending: PendingBatch[];
      let before: Writing | undefined;
      let beforeTaken: ReadonlyArray<ReadonlyArray<number>> = [];
      let waitFor: number | undefined;
      if (opts.after) {
        // Nothing to read that depends on the group before: BEGIN goes out while that group is built.
        const early =
          opts.drainPending || single
            ? undefined
            : begin(c, { ticket, head: false, pending: false, skip: [] });
        // Awaited below; a failure here is the failure of the statement that follows it.
        early?.catch(() => undefined);
        const base = await opts.after.catch(() => {
          throw new StaleGroup('the group before this one failed');
        });
        frontier = base.frontier.clone();
        before = base.writing;
        beforeTaken = base.pendingTaken;
        waitFor = base.ticket;
        ({ pending } = single
          ? { pending: [] }
          : await (early ??
              begin(c, {
                ticket,
                head: false,
                pending: true,
                skip: base.pendingTaken,
              })));
        begun = !single;
      } else {
        const started = await begin(c, { ticket, head: true, pending: opts.drainPending, skip: [] });
        begun = true;
        pending = started.pending;
        frontier = state.frontier().clone();
        // The commit that ran before may have been lost with its connection, or another instance held the lease.
        if (started.head !== frontier.size) frontier = await loadFrontier(c);
      }
      const startSize = frontier.size;
      const rows = new SequencedRows(frontier);
      const pendingEvents: Array<{ event: AuditEvent; seq: number }> = [];
      for (const batch of pending) {
        for (const event of JSON.parse(batch.events) as AuditEvent[]) {
          pendingEvents.push({ event, seq: rows.add(event, batch.received_at) });
        }
      }

      let results: RequestResult[] = [];
      let fresh: Array<{ prepared: PreparedEvent; seq: number | null }> = [];
      if (requests.length > 0) {
        const receivedAt = new Date().toISOString();
        let next = frontier.size + 1;
        const decided = classify(
          requests,
          pipelined ? new Map() : await existingKeys(c, requests),
          () => next++,
        );
        results = decided.results;
        fresh = decided.fresh;
        for (const f of fresh) {
          if (rows.add(f.prepared.event, receivedAt, f.prepared.canonical) !== f.seq)
            throw new Error('sequencing went out of step');
        }
      }
      const writes = rows.toWrite(state, before);
      // A new tenant or partition is written in the group's transaction (see toWrite): that takes a BEGIN.
      if (single && (writes.months.size > 0 || writes.tenants.size > 0 || frontier.size === startSize)) {
        single = false;
      }
      const sent = single
        ? rows.writeAlone(c, fresh, beforeTaken.flat(), {
            holder: state.holder,
            from: startSize,
            ticket,
            before: waitFor,
          })
        : undefined;
      // Awaited below; sent before the next group is built, so its statement reaches PostgreSQL first.
      sent?.catch(() => undefined);
      sentAlone = sent !== undefined;
      opts.onBuilt?.({
        frontier,
        pendingTaken: [pending.map((p) => p.id), ...beforeTaken].slice(0, MAX_GROUPS_IN_FLIGHT - 1),
        ticket,
        writing: {
          months: union(writes.months, before?.months, state.knownMonths),
          tenants: union(writes.tenants, before?.tenants, state.knownTenants),
        },
      });

      if (sent) {
        await sent;
        return {
          results,
          frontier,
          more: false,
          tookPending: false,
          months: rows.months,
          tenants: rows.tenants,
        };
      }
      if (!begun) {
        await begin(c, { ticket, head: false, pending: false, skip: [] });
        begun = true;
      }
      if (frontier.size > startSize) {
        await rows.prepare(c, writes);
        const written = await rows.write(
          c,
          fresh,
          { batches: pending, events: pendingEvents },
          opts.drainPending ? undefined : beforeTaken.flat(),
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
      // Even a group that wrote nothing waits, so the one after it cannot overtake the group before.
      // The group before takes its ticket in its BEGIN or its one statement, sent before this group
      // was built and long before this fence: the lock alone is enough here.
      const afterBefore =
        waitFor === undefined ? '' : `SELECT pg_advisory_xact_lock(${GROUP_LOCK_SPACE}, ${int(waitFor)}); `;
      const fence =
        frontier.size > startSize
          ? `SELECT trailwarden_advance_head(${pg.escapeLiteral(state.holder)}, ${int(startSize)}, ${int(frontier.size)}); `
          : '';
      await c.query(`${afterBefore}${fence}COMMIT`);
      return {
        results,
        frontier,
        // Fewer than PENDING_PER_COMMIT taken means every batch not skipped was taken.
        more: pendingEvents.length >= PENDING_PER_COMMIT,
        tookPending: pendingEvents.length > 0,
        months: rows.months,
        tenants: rows.tenants,
      };
    } catch (err) {
      // trailwarden_follow takes the ticket of the group before at session level and lets it go at
      // once; a cancel (a statement_timeout set on the role, say) landing between the two would
      // leave it held by this pooled connection, and a later group with that ticket would wait for
      // it for good. Nothing else holds session-level advisory locks on these connections.
      if (sentAlone) await c.query('SELECT pg_advisory_unlock_all()').catch(() => undefined);
      const code = (err as { code?: unknown }).code;
      if (code === LEASE_GONE) throw new LeaseLost();
      if (code === KEY_STORED) throw new StaleGroup((err as Error).message);
      if (code === PENDING_ARRIVED) throw new PendingArrived((err as Error).message);
      if (code === HEAD_ELSEWHERE) {
        throw pipelined
          ? new StaleGroup((err as Error).message)
          : new RetryableConflict('the log grew meanwhile');
      }
      throw err;
    }
  });
}

/** A follower's commit waiting for the sequencer: its events as a JSON array. */
interface PendingBatch {
  id: number;
  received_at: string;
  events: string;
}

/**
 * BEGIN and, in the same round trip, the head (when asked) and the oldest
 * pending events except the ones the group before this one took. Values are
 * written into the text (integers only): a query of several statements
 * takes no parameters.
 */
async function begin(
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

/** `mine` and what of `before` is not `known` (committed) yet. */
function union<T>(mine: ReadonlySet<T>, before: ReadonlySet<T> | undefined, known: ReadonlySet<T>): Set<T> {
  const all = new Set(mine);
  for (const x of before ?? []) if (!known.has(x)) all.add(x);
  return all;
}

/** An integer for a statement's text; anything else is a bug, never written. */
function int(n: number): string {
  if (!Number.isSafeInteger(n)) throw new Error(`not an integer: ${n}`);
  return String(n);
}

function key(tenantId: string, eventId: string): string {
  return `${tenantId}\u0000${eventId}`;
}
