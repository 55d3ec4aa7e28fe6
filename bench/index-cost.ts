/**
 * `node --import tsx bench/index-cost.ts`: bare better-sqlite3 insert rate
 * (WAL, synchronous=FULL, 100 rows per transaction) into the `events` table
 * with each secondary index alone, to price what an index costs per insert.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import BetterSqlite3 from 'better-sqlite3';
import { bareEventRows } from './dataset.js';
import { fmt } from './stats.js';

const TABLE = `CREATE TABLE events (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL, tenant_id TEXT NOT NULL,
  ts TEXT NOT NULL, action TEXT NOT NULL, actor_id TEXT NOT NULL, resource_type TEXT, resource_id TEXT,
  outcome TEXT NOT NULL, search TEXT NOT NULL, content_hash TEXT NOT NULL, leaf_hash BLOB NOT NULL, body TEXT NOT NULL)`;
const INDEXES: Record<string, string> = {
  tenant_event_id: 'CREATE UNIQUE INDEX i ON events (tenant_id, event_id)',
  event_id: 'CREATE INDEX i ON events (event_id)',
  tenant_action: 'CREATE INDEX i ON events (tenant_id, action, seq)',
  tenant_ts: 'CREATE INDEX i ON events (tenant_id, ts)',
  action: 'CREATE INDEX i ON events (action, seq)',
  ts: 'CREATE INDEX i ON events (ts)',
  actor: 'CREATE INDEX i ON events (actor_id, seq)',
  resource: 'CREATE INDEX i ON events (resource_type, resource_id, seq)',
};
const durationMs = Number(process.env['BENCH_MS'] ?? '2000');
const dir = mkdtempSync(join(process.env['BENCH_DIR'] ?? tmpdir(), 'tw-index-cost-'));
const rows = bareEventRows();

function rate(name: string, ddl: string[]): number {
  const db = new BetterSqlite3(join(dir, `${name}.db`));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('cache_size = -65536');
  db.exec(TABLE);
  for (const d of ddl) db.exec(d.replace(' i ', ` i_${Math.random().toString(36).slice(2)} `));
  const insert = db.prepare('INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)');
  let seq = 0;
  const tx = db.transaction(() => {
    for (let k = 0; k < 100; k++) {
      seq += 1;
      const r = rows[seq % rows.length]!;
      insert.run(seq, `${r[0]}_${seq}`, ...r.slice(1));
    }
  });
  const start = performance.now();
  while (performance.now() - start < durationMs) tx.immediate();
  const perSecond = (seq * 1000) / (performance.now() - start);
  db.close();
  return perSecond;
}

try {
  const none = rate('none', []);
  process.stdout.write(`no secondary index: ${fmt(none)} rows/s\n`);
  for (const [name, ddl] of Object.entries(INDEXES)) {
    const r = rate(name, [ddl]);
    process.stdout.write(
      `+ ${name.padEnd(16)} ${fmt(r)} rows/s  (${((1000 / r - 1000 / none) * 1000).toFixed(1)} µs/row)\n`,
    );
  }
  const all = rate('all', Object.values(INDEXES));
  process.stdout.write(`all indexes:        ${fmt(all)} rows/s\n`);
  const kept = Object.entries(INDEXES).filter(([n]) => !['event_id', 'action', 'ts'].includes(n));
  process.stdout.write(
    `without event_id, action, ts: ${fmt(
      rate(
        'kept',
        kept.map(([, d]) => d),
      ),
    )} rows/s\n`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
