import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import BetterSqlite3 from 'better-sqlite3';
import { canonicalJson } from '../src/event/canonical.js';
import { sqliteFile } from '../src/store/open-store.js';
import { migrate } from '../src/store/sqlite/schema.js';
import { bareEventRows } from './dataset.js';

/** Rows/s of bare better-sqlite3 inserts, in transactions of `perTx` rows. */
export interface SqliteBaseline {
  perTx: number;
  rowsPerSecond: number;
}

/**
 * Baseline (b): the same `events` table and indexes (src/store/sqlite/schema.ts),
 * WAL with synchronous=FULL, rows built in advance, inserted for
 * `durationMs` with `perTx` rows per transaction. No validation, no JSON
 * canonicalisation, no Merkle tree, no HTTP: what SQLite alone costs.
 */
export function bareSqliteInserts(dir: string, perTx: number, durationMs: number): SqliteBaseline {
  const db = new BetterSqlite3(join(dir, `bare-${perTx}.db`));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('cache_size = -65536');
  migrate(db);
  const insert = db.prepare(
    `INSERT INTO events (seq, event_id, tenant_id, ts, action, actor_id, resource_type, resource_id,
       outcome, search, content_hash, leaf_hash, body) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
  );
  const rows = bareEventRows();
  let seq = 0;
  const tx = db.transaction((n: number) => {
    for (let k = 0; k < n; k++) {
      seq += 1;
      const r = rows[seq % rows.length]!;
      insert.run(seq, `${r[0]}_${seq}`, ...r.slice(1));
    }
  });
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < durationMs) {
    tx.immediate(perTx);
    elapsed = performance.now() - start;
  }
  db.close();
  return { perTx, rowsPerSecond: (seq * 1000) / elapsed };
}

/**
 * Baseline for `verify`: read every stored body in `seq` order, parse it and
 * SHA-256 its canonical JSON, with bare better-sqlite3 (no Merkle tree, no
 * checkpoints). Seconds.
 */
export function bareScanSeconds(dataDir: string): { seconds: number; rows: number } {
  const db = new BetterSqlite3(sqliteFile(dataDir), { readonly: true });
  const start = performance.now();
  let rows = 0;
  for (const body of db.prepare('SELECT body FROM events ORDER BY seq').pluck().iterate()) {
    const value = JSON.parse(body as string) as Record<string, unknown>;
    createHash('sha256').update(canonicalJson(value)).digest();
    rows += 1;
  }
  db.close();
  return { seconds: (performance.now() - start) / 1000, rows };
}
