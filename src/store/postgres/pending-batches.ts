/**
 * The follower's side of `pending_batches`: a node that does not hold the
 * sequencer lease commits its appends there for the sequencer
 * (`commitPending`), one row per commit of about a sequencing group's size,
 * and holds new appends while too many wait.
 */
import { performance } from 'node:perf_hooks';
import type { Pool, PoolClient } from 'pg';
import { TrailwardenError } from '../../errors.js';
import type { PreparedEvent } from '../store.js';
import { textArray } from './binary-array.js';
import { decideRequests, existingKeys, type FreshEvent, type RequestResult } from './decide-requests.js';
import { onClient, RetryableConflict, toStoreError } from './postgres-connection.js';

/** NOTIFY channel on which a node announces events it acknowledged for the sequencer. */
export const PENDING_CHANNEL = 'trailwarden_pending';

/** A follower's commit waiting for the sequencer: its events as a JSON array. */
export interface PendingBatch {
  id: number;
  received_at: string;
  events: string;
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
    let decided = decideRequests(requests, new Map(), () => null);
    if (!(await queuePending(c, decided.fresh))) {
      await c.query('ROLLBACK');
      await c.query('BEGIN');
      decided = decideRequests(requests, await existingKeys(c, requests), () => null);
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
async function queuePending(c: PoolClient, fresh: FreshEvent[]): Promise<boolean> {
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

/** About the most events one follower commit hands over as one `pending_batches` row (a request is never split). */
const PENDING_BATCH_EVENTS = 1000;

/**
 * The queued requests for one follower commit, taken off `queue`: whole
 * requests, oldest first, until PENDING_BATCH_EVENTS events (at least one
 * request). The commit becomes one `pending_batches` row, which the
 * sequencer takes whole, so it is kept about the size of a sequencing group.
 */
export function takeForPendingBatch<T extends { events: unknown[] }>(queue: T[]): T[] {
  let events = 0;
  let n = 0;
  while (n < queue.length && (n === 0 || events < PENDING_BATCH_EVENTS)) events += queue[n++]!.events.length;
  return queue.splice(0, n);
}

/**
 * Events acknowledged by other nodes and not yet sequenced beyond which a
 * node waits before acknowledging more: about half a second of the
 * sequencer's work on a small machine, so acknowledged events stay visible
 * everywhere within the latency budget even when followers outpace it.
 */
const MAX_PENDING_BACKLOG = 5000;
/** A follower's append waits this long for room (the default lease time: a takeover), then gets a 503. */
const PENDING_WAIT_MS = 10_000;
/** How often a waiting follower reads the backlog again. */
const BACKLOG_REFRESH_MS = 100;

/** The limits of {@link PendingBacklog}. */
export interface BacklogOptions {
  /** `cluster.max_pending_events` (default {@link MAX_PENDING_BACKLOG}). */
  maxPendingBacklog?: number;
  /** `cluster.pending_wait_ms` (default {@link PENDING_WAIT_MS}). */
  pendingWaitMs?: number;
}

/**
 * Flow control for a node that is not the sequencer: while more than
 * `maxPendingBacklog` events wait in `pending_batches`, appends wait rather
 * than pile up there (the sequencer fell behind, or no node holds the
 * lease), so what a node acknowledges becomes visible within a bounded
 * time. After `pendingWaitMs` without room they are refused with a 503
 * and Retry-After.
 */
export class PendingBacklog {
  /** Events waiting in `pending_batches` when last counted, and when that was (performance.now()). */
  private backlog = 0;
  private backlogReadAt = Number.NEGATIVE_INFINITY;
  private readonly maxPendingBacklog: number;
  private readonly pendingWaitMs: number;

  /** @param node whether this instance sequences now, and whether its store is closing. */
  constructor(
    private readonly pool: Pool,
    opts: BacklogOptions,
    private readonly node: { sequencing(): boolean; closing(): boolean },
  ) {
    this.maxPendingBacklog = opts.maxPendingBacklog ?? MAX_PENDING_BACKLOG;
    this.pendingWaitMs = opts.pendingWaitMs ?? PENDING_WAIT_MS;
  }

  /**
   * Resolves true once there is room (or the store is closing), false when
   * this instance became the sequencer meanwhile; throws the 503 after
   * `pendingWaitMs`.
   */
  async room(): Promise<boolean> {
    const started = performance.now();
    for (;;) {
      if (this.node.sequencing()) return false;
      if (this.node.closing()) return true;
      const now = performance.now();
      if (now - this.backlogReadAt >= BACKLOG_REFRESH_MS) {
        this.backlog = await this.read();
        this.backlogReadAt = performance.now();
      }
      if (this.backlog < this.maxPendingBacklog) return true;
      if (now - started >= this.pendingWaitMs) {
        throw new TrailwardenError(
          'TW_ERR_NOT_READY',
          `${this.backlog} acknowledged events are waiting for the sequencer (more than ${this.maxPendingBacklog}); nothing was stored — retry shortly, and check that a node holds the sequencer lease (GET /readyz)`,
          { headers: { 'retry-after': '1' } },
        );
      }
      await new Promise((r) => setTimeout(r, BACKLOG_REFRESH_MS));
    }
  }

  /** Events waiting in `pending_batches` now. */
  private async read(): Promise<number> {
    try {
      const r = await this.pool.query<{ n: number }>(
        'SELECT COALESCE(sum(size), 0)::bigint AS n FROM pending_batches',
      );
      return Number(r.rows[0]?.n ?? 0);
    } catch (err) {
      throw toStoreError(err);
    }
  }
}
