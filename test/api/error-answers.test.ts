import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ERROR_CODES } from '../../src/errors.js';
import { rawEvent, type TestApp, testApp } from '../helpers/app.js';
import { RawConnection, type RawResponse, requestHead } from '../helpers/raw-http.js';

/** Asserts an RFC 9457 answer with one of our codes, and returns its document. */
function problemOf(
  res: { statusCode: number; headers: Record<string, unknown>; body: string },
  status: number,
  code: string,
): Record<string, unknown> {
  assert.equal(res.statusCode, status, res.body);
  assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
  const doc = JSON.parse(res.body) as Record<string, unknown>;
  assert.equal(doc['code'], code);
  assert.equal(doc['status'], status);
  assert.ok((doc['code'] as string) in ERROR_CODES);
  assert.equal(typeof doc['detail'], 'string');
  return doc;
}

const fromRaw = (r: RawResponse | undefined) => {
  assert.ok(r, 'no answer before the connection closed');
  return { statusCode: r.status, headers: r.headers, body: r.body };
};

describe('every error answer is problem+json with a code', () => {
  let t: TestApp;
  let port: number;
  let auditor: string;
  before(async () => {
    t = await testApp({ audit_reads: false });
    port = Number(new URL(await t.app.listen({ host: '127.0.0.1', port: 0 })).port);
    auditor = await t.key('auditor', null);
  });
  after(() => t.close());

  const get = (url: string) => t.app.inject({ method: 'GET', url, headers: { authorization: auditor } });

  test('event ids of 101 to 128 characters, accepted at ingest, are served by GET /v1/events/{id} and its proof', async () => {
    for (const length of [101, 128]) {
      const id = `evt_${'x'.repeat(length - 4)}`;
      const posted = await t.app.inject({
        method: 'POST',
        url: '/v1/events',
        headers: { authorization: t.admin, 'content-type': 'application/json' },
        payload: JSON.stringify(rawEvent({ event_id: id })),
      });
      assert.equal(posted.statusCode, 201, posted.body);
      const one = await get(`/v1/events/${id}`);
      assert.equal(one.statusCode, 200, one.body);
      assert.equal(one.json().event_id, id);
      assert.equal((await get(`/v1/events/${id}/proof`)).statusCode, 200);
    }
  });

  test('a path segment longer than any id is a 414 problem', async () => {
    problemOf(await get(`/v1/events/${'x'.repeat(129)}`), 414, 'TW_ERR_URI_TOO_LONG');
    problemOf(await get(`/v1/sinks/${'s'.repeat(200)}/status`), 414, 'TW_ERR_URI_TOO_LONG');
  });

  test('a malformed percent-encoding in the path is a 400 problem', async () => {
    problemOf(await get('/v1/events/%zz'), 400, 'TW_ERR_BAD_REQUEST');
  });

  test('an unknown route is a 404 problem; a known path with another method is a 405 problem with Allow', async () => {
    problemOf(await get('/v1/nothing'), 404, 'TW_ERR_NOT_FOUND');
    const put = await t.app.inject({ method: 'PUT', url: '/v1/events', headers: { authorization: auditor } });
    problemOf(put, 405, 'TW_ERR_METHOD_NOT_ALLOWED');
    assert.equal(put.headers['allow'], 'GET, HEAD, POST');
    const del = await t.app.inject({ method: 'DELETE', url: '/v1/events/evt_1' });
    problemOf(del, 405, 'TW_ERR_METHOD_NOT_ALLOWED');
    assert.equal(del.headers['allow'], 'GET, HEAD');
  });

  test('a sink name or dead-letter id outside its pattern is a 400 problem naming it', async () => {
    const sink = problemOf(
      await t.app.inject({ method: 'GET', url: '/v1/sinks/Not_A_Name', headers: { authorization: t.admin } }),
      400,
      'TW_ERR_INVALID_PARAMETER',
    );
    assert.match(String(sink['detail']), /name/);
    problemOf(
      await t.app.inject({
        method: 'GET',
        url: `/v1/sinks/abc/dead-letters/${'9'.repeat(16)}`,
        headers: { authorization: t.admin },
      }),
      400,
      'TW_ERR_INVALID_PARAMETER',
    );
  });

  test('an unreadable content type on an admin route is a 415 problem that asks for JSON', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/keys',
      headers: { authorization: t.admin, 'content-type': '/;;' },
      payload: '{}',
    });
    const doc = problemOf(res, 415, 'TW_ERR_UNSUPPORTED_MEDIA_TYPE');
    assert.match(String(doc['detail']), /application\/json/);
    assert.doesNotMatch(String(doc['detail']), /events/);
  });

  test('malformed JSON on an admin route is a 400 problem', async () => {
    problemOf(
      await t.app.inject({
        method: 'POST',
        url: '/v1/sinks',
        headers: { authorization: t.admin, 'content-type': 'application/json' },
        payload: '{"name":',
      }),
      400,
      'TW_ERR_MALFORMED_JSON',
    );
  });

  test('a request while the server is starting or stopping is a 503 problem with Retry-After; health routes still answer', async () => {
    t.parts.setReady(false);
    try {
      const res = await get('/v1/events');
      problemOf(res, 503, 'TW_ERR_NOT_READY');
      assert.equal(res.headers['retry-after'], '1');
      assert.equal((await t.app.inject({ method: 'GET', url: '/readyz' })).json().status, 'shutting_down');
      assert.equal((await t.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    } finally {
      t.parts.setReady(true);
    }
  });

  test('headers larger than Node reads are a 431 problem', async () => {
    const c = await RawConnection.open(port);
    try {
      c.write(requestHead('GET', '/v1/events', { Authorization: auditor, 'X-Padding': 'p'.repeat(20_000) }));
      problemOf(fromRaw(await c.response()), 431, 'TW_ERR_HEADERS_TOO_LARGE');
    } finally {
      c.destroy();
    }
  });

  test('bytes that are not HTTP are a 400 problem', async () => {
    const c = await RawConnection.open(port);
    try {
      c.write('HELLO THERE\r\n\r\n');
      problemOf(fromRaw(await c.response()), 400, 'TW_ERR_BAD_REQUEST');
    } finally {
      c.destroy();
    }
  });
});
