import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type TestApp, testApp } from '../helpers/app.js';

describe('/v1/keys', () => {
  let t: TestApp;
  before(async () => {
    t = await testApp();
  });
  after(() => t.close());

  test('an admin creates a key whose token works at once, lists it without secrets, and revokes it', async () => {
    const created = await t.app.inject({
      method: 'POST',
      url: '/v1/keys',
      headers: { authorization: t.admin },
      payload: { role: 'auditor', name: 'siem reader', tenant_id: 'acme' },
    });
    assert.equal(created.statusCode, 201);
    const { token, key_id } = created.json();
    const use = () =>
      t.app.inject({ method: 'GET', url: '/v1/events', headers: { authorization: `Bearer ${token}` } });
    assert.equal((await use()).statusCode, 200);
    const list = await t.app.inject({ method: 'GET', url: '/v1/keys', headers: { authorization: t.admin } });
    const listed = list.json().keys.find((k: { key_id: string }) => k.key_id === key_id);
    assert.deepEqual(Object.keys(listed).sort(), [
      'created_at',
      'key_id',
      'name',
      'revoked_at',
      'role',
      'tenant_id',
    ]);
    // The secret is base64url and may itself contain '_': take everything after the key id.
    assert.ok(!list.body.includes(token.slice('tw_'.length + 16 + 1)));
    const del = await t.app.inject({
      method: 'DELETE',
      url: `/v1/keys/${key_id}`,
      headers: { authorization: t.admin },
    });
    assert.equal(del.statusCode, 204);
    assert.equal((await use()).statusCode, 401);
    const trail = await t.parts.ctx.store.query(
      { tenantIds: ['acme'], action: { value: 'key.', prefix: true } },
      { order: 'asc', limit: 10 },
    );
    assert.deepEqual(
      trail.map((e) => e.action),
      ['key.created', 'key.revoked'],
    );
    assert.ok(!JSON.stringify(trail).includes(token));
  });

  test('a tenant admin can create keys only for its own tenant; other roles cannot manage keys', async () => {
    const tenantAdmin = await t.key('admin', 'acme');
    const other = await t.app.inject({
      method: 'POST',
      url: '/v1/keys',
      headers: { authorization: tenantAdmin },
      payload: { role: 'publisher', name: 'x', tenant_id: 'globex' },
    });
    assert.equal(other.statusCode, 403);
    const auditor = await t.key('auditor', null);
    const denied = await t.app.inject({
      method: 'GET',
      url: '/v1/keys',
      headers: { authorization: auditor },
    });
    assert.equal(denied.statusCode, 403);
    const badRole = await t.app.inject({
      method: 'POST',
      url: '/v1/keys',
      headers: { authorization: t.admin },
      payload: { role: 'root', name: 'x' },
    });
    assert.equal(badRole.statusCode, 400);
    assert.equal(badRole.json().code, 'TW_ERR_BAD_REQUEST');
  });
});
