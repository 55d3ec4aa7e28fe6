import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { Checkpointer, type CheckpointerHooks } from '../../src/log/checkpointer.js';
import { rawPublicKey } from '../../src/log/signing-key.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { CheckpointRecord } from '../../src/store/store.js';
import { makeEvent, prepare } from '../helpers/events.js';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const signer = { name: 'checkpointer.test/log', privateKey, publicKeyRaw: rawPublicKey(publicKey) };
// Triggers by count or time never fire in these tests: only explicit issue() calls sign.
const policy = { everyEvents: 1_000_000, everyMs: 3_600_000, origin: 'checkpointer.test/log' };

let dir: string;
let store: SqliteStore;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tw-checkpointer-'));
  store = await SqliteStore.open(join(dir, 'trailwarden.db'));
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const append = (n: number) => store.append(Array.from({ length: n }, () => prepare(makeEvent())));

/** A gate: `wait()` resolves once `open()` was called. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => {
    open = r;
  });
  return { wait: () => opened, open: () => open() };
}

test('issue() called while a checkpoint is being issued resolves once the head at the call is checkpointed', async () => {
  const checkpointer = new Checkpointer(store, signer, policy);
  await checkpointer.start();
  await append(3);
  const slow = gate();
  const commit = store.addCheckpoint.bind(store);
  store.addCheckpoint = async (cp) => {
    await slow.wait();
    return commit(cp);
  };
  const first = checkpointer.issue();
  await append(3);
  const second = checkpointer.issue();
  const third = checkpointer.issue();
  slow.open();
  assert.equal((await first)?.treeSize, 3);
  assert.equal((await second)?.treeSize, 6);
  assert.equal(await third, await second, 'calls made meanwhile share the next one');
  assert.equal((await store.latestCheckpoint())?.treeSize, 6);
  await checkpointer.stop();
});

test('the witness gets each checkpoint after it is committed, in order, only the latest of those that waited, and witnessed() waits for it', async () => {
  const kept: number[] = [];
  const disk = gate();
  const hooks: CheckpointerHooks = {
    witness: async (cp: CheckpointRecord) => {
      assert.equal(
        (await store.checkpointAt(cp.treeSize))?.note,
        cp.note,
        'committed before it is witnessed',
      );
      await disk.wait();
      kept.push(cp.treeSize);
    },
  };
  const checkpointer = new Checkpointer(store, signer, policy, hooks);
  await checkpointer.start();
  for (const n of [2, 2, 2, 2]) {
    await append(n);
    await checkpointer.issue();
  }
  assert.deepEqual(kept, [], 'a slow witness delays no checkpoint');
  assert.equal((await store.latestCheckpoint())?.treeSize, 8);
  disk.open();
  await checkpointer.witnessed();
  assert.deepEqual(kept, [2, 8]);
  await checkpointer.stop();
});

test('a witness that fails is reported to onError and the checkpoint stays issued', async () => {
  const errors: unknown[] = [];
  const checkpointer = new Checkpointer(store, signer, policy, {
    onError: (err) => errors.push(err),
    witness: async () => {
      throw new Error('ENOSPC: no space left on device');
    },
  });
  await checkpointer.start();
  await append(1);
  assert.equal((await checkpointer.issue())?.treeSize, 1);
  await checkpointer.witnessed();
  assert.match(String(errors[0]), /ENOSPC/);
  assert.equal((await store.latestCheckpoint())?.treeSize, 1);
  await checkpointer.stop();
});
