import type { Pool, PoolClient } from 'pg';
import type { LeaseRecord } from '../store.js';

/**
 * The `leases` table: a named lease has one holder until it expires. Expiry
 * is judged by the database clock (`now()`), never a node's, so nodes with
 * skewed clocks still agree on who holds what.
 */

type Db = Pool | PoolClient;

/** Takes the lease when free or expired, renews it when `holder` has it; true when `holder` holds it afterwards. */
export async function acquireLease(db: Db, name: string, holder: string, ttlMs: number): Promise<boolean> {
  const r = await db.query(
    `INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, now() + interval '1 millisecond' * $3::float8)
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
     WHERE leases.holder = excluded.holder OR leases.expires_at < now()
     RETURNING holder`,
    [name, holder, Math.round(ttlMs)],
  );
  return r.rowCount === 1;
}

/** Gives the lease up if `holder` has it; `notify` names a channel told about it, so others need not wait for expiry. */
export async function releaseLease(db: Db, name: string, holder: string, notify?: string): Promise<void> {
  if (notify === undefined) {
    await db.query('DELETE FROM leases WHERE name = $1 AND holder = $2', [name, holder]);
    return;
  }
  await db.query(
    `WITH gone AS (DELETE FROM leases WHERE name = $1 AND holder = $2 RETURNING name)
     SELECT pg_notify($3, name) FROM gone`,
    [name, holder, notify],
  );
}

/** Who holds the lease now, if anyone. */
export async function leaseHolder(db: Db, name: string): Promise<LeaseRecord | undefined> {
  const r = await db.query<{ holder: string; expires_at: Date }>(
    'SELECT holder, expires_at FROM leases WHERE name = $1 AND expires_at >= now()',
    [name],
  );
  const row = r.rows[0];
  return row && { holder: row.holder, expiresAt: row.expires_at.toISOString() };
}

/** Milliseconds until the lease expires by the database clock (0 when free or expired). */
export async function leaseRemainingMs(db: Db, name: string): Promise<number> {
  const r = await db.query<{ ms: number }>(
    'SELECT GREATEST(0, EXTRACT(EPOCH FROM expires_at - now()) * 1000)::int AS ms FROM leases WHERE name = $1',
    [name],
  );
  return r.rows[0]?.ms ?? 0;
}
