/** What only the SQLite backend does: it is served by one process at a time; how its file holds the tree. */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.js';
import { makeEvent, prepare } from '../../helpers/events.js';

test('sink leases left by a process that is gone are free when the file is opened again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tw-sqlite-'));
  try {
    const file = join(dir, 'trailwarden.db');
    const before = await SqliteStore.open(file);
    assert.equal(await before.delivery.acquireLease('sink:siem', 'dead-node', 60_000), true);
    assert.equal(await before.delivery.acquireLease('other', 'dead-node', 60_000), true);
    await before.close();

    const after = await SqliteStore.open(file);
    assert.equal(
      await after.delivery.leaseHolder('sink:siem'),
      undefined,
      'a restart need not wait for expiry',
    );
    assert.equal(await after.delivery.acquireLease('sink:siem', 'new-node', 60_000), true);
    assert.equal(
      (await after.delivery.leaseHolder('other'))?.holder,
      'dead-node',
      'only sink leases are cleared',
    );
    await after.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the tree keeps inner nodes from level 3 up; a file that also holds lower ones (written before) serves the same roots', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tw-sqlite-'));
  try {
    const file = join(dir, 'trailwarden.db');
    const store = await SqliteStore.open(file);
    await store.append(Array.from({ length: 40 }, () => prepare(makeEvent())));
    const roots = await Promise.all([1, 7, 16, 40].map((n) => store.tree.rootAt(n)));
    await store.close();
    const db = new BetterSqlite3(file);
    try {
      const levels = db
        .prepare('SELECT level, count(*) AS n FROM tree_nodes GROUP BY level ORDER BY level')
        .all();
      assert.deepEqual(levels, [
        { level: 3, n: 5 },
        { level: 4, n: 2 },
        { level: 5, n: 1 },
      ]);
      // What an earlier version stored: the level-1 node of leaves 0 and 1 (as garbage, to show it is not read).
      db.prepare('INSERT INTO tree_nodes (level, idx, hash) VALUES (1, 0, ?)').run(Buffer.alloc(32, 7));
    } finally {
      db.close();
    }
    const reopened = await SqliteStore.open(file);
    assert.deepEqual(await Promise.all([1, 7, 16, 40].map((n) => reopened.tree.rootAt(n))), roots);
    await reopened.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a tenant's stored sink moves under its <tenant>/<name> key with its cursor and dead letters (migration 5)", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tw-sqlite-'));
  try {
    const file = join(dir, 'trailwarden.db');
    await (await SqliteStore.open(file)).close();
    const db = new BetterSqlite3(file);
    try {
      // The file as schema 4 left it: tenant sinks kept under their bare name (and no retention tables, migration 6).
      db.pragma('user_version = 4');
      for (const table of ['pruned_leaves', 'retention_policies', 'legal_holds', 'prune_runs', 'erasures']) {
        db.exec(`DROP TABLE ${table}`);
      }
      const now = '2026-01-01T00:00:00.000Z';
      for (const [name, tenant] of [
        ['siem', 'acme'],
        ['ops', null],
      ] as const) {
        db.prepare('INSERT INTO sink_configs VALUES (?, ?, ?, ?, ?)').run(name, '{}', tenant, now, now);
        db.prepare('INSERT INTO sink_states (name, cursor, updated_at) VALUES (?, 7, ?)').run(name, now);
        db.prepare(
          `INSERT INTO dead_letters (sink, seq, event_id, reason, attempts, parked_at, last_attempt_at)
           VALUES (?, 3, 'evt_3', 'HTTP 400', 1, ?, ?)`,
        ).run(name, now, now);
      }
    } finally {
      db.close();
    }
    const store = await SqliteStore.open(file);
    try {
      assert.deepEqual((await store.delivery.listSinkConfigs()).map((r) => r.name).sort(), [
        'acme/siem',
        'ops',
      ]);
      assert.equal((await store.delivery.getSinkState('acme/siem'))?.cursor, 7);
      assert.equal(await store.delivery.countDeadLetters('acme/siem'), 1);
      assert.equal(await store.delivery.countDeadLetters('ops'), 1);
    } finally {
      await store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the database, its WAL and its SHM are created 0600 in a folder created 0700, though SQLite would make them 0644 (they hold sink secrets)', async () => {
  const parent = mkdtempSync(join(tmpdir(), 'tw-sqlite-'));
  // The usual umask, under which SQLite's own default gives 0644 files.
  const umask = process.umask(0o022);
  try {
    const dir = join(parent, 'data');
    const file = join(dir, 'trailwarden.db');
    const store = await SqliteStore.open(file);
    try {
      await store.append(Array.from({ length: 20 }, () => prepare(makeEvent())));
      await store.delivery.putSinkConfig({
        name: 'siem',
        config: JSON.stringify({ type: 'webhook', url: 'https://siem.example.com/hook', secret: 'whsec_x' }),
        tenantId: null,
        createdAt: new Date().toISOString(),
        updatedAt: new Date().toISOString(),
      });
      const modes = Object.fromEntries(
        [dir, file, `${file}-wal`, `${file}-shm`].map((p) => [
          p,
          existsSync(p) ? statSync(p).mode & 0o777 : 'missing',
        ]),
      );
      assert.deepEqual(modes, {
        [dir]: 0o700,
        [file]: 0o600,
        [`${file}-wal`]: 0o600,
        [`${file}-shm`]: 0o600,
      });
    } finally {
      await store.close();
    }
  } finally {
    process.umask(umask);
    rmSync(parent, { recursive: true, force: true });
  }
});
