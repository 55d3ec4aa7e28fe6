/** What only the SQLite backend does: it is served by one process at a time. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.js';

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
