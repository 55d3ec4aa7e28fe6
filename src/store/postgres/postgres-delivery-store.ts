import type { Pool, PoolClient, QueryResultRow } from 'pg';
import { type DeadLetterRow, type SinkStateRow, toDeadLetter, toSinkState } from '../delivery-rows.js';
import type {
  CursorMove,
  DeadLetter,
  DeadLetterInput,
  DeliveryStore,
  LeaseRecord,
  SinkConfigRecord,
  SinkState,
} from '../store.js';
import { acquireLease, leaseHolder, releaseLease } from './leases.js';
import { inTransaction, toStoreError } from './postgres-connection.js';

interface ConfigRow {
  name: string;
  config: string;
  tenant_id: string | null;
  created_at: string;
  updated_at: string;
}

/**
 * Delivery state of a `PostgresStore`. Cursors move by compare-and-set
 * (`UPDATE … WHERE name = $1 AND cursor = $2`), with dead letters parked in
 * the same transaction. Writes from one store instance run one at a time in
 * the order they were issued (as the SQLite writer applies them), so
 * concurrent compare-and-sets from one process see each other in order;
 * across processes the database row decides.
 */
export class PostgresDeliveryStore implements DeliveryStore {
  /** Tail of this instance's write queue. */
  private writes: Promise<unknown> = Promise.resolve();

  constructor(private readonly pool: Pool) {}

