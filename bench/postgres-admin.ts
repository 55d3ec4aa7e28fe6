import { performance } from 'node:perf_hooks';
import pg from 'pg';

/** Runs `fn` on a fresh connection to `url`, closed afterwards. */
async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** The PostgreSQL settings that decide durability and memory, as the server reports them. */
export function serverSettings(url: string): Promise<string> {
  const names = [
    'server_version',
    'fsync',
    'synchronous_commit',
    'wal_level',
    'shared_buffers',
    'max_wal_size',
  ];
  return withClient(url, async (c) => {
    const parts: string[] = [];
    for (const n of names) parts.push(`${n}=${(await c.query(`SHOW ${n}`)).rows[0]?.[n]}`);
    return parts.join(', ');
  });
}

/** Bytes of the `events` table with its partitions and indexes. */
export function eventsBytes(url: string): Promise<number> {
  return withClient(url, async (c) => {
    const r = await c.query<{ b: string }>(
      `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) AS b FROM pg_class c
       WHERE c.relkind = 'r' AND (c.relname = 'events' OR c.oid IN (
         SELECT inhrelid FROM pg_inherits WHERE inhparent = 'events'::regclass))`,
    );
    return Number(r.rows[0]?.b ?? 0);
  });
}

/** Drops the database `url` names, connected to the cluster through `adminUrl`. */
export function dropDatabase(adminUrl: string, url: string): Promise<void> {
  return withClient(adminUrl, async (c) => {
    await c.query(`DROP DATABASE ${pg.escapeIdentifier(new URL(url).pathname.slice(1))}`);
  });
}

/** Seconds of `ANALYZE events`, so the planner knows the filled table (autovacuum would, later). */
export function analyzeEvents(url: string): Promise<number> {
  return withClient(url, async (c) => {
    const t0 = performance.now();
    await c.query('ANALYZE events');
    return (performance.now() - t0) / 1000;
  });
}

/**
 * Waits until the sequencer has taken every event other nodes acknowledged
 * (`pending_batches` empty, polled every 50 ms); resolves with the backlog
 * found at the call and the seconds it took to clear. The table is read
 * only to observe the store, never changed.
 */
export function drainPending(
  url: string,
  timeoutMs = 300_000,
): Promise<{ backlog: number; seconds: number }> {
  return withClient(url, async (c) => {
    const count = async () =>
      Number(
        (await c.query<{ n: string }>('SELECT COALESCE(sum(size), 0) AS n FROM pending_batches')).rows[0]
          ?.n ?? 0,
      );
    const t0 = performance.now();
    const backlog = await count();
    for (let left = backlog; left > 0; left = await count()) {
      if (performance.now() - t0 > timeoutMs)
        throw new Error(`${left} events still pending after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return { backlog, seconds: backlog === 0 ? 0 : (performance.now() - t0) / 1000 };
  });
}

/** Events sequenced so far (`log_head`). */
export function logHead(url: string): Promise<number> {
  return withClient(url, async (c) =>
    Number((await c.query<{ size: string }>('SELECT size FROM log_head')).rows[0]?.size ?? 0),
  );
}
