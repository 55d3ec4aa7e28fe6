import { performance } from 'node:perf_hooks';
import pg from 'pg';

/**
 * The SQL a first page of `GET /v1/events` amounts to, written by hand from
 * the request's query string (tenant, action prefix, time window, actor;
 * newest first, 100 rows): the bare-database baseline of a filtered read.
 */
export function bareSqlOf(path: string): { sql: string; params: unknown[] } {
  const q = new URL(path, 'http://x').searchParams;
  const clauses: string[] = [];
  const params: unknown[] = [];
  const p = (v: unknown) => {
    params.push(v);
    return `$${params.length}`;
  };
  const tenant = q.get('tenant_id');
  if (tenant !== null) clauses.push(`tenant_id = ${p(tenant)}`);
  const from = q.get('from');
  if (from !== null) clauses.push(`ts >= ${p(from)}`);
  const to = q.get('to');
  if (to !== null) clauses.push(`ts < ${p(to)}`);
  const action = q.get('action');
  if (action?.endsWith('.*')) {
    const prefix = action.slice(0, -1);
    clauses.push(`action >= ${p(prefix)} AND action < ${p(`${prefix}\uffff`)}`);
  } else if (action !== null) clauses.push(`action = ${p(action)}`);
  const actor = q.get('actor_id');
  if (actor !== null) clauses.push(`actor_id = ${p(actor)}`);
  const where = clauses.length === 0 ? 'true' : clauses.join(' AND ');
  return { sql: `SELECT body FROM events WHERE ${where} ORDER BY seq DESC LIMIT 100`, params };
}

/**
 * Runs the bare SQL of `count` paths (after `warmup`) one after another on
 * one connection; returns each one's latency in ms, and the plan of the
 * first (EXPLAIN ANALYZE, one line per node) to show which index served it.
 */
export async function bareSqlReads(
  url: string,
  count: number,
  warmup: number,
  path: () => string,
): Promise<{ latencies: number[]; plan: string[] }> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const first = bareSqlOf(path());
    const explained = await c.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN (ANALYZE, COSTS OFF) ${first.sql}`,
      first.params,
    );
    const plan = explained.rows.map((r) => r['QUERY PLAN']);
    const latencies: number[] = [];
    for (let k = 0; k < warmup + count; k++) {
      const { sql, params } = bareSqlOf(path());
      const t0 = performance.now();
      await c.query(sql, params);
      if (k >= warmup) latencies.push(performance.now() - t0);
    }
    return { latencies, plan };
  } finally {
    await c.end();
  }
}
