/**
 * Idempotency on PostgreSQL: each request of a group decided against the
 * keys `event_keys` holds and the group's earlier requests, for the
 * sequencer's commit (`postgres-writer.ts`) and a follower's
 * (`pending-batches.ts`) alike.
 */
import type { PoolClient } from 'pg';
import type { AppendOutcome, PreparedEvent } from '../store.js';
import { textArray } from './binary-array.js';

/** A request's result: its outcomes, or the index of its event that conflicted (nothing of it kept). */
export type RequestResult = AppendOutcome[] | number;

/** A new event of the group, with the `seq` it gets (null: left to the sequencer). */
export interface FreshEvent {
  prepared: PreparedEvent;
  seq: number | null;
}

/** What is known of a stored (or earlier in the group) event's key. */
export interface KnownKey {
  contentHash: string;
  seq: number | null;
}

/**
 * Decides each request against the keys already stored and the earlier
 * requests of the group: new, duplicate, or a conflict that drops the
 * request alone. New events get `seq` from `assign` (null: left to the
 * sequencer).
 */
export function decideRequests(
  requests: PreparedEvent[][],
  existing: Map<string, KnownKey>,
  assign: () => number | null,
): { results: RequestResult[]; fresh: FreshEvent[] } {
  const results: RequestResult[] = [];
  const fresh: FreshEvent[] = [];
  for (const events of requests) {
    const mine = new Map<string, KnownKey>();
    const outcomes: AppendOutcome[] = [];
    /** Repeats of an event earlier in this request: their seq is known once the request's seqs are. */
    const repeats: Array<{ outcome: AppendOutcome; k: string }> = [];
    const added: FreshEvent[] = [];
    let conflict = -1;
    for (const [index, prepared] of events.entries()) {
      const k = eventKey(prepared.event.tenant_id, prepared.event.event_id);
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
      mine.get(eventKey(a.prepared.event.tenant_id, a.prepared.event.event_id))!.seq = a.seq;
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
export async function existingKeys(
  c: PoolClient,
  requests: PreparedEvent[][],
): Promise<Map<string, KnownKey>> {
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
    found.rows.map((r) => [eventKey(r.tenant_id, r.event_id), { contentHash: r.content_hash, seq: r.seq }]),
  );
}

/** The map key of an event's (`tenant_id`, `event_id`). */
function eventKey(tenantId: string, eventId: string): string {
  return `${tenantId}\u0000${eventId}`;
}
