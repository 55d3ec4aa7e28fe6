import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { rawEvent, type TestApp, testApp } from '../helpers/app.js';

/**
 * What a client reads when a route refuses its query, path or body: status,
 * code and message, route by route. The messages tell the user what to do,
 * so they are part of the API: a change to how routes declare their schemas
 * or parse their parameters must leave every one of them as it is.
 */
interface Refusal {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  url: string;
  /** Sent as JSON unless `contentType` says otherwise. */
  body?: unknown;
  contentType?: string;
  status: number;
  code: string;
  detail: string;
}

const FILTERS = 'from, to, action, actor_id, resource_type, resource_id, outcome, tenant_id, q';

const refusals: Refusal[] = [
  // Filtered reads: the schema keeps each value a single string, the route parses it.
  {
    method: 'GET',
    url: '/v1/events?nope=1',
    status: 400,
    code: 'TW_ERR_UNKNOWN_PARAMETER',
    detail: `unknown query parameter nope; this endpoint accepts ${FILTERS}, order, limit, cursor`,
  },
  {
    method: 'GET',
    url: '/v1/events?limit=1&limit=2',
    status: 400,
    code: 'TW_ERR_INVALID_PARAMETER',
    detail: 'querystring/limit must be string',
  },
  {
    method: 'GET',
    url: '/v1/events?limit=0',
    status: 400,
    code: 'TW_ERR_INVALID_PARAMETER',
    detail: 'limit must be an integer from 1 to 1000',
  },
  {
    method: 'GET',
    url: '/v1/events?q=%01',
    status: 400,
    code: 'TW_ERR_INVALID_PARAMETER',
    detail: 'q contains the control character U+0001; query parameters may have none',
  },
  {
    method: 'GET',
    url: '/v1/events/evt_1?nope=1',
    status: 400,
    code: 'TW_ERR_UNKNOWN_PARAMETER',
    detail: 'unknown query parameter nope; this endpoint accepts tenant_id',
  },
  {
    method: 'GET',
    url: '/v1/events/evt_1?tenant_id=a&tenant_id=b',
    status: 400,
    code: 'TW_ERR_INVALID_PARAMETER',
    detail: 'querystring/tenant_id must be string',
  },
  {
    method: 'GET',
    url: '/v1/events/evt_none',
    status: 404,
    code: 'TW_ERR_NOT_FOUND',
    detail: 'no event "evt_none" visible to this key',
  },
  {
    method: 'GET',
    url: '/v1/events/evt_1/proof?tree_size=x',
    status: 400,
    code: 'TW_ERR_INVALID_PARAMETER',
    detail: 'tree_size must be an integer from 1 to 9007199254740991',
  },
  {
    method: 'GET',
    url: '/v1/events/evt_1/proof?nope=1',
    status: 400,
    code: 'TW_ERR_UNKNOWN_PARAMETER',
    detail: 'unknown query parameter nope; this endpoint accepts tenant_id, tree_size',
  },
  {
    method: 'GET',
    url: '/v1/export?format=xml',
    status: 400,
    code: 'TW_ERR_INVALID_PARAMETER',
    detail: 'format must be jsonl or csv',
  },
  {
    method: 'GET',
    url: '/v1/export?nope=1',
    status: 400,
    code: 'TW_ERR_UNKNOWN_PARAMETER',
    detail: `unknown query parameter nope; this endpoint accepts ${FILTERS}, format, order`,
  },
  {
    method: 'GET',
    url: '/v1/export?order=a&order=b',
    status: 400,
    code: 'TW_ERR_INVALID_PARAMETER',
    detail: 'querystring/order must be string',
  },
  {
    method: 'GET',
    url: '/v1/stream?after=x',
    status: 400,
    code: 'TW_ERR_INVALID_PARAMETER',
    detail: 'after must be an integer from 0 to 9007199254740991',
  },
  {
    method: 'GET',
    url: '/v1/stream?nope=1',
    status: 400,
    code: 'TW_ERR_UNKNOWN_PARAMETER',
    detail: `unknown query parameter nope; this endpoint accepts ${FILTERS}, after`,
  },
  // Checkpoints and proofs.
  {
    method: 'GET',
    url: '/v1/checkpoints/latest?nope=1',
    status: 400,
    code: 'TW_ERR_UNKNOWN_PARAMETER',
    detail: 'unknown query parameter nope; this endpoint accepts ',
  },
  {
    method: 'GET',
    url: '/v1/checkpoints/key?nope=1',
    status: 400,
    code: 'TW_ERR_UNKNOWN_PARAMETER',
    detail: 'unknown query parameter nope; this endpoint accepts ',
  },
  {
    method: 'GET',
    url: '/v1/checkpoints?nope=1',
    status: 400,
    code: 'TW_ERR_UNKNOWN_PARAMETER',
    detail: 'unknown query parameter nope; this endpoint accepts from_size, to_size, limit',
  },
  {
    method: 'GET',
    url: '/v1/checkpoints?from_size=5&to_size=2',
    status: 400,
    code: 'TW_ERR_INVALID_PARAMETER',
    detail: 'from_size is larger than to_size; swap them',
  },
  {
    method: 'GET',
    url: '/v1/checkpoints?limit=1&limit=2',
    status: 400,
    code: 'TW_ERR_INVALID_PARAMETER',
    detail: 'querystring/limit must be string',
  },
  {
    method: 'GET',
    url: '/v1/checkpoints/consistency?from=1',
    status: 400,
    code: 'TW_ERR_INVALID_PARAMETER',
    detail: "querystring must have required property 'to'",
  },
  {
    method: 'GET',
    url: '/v1/checkpoints/consistency?from=2&to=1',
    status: 400,
    code: 'TW_ERR_INVALID_PARAMETER',
    detail: 'from is larger than to; swap them',
  },
  {
    method: 'GET',
    url: '/v1/checkpoints/consistency?from=1&to=9&nope=1',
    status: 400,
    code: 'TW_ERR_UNKNOWN_PARAMETER',
    detail: 'unknown query parameter nope; this endpoint accepts from, to',
  },
  // Keys.
  {
    method: 'GET',
    url: '/v1/keys?nope=1',
    status: 400,
    code: 'TW_ERR_UNKNOWN_PARAMETER',
    detail: 'unknown query parameter nope; this endpoint accepts ',
  },
  {
    method: 'POST',
    url: '/v1/keys',
    body: { role: 'boss', name: 'x' },
    status: 400,
    code: 'TW_ERR_BAD_REQUEST',
    detail: 'body/role must be equal to one of the allowed values',
  },
  {
    method: 'POST',
    url: '/v1/keys',
    body: { role: 'admin' },
    status: 400,
    code: 'TW_ERR_BAD_REQUEST',
    detail: "body must have required property 'name'",
  },
  {
    method: 'POST',
    url: '/v1/keys',
    body: { role: 'admin', name: 'x', extra: 1 },
    status: 400,
    code: 'TW_ERR_BAD_REQUEST',
    detail: 'body must NOT have additional properties',
  },
  {
    method: 'POST',
    url: '/v1/keys',
    body: { role: 'admin', name: 'x', tenant_id: 'bad tenant' },
    status: 400,
    code: 'TW_ERR_BAD_REQUEST',
    detail: 'tenant_id must be 1-128 characters of A-Z a-z 0-9 . _ -',
  },
  {
    method: 'DELETE',
    url: '/v1/keys/nokey',
    status: 404,
    code: 'TW_ERR_NOT_FOUND',
    detail: 'no key "nokey" visible to this key',
  },
  // Sinks: their parameters are parsed by the route, which names a repeated one.
  {
    method: 'GET',
    url: '/v1/sinks?nope=1',
    status: 400,
    code: 'TW_ERR_UNKNOWN_PARAMETER',
    detail: 'unknown query parameter nope; this endpoint accepts tenant_id',
  },
  {
    method: 'GET',
    url: '/v1/sinks?tenant_id=a&tenant_id=b',
    status: 400,
    code: 'TW_ERR_INVALID_PARAMETER',
    detail: 'tenant_id was given 2 times; give it once',
  },
  {
    method: 'POST',
    url: '/v1/sinks?nope=1',
    body: {},
    status: 400,
    code: 'TW_ERR_UNKNOWN_PARAMETER',
    detail: 'unknown query parameter nope; this endpoint accepts tenant_id',
  },
  {
    method: 'POST',
    url: '/v1/sinks',
    body: [1],
    status: 400,
    code: 'TW_ERR_BAD_REQUEST',
    detail: 'send the sink configuration as a JSON object',
  },
  {
    method: 'GET',
    url: '/v1/sinks/from-file?tenant_id=a&tenant_id=b',
    status: 400,
    code: 'TW_ERR_INVALID_PARAMETER',
    detail: 'tenant_id was given 2 times; give it once',
  },
  {
    method: 'GET',
    url: '/v1/sinks/nosink',
    status: 404,
    code: 'TW_ERR_NOT_FOUND',
    detail: 'no sink "nosink" visible to this key',
  },
  {
    method: 'PATCH',
    url: '/v1/sinks/from-file',
    body: [1],
    status: 400,
    code: 'TW_ERR_BAD_REQUEST',
    detail: 'send the sink configuration as a JSON object',
  },
  {
    method: 'GET',
    url: '/v1/sinks/from-file/status?nope=1',
    status: 400,
    code: 'TW_ERR_UNKNOWN_PARAMETER',
    detail: 'unknown query parameter nope; this endpoint accepts tenant_id',
  },
  {
    method: 'POST',
    url: '/v1/sinks/Bad/pause',
    status: 400,
    code: 'TW_ERR_INVALID_PARAMETER',
    detail: 'params/name must match pattern "^[a-z0-9][a-z0-9_-]{0,62}$"',
  },
  {
    method: 'POST',
    url: '/v1/sinks/from-file/resume?nope=1',
    status: 400,
    code: 'TW_ERR_UNKNOWN_PARAMETER',
    detail: 'unknown query parameter nope; this endpoint accepts tenant_id',
  },
  {
    method: 'POST',
    url: '/v1/sinks/from-file/replay',
    body: {},
    status: 400,
    code: 'TW_ERR_BAD_REQUEST',
    detail: 'give exactly one of from_seq or from_time',
  },
  {
    method: 'POST',
    url: '/v1/sinks/from-file/replay',
    body: { from_seq: 0 },
    status: 400,
    code: 'TW_ERR_BAD_REQUEST',
    detail: 'body/from_seq must be >= 1',
  },
  {
    method: 'POST',
    url: '/v1/sinks/from-file/replay',
    body: { from_time: 'yesterday' },
    status: 400,
    code: 'TW_ERR_BAD_REQUEST',
    detail: 'body/from_time must match format "date-time"',
  },
  {
    method: 'POST',
    url: '/v1/sinks/from-file/replay',
    status: 400,
    code: 'TW_ERR_BAD_REQUEST',
    detail: 'body must be object',
  },
  {
    method: 'GET',
    url: '/v1/sinks/from-file/dead-letters?limit=0',
    status: 400,
    code: 'TW_ERR_INVALID_PARAMETER',
    detail: 'limit must be an integer from 1 to 1000',
  },
  {
    method: 'GET',
    url: '/v1/sinks/from-file/dead-letters?nope=1',
    status: 400,
    code: 'TW_ERR_UNKNOWN_PARAMETER',
    detail: 'unknown query parameter nope; this endpoint accepts tenant_id, after_id, limit',
  },
  {
    method: 'GET',
    url: '/v1/sinks/from-file/dead-letters/12',
    status: 404,
    code: 'TW_ERR_NOT_FOUND',
    detail: 'no dead letter 12 in sink from-file',
  },
  {
    method: 'GET',
    url: '/v1/sinks/from-file/dead-letters/x1',
    status: 400,
    code: 'TW_ERR_INVALID_PARAMETER',
    detail: 'params/id must match pattern "^[0-9]{1,15}$"',
  },
  {
    method: 'POST',
    url: '/v1/sinks/from-file/dead-letters/redrive',
    body: { ids: [0] },
    status: 400,
    code: 'TW_ERR_BAD_REQUEST',
    detail: 'body/ids/0 must be >= 1',
  },
  {
    method: 'POST',
    url: '/v1/sinks/from-file/dead-letters/redrive',
    body: { nope: 1 },
    status: 400,
    code: 'TW_ERR_BAD_REQUEST',
    detail: 'body must NOT have additional properties',
  },
  // Bodies by content type: events take JSON or NDJSON as bytes, admin routes JSON.
  {
    method: 'POST',
    url: '/v1/events',
    body: 'text',
    contentType: 'text/plain',
    status: 415,
    code: 'TW_ERR_UNSUPPORTED_MEDIA_TYPE',
    detail:
      'Content-Type "text/plain" is not accepted; send application/json or application/x-ndjson (optionally with charset=utf-8)',
  },
  {
    method: 'POST',
    url: '/v1/events',
    body: '',
    contentType: 'application/json',
    status: 400,
    code: 'TW_ERR_BAD_REQUEST',
    detail: 'the request body is empty; send at least one event',
  },
  {
    method: 'POST',
    url: '/v1/events',
    body: '{}',
    contentType: '/;;',
    status: 415,
    code: 'TW_ERR_UNSUPPORTED_MEDIA_TYPE',
    detail:
      'send events as application/json (an object or an array) or application/x-ndjson (one object per line)',
  },
  {
    method: 'POST',
    url: '/v1/keys',
    body: '{}',
    contentType: '/;;',
    status: 415,
    code: 'TW_ERR_UNSUPPORTED_MEDIA_TYPE',
    detail: 'send the body as application/json',
  },
  {
    method: 'POST',
    url: '/v1/keys',
    body: '{"role":"admin","name":"a","name":"b"}',
    contentType: 'application/json',
    status: 400,
    code: 'TW_ERR_DUPLICATE_KEY',
    detail:
      'the request body has the key "name" twice in one object, at name; readers disagree on which value counts, so each key may appear only once per object: remove one of them',
  },
  // Another content type on an admin route reaches the route as bytes, which its body check refuses.
  {
    method: 'POST',
    url: '/v1/keys',
    body: '{"role":"admin","name":"a"}',
    contentType: 'text/plain',
    status: 400,
    code: 'TW_ERR_BAD_REQUEST',
    detail: "body must have required property 'role'",
  },
];

