import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { type NoteSigner, signCheckpoint } from '../../src/log/checkpoint.js';
import { servedCheckpoint } from '../../src/log/checkpoint-file.js';
import { checkWitness, WITNESS_FILE, witnessPath, writeWitness } from '../../src/log/checkpoint-witness.js';
import { rawPublicKey } from '../../src/log/signing-key.js';
import { MerkleFrontier } from '../../src/store/merkle/frontier.js';
import { hashLeaf } from '../../src/store/merkle/hash.js';
import type { CheckpointRecord, TreeReader } from '../../src/store/store.js';

function newSigner(name = 'trailwarden.test/log'): NoteSigner {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { name, privateKey, publicKeyRaw: rawPublicKey(publicKey) };
}
const signer = newSigner();

const leaves = (tag: string, n: number) =>
  Array.from({ length: n }, (_, i) => hashLeaf(Buffer.from(`${tag}${i}`)));

/** A tree over `hashes`, as a store's TreeReader serves it. */
function treeOf(hashes: Buffer[]): TreeReader {
  const roots = [new MerkleFrontier().root()];
  const f = new MerkleFrontier();
  for (const h of hashes) {
    f.append(h);
    roots.push(f.root());
  }
  const unused = async (): Promise<Buffer[]> => assert.fail('not used by the witness check');
  return {
    size: async () => hashes.length,
    rootAt: async (n) => roots[n] ?? assert.fail(`tree size ${n} out of range`),
    inclusionProof: unused,
    consistencyProof: unused,
  };
}

async function checkpointOver(
  tree: TreeReader,
  size: number,
  by: NoteSigner = signer,
): Promise<CheckpointRecord> {
  const rootHash = await tree.rootAt(size);
  return {
    treeSize: size,
    rootHash: rootHash.toString('base64'),
    issuedAt: '2026-03-15T09:00:00.000Z',
    note: signCheckpoint({ origin: 'trailwarden.test/log', treeSize: size, rootHash }, by),
  };
}

describe('the checkpoint witness in the data folder', () => {
  const dirs: string[] = [];
  const newDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'tw-witness-'));
    dirs.push(d);
    return d;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const log = treeOf(leaves('a', 30));
  const check = (dataDir: string, tree: TreeReader, key = signer) =>
    checkWitness({ dataDir, tree, publicKeyRaw: key.publicKeyRaw, storeName: 'the test store' });

  test('no witness (a first start, a node that never signed) passes', async () => {
    assert.equal(await check(newDir(), log), undefined);
  });

  test('is written as the JSON of GET /v1/checkpoints/latest, mode 0600, with no temp file left behind', async () => {
    const dir = newDir();
    const cp = await checkpointOver(log, 20);
    await writeWitness(dir, cp);
    assert.deepEqual(JSON.parse(readFileSync(witnessPath(dir), 'utf8')), {
      tree_size: 20,
      root_hash: cp.rootHash,
      issued_at: cp.issuedAt,
      note: cp.note,
    });
    assert.equal(statSync(witnessPath(dir)).mode & 0o777, 0o600);
    await writeWitness(dir, await checkpointOver(log, 30));
    assert.deepEqual(readdirSync(dir), [WITNESS_FILE]);
  });

  test('a store that reached the witnessed checkpoint with the same root passes, whether it stayed there or grew', async () => {
    const dir = newDir();
    await writeWitness(dir, await checkpointOver(log, 20));
    assert.equal((await check(dir, log))?.treeSize, 20);
    assert.equal((await check(dir, treeOf(leaves('a', 20))))?.treeSize, 20);
  });

  test('a store shorter than the witnessed checkpoint is refused: rolled back or truncated, what is gone and what to do', async () => {
    const dir = newDir();
    await writeWitness(dir, await checkpointOver(log, 30));
    await assert.rejects(check(dir, treeOf(leaves('a', 12))), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'TW_ERR_LOG_ROLLED_BACK');
      assert.match(err.message, /the log in the test store holds 12 events/);
      assert.match(err.message, /signed and published a checkpoint for 30 events/);
      assert.match(err.message, /rolled back or truncated: events 13\.\.30, signed and published, are gone/);
      assert.match(err.message, /Restore the data/);
      assert.ok(err.message.includes(`move ${witnessPath(dir)} aside`), err.message);
      assert.match(
        err.message,
        /every verifier that kept a checkpoint of the lost events will then reject this log/,
      );
      return true;
    });
    await assert.rejects(check(dir, treeOf([])), /holds 0 events.*events 1\.\.30/s);
  });

  test('a store as long as the witness but with other events at its size is refused as rewritten or replaced', async () => {
    const dir = newDir();
    await writeWitness(dir, await checkpointOver(log, 20));
    const rewritten = treeOf([...leaves('a', 10), ...leaves('b', 30)]);
    await assert.rejects(check(dir, rewritten), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'TW_ERR_LOG_ROLLED_BACK');
      assert.match(
        err.message,
        /the first 20 events of the log in the test store are not the ones this server signed/,
      );
      return true;
    });
  });

  test('a witness not signed by the server key (another key, or edited) is refused with TW_ERR_CONFIG', async () => {
    const dir = newDir();
    await writeWitness(dir, await checkpointOver(log, 20, newSigner()));
    await assert.rejects(check(dir, log), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'TW_ERR_CONFIG');
      assert.match(err.message, /is not a checkpoint signed by this server's signing key/);
      return true;
    });
    const cp = await checkpointOver(log, 20);
    const edited = { ...servedCheckpoint(cp), note: cp.note.replace('\n20\n', '\n2\n') };
    writeFileSync(witnessPath(dir), JSON.stringify(edited));
    await assert.rejects(check(dir, log), /not a checkpoint signed by this server's signing key/);
  });

  test('a witness that is not a checkpoint at all is refused with TW_ERR_CONFIG saying how to get going again', async () => {
    const dir = newDir();
    writeFileSync(witnessPath(dir), '{"tree_size": 20');
    await assert.rejects(check(dir, log), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'TW_ERR_CONFIG');
      assert.match(
        err.message,
        /^Refusing to start: .*checkpoint-witness\.json is not a checkpoint: .*move it aside/,
      );
      return true;
    });
  });

  test('a witness signed under another key name by the same key still counts (the origin kept in the store may be gone)', async () => {
    const dir = newDir();
    await writeWitness(dir, await checkpointOver(log, 30, { ...signer, name: 'renamed.example/log' }));
    await assert.rejects(
      check(dir, treeOf(leaves('a', 3))),
      /TW_ERR_LOG_ROLLED_BACK|rolled back or truncated/,
    );
  });
});
