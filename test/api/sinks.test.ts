import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { rawEvent, type TestApp, testApp } from '../helpers/app.js';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

describe('/v1/sinks', () => {
  let t: TestApp;
  let acmeAdmin: string;
  /** file_sink_root: where API-created file sinks write. */
  const fileRoot = mkdtempSync(join(tmpdir(), 'tw-sinks-root-'));
  before(async () => {
    t = await testApp({
      audit_reads: false,
      file_sink_root: fileRoot,
      sinks: [{ name: 'from-file', type: 'stdout', enabled: false }],
    });
    acmeAdmin = await t.key('admin', 'acme');
  });
  after(async () => {
    await t.close();
    rmSync(fileRoot, { recursive: true, force: true });
  });

  const call = (
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    url: string,
    payload?: unknown,
    auth = t.admin,
  ) =>
    t.app.inject({
      method,
      url,
      headers: { authorization: auth },
      ...(payload === undefined ? {} : { payload: payload as object }),
    });

  test('a sink created through the API never shows its secret or header values, and its changes are recorded without values', async () => {
    const created = await call('POST', '/v1/sinks', {
      name: 'siem',
      type: 'webhook',
      url: 'https://siem.example.com/hook',
      secret: SECRET,
      headers: { authorization: 'Bearer sekret-token-123' },
    });
    assert.equal(created.statusCode, 201, created.body);
    for (const res of [created, await call('GET', '/v1/sinks'), await call('GET', '/v1/sinks/siem')]) {
      assert.ok(!res.body.includes(SECRET) && !res.body.includes('sekret-token-123'), res.body);
      assert.ok(res.body.includes('********'));
    }
    const patched = await call('PATCH', '/v1/sinks/siem', {
      secret: 'whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=',
      batch: { max_events: 10 },
    });
    assert.equal(patched.statusCode, 200, patched.body);
    assert.equal(patched.json().batch.max_events, 10);
    assert.equal(patched.json().url, 'https://siem.example.com/hook', 'a merge patch keeps the other fields');
    const trail = await t.parts.ctx.store.query(
      { tenantIds: null, action: { value: 'sink.', prefix: true } },
      { order: 'asc', limit: 10 },
    );
    assert.deepEqual(
      trail.map((e) => e.action),
      ['sink.created', 'sink.updated'],
    );
    assert.deepEqual(trail[1]!.metadata, { fields: ['batch', 'secret'] });
    assert.equal(trail[1]!.actor.type, 'api_key');
    const dump = JSON.stringify(trail);
    assert.ok(!dump.includes(SECRET) && !dump.includes('QUJDREVG') && !dump.includes('sekret'));
    const deleted = await call('DELETE', '/v1/sinks/siem');
    assert.equal(deleted.statusCode, 204);
    assert.equal((await call('GET', '/v1/sinks/siem')).statusCode, 404);
  });

  test('a bad sink configuration is a 422 naming each field; a duplicate name is a 409', async () => {
    const bad = await call('POST', '/v1/sinks', { name: 'Bad Name', type: 'webhook', url: 'ftp://x' });
    assert.equal(bad.statusCode, 422);
    assert.equal(bad.json().code, 'TW_ERR_INVALID_SINK');
    const messages = bad
      .json()
      .problems.map((p: { message: string }) => p.message)
      .join('\n');
    assert.match(messages, /^name: /m);
    assert.match(messages, /^url: /m);
    assert.equal(
      (await call('POST', '/v1/sinks', { name: 'from-file', type: 'stdout' })).json().code,
      'TW_ERR_SINK_EXISTS',
    );
  });

  test('a sink from the config file is read-only through the API', async () => {
    const res = await call('PATCH', '/v1/sinks/from-file', { format: 'jsonl' });
    assert.equal(res.statusCode, 409);
    assert.equal(res.json().code, 'TW_ERR_SINK_READ_ONLY');
    assert.equal((await call('DELETE', '/v1/sinks/from-file')).statusCode, 409);
    assert.equal((await call('GET', '/v1/sinks/from-file')).json().source, 'config');
  });

  test("a tenant-bound admin's sinks carry only its tenant, and it sees and manages no other sink", async () => {
    const created = await call(
      'POST',
      '/v1/sinks',
      {
        name: 'acme-file',
        type: 'file',
        path: 'acme/audit.log',
        start_from: 'beginning',
        batch: { max_wait_ms: 0 },
      },
      acmeAdmin,
    );
    assert.equal(created.statusCode, 201, created.body);
    assert.deepEqual(created.json().filter.tenants, ['acme']);
    const refused = await call(
      'POST',
      '/v1/sinks',
      { name: 'x', type: 'stdout', filter: { tenants: ['globex'] } },
      acmeAdmin,
    );
    assert.equal(refused.statusCode, 403);
    const listed = (await call('GET', '/v1/sinks', undefined, acmeAdmin))
      .json()
      .sinks.map((s: { name: string }) => s.name);
    assert.deepEqual(listed, ['acme-file']);
    assert.equal((await call('GET', '/v1/sinks/from-file', undefined, acmeAdmin)).statusCode, 404);
    assert.equal((await call('GET', '/v1/sinks/from-file/status', undefined, acmeAdmin)).statusCode, 404);
    const auditor = await t.key('auditor', null);
    assert.equal((await call('GET', '/v1/sinks', undefined, auditor)).statusCode, 403);

    await call('POST', '/v1/events', [
      rawEvent({ tenant_id: 'acme', event_id: 'evt_acme' }),
      rawEvent({ tenant_id: 'globex', event_id: 'evt_globex' }),
    ]);
    const deadline = Date.now() + 5000;
    let lines: string[] = [];
    while (Date.now() < deadline) {
      const status = (await call('GET', '/v1/sinks/acme-file/status', undefined, acmeAdmin)).json();
      if (status.lag_events === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    lines = readFileSync(join(fileRoot, 'acme/audit.log'), 'utf8').trim().split('\n');
    const ids = lines.map((l) => JSON.parse(l).event_id);
    assert.ok(ids.includes('evt_acme'));
    assert.ok(!ids.includes('evt_globex'));
    assert.ok(lines.every((l) => JSON.parse(l).tenant_id === 'acme'));
  });

  test('status, pause and resume, and a replay request that is out of range', async () => {
    await call('POST', '/v1/sinks', { name: 'st', type: 'file', path: 'st.log', start_from: 'beginning' });
    const paused = await call('POST', '/v1/sinks/st/pause');
    assert.equal(paused.json().state, 'paused');
    const resumed = await call('POST', '/v1/sinks/st/resume');
    assert.notEqual(resumed.json().state, 'paused');
    const bad = await call('POST', '/v1/sinks/st/replay', { from_seq: 999_999 });
    assert.equal(bad.statusCode, 400);
    const both = await call('POST', '/v1/sinks/st/replay', {
      from_seq: 1,
      from_time: '2026-01-01T00:00:00Z',
    });
    assert.equal(both.statusCode, 400);
    const disabled = await call('POST', '/v1/sinks/from-file/pause');
    assert.equal(disabled.json().code, 'TW_ERR_SINK_DISABLED');
  });
});