describe('every refusal of a query, path or body keeps its status, code and message', () => {
  let t: TestApp;
  before(async () => {
    t = await testApp({
      audit_reads: false,
      sinks: [{ name: 'from-file', type: 'stdout', enabled: false }],
    });
    const posted = await t.app.inject({
      method: 'POST',
      url: '/v1/events',
      headers: { authorization: t.admin, 'content-type': 'application/json' },
      payload: JSON.stringify(rawEvent({ event_id: 'evt_1' })),
    });
    assert.equal(posted.statusCode, 201, posted.body);
  });
  after(() => t.close());

  for (const r of refusals) {
    const sent = r.body === undefined ? '' : ` with ${r.contentType ?? 'JSON'} ${JSON.stringify(r.body)}`;
    test(`${r.method} ${r.url}${sent} is ${r.status} ${r.code}`, async () => {
      const json = r.contentType === undefined && r.body !== undefined;
      const res = await t.app.inject({
        method: r.method,
        url: r.url,
        headers: {
          authorization: t.admin,
          ...(json ? { 'content-type': 'application/json' } : {}),
          ...(r.contentType === undefined ? {} : { 'content-type': r.contentType }),
        },
        ...(r.body === undefined ? {} : { payload: json ? JSON.stringify(r.body) : String(r.body) }),
      });
      assert.equal(res.statusCode, r.status, res.body);
      assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
      const problem = res.json() as { code: string; detail: string };
      assert.equal(problem.code, r.code);
      assert.equal(problem.detail, r.detail);
    });
  }
});
