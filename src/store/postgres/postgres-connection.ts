import pg from 'pg';
import { TrailwardenError } from '../../errors.js';

/** Default number of connections a store keeps to PostgreSQL. */
export const DEFAULT_POOL_SIZE = 10;

const INT8_OID = 20;

/** How long getting a connection may take before the request is answered 503. */
const CONNECT_TIMEOUT_MS = 5000;

/**
 * BIGINT columns (seq, cursors, counts) come back as JS numbers: every value
 * Trailwarden stores there is a safe integer. Per pool, so other users of
 * `pg` in the process keep the driver's default.
 */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary'
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** A pool on `connectionString` whose errors on idle clients never crash the process. */
export function createPool(connectionString: string, poolSize: number): pg.Pool {
  // A database that does not answer at all (a cut network) must give a 503, not a request that hangs.
  const pool = new pg.Pool({
    connectionString,
    max: poolSize,
    types,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    keepAlive: true,
  });
  // An idle client losing its connection (server restart) is dropped by the pool;
  // the next query reports the outage to its caller.
  pool.on('error', () => undefined);
  return pool;
}

/** A standalone client (LISTEN needs one connection for its lifetime). */
export function createClient(connectionString: string): pg.Client {
  return new pg.Client({
    connectionString,
    types,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    keepAlive: true,
  });
}

/** SQLSTATE classes and socket errors meaning the server cannot be reached or is going away. */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EPIPE',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
]);

/** Is this error PostgreSQL being unreachable, rather than a bad statement? */
export function isUnreachable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (UNREACHABLE_CODES.has(code) || code.startsWith('08'))) return true;
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
    err.message,
  );
}

/**
 * A write lost a race with another node in a way a fresh attempt resolves: a
 * serialization failure, a deadlock, or an event key claimed meanwhile.
 */
export class RetryableConflict extends Error {
  readonly code = 'TW_RETRYABLE_CONFLICT';
}

const RETRYABLE_CODES = new Set(['40001', '40P01', 'TW_RETRYABLE_CONFLICT']);

/** Is this a failure that a new attempt of the same transaction may not meet (nothing of it was kept)? */
export function isRetryable(err: unknown): boolean {
  // A TrailwardenError made by toStoreError keeps the driver's error as its cause.
  const cause = err instanceof TrailwardenError ? err.cause : err;
  const code = (cause as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && RETRYABLE_CODES.has(code);
}

/** Attempts of one transaction that lost a race another node caused (serialization, a key taken). */
const RACE_ATTEMPTS = 5;

/** Runs a transaction again when it lost a race with another node; nothing of a failed attempt was kept. */
export async function retryingRaces<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if (attempt >= RACE_ATTEMPTS || !isRetryable(err)) throw err;
      await new Promise((r) => setTimeout(r, 5 * attempt));
    }
  }
}

/** Why PostgreSQL cannot take this request now, when it is a passing condition rather than a bad request. */
function unavailableReason(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  if (isUnreachable(err)) {
    return `PostgreSQL is unreachable (${err.message}); retry shortly, and check that the database is running`;
  }
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string') return undefined;
  if (isRetryable(err)) {
    return `PostgreSQL could not commit this write beside concurrent ones (${err.message}); nothing was stored, retry it`;
  }
  if (code === '57014') {
    return `a PostgreSQL statement was cancelled or timed out (${err.message}); nothing was stored, retry it`;
  }
  if (code.startsWith('53')) {
    return `PostgreSQL is out of resources (${err.message}: disk, memory or connections); nothing was stored — retry later, and tell the database's operator`;
  }
  if (code === '25006') {
    return `PostgreSQL accepts no writes (${err.message}: a read-only or standby server); retry once the primary is back`;
  }
  return undefined;
}

/**
 * Turns passing database conditions (unreachable, out of disk, a statement
 * timeout, a lost race that retries did not win) into `TW_ERR_NOT_READY`
 * (503 with Retry-After); other errors pass unchanged.
 */
export function toStoreError(err: unknown): unknown {
  if (err instanceof TrailwardenError) return err;
  const why = unavailableReason(err);
  if (why === undefined) return err;
  return new TrailwardenError('TW_ERR_NOT_READY', why, { headers: { 'retry-after': '1' }, cause: err });
}

/**
 * Runs `fn` on a pooled client; `fn` begins and commits its transaction
 * itself (so it can send BEGIN and COMMIT together with other statements).
 * If `fn` throws, whatever transaction is open is rolled back.
 */
export async function onClient<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw toStoreError(err);
  }
  let broken = false;
  // pg-pool takes its error listener off a client while it is checked out,
  // and a client whose connection drops emits 'error' even when a query is
  // running: with no listener that crashes the process (PostgreSQL
  // restarting would kill every node). The running query fails as well, so
  // the transaction reports the outage through it.
  const onError = () => {
    broken = true;
  };
  client.on('error', onError);
  try {
    return await fn(client);
  } catch (err) {
    try {
      // Outside a transaction this is only a warning.
      await client.query('ROLLBACK');
    } catch {
      broken = true;
    }
    throw toStoreError(err);
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}

/** Runs `fn` in a transaction on a pooled client; rolls back on any error. */
export function inTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return onClient(pool, async (client) => {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  });
}
