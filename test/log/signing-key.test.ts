import assert from 'node:assert/strict';
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { chmod, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadOrCreateSigningKey, SIGNING_KEY_FILE } from '../../src/log/signing-key.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tw-signing-key-'));
  dirs.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const posix = process.platform !== 'win32';

describe('checkpoint signing key', () => {
  test('a key is generated in the data directory with mode 0600 on first use and reused afterwards', async () => {
    const dir = await tempDir();
    const first = await loadOrCreateSigningKey(dir);
    assert.equal(first.publicKeyRaw.length, 32);
    if (posix) assert.equal((await stat(join(dir, SIGNING_KEY_FILE))).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), [SIGNING_KEY_FILE]);
    const again = await loadOrCreateSigningKey(dir);
    assert.deepEqual(again.publicKeyRaw, first.publicKeyRaw);
    const sig = sign(null, Buffer.from('x'), again.privateKey);
    assert.ok(verify(null, Buffer.from('x'), first.publicKey, sig));
  });

  test('concurrent first starts agree on one key', async () => {
    const dir = await tempDir();
    const keys = await Promise.all([1, 2, 3, 4].map(() => loadOrCreateSigningKey(join(dir, 'data'))));
    for (const k of keys) assert.deepEqual(k.publicKeyRaw, keys[0]!.publicKeyRaw);
  });

  test('a supplied PEM or key file is used instead of the data directory', async () => {
    const dir = await tempDir();
    const { privateKey } = generateKeyPairSync('ed25519');
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const fromPem = await loadOrCreateSigningKey(dir, { keyPem: pem });
    const file = join(dir, 'mine.pem');
    await writeFile(file, pem, { mode: 0o600 });
    const fromFile = await loadOrCreateSigningKey(dir, { keyFile: file });
    assert.deepEqual(fromFile.publicKeyRaw, fromPem.publicKeyRaw);
    assert.deepEqual((await readdir(dir)).sort(), ['mine.pem']);
  });

  test('a key file readable by group or others is refused with a chmod 600 hint', {
    skip: !posix,
  }, async () => {
    const dir = await tempDir();
    await loadOrCreateSigningKey(dir);
    await chmod(join(dir, SIGNING_KEY_FILE), 0o644);
    await assert.rejects(loadOrCreateSigningKey(dir), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'TW_ERR_CONFIG');
      assert.match(err.message, /chmod 600/);
      return true;
    });
  });

  test('a key that is not Ed25519 is refused', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    await assert.rejects(loadOrCreateSigningKey(await tempDir(), { keyPem: pem }), { code: 'TW_ERR_CONFIG' });
    await assert.rejects(loadOrCreateSigningKey(await tempDir(), { keyPem: 'garbage' }), {
      code: 'TW_ERR_CONFIG',
    });
  });
});
