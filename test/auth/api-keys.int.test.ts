import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import { authenticate, createApiKey, generateToken, importApiKey } from '../../src/auth/api-keys.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { type PostgresCluster, postgresBinDir, startPostgres } from '../helpers/postgres.js';

const skip = postgresBinDir() === undefined ? 'PostgreSQL binaries not found (install postgresql-15)' : false;

describe('TRAILWARDEN_ADMIN_KEY on several nodes (PostgreSQL)', { skip }, () => {
  let cluster: PostgresCluster | undefined;
  let url = '';
  const stores: PostgresStore[] = [];
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await cluster?.stop();
  });

  test('nodes importing the same token at once all succeed and keep one key', async () => {
    cluster = await startPostgres();
    url = await cluster.createDatabase();
    // One store per node, opened one after another (migrations are not what is under test).
    for (let i = 0; i < 4; i++) stores.push(await PostgresStore.open(url, { poolSize: 2 }));
    const token = generateToken();
    const opts = { role: 'admin', tenantId: null, name: 'bootstrap admin' } as const;
    for (let round = 0; round < 3; round++) {
      const imported = await Promise.all(stores.map((s) => importApiKey(s, token, opts)));
      assert.equal(new Set(imported.map((k) => k.keyId)).size, 1);
    }
    assert.equal((await stores[0]!.listKeys()).length, 1);
  });

  test('a token whose key id exists with another secret is still refused', async () => {
    const token = generateToken();
    const opts = { role: 'admin', tenantId: null, name: 'bootstrap admin' } as const;
    await importApiKey(stores[0]!, token, opts);
    const other = `${token.slice(0, 20)}${generateToken().slice(20)}`;
    await assert.rejects(importApiKey(stores[1]!, other, opts), /already exists with another secret/);
  });

  test('a key revoked through one node is refused by every node at once, though nodes keep keys they read', async () => {
    const [a, b] = stores as [PostgresStore, PostgresStore];
    // Nodes listen once something follows the log (the server's stream, checkpointer, delivery).
    for (const s of [a, b]) s.onAppend(() => undefined);
    const { token, record } = await createApiKey(a, { role: 'publisher', tenantId: null, name: 'k0' });
    const header = `Bearer ${token}`;
    // Renamed by hand in SQL (no NOTIFY) until node b answers with the name it read before: it keeps keys.
    const sql = new pg.Client({ connectionString: url });
    await sql.connect();
    try {
      let kept = false;
      for (let i = 1; i <= 100 && !kept; i++) {
        await authenticate(b, header);
        await sql.query('UPDATE api_keys SET name = $1 WHERE key_id = $2', [`k${i}`, record.keyId]);
        kept = (await b.getKey(record.keyId))?.name === `k${i - 1}`;
        if (!kept) await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(kept, 'node b never served a key it had read (no LISTEN connection?)');
    } finally {
      await sql.end();
    }

    assert.equal(await a.revokeKey(record.keyId, new Date().toISOString()), true);
    await assert.rejects(authenticate(a, header), /unknown, revoked or malformed/);
    // Node b hears the revocation well before KEY_CACHE_MS (10 s) would have it read the key again.
    const heard = Date.now();
    while ((await b.getKey(record.keyId))?.revokedAt === null) {
      assert.ok(Date.now() - heard < 3000, 'node b still accepts the revoked key after 3 s');
      await new Promise((r) => setTimeout(r, 10));
    }
    await assert.rejects(authenticate(b, header), /unknown, revoked or malformed/);
    assert.equal(await b.revokeKey(record.keyId, new Date().toISOString()), false, 'revoked once');
  });
});
