/**
 * Secrets of API sinks at rest (issue 14, item 14): sealed in the database
 * with a key kept outside it, opened when the sink starts, moved to a new key
 * when the operator rotates keys; never in clear in the database, never shown.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { DeliveryEngine } from '../../src/delivery/delivery-engine.js';
import { openSecrets, sealSecrets } from '../../src/delivery/sink-secrets.js';
import { SecretBox, secretKeyId } from '../../src/secrets/secret-box.js';
import { rawEvent, type TestApp, testApp } from '../helpers/app.js';
import { newSecret, type Receiver, startReceiver } from '../helpers/webhook-receiver.js';

const open: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (open.length > 0) await open.pop()!();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tw-secrets-'));
  open.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The stored settings of every API sink, read from the database file as someone with a copy of it would. */
function storedConfigs(dataDir: string): string {
  const db = new BetterSqlite3(join(dataDir, 'trailwarden.db'), { readonly: true });
  try {
    return (db.prepare('SELECT config FROM sink_configs').all() as Array<{ config: string }>)
      .map((r) => r.config)
      .join('\n');
  } finally {
    db.close();
  }
}

async function start(dataDir: string, env: NodeJS.ProcessEnv = {}): Promise<TestApp> {
  const t = await testApp(
    { data_dir: dataDir, audit_reads: false, allowed_private_networks: ['127.0.0.1/32'] },
    env,
  );
  return t;
}

async function receiver(secret: string): Promise<Receiver> {
  const r = await startReceiver({ secret });
  open.push(() => r.close());
  return r;
}

const key = () => randomBytes(32);

describe('secrets of API sinks at rest', () => {
  test('are sealed in the database, open again after a restart, and are never shown', async () => {
    const dir = tempDir();
    const secret = newSecret();
    const r = await receiver(secret);
    const t = await start(dir);
    const admin = await t.key('admin');
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/sinks',
      headers: { authorization: admin },
      payload: {
        name: 'siem',
        type: 'webhook',
        url: `${r.url}/siem`,
        secret,
        headers: { authorization: 'Bearer header-token-4711' },
        shape: { redact: [{ path: 'actor.email', mode: 'hash' }], hash_key: 'hash-key-0123456789abcdef' },
        start_from: 'beginning',
        batch: { max_wait_ms: 0 },
      },
    });
    assert.equal(res.statusCode, 201, res.body);
    await t.close();

    // The key the server made lives beside the database, not in it, readable by its owner only.
    assert.equal(statSync(join(dir, 'secrets.key')).mode & 0o777, 0o600);
    const stored = storedConfigs(dir);
    for (const plain of [secret, 'header-token-4711', 'hash-key-0123456789abcdef']) {
      assert.ok(!stored.includes(plain), `${plain} is in the database in clear`);
    }
    assert.equal(stored.match(/tw:enc:v1:[0-9a-f]{8}:/g)?.length, 3, stored);

    const again = await start(dir);
    open.push(() => again.close());
    const shown = await again.app.inject({
      method: 'GET',
      url: '/v1/sinks/siem',
      headers: { authorization: admin },
    });
    assert.ok(!shown.body.includes('header-token-4711') && !shown.body.includes(secret), shown.body);
    await again.app.inject({
      method: 'POST',
      url: '/v1/events',
      headers: { authorization: admin },
      payload: rawEvent(),
    });
    await r.waitForRequests(1);
    // Signed with the secret opened from the database, and sent with the header.
    assert.ok(r.requests.every((q) => q.verified));
    assert.equal(r.requests[0]!.headers['authorization'], 'Bearer header-token-4711');
  });

  test('a rotation re-seals every stored secret with the new key; the old key alone then opens nothing', async () => {
    const dir = tempDir();
    const secret = newSecret();
    const r = await receiver(secret);
    const [oldKey, newKey] = [key(), key()];
    const env = (...keys: Buffer[]) => ({
      TRAILWARDEN_SECRETS_KEY: keys.map((k) => k.toString('base64')).join(','),
    });
    const t = await start(dir, env(oldKey));
    const admin = await t.key('admin');
    await t.app.inject({
      method: 'POST',
      url: '/v1/sinks',
      headers: { authorization: admin },
      payload: { name: 'siem', type: 'webhook', url: `${r.url}/siem`, secret, start_from: 'beginning' },
    });
    await t.close();
    assert.match(storedConfigs(dir), new RegExp(`tw:enc:v1:${secretKeyId(oldKey)}:`));

    // Step 1 of a rotation: the new key first, the old one still known.
    const rotated = await start(dir, env(newKey, oldKey));
    await rotated.close();
    const stored = storedConfigs(dir);
    assert.match(stored, new RegExp(`tw:enc:v1:${secretKeyId(newKey)}:`));
    assert.ok(!stored.includes(secretKeyId(oldKey)), stored);

    // Step 2: the old key is dropped; the sink still starts and signs.
    const done = await start(dir, env(newKey));
    open.push(() => done.close());
    await done.app.inject({
      method: 'POST',
      url: '/v1/events',
      headers: { authorization: admin },
      payload: rawEvent(),
    });
    await r.waitForRequests(1);
    assert.ok(r.requests[0]!.verified);
  });

  test('a sealed value cannot be opened with another key, nor moved to another sink or field', () => {
    const box = new SecretBox([key()]);
    const config = { name: 'a', type: 'webhook', url: 'https://x.example/h', secret: 'whsec_abc' };
    const sealed = sealSecrets(config, 'a', box);
    assert.deepEqual(openSecrets(sealed, 'a', box), config);
    assert.throws(() => openSecrets(sealed, 'acme/a', box), /altered or belongs elsewhere/);
    assert.throws(() => openSecrets(sealed, 'a', new SecretBox([key()])), /does not have/);
    assert.throws(() => openSecrets(sealed, 'a', null), /no secrets key/);
    const moved = { ...sealed, headers: { authorization: sealed['secret'] } };
    assert.throws(() => openSecrets(moved, 'a', box), /altered or belongs elsewhere/);
  });

  test('without a secrets key (PostgreSQL with none configured) a sink with secrets is refused, one without is kept', async () => {
    const t = await start(tempDir());
    open.push(() => t.close());
    const engine = new DeliveryEngine({
      store: t.parts.ctx.store,
      audit: t.parts.ctx.audit,
      dataDir: t.dataDir,
      secrets: null,
      allowedPrivateNetworks: [],
      configSinks: [],
      emit: null,
      log: { info() {}, warn() {} },
      nodeId: 'test',
      leaseMs: 10_000,
    });
    const sink = { name: 'x', type: 'webhook', url: 'https://x.example/h', enabled: false };
    await assert.rejects(engine.admin.create({ ...sink, secret: newSecret() }, null), {
      code: 'TW_ERR_SECRETS_KEY_MISSING',
    });
    await engine.admin.create(sink, null);
    await engine.stop();
  });
});
