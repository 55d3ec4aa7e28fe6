import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { verifyCheckpoint } from '../../src/log/checkpoint.js';
import { verifyConsistency, verifyInclusion } from '../../src/store/merkle/proofs.js';
import { rawEvent, type TestApp, testApp } from '../helpers/app.js';

describe('proofs and checkpoints', () => {
  let t: TestApp;
  let auditor: string;
  before(async () => {
    t = await testApp({ audit_reads: false, checkpoints: { every_events: 3, every_ms: 60_000 } });
    auditor = await t.key('auditor', 'acme');
    for (let i = 0; i < 4; i++) {
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/events',
        headers: { authorization: t.admin },
        payload: Array.from({ length: 3 }, (_, j) =>
          rawEvent({ tenant_id: 'acme', event_id: `evt_p${i}_${j}` }),
        ),
      });
      assert.equal(res.statusCode, 201);
    }
    await t.parts.checkpointer.issue();
  });
  after(() => t.close());

  const get = (url: string, auth = auditor) =>
    t.app.inject({ method: 'GET', url, headers: { authorization: auth } });

  test('the verifier key from /v1/checkpoints/key verifies every checkpoint note', async () => {
    const key = (await get('/v1/checkpoints/key')).json();
    assert.equal(key.algorithm, 'ed25519');
    assert.match(key.verifier_key, /^[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/=]+$/);
    const list = (await get('/v1/checkpoints')).json().checkpoints as Array<{
      tree_size: number;
      root_hash: string;
      note: string;
    }>;
    assert.ok(list.length >= 3, `expected several checkpoints, got ${list.length}`);
    for (const cp of list) {
      const v = verifyCheckpoint(cp.note, key.verifier_key);
      assert.ok(v.ok, JSON.stringify(v));
      assert.equal(v.checkpoint.treeSize, cp.tree_size);
      assert.equal(v.checkpoint.rootHash.toString('base64'), cp.root_hash);
    }
    const latest = (await get('/v1/checkpoints/latest')).json();
    assert.equal(latest.tree_size, 12);
  });

  test('an inclusion proof verifies against the signed root, for the latest and an older checkpoint', async () => {
    const event = (await get('/v1/events/evt_p0_1')).json();
    for (const url of ['/v1/events/evt_p0_1/proof', '/v1/events/evt_p0_1/proof?tree_size=3']) {
      const proof = (await get(url)).json();
      assert.equal(proof.leaf_index, event.seq - 1);
      const ok = verifyInclusion(
        Buffer.from(event.leaf_hash, 'base64'),
        proof.leaf_index,
        proof.tree_size,
        proof.hashes.map((h: string) => Buffer.from(h, 'base64')),
        Buffer.from(proof.root_hash, 'base64'),
      );
      assert.ok(ok, url);
      const cp = (
        await get(`/v1/checkpoints?from_size=${proof.tree_size}&to_size=${proof.tree_size}`)
      ).json();
      assert.equal(cp.checkpoints[0].root_hash, proof.root_hash);
      assert.equal(proof.checkpoint, cp.checkpoints[0].note);
    }
  });

  test('a proof for a tree that does not contain the event, or beyond the log, is refused', async () => {
    const early = await get('/v1/events/evt_p3_2/proof?tree_size=5');
    assert.equal(early.statusCode, 422);
    assert.equal(early.json().code, 'TW_ERR_TREE_SIZE');
    const beyond = await get('/v1/events/evt_p0_1/proof?tree_size=999');
    assert.equal(beyond.json().code, 'TW_ERR_TREE_SIZE');
    const garbage = await get('/v1/events/evt_p0_1/proof?tree_size=abc');
    assert.equal(garbage.json().code, 'TW_ERR_INVALID_PARAMETER');
  });

  test('consistency proofs between checkpoints verify', async () => {
    const list = (await get('/v1/checkpoints')).json().checkpoints as Array<{
      tree_size: number;
      root_hash: string;
    }>;
    for (let i = 1; i < list.length; i++) {
      const a = list[i - 1]!;
      const b = list[i]!;
      const res = (await get(`/v1/checkpoints/consistency?from=${a.tree_size}&to=${b.tree_size}`)).json();
      assert.equal(res.from_root, a.root_hash);
      assert.equal(res.to_root, b.root_hash);
      const proof = res.hashes.map((h: string) => Buffer.from(h, 'base64'));
      assert.ok(
        verifyConsistency(
          a.tree_size,
          b.tree_size,
          Buffer.from(a.root_hash, 'base64'),
          Buffer.from(b.root_hash, 'base64'),
          proof,
        ),
      );
    }
    assert.equal(
      (await get('/v1/checkpoints/consistency?from=5&to=2')).json().code,
      'TW_ERR_INVALID_PARAMETER',
    );
    assert.equal((await get('/v1/checkpoints/consistency?from=5&to=500')).json().code, 'TW_ERR_TREE_SIZE');
    assert.equal(
      (await get('/v1/checkpoints/consistency?from=0&to=5')).json().code,
      'TW_ERR_INVALID_PARAMETER',
    );
  });

  test('the catalog, health, readiness and the OpenAPI document are served', async () => {
    const actions = (await get('/v1/actions')).json();
    assert.ok(actions.actions.some((a: { name: string }) => a.name === 'audit.access.denied'));
    assert.equal((await t.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    const ready = (await t.app.inject({ method: 'GET', url: '/readyz' })).json();
    assert.equal(ready.status, 'ready');
    const openapi = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    assert.match(openapi.openapi, /^3\./);
    for (const path of [
      '/v1/events',
      '/v1/events/{event_id}/proof',
      '/v1/stream',
      '/v1/export',
      '/v1/checkpoints/consistency',
    ]) {
      assert.ok(openapi.paths[path], `openapi lacks ${path}`);
    }
    const nf = await get('/v1/nothing');
    assert.equal(nf.statusCode, 404);
    assert.equal(nf.json().code, 'TW_ERR_NOT_FOUND');
  });
});
