/**
 * Issue 14, item 8: JSON.parse keeps the last of two equal keys, so a body
 * with `"action":"user.logout","action":"admin.user.delete"` was stored as the
 * second while a WAF or proxy reading the first saw another event. Every JSON
 * body is refused instead, naming the key and where it is.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { rawEvent, type TestApp, testApp } from '../helpers/app.js';

describe('duplicate JSON keys', () => {
  let t: TestApp;
  let publisher: string;
  before(async () => {
    t = await testApp({ audit_reads: false, limits: { max_batch_events: 10 } });
    publisher = await t.key('publisher', 'acme');
  });
  after(() => t.close());

  const post = (body: string, type = 'application/json') =>
    t.app.inject({
      method: 'POST',
      url: '/v1/events',
      headers: { 'content-type': type, authorization: publisher },
      payload: body,
    });
  /** One valid event as JSON text, without its closing brace, so a test can append members. */
  const open = (over: Record<string, unknown> = {}) => JSON.stringify(rawEvent(over)).slice(0, -1);

  /** Posts `body`, expects the 400 naming `detail`'s key and path, and that nothing was stored. */
  async function refused(
    body: string,
    expected: { detail: string; index: number; path: string },
    type?: string,
  ): Promise<void> {
    const before = await t.parts.ctx.store.headSeq();
    const res = await post(body, type);
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
    const problem = res.json();
    assert.equal(problem.code, 'TW_ERR_DUPLICATE_KEY');
    assert.ok(problem.detail.startsWith(expected.detail), problem.detail);
    assert.deepEqual(
      problem.problems.map((p: { index: number; path: string }) => ({ index: p.index, path: p.path })),
      [{ index: expected.index, path: expected.path }],
    );
    assert.equal(await t.parts.ctx.store.headSeq(), before, 'nothing of the request is stored');
  }

  test('the attack: an event naming "action" twice is refused, not stored as the second', async () => {
    await refused(`${open({ action: 'user.logout' })},"action":"admin.user.delete"}`, {
      detail: 'the body has the key "action" twice in one object, at action;',
      index: 0,
      path: 'action',
    });
    const stored = await t.parts.ctx.store.query(
      { tenantIds: null, action: { value: 'admin.user.delete', prefix: false } },
      { order: 'asc', limit: 10 },
    );
    assert.deepEqual(stored, []);
  });

  test('a key spelled with an escape is the same key ("action" and "\\u0061ction")', async () => {
    await refused(`${open({ action: 'user.logout' })},"\\u0061ction":"admin.user.delete"}`, {
      detail: 'the body has the key "action" twice in one object, at action;',
      index: 0,
      path: 'action',
    });
  });

  test('in an array, the answer names the event and the path inside it', async () => {
    const ok = JSON.stringify(rawEvent());
    await refused(
      `[${ok},${ok},${ok},${open({ actor: undefined })},"actor":{"type":"user","id":"a","id":"b"}}]`,
      {
        detail: 'the body has the key "id" twice in one object, at [3].actor.id;',
        index: 3,
        path: 'actor.id',
      },
    );
  });

  test('in NDJSON, the answer names the line and the path inside the event', async () => {
    const ok = JSON.stringify(rawEvent());
    const lines = [ok, ok, '', ok, ok, ok, `${open()},"metadata":{"x":1,"x":2}}`];
    await refused(
      `${lines.join('\n')}\n`,
      { detail: 'line 7 has the key "x" twice in one object, at metadata.x;', index: 5, path: 'metadata.x' },
      'application/x-ndjson',
    );
  });

  test('every nesting level is checked: actor, resource, metadata, changes', async () => {
    const cases: Array<[member: string, value: string, key: string, path: string]> = [
      ['actor', '{"type":"user","id":"usr_a","name":"a","id":"usr_root"}', 'id', 'actor.id'],
      ['resource', '{"type":"document","id":"d1","type":"user"}', 'type', 'resource.type'],
      ['metadata', '{"a":{"b":[{"c":1},{"c":1,"c":2}]}}', 'c', 'metadata.a.b[1].c'],
      [
        'changes',
        '[{"field":"role","old":"user","new":"admin","\\u006eew":"user"}]',
        'new',
        'changes[0].new',
      ],
    ];
    for (const [member, value, key, path] of cases) {
      // The event's own member of that name is left out: the duplicate is only the nested one.
      await refused(`${open({ [member]: undefined })},"${member}":${value}}`, {
        detail: `the body has the key "${key}" twice in one object, at ${path};`,
        index: 0,
        path,
      });
    }
  });

  test('an event without duplicates but with tricky strings is stored as sent', async () => {
    const tricky = {
      reason: '"action":"admin.user.delete", "action":"x" \\ \\" {"a":1,"a":2}',
      metadata: {
        'quote"key': 'a\\',
        'back\\slash': '\\\\',
        'naïve 😀': 'ω\u2028\u2029\u0085',
        nested: { action: 'user.login', actor: { id: '"id":"x"' } },
        list: [{ a: 1 }, { a: 1 }, '"a":1'],
      },
    };
    const res = await post(JSON.stringify(rawEvent({ event_id: 'evt_tricky', ...tricky })));
    assert.equal(res.statusCode, 201, res.body);
    const stored = await t.parts.ctx.store.query(
      { tenantIds: null, action: { value: 'user.login', prefix: false } },
      { order: 'desc', limit: 1 },
    );
    assert.equal(stored[0]?.event_id, 'evt_tricky');
    assert.deepEqual(stored[0]?.metadata, tricky.metadata);
    assert.equal(stored[0]?.reason, tricky.reason);
  });

  test('other JSON bodies are refused too: a sink naming "url" twice is not created', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/sinks',
      headers: { 'content-type': 'application/json', authorization: t.admin },
      payload:
        '{"name":"siem","type":"webhook","url":"https://siem.example.com/hook","url":"https://elsewhere.example.com/hook"}',
    });
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(res.json().code, 'TW_ERR_DUPLICATE_KEY');
    assert.match(res.json().detail, /^the request body has the key "url" twice in one object, at url;/);
    assert.deepEqual(res.json().problems, [{ path: 'url', message: 'duplicate key "url"' }]);
    const get = await t.app.inject({
      method: 'GET',
      url: '/v1/sinks/siem',
      headers: { authorization: t.admin },
    });
    assert.equal(get.statusCode, 404);
  });

  test('other JSON bodies are refused too: a key whose role is named twice is not created', async () => {
    const listKeys = async () =>
      (await t.app.inject({ method: 'GET', url: '/v1/keys', headers: { authorization: t.admin } })).json()
        .keys.length as number;
    const before = await listKeys();
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/keys',
      headers: { 'content-type': 'application/json', authorization: t.admin },
      payload: '{"role":"auditor","name":"reader","tenant_id":"acme","\\u0072ole":"admin"}',
    });
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(res.json().code, 'TW_ERR_DUPLICATE_KEY');
    assert.match(res.json().detail, /the key "role" twice/);
    assert.equal(await listKeys(), before);
  });

  test('malformed JSON in other bodies is TW_ERR_MALFORMED_JSON with the position', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/keys',
      headers: { 'content-type': 'application/json', authorization: t.admin },
      payload: '{"role":"auditor",}',
    });
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(res.json().code, 'TW_ERR_MALFORMED_JSON');
    assert.match(res.json().detail, /^the request body is not valid JSON at line 1, column 19/);
  });
});
