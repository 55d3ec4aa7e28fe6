import type { PoolClient } from 'pg';
import { leafHashOf } from '../../event/canonical.js';
import type { MerkleFrontier } from '../merkle/frontier.js';
import type { AppendOutcome, PreparedEvent } from '../store.js';
import { searchText, toStored } from '../stored-event.js';
import { headOn, loadFrontier } from './postgres-tree.js';

/** Transaction advisory lock that serialises sequencing across every process on the database ("tw-seq"). */
const SEQUENCER_LOCK = 0x74772d736571;

/** NOTIFY channel on which every append announces the new head. */
export const APPEND_CHANNEL = 'trailwarden_append';

/** What a commit reads from, and updates in, the store instance that runs it. */
export interface SequencerState {
  /** The instance's frontier as of its last commit, read under the lock; cloned, never changed here. */
  frontier(): MerkleFrontier;
  /** Tenants known to be in `tenants`; a commit adds the ones it wrote. */
  knownTenants: Set<string>;
  /** Tags this instance's NOTIFY payloads so it can skip its own. */
  instanceId: string;
}

/** Thrown inside a request's savepoint to roll back just that request. */
class ConflictInBatch extends Error {
  constructor(readonly index: number) {
    super('conflict');
  }
}

/**
 * Appends a group of requests in the caller's transaction: takes the
 * sequencer lock, reloads the frontier when another instance appended
 * meanwhile, and writes each request in its own savepoint. A request's result
 * is its outcomes, or the index of the event that conflicted (that request
 * was rolled back alone). Announces the new head on {@link APPEND_CHANNEL}.
 *
 * toStored and searchText match sqlite-writer.ts exactly: the stored JSON
 * and the search column must not depend on the backend.
 */
export async function commitAppends(
  c: PoolClient,
  requests: PreparedEvent[][],
  state: SequencerState,
): Promise<{ results: Array<AppendOutcome[] | number>; frontier: MerkleFrontier }> {
  await c.query('SELECT pg_advisory_xact_lock($1)', [SEQUENCER_LOCK]);
  // Under the lock: another instance may have appended since our last commit.
  let frontier = state.frontier().clone();
  if ((await headOn(c)) !== frontier.size) frontier = await loadFrontier(c);
  const before = frontier.size;
  const newTenants = [...new Set(requests.flatMap((events) => events.map((e) => e.event.tenant_id)))].filter(
    (t) => !state.knownTenants.has(t),
  );
  if (newTenants.length > 0) {
    // Outside the savepoints: a tenant row without events is harmless.
    await c.query('INSERT INTO tenants (tenant_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING', [
      newTenants,
    ]);
  }
  const receivedAt = new Date().toISOString();
  const results: Array<AppendOutcome[] | number> = [];
  for (const [i, events] of requests.entries()) {
    const attempt = frontier.clone();
    await c.query(`SAVEPOINT r${i}`);
    try {
      results.push(await appendRequest(c, events, attempt, receivedAt));
      await c.query(`RELEASE SAVEPOINT r${i}`);
      frontier = attempt;
    } catch (err) {
      if (!(err instanceof ConflictInBatch)) throw err;
      await c.query(`ROLLBACK TO SAVEPOINT r${i}`);
      results.push(err.index);
    }
  }
  if (frontier.size !== before) {
    await c.query('SELECT pg_notify($1, $2)', [APPEND_CHANNEL, `${state.instanceId} ${frontier.size}`]);
  }
  for (const t of newTenants) state.knownTenants.add(t);
  return { results, frontier };
}

async function appendRequest(
  c: PoolClient,
  events: PreparedEvent[],
  frontier: MerkleFrontier,
  receivedAt: string,
): Promise<AppendOutcome[]> {
  const found = await c.query<{ tenant_id: string; event_id: string; seq: number; content_hash: string }>(
    `SELECT e.tenant_id, e.event_id, e.seq, e.content_hash
     FROM unnest($1::text[], $2::text[]) AS k(tenant_id, event_id)
     JOIN events e ON e.tenant_id = k.tenant_id AND e.event_id = k.event_id`,
    [events.map((e) => e.event.tenant_id), events.map((e) => e.event.event_id)],
  );
  const existing = new Map(
    found.rows.map((r) => [key(r.tenant_id, r.event_id), { seq: r.seq, contentHash: r.content_hash }]),
  );
  const outcomes: AppendOutcome[] = [];
  const rows: unknown[][] = Array.from({ length: 13 }, () => []);
  const nodes: { level: number[]; idx: number[]; hash: Buffer[] } = { level: [], idx: [], hash: [] };
  events.forEach(({ event, contentHash }, index) => {
    const k = key(event.tenant_id, event.event_id);
    const prior = existing.get(k);
    if (prior) {
      if (prior.contentHash !== contentHash) throw new ConflictInBatch(index);
      outcomes.push({ status: 'duplicate', seq: prior.seq });
      return;
    }
    const seq = frontier.size + 1;
    const stored = toStored(event, seq, receivedAt);
    const leaf = leafHashOf(stored);
    stored.leaf_hash = leaf.toString('base64');
    const values = [
      seq,
      event.event_id,
      event.tenant_id,
      event.timestamp,
      event.action,
      event.actor.id,
      event.resource?.type ?? null,
      event.resource?.id ?? null,
      event.outcome,
      searchText(event),
      contentHash,
      leaf,
      JSON.stringify(stored),
    ];
    for (const [col, v] of values.entries()) rows[col]!.push(v);
    for (const n of frontier.append(leaf)) {
      if (n.level === 0) continue;
      nodes.level.push(n.level);
      nodes.idx.push(n.index);
      nodes.hash.push(n.hash);
    }
    // A repeat later in the same request is a duplicate of this one.
    existing.set(k, { seq, contentHash });
    outcomes.push({ status: 'created', seq });
  });
  if (rows[0]!.length > 0) {
    await c.query(
      `INSERT INTO events (seq, event_id, tenant_id, ts, action, actor_id, resource_type, resource_id,
         outcome, search, content_hash, leaf_hash, body)
       SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
         $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bytea[], $13::text[])`,
      rows,
    );
  }
  if (nodes.level.length > 0) {
    await c.query(
      'INSERT INTO tree_nodes (level, idx, hash) SELECT * FROM unnest($1::int[], $2::bigint[], $3::bytea[])',
      [nodes.level, nodes.idx, nodes.hash],
    );
  }
  return outcomes;
}

function key(tenantId: string, eventId: string): string {
  return `${tenantId}\u0000${eventId}`;
}
