import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import { signCheckpoint } from '../../src/log/checkpoint.js';
import { parseCheckpointFile, servedCheckpoint } from '../../src/log/checkpoint-file.js';
import { rawPublicKey } from '../../src/log/signing-key.js';
import { hashLeaf } from '../../src/store/merkle/hash.js';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const signer = { name: 'trailwarden.test/log', privateKey, publicKeyRaw: rawPublicKey(publicKey) };
const root = hashLeaf(Buffer.from('root'));
const note = signCheckpoint({ origin: 'trailwarden.test/log', treeSize: 42, rootHash: root }, signer);
const record = {
  treeSize: 42,
  rootHash: root.toString('base64'),
  issuedAt: '2026-03-15T09:00:00.000Z',
  note,
};

describe('checkpoint files a verifier keeps', () => {
  test('the JSON of GET /v1/checkpoints/latest reads back as the same checkpoint', () => {
    const text = JSON.stringify(servedCheckpoint(record), null, 2);
    assert.deepEqual(parseCheckpointFile(text, 'saved.json'), record);
  });

  test('the signed note text reads as its tree size and root, even with extra newlines after it', () => {
    assert.deepEqual(parseCheckpointFile(`${note}\n\n`, 'saved.note'), { ...record, issuedAt: '' });
  });

  test('a file that is neither is refused with TW_ERR_CONFIG naming the file and both accepted forms', () => {
    for (const text of ['{"tree_size": "42"}', '{not json', 'hello\n', '']) {
      assert.throws(
        () => parseCheckpointFile(text, 'saved.json'),
        (err: Error & { code?: string }) =>
          err.code === 'TW_ERR_CONFIG' &&
          /^saved\.json is not a checkpoint: .*GET \/v1\/checkpoints\/latest or a signed checkpoint note/.test(
            err.message,
          ),
      );
    }
  });
});
