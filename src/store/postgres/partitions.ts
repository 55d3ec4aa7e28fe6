import type { Pool, PoolClient } from 'pg';
import { inTransaction } from './postgres-connection.js';

/** How many months ahead of the current one the sequencer keeps partitions ready. */
export const MONTHS_AHEAD = 2;

/** A month as `YYYY-MM` (UTC). */
export type Month = string;

function monthOf(d: Date): Month {
  return d.toISOString().slice(0, 7);
}

function nextMonth(m: Month): Month {
  const [y, mo] = m.split('-').map(Number) as [number, number];
  return mo === 12 ? `${y + 1}-01` : `${y}-${String(mo + 1).padStart(2, '0')}`;
}

/** Every month from the month of `first` to the month of `last`, plus {@link MONTHS_AHEAD} after it. */
export function monthsBetween(first: Date, last: Date): Month[] {
  const months: Month[] = [];
  let m = monthOf(first);
  let end = monthOf(last);
  for (let i = 0; i < MONTHS_AHEAD; i++) end = nextMonth(end);
  while (m <= end) {
    months.push(m);
    m = nextMonth(m);
  }
  return months;
}

/** The month a `received_at` (UTC ISO 8601) falls in. */
export function monthOfIso(iso: string): Month {
  return iso.slice(0, 7);
}

/** Partition table name of a month: `events_y2026m11`. */
export function partitionName(m: Month): string {
  return `events_y${m.slice(0, 4)}m${m.slice(5, 7)}`;
}

/**
 * Creates the monthly partitions of `events` that do not exist yet. Months
 * are bounded in UTC: a partition holds `received_at` in
 * [first instant of the month, first instant of the next).
 */
export async function ensureMonthlyPartitions(client: PoolClient, months: Month[]): Promise<void> {
  for (const m of months) {
    if (!/^\d{4}-\d{2}$/.test(m)) throw new Error(`not a month: ${m}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${partitionName(m)} PARTITION OF events
       FOR VALUES FROM ('${m}-01 00:00:00+00') TO ('${nextMonth(m)}-01 00:00:00+00')`,
    );
  }
}

/** The months that have a partition now. */
export async function existingMonths(client: PoolClient): Promise<Set<Month>> {
  const r = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i
     JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
     WHERE p.relname = 'events'`,
  );
  const months = new Set<Month>();
  for (const { name } of r.rows) {
    const m = /^events_y(\d{4})m(\d{2})$/.exec(name);
    if (m) months.add(`${m[1]}-${m[2]}`);
  }
  return months;
}

/**
 * Creates this month's and the next months' partitions if missing (the
 * sequencer, on taking the lease and every hour), and adds every month that
 * has one to `known`.
 */
export async function prepareMonthlyPartitions(pool: Pool, known: Set<Month>): Promise<void> {
  await inTransaction(pool, async (c) => {
    // Creating a partition briefly locks `events`: never queue behind a long query for it.
    await c.query("SET LOCAL lock_timeout = '2s'");
    const have = await existingMonths(c);
    const want = monthsBetween(new Date(), new Date()).filter((m) => !have.has(m));
    await ensureMonthlyPartitions(c, want);
    for (const m of [...have, ...want]) known.add(m);
  });
}
