import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildLog, readObject, type TestLog, writeArchive } from '../helpers/archive-builder.js';
import { type PartitionCount, readArchiveWithDuckDb } from '../helpers/duckdb-archive.js';

/** The log's own count per (tenant, UTC day, UTC hour of received_at), ordered like DuckDB's answer. */
function countsFromLog(log: TestLog): PartitionCount[] {
  const counts = new Map<string, PartitionCount>();
  for (const row of log.events) {
    const at = (JSON.parse(row.body) as { received_at: string }).received_at;
    const p = { tenant: row.tenant_id, dt: at.slice(0, 10), hour: at.slice(11, 13) };
    const key = `${p.tenant}/${p.dt}/${p.hour}`;
    const c = counts.get(key) ?? { ...p, events: 0 };
    c.events += 1;
    counts.set(key, c);
  }
  return [...counts.values()].sort(
    (a, b) => a.tenant.localeCompare(b.tenant) || a.dt.localeCompare(b.dt) || a.hour.localeCompare(b.hour),
  );
}

describe('DuckDB reads a builder archive (read_json_auto, hive_partitioning)', () => {
  let log: TestLog;
  let base: string;

  before(async () => {
    log = await buildLog({ events: 45, tenants: ['acme', 'globex', 'initech'], checkpointEvery: 15 });
    base = mkdtempSync(join(tmpdir(), 'tw-archive-duckdb-'));
  });
  after(async () => {
    await log.close();
    rmSync(base, { recursive: true, force: true });
  });

  test('counts per tenant, day and hour equal the log, and every event_id appears once', async () => {
    const dir = join(base, 'gzip');
    writeArchive(dir, log.events, { batch: 10, gzip: true, checkpoints: log.checkpoints });
    const summary = await readArchiveWithDuckDb(dir);
    assert.deepEqual(summary.partitions, countsFromLog(log));
    assert.equal(summary.total, log.events.length);
    assert.deepEqual(summary.duplicateEventIds, []);
  });

  test('plain .jsonl objects are read with their pattern', async () => {
    const dir = join(base, 'plain');
    writeArchive(dir, log.events, { batch: 10, gzip: false });
    const summary = await readArchiveWithDuckDb(dir, { pattern: '**/*.jsonl' });
    assert.deepEqual(summary.partitions, countsFromLog(log));
  });

  test('a duplicated object shows as its event_ids appearing twice', async () => {
    const dir = join(base, 'dup');
    const objects = writeArchive(dir, log.events, { batch: 10, gzip: true });
    const copied = objects[1]!;
    cpSync(join(dir, copied), join(dir, copied.replace(/\.jsonl\.gz$/, '-copy.jsonl.gz')));
    const ids = readObject(join(dir, copied))
      .map((l) => (JSON.parse(l) as { event_id: string }).event_id)
      .sort();
    const summary = await readArchiveWithDuckDb(dir);
    assert.deepEqual(summary.duplicateEventIds, ids);
    assert.equal(summary.total, log.events.length + ids.length);
  });
});
