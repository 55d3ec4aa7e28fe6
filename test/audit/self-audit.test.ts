import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { SelfAudit } from '../../src/audit/self-audit.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';

const dir = mkdtempSync(join(tmpdir(), 'tw-self-audit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('settled() waits for records nobody awaited, so a clean stop can sign them', async () => {
  const store = await SqliteStore.open(join(dir, 'trailwarden.db'));
  try {
    const audit = new SelfAudit(store, 'default');
    for (let i = 0; i < 3; i++) {
      void audit.record('audit.trail.read', null, { outcome: 'success', metadata: { i } });
    }
    // The writer thread commits asynchronously: nothing is in the log yet.
    assert.equal(await store.headSeq(), 0);
    await audit.settled();
    assert.equal(await store.headSeq(), 3);
    const events = await store.readRange(0, 10);
    assert.deepEqual(
      events.map((e) => [e.action, e.actor.type, e.tenant_id]),
      Array.from({ length: 3 }, () => ['audit.trail.read', 'anonymous', 'default']),
    );
  } finally {
    await store.close();
  }
});
