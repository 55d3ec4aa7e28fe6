import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { generateToken, importApiKey } from '../../src/auth/api-keys.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { type PostgresCluster, postgresBinDir, startPostgres } from '../helpers/postgres.js';

const skip = postgresBinDir() === undefined ? 'PostgreSQL binaries not found (install postgresql-15)' : false;

describe('TRAILWARDEN_ADMIN_KEY on several nodes (PostgreSQL)', { skip }, () => {
  let pg: PostgresCluster | undefined;
  const stores: PostgresStore[] = [];
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await pg?.stop();
  });

  test('nodes importing the same token at once all succeed and keep one key', async () => {
    pg = await startPostgres();
    const url = await pg.createDatabase();
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
});
