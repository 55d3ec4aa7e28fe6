import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import type { CheckpointPass } from '../../../src/store/sqlite/wal-checkpoint-protocol.js';
import { WalCheckpointer } from '../../../src/store/sqlite/wal-checkpointer.js';

/** Resolves with the first pass of the checkpointing thread. */
function firstPass(checkpointer: WalCheckpointer): Promise<CheckpointPass> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no checkpoint pass within 10 s')), 10_000);
    const off = checkpointer.onPass((pass) => {
      clearTimeout(timer);
      off();
      resolve(pass);
    });
  });
}

describe('WAL checkpointing thread', () => {
  test('once enough frames wait, copies the whole WAL into the database file without taking the write lock', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tw-ckpt-'));
    const file = join(dir, 'log.db');
    const db = new BetterSqlite3(file);
    try {
      db.pragma('journal_mode = WAL');
      // As the store's writer would have it before its own threshold: nothing checkpoints but the thread.
      db.pragma('wal_autocheckpoint = 0');
      db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)');
      const sizeBefore = statSync(file).size;
      const insert = db.prepare('INSERT INTO t (body) VALUES (?)');
      // 2,000 rows of 1 KB in 20 commits: a few hundred frames, beyond passFrames.
      for (let c = 0; c < 20; c++)
        db.transaction(() => {
          for (let i = 0; i < 100; i++) insert.run('x'.repeat(1000));
        })();
      const checkpointer = await WalCheckpointer.start(file, { pollMs: 5, passFrames: 200 });
      const { walFrames, copiedFrames } = await firstPass(checkpointer);
      assert.ok(walFrames >= 200, `the pass started with ${walFrames} frames in the WAL`);
      assert.equal(copiedFrames, walFrames);
      assert.ok(statSync(file).size > sizeBefore + 1_000_000, 'the database file holds the copied pages');
      // The writer's lock was never taken: it still writes at once.
      insert.run('after');
      await checkpointer.close();
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
