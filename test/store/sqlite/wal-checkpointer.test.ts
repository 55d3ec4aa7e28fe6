import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.js';
import type { CheckpointPass } from '../../../src/store/sqlite/wal-checkpoint-protocol.js';
import { makeEvent, prepare } from '../../helpers/events.js';

/** Resolves with the first pass of the checkpointing thread that `accept` takes. */
function nextPass(store: SqliteStore, accept: (pass: CheckpointPass) => boolean): Promise<CheckpointPass> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no such checkpoint pass within 10 s')), 10_000);
    const off = store.onWalCheckpoint((pass) => {
      if (!accept(pass)) return;
      clearTimeout(timer);
      off();
      resolve(pass);
    });
  });
}

describe('WAL checkpointing thread', () => {
  test('copies committed WAL frames into the database file without the writer', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tw-ckpt-'));
    const file = join(dir, 'trailwarden.db');
    try {
      const store = await SqliteStore.open(file);
      const sizeBefore = statSync(file).size;
      // Far below the writer's own autocheckpoint threshold: only the thread copies these.
      for (let i = 0; i < 20; i++) {
        await store.append(Array.from({ length: 50 }, () => prepare(makeEvent({ reason: 'x'.repeat(500) }))));
      }
      const pass = await nextPass(store, (p) => p.walFrames > 0 && p.copiedFrames === p.walFrames);
      assert.ok(pass.walFrames > 0);
      // 1,000 events of ~1 KB cannot fit in the pages the empty schema had.
      assert.ok(statSync(file).size > sizeBefore + 500_000, 'the database file grew by the copied pages');
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
