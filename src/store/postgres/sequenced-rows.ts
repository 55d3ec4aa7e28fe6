import type { PoolClient } from 'pg';
import type { CanonicalEvent } from '../../event/canonical.js';
import type { AuditEvent } from '../../event/event.js';
import type { MerkleFrontier } from '../merkle/frontier.js';
import { isStoredNode } from '../merkle/stored-nodes.js';
import { indexedValues, sequencedRow } from '../stored-event.js';
import { byteaArray, int4Array, int8Array, textArray } from './binary-array.js';
import type { FreshEvent } from './decide-requests.js';
import { ensureMonthlyPartitions, type Month, monthOfIso } from './partitions.js';
import type { PendingBatch } from './pending-batches.js';

/** Partitions and tenants a group writes besides its events. */
export interface Writing {
  months: ReadonlySet<Month>;
  tenants: ReadonlySet<string>;
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
export class SequencedRows {
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
  toWrite(
    state: { knownMonths: ReadonlySet<Month>; knownTenants: ReadonlySet<string> },
    before: Writing | undefined,
  ): Writing {
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
    fresh: FreshEvent[],
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
  private encoded(fresh: FreshEvent[]): Buffer[] {
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
    fresh: FreshEvent[],
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
