import { performance } from 'node:perf_hooks';
import { finished } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { BARE_COLUMNS, bareEventRows } from './dataset.js';

/** The scratch table the bare baselines write into; dropped afterwards. */
const BARE_TABLE = 'bench_bare';

/** Rows/s of a bare baseline (multi-row INSERT or COPY), and how the scratch table was made. */
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

/** The options every bare baseline takes. */
export interface BareOptions {
  /** Rows per statement (INSERT) or per COPY; each is its own transaction. */
  perStatement: number;
  /** Connections writing at once. */
  connections: number;
  durationMs: number;
}

/** A fresh {@link BARE_TABLE}, the connections to write to it, and the rows to write. */
interface BareTable {
  /** Made the table; drops it afterwards. Not one of {@link BareTable.clients}. */
  admin: pg.Client;
  clients: pg.Client[];
  /** The columns the bench fills, in the order of every row {@link BareTable.nextRows} gives. */
  columns: Column[];
  /** The next `n` rows of `bareEventRows`, each with the next `seq` and a unique `event_id`. */
  nextRows(n: number): unknown[][];
}

/** One statement's rows (each in {@link BareTable.columns} order) written on one connection. */
type BareWrite = (c: pg.Client, rows: unknown[][]) => Promise<void>;

/**
 * Creates {@link BARE_TABLE}, reads its columns, connects `connections`
 * clients, runs `measure` (which returns rows/s) and drops the table: what
 * the INSERT and COPY baselines share, so both write the same rows into the
 * same table.
 */
async function onBareTable(
  url: string,
  connections: number,
  measure: (t: BareTable) => Promise<number>,
): Promise<PostgresBaseline> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  const clients: pg.Client[] = [];
  try {
    const made = await createBareTable(admin);
    const all = await columnsOf(admin, BARE_TABLE);
    // `received_at` is the partition key of events (store/postgres/schema.ts); every bare row is received now.
    const known = new Set<string>(['seq', 'received_at', ...BARE_COLUMNS]);
    const unknown = all.filter((col) => !known.has(col.name) && col.notNull && !col.hasDefault);
    if (unknown.length > 0) {
      throw new Error(`events has columns the bench does not fill: ${unknown.map((u) => u.name).join(', ')}`);
    }
    const columns = all.filter((col) => known.has(col.name));
    const source = bareEventRows();
    const at = (name: string) => BARE_COLUMNS.indexOf(name as (typeof BARE_COLUMNS)[number]);
    let seq = 0;
    const receivedAt = new Date().toISOString();
    const nextRows = (n: number) =>
      Array.from({ length: n }, () => {
        seq += 1;
        const row = source[seq % source.length]!;
        return columns.map((col) =>
          col.name === 'seq'
            ? seq
            : col.name === 'received_at'
              ? receivedAt
              : col.name === 'event_id'
                ? `${row[0]}_${seq}`
                : row[at(col.name)],
        );
      });
    for (let k = 0; k < connections; k++) {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      clients.push(c);
    }
    const rowsPerSecond = await measure({ admin, clients, columns, nextRows });
    await admin.query(`DROP TABLE ${BARE_TABLE}`);
    return { rowsPerSecond, tableFrom: made.from, indexes: made.indexes };
  } finally {
    for (const c of clients) await c.end().catch(() => undefined);
    await admin.end().catch(() => undefined);
  }
}

/** Runs `write` back to back on every client for `durationMs`, `perStatement` rows each time; rows/s. */
async function timedWrites(
  t: BareTable,
  opts: { perStatement: number; durationMs: number },
  write: BareWrite,
): Promise<number> {
  const start = performance.now();
  const end = start + opts.durationMs;
  let rows = 0;
  await Promise.all(
    t.clients.map(async (c) => {
      while (performance.now() < end) {
        await write(c, t.nextRows(opts.perStatement));
        rows += opts.perStatement;
      }
    }),
  );
  return (rows * 1000) / (performance.now() - start);
}

/** Rows as one array per column, for `unnest($1::type[], …)`. */
function columnArrays(columns: Column[], rows: unknown[][]): unknown[][] {
  return columns.map((_, i) => rows.map((row) => row[i]));
}

