import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { Command } from 'commander';
import { registerSecretsCommand } from '../../src/cli/secrets.js';
import { loadSecretBox } from '../../src/secrets/secret-box.js';

async function generate(): Promise<string> {
  let out = '';
  const sink = new Writable({
    write(chunk, _enc, cb) {
      out += String(chunk);
      cb();
    },
  });
  const program = new Command('trailwarden').exitOverride();
  registerSecretsCommand(program, sink);
  await program.parseAsync(['secrets', 'generate-key'], { from: 'user' });
  return out.trim();
}

test('secrets generate-key prints a fresh key that TRAILWARDEN_SECRETS_KEY takes, and rotation lists two', async () => {
  const [a, b] = [await generate(), await generate()];
  assert.notEqual(a, b);
  const box = await loadSecretBox({
    env: { TRAILWARDEN_SECRETS_KEY: `${b},${a}` },
    keyFile: null,
    dataDir: '/nonexistent',
    generate: false,
  });
  assert.ok(box);
  const old = await loadSecretBox({
    env: { TRAILWARDEN_SECRETS_KEY: a },
    keyFile: null,
    dataDir: '/x',
    generate: false,
  });
  const sealedWithOld = old!.seal('whsec_x', 'sink a: secret');
  assert.equal(box.open(sealedWithOld, 'sink a: secret'), 'whsec_x');
  assert.equal(box.isCurrent(sealedWithOld), false);
  await assert.rejects(
    loadSecretBox({
      env: { TRAILWARDEN_SECRETS_KEY: 'short' },
      keyFile: null,
      dataDir: '/x',
      generate: false,
    }),
    /expected a base64 key of 32 bytes/,
  );
});
