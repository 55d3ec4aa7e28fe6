import BetterSqlite3 from 'better-sqlite3';
import { DEFAULT_EVENT_LIMITS } from '../src/event/limits.js';
import { validateEvent } from '../src/event/validate.js';
import { parseEventsBody } from '../src/ingest/parse-body.js';
import { indexedValues, prepareEvent, sequencedRow } from '../src/store/stored-event.js';
import { ingestBodies } from './ingest.js';

/** CPU µs per event of the work every ingested event needs, done in one thread. */
export interface CpuFloor {
  events: number;
  /** Parse the request body, validate, canonicalise (JCS), content hash, stored row with its leaf hash. */
  withoutStorage: number;
  /** The same plus the INSERT into the store's `events` table, 800 rows per transaction. */
  withSqlite: number;
}

/**
 * The floor under the batched-ingest figure: the bench's own request bodies
 * (100 events each) put through the server's functions in one thread, with
 * no HTTP, no thread hop, no Merkle tree nodes and no audit events —
 * everything the server does besides is extra, so `cores × 10⁶ / withSqlite`
 * bounds the events/s two busy cores can give. CPU time
 * (`process.cpuUsage`), so a wait for the disk does not count.
 *
 * `dbFile` is the filled store's SQLite file, the server stopped: the
 * inserts go into its `events` table above its head, so they pay for
 * indexes of the size the load met. The rows are not part of the log (no
 * tree nodes): use it on a folder that is thrown away afterwards.
 */
export function cpuFloor(dbFile: string, events: number): CpuFloor {
  const bodies = ingestBodies(100);
  const limits = { max_body_bytes: 5 * 1024 * 1024, max_batch_events: 1000 };
  const now = new Date();
  const receivedAt = now.toISOString();
  const build = (body: Buffer, firstSeq: number): unknown[][] =>
    parseEventsBody(body, 'application/json', limits).map((raw, k) => {
      const v = validateEvent(raw, {
        limits: DEFAULT_EVENT_LIMITS,
        now,
        tenantId: 'default',
        strictActions: false,
      });
      if (!v.ok) throw new Error(`bench event refused: ${JSON.stringify(v.problems)}`);
      const p = prepareEvent(v.event, v.canonical);
      const r = sequencedRow(p.event, firstSeq + k, receivedAt, p.canonical);
      return [r.seq, ...indexedValues(r), p.contentHash, r.leaf, r.body];
    });
  const cpuPerEvent = (run: () => number): number => {
    const start = process.cpuUsage();
    const n = run();
    const used = process.cpuUsage(start);
    return (used.user + used.system) / n;
  };

  const buildOnly = (n: number) => {
    let seq = 0;
    for (let i = 0; seq < n; i++) seq += build(bodies[i % bodies.length]!, seq + 1).length;
    return seq;
  };
  buildOnly(Math.min(events, 20_000)); // warms the JIT up, not measured
  const withoutStorage = cpuPerEvent(() => buildOnly(events));

  const db = new BetterSqlite3(dbFile, { fileMustExist: true });
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('cache_size = -32768');
    const head = db.prepare('SELECT COALESCE(MAX(seq), 0) FROM events').pluck().get() as number;
    const insert = db.prepare(
      `INSERT INTO events (seq, event_id, tenant_id, ts, action, actor_id, resource_type, resource_id,
         outcome, search, content_hash, leaf_hash, body) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
    );
    const commit = db.transaction((rows: unknown[][]) => {
      for (const r of rows) insert.run(...r);
    });
    const withSqlite = cpuPerEvent(() => {
      let seq = head;
      let rows: unknown[][] = [];
      for (let i = 0; seq < head + events; i++) {
        const built = build(bodies[i % bodies.length]!, seq + 1);
        seq += built.length;
        rows = rows.concat(built);
        if (rows.length >= 800 || seq >= head + events) {
          commit.immediate(rows);
          rows = [];
        }
      }
      return seq - head;
    });
    return { events, withoutStorage, withSqlite };
  } finally {
    db.close();
  }
}