/** `unnest(…)` of {@link columnArrays}' parameters, typed as the columns are. */
function unnestOf(columns: Column[]): string {
  return `unnest(${columns.map((col, i) => `$${i + 1}::${col.type}[]`).join(', ')})`;
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
export function barePostgresInserts(url: string, opts: BareOptions): Promise<PostgresBaseline> {
  return onBareTable(url, opts.connections, (t) => {
    const sql = `INSERT INTO ${BARE_TABLE} (${t.columns.map((col) => col.name).join(', ')})
      SELECT * FROM ${unnestOf(t.columns)}`;
    return timedWrites(t, opts, async (c, rows) => {
      await c.query(sql, columnArrays(t.columns, rows));
    });
  });
}

/**
 * Baseline: the same rows into the same scratch table as
 * {@link barePostgresInserts}, by `COPY bench_bare (…) FROM STDIN` in
 * PostgreSQL's text format (pg-copy-streams; `pg` has no COPY of its own) —
 * `perStatement` rows per COPY, each COPY its own transaction (autocommit,
 * one WAL flush each), from `connections` connections at once, for
 * `durationMs`. After the timed part the rows are read back and compared
 * (see {@link expectStored}); the table is dropped afterwards.
 */
export function barePostgresCopy(url: string, opts: BareOptions): Promise<PostgresBaseline> {
  return onBareTable(url, opts.connections, async (t) => {
    const sql = `COPY ${BARE_TABLE} (${t.columns.map((col) => col.name).join(', ')}) FROM STDIN`;
    const copy: BareWrite = async (c, rows) => {
      const stream = c.query(copyFrom(sql));
      stream.end(Buffer.from(rows.map(copyTextRow).join(''), 'utf8'));
      await finished(stream);
    };
    let first: unknown[][] | undefined;
    const rowsPerSecond = await timedWrites(t, opts, (c, rows) => {
      first ??= rows;
      return copy(c, rows);
    });
    // No bench code has unit tests, so the encoder is checked here, in every run: the first timed COPY's
    // rows, and one untimed row holding every character it escapes, must read back as the values bound
    // as parameters (pg's own encoding, which the INSERT baseline uses) — else the figure is not trusted.
    const edge = edgeRow(t);
    await copy(t.admin, [edge]);
    await expectStored(t, [...(first ?? []), edge]);
    return rowsPerSecond;
  });
}

/** COPY text format's backslash escapes (PostgreSQL docs, COPY, "Text Format"). */
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/**
 * One value in COPY's text format: `\N` for null, bytea as `\\x<hex>` (the
 * hex input form, its backslash escaped), a Date as its ISO string, text
 * with backslash, tab, newline and carriage return escaped.
 */
function copyTextValue(value: unknown): string {
  if (value === null || value === undefined) return '\\N';
  if (Buffer.isBuffer(value)) return `\\\\x${value.toString('hex')}`;
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'string') return value.replace(/[\\\t\n\r]/g, (ch) => COPY_ESCAPES[ch]!);
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean')
    return String(value);
  throw new Error(`no COPY text form for a ${typeof value}`);
}

/** One row in COPY's text format: values tab-separated, newline-terminated. */
function copyTextRow(row: unknown[]): string {
  return `${row.map(copyTextValue).join('\t')}\n`;
}

/**
 * The next row, with every nullable column null and every other text
 * column carrying each character COPY's text format escapes, plus `\.`
 * (end of data when alone on a line), a literal `\N` and non-ASCII.
 */
function edgeRow(t: BareTable): unknown[] {
  const edge = ' \\ \t \n \r \r\n \\. \\N ü € 😀 ';
  return t.nextRows(1)[0]!.map((value, i) => {
    const col = t.columns[i]!;
    if (!col.notNull) return null;
    return col.type === 'text' ? `${String(value)}${edge}` : value;
  });
}

/** Throws unless every row is stored in {@link BARE_TABLE} with exactly these column values. */
async function expectStored(t: BareTable, rows: unknown[][]): Promise<void> {
  const names = t.columns.map((col) => col.name);
  const r = await t.admin.query<Record<string, string>>(
    `SELECT count(b.seq) AS found,
            ${names.map((n) => `count(*) FILTER (WHERE b.${n} IS DISTINCT FROM s.${n}) AS ${n}`).join(',\n')}
     FROM ${unnestOf(t.columns)} AS s(${names.join(', ')})
     LEFT JOIN ${BARE_TABLE} b ON b.seq = s.seq`,
    columnArrays(t.columns, rows),
  );
  const got = r.rows[0]!;
  const differ = names.filter((n) => Number(got[n]) !== 0);
  if (Number(got['found']) !== rows.length || differ.length > 0) {
    throw new Error(
      `COPY stored ${got['found']} of ${rows.length} rows read back; columns that differ: ${differ.join(', ') || 'none'}`,
    );
  }
}
