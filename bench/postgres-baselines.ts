import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { BARE_COLUMNS, bareEventRows } from './dataset.js';

/** The scratch table the bare baselines write into; dropped afterwards. */
const BARE_TABLE = 'bench_bare';

/** Rows/s of bare multi-row INSERTs, and how the scratch table was made. */
export interface PostgresBaseline {
  rowsPerSecond: number;
  /** `LIKE events` or `LIKE <partition>`, and the indexes the copy has. */
  tableFrom: string;
  indexes: number;
}

interface Column {
  name: string;
  type: string;
  notNull: boolean;
  hasDefault: boolean;
}

/**
 * Creates {@link BARE_TABLE} with the columns and indexes of `events` as the
 * catalog has them now: `LIKE events INCLUDING ALL`, which PostgreSQL 15 also
 * accepts for a partitioned `events` (the copy is a plain table with the
 * partitioned indexes as ordinary ones). When the copy lacks indexes the
 * parent has (or LIKE fails), it is made LIKE the newest partition instead.
 */
async function createBareTable(c: pg.Client): Promise<{ from: string; indexes: number }> {
  const count = async (table: string) =>
    Number(
      (await c.query<{ n: string }>('SELECT count(*) AS n FROM pg_indexes WHERE tablename = $1', [table]))
        .rows[0]?.n ?? 0,
    );
  const wanted = await count('events');
  await c.query(`DROP TABLE IF EXISTS ${BARE_TABLE}`);
  try {
    await c.query(`CREATE TABLE ${BARE_TABLE} (LIKE events INCLUDING ALL)`);
    const got = await count(BARE_TABLE);
    if (got >= wanted) return { from: 'LIKE events INCLUDING ALL', indexes: got };
    await c.query(`DROP TABLE ${BARE_TABLE}`);
  } catch {
    await c.query(`DROP TABLE IF EXISTS ${BARE_TABLE}`);
  }
  const part = await c.query<{ name: string }>(
    `SELECT child.relname AS name FROM pg_inherits i
       JOIN pg_class child ON child.oid = i.inhrelid JOIN pg_class parent ON parent.oid = i.inhparent
     WHERE parent.relname = 'events' ORDER BY child.relname DESC LIMIT 1`,
  );
  const name = part.rows[0]?.name;
  if (name === undefined)
    throw new Error('cannot copy the shape of events: LIKE failed and it has no partition');
  await c.query(`CREATE TABLE ${BARE_TABLE} (LIKE ${pg.escapeIdentifier(name)} INCLUDING ALL)`);
  return { from: `LIKE ${name} INCLUDING ALL`, indexes: await count(BARE_TABLE) };
}

/** The scratch table's columns, read from the catalog, in column order. */
async function columnsOf(c: pg.Client, table: string): Promise<Column[]> {
  const r = await c.query<{ name: string; type: string; not_null: boolean; has_default: boolean }>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
            a.attnotnull AS not_null, a.atthasdef OR a.attidentity <> '' AS has_default
     FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
     ORDER BY a.attnum`,
    [table],
  );
  return r.rows.map((row) => ({
    name: row.name,
    type: row.type,
    notNull: row.not_null,
    hasDefault: row.has_default,
  }));
}

/**
 * Baseline: bare multi-row INSERTs of the rows the store would write
 * (`bareEventRows`) into a scratch copy of `events` (same columns, types and
 * indexes, read from the catalog at run time) — `perStatement` rows per
 * `INSERT … SELECT FROM unnest(…)`, each statement its own transaction
 * (autocommit, so one WAL flush each), from `connections` connections at
 * once, for `durationMs`. No validation, hashing, Merkle tree, sequencing
 * or HTTP: what PostgreSQL alone costs for these rows. The table is dropped
 * afterwards.
 */
export async function barePostgresInserts(
  url: string,
  opts: { perStatement: number; connections: number; durationMs: number },
): Promise<PostgresBaseline> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  const clients: pg.Client[] = [];
  try {
    const made = await createBareTable(admin);
    const columns = await columnsOf(admin, BARE_TABLE);
    // `received_at` is the partition key of events (store/postgres/schema.ts); every bare row is received now.
    const known = new Set<string>(['seq', 'received_at', ...BARE_COLUMNS]);
    const unknown = columns.filter((col) => !known.has(col.name) && col.notNull && !col.hasDefault);
    if (unknown.length > 0) {
      throw new Error(`events has columns the bench does not fill: ${unknown.map((u) => u.name).join(', ')}`);
    }
    const filled = columns.filter((col) => known.has(col.name));
    const sql = `INSERT INTO ${BARE_TABLE} (${filled.map((col) => col.name).join(', ')})
      SELECT * FROM unnest(${filled.map((col, i) => `$${i + 1}::${col.type}[]`).join(', ')})`;
    const source = bareEventRows();
    const at = (name: string) => BARE_COLUMNS.indexOf(name as (typeof BARE_COLUMNS)[number]);
    let seq = 0;
    const receivedAt = new Date().toISOString();
    const nextParams = () => {
      const params: unknown[][] = filled.map(() => []);
      for (let k = 0; k < opts.perStatement; k++) {
        seq += 1;
        const row = source[seq % source.length]!;
        filled.forEach((col, i) => {
          if (col.name === 'seq') params[i]!.push(seq);
          else if (col.name === 'received_at') params[i]!.push(receivedAt);
          else if (col.name === 'event_id') params[i]!.push(`${row[0]}_${seq}`);
          else params[i]!.push(row[at(col.name)]);
        });
      }
      return params;
    };
    for (let k = 0; k < opts.connections; k++) {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      clients.push(c);
    }
    const start = performance.now();
    const end = start + opts.durationMs;
    let rows = 0;
    await Promise.all(
      clients.map(async (c) => {
        while (performance.now() < end) {
          await c.query(sql, nextParams());
          rows += opts.perStatement;
        }
      }),
    );
    const elapsed = performance.now() - start;
    await admin.query(`DROP TABLE ${BARE_TABLE}`);
    return { rowsPerSecond: (rows * 1000) / elapsed, tableFrom: made.from, indexes: made.indexes };
  } finally {
    for (const c of clients) await c.end().catch(() => undefined);
    await admin.end().catch(() => undefined);
  }
}