  private async query<R extends QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
    try {
      return (await this.pool.query<R>(sql, params)).rows;
    } catch (err) {
      throw toStoreError(err);
    }
  }

  /** Queues a write behind the ones already issued by this instance. */
  private write<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    const run = this.writes.then(() => inTransaction(this.pool, fn));
    this.writes = run.catch(() => undefined);
    return run;
  }

  async listSinkConfigs(): Promise<SinkConfigRecord[]> {
    const rows = await this.query<ConfigRow>('SELECT * FROM sink_configs ORDER BY name');
    return rows.map((r) => ({
      name: r.name,
      config: r.config,
      tenantId: r.tenant_id,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    }));
  }

  async putSinkConfig(r: SinkConfigRecord): Promise<void> {
    await this.write((c) =>
      c.query(
        `INSERT INTO sink_configs (name, config, tenant_id, created_at, updated_at) VALUES ($1,$2,$3,$4,$5)
         ON CONFLICT (name) DO UPDATE SET config = excluded.config, tenant_id = excluded.tenant_id,
           updated_at = excluded.updated_at`,
        [r.name, r.config, r.tenantId, r.createdAt, r.updatedAt],
      ),
    );
  }

  deleteSinkConfig(name: string): Promise<boolean> {
    return this.write(
      async (c) => (await c.query('DELETE FROM sink_configs WHERE name = $1', [name])).rowCount === 1,
    );
  }

  ensureSinkState(name: string, initialCursor: number): Promise<SinkState> {
    const now = new Date().toISOString();
    return this.write(async (c) => {
      await c.query(
        'INSERT INTO sink_states (name, cursor, updated_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING',
        [name, initialCursor, now],
      );
      const r = await c.query<SinkStateRow>('SELECT * FROM sink_states WHERE name = $1', [name]);
      return toSinkState(r.rows[0]!);
    });
  }

  async getSinkState(name: string): Promise<SinkState | undefined> {
    // Behind this instance's queued writes, so a read after a move sees it.
    await this.writes;
    const [row] = await this.query<SinkStateRow>('SELECT * FROM sink_states WHERE name = $1', [name]);
    return row ? toSinkState(row) : undefined;
  }

  moveSinkCursor(
    name: string,
    expected: number,
    next: number,
    opts: { inflightTo?: number | null; park?: DeadLetterInput[]; epochBump?: boolean } = {},
  ): Promise<CursorMove> {
    const now = new Date().toISOString();
    return this.write(async (c): Promise<CursorMove> => {
      const moved = await c.query<SinkStateRow>(
        `UPDATE sink_states SET cursor = $1, inflight_to = $2, epoch = epoch + $3, updated_at = $4
         WHERE name = $5 AND cursor = $6 RETURNING *`,
        [next, opts.inflightTo ?? null, opts.epochBump ? 1 : 0, now, name, expected],
      );
      const state = moved.rows[0];
      if (state === undefined) {
        const r = await c.query<{ cursor: number }>('SELECT cursor FROM sink_states WHERE name = $1', [name]);
        return { ok: false, actual: r.rows[0]?.cursor };
      }
      const park = opts.park ?? [];
      if (park.length > 0) {
        await c.query(
          `INSERT INTO dead_letters (sink, seq, event_id, reason, attempts, parked_at, last_attempt_at)
           SELECT $1, p.seq, p.event_id, p.reason, p.attempts, $2, $2
           FROM unnest($3::bigint[], $4::text[], $5::text[], $6::int[]) WITH ORDINALITY
             AS p(seq, event_id, reason, attempts, n)
           ORDER BY p.n`,
          [
            name,
            now,
            park.map((l) => l.seq),
            park.map((l) => l.eventId),
            park.map((l) => l.reason),
            park.map((l) => l.attempts),
          ],
        );
      }
      return { ok: true, state: toSinkState(state) };
    });
  }

  async setSinkFlags(
    name: string,
    flags: { paused?: boolean; disabledReason?: string | null },
  ): Promise<void> {
    const now = new Date().toISOString();
    await this.write(async (c) => {
      if (flags.paused !== undefined) {
        await c.query('UPDATE sink_states SET paused = $1, updated_at = $2 WHERE name = $3', [
          flags.paused,
          now,
          name,
        ]);
      }
      if (flags.disabledReason !== undefined) {
        await c.query('UPDATE sink_states SET disabled_reason = $1, updated_at = $2 WHERE name = $3', [
          flags.disabledReason,
          now,
          name,
        ]);
      }
    });
  }

  async deleteSinkState(name: string): Promise<void> {
    await this.write(async (c) => {
      await c.query('DELETE FROM sink_states WHERE name = $1', [name]);
      await c.query('DELETE FROM dead_letters WHERE sink = $1', [name]);
    });
  }

  async listDeadLetters(sink: string, page: { afterId?: number; limit: number }): Promise<DeadLetter[]> {
    await this.writes;
    const rows = await this.query<DeadLetterRow>(
      'SELECT * FROM dead_letters WHERE sink = $1 AND id > $2 ORDER BY id LIMIT $3',
      [sink, page.afterId ?? 0, page.limit],
    );
    return rows.map(toDeadLetter);
  }

  async getDeadLetters(sink: string, ids: number[]): Promise<DeadLetter[]> {
    if (ids.length === 0) return [];
    await this.writes;
    const rows = await this.query<DeadLetterRow>(
      'SELECT * FROM dead_letters WHERE sink = $1 AND id = ANY($2::bigint[]) ORDER BY id',
      [sink, ids],
    );
    return rows.map(toDeadLetter);
  }

  async countDeadLetters(sink: string): Promise<number> {
    await this.writes;
    const [row] = await this.query<{ n: number }>('SELECT COUNT(*) AS n FROM dead_letters WHERE sink = $1', [
      sink,
    ]);
    return row?.n ?? 0;
  }

  removeDeadLetters(sink: string, ids: number[]): Promise<number> {
    if (ids.length === 0) return Promise.resolve(0);
    return this.write(
      async (c) =>
        (await c.query('DELETE FROM dead_letters WHERE sink = $1 AND id = ANY($2::bigint[])', [sink, ids]))
          .rowCount ?? 0,
    );
  }

  async recordDeadLetterAttempt(sink: string, id: number, reason: string): Promise<void> {
    const now = new Date().toISOString();
    await this.write((c) =>
      c.query(
        `UPDATE dead_letters SET attempts = attempts + 1, reason = $1, last_attempt_at = $2, redrive_requested_at = NULL
         WHERE sink = $3 AND id = $4`,
        [reason, now, sink, id],
      ),
    );
  }

  requestRedrive(sink: string, ids: number[], at: string): Promise<DeadLetter[]> {
    if (ids.length === 0) return Promise.resolve([]);
    return this.write(async (c) =>
      (
        await c.query<DeadLetterRow>(
          'UPDATE dead_letters SET redrive_requested_at = $1 WHERE sink = $2 AND id = ANY($3::bigint[]) RETURNING *',
          [at, sink, ids],
        )
      ).rows
        .map(toDeadLetter)
        .sort((x, y) => x.id - y.id),
    );
  }

  async redriveRequests(sink: string, limit: number): Promise<DeadLetter[]> {
    const rows = await this.query<DeadLetterRow>(
      'SELECT * FROM dead_letters WHERE sink = $1 AND redrive_requested_at IS NOT NULL ORDER BY id LIMIT $2',
      [sink, limit],
    );
    return rows.map(toDeadLetter);
  }

  // Leases bypass the write queue: a renewal must not wait behind a slow
  // cursor move, or a busy node would lose its leases.

  async acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    try {
      return await acquireLease(this.pool, name, holder, ttlMs);
    } catch (err) {
      throw toStoreError(err);
    }
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    try {
      await releaseLease(this.pool, name, holder);
    } catch (err) {
      throw toStoreError(err);
    }
  }

  async leaseHolder(name: string): Promise<LeaseRecord | undefined> {
    try {
      return await leaseHolder(this.pool, name);
    } catch (err) {
      throw toStoreError(err);
    }
  }

  /** Resolves once every write issued so far has settled. */
  drained(): Promise<void> {
    return this.writes.then(() => undefined);
  }
}
