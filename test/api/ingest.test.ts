import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { rawEvent, type TestApp, testApp } from '../helpers/app.js';

describe('POST /v1/events', () => {
  let t: TestApp;
  let publisher: string;
  before(async () => {
    t = await testApp({ limits: { max_batch_events: 5, max_body_bytes: 65536 } });
    publisher = await t.key('publisher', 'acme');
  });
  after(() => t.close());

  const post = (body: string | Buffer, opts: { type?: string; auth?: string } = {}) =>
    t.app.inject({
      method: 'POST',
      url: '/v1/events',
      headers: {
        ...(opts.type === undefined
          ? { 'content-type': 'application/json' }
          : opts.type === ''
            ? {}
            : { 'content-type': opts.type }),
        ...(opts.auth === '' ? {} : { authorization: opts.auth ?? publisher }),
      },
      payload: body,
    });
  const head = () => t.parts.ctx.store.headSeq();

  test('accepts one event, a JSON array and NDJSON, answering 201 with each event_id and status', async () => {
    const one = await post(JSON.stringify(rawEvent({ event_id: 'evt_one' })));
    assert.equal(one.statusCode, 201);
    assert.deepEqual(
      one.json().events.map((e: { event_id: string; status: string }) => [e.event_id, e.status]),
      [['evt_one', 'created']],
    );
    const arr = await post(JSON.stringify([rawEvent(), rawEvent()]));
    assert.equal(arr.statusCode, 201);
    assert.equal(arr.json().accepted, 2);
    assert.match(arr.json().events[0].event_id, /^evt_[0-9A-HJKMNP-TV-Z]{26}$/);
    const nd = await post(`${JSON.stringify(rawEvent())}\n\n${JSON.stringify(rawEvent())}\n`, {
      type: 'application/x-ndjson',
    });
    assert.equal(nd.statusCode, 201);
    assert.equal(nd.json().accepted, 2);
  });

  test('re-sending an event is a duplicate; other content under the same event_id is a 409 that stores nothing', async () => {
    const e = rawEvent({ event_id: 'evt_idem', timestamp: '2026-03-15T08:42:17.003Z' });
    assert.equal((await post(JSON.stringify(e))).json().events[0].status, 'created');
    const before = await head();
    const dup = await post(JSON.stringify(e));
    assert.equal(dup.statusCode, 201);
    assert.equal(dup.json().events[0].status, 'duplicate');
    const conflict = await post(JSON.stringify([rawEvent(), { ...e, outcome: 'failure' }]));
    assert.equal(conflict.statusCode, 409);
    assert.equal(conflict.headers['content-type'], 'application/problem+json; charset=utf-8');
    assert.equal(conflict.json().code, 'TW_ERR_EVENT_CONFLICT');
    assert.equal(conflict.json().problems[0].index, 1);
    assert.equal(await head(), before);
  });

  test('a batch with one bad event stores none and lists every bad index with its reason', async () => {
    const before = await head();
    const res = await post(
      JSON.stringify([
        rawEvent(),
        rawEvent({ outcome: 'maybe' }),
        rawEvent({ action: 'User Login' }),
        rawEvent(),
      ]),
    );
    assert.equal(res.statusCode, 422);
    const body = res.json();
    assert.equal(body.code, 'TW_ERR_INVALID_EVENTS');
    assert.deepEqual([...new Set(body.problems.map((p: { index: number }) => p.index))], [1, 2]);
    assert.ok(body.problems.some((p: { path: string }) => p.path === 'outcome'));
    assert.ok(body.problems.some((p: { path: string }) => p.path === 'action'));
    assert.equal(await head(), before);
  });

  const badBodies: Array<
    [string, () => Promise<{ statusCode: number; json(): { code: string } }>, number, string]
  > = [
    ['malformed JSON', () => post('{"action": '), 400, 'TW_ERR_MALFORMED_JSON'],
    [
      'a wrong content type',
      () => post('action=x', { type: 'application/x-www-form-urlencoded' }),
      415,
      'TW_ERR_UNSUPPORTED_MEDIA_TYPE',
    ],
    [
      'no content type',
      () => post(JSON.stringify(rawEvent()), { type: '' }),
      415,
      'TW_ERR_UNSUPPORTED_MEDIA_TYPE',
    ],
    [
      'invalid UTF-8',
      () => post(Buffer.concat([Buffer.from('{"reason":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')])),
      400,
      'TW_ERR_INVALID_UTF8',
    ],
    [
      'a batch over the event limit',
      () => post(JSON.stringify(Array.from({ length: 6 }, () => rawEvent()))),
      413,
      'TW_ERR_PAYLOAD_TOO_LARGE',
    ],
    [
      'a body over the byte limit',
      () => post(JSON.stringify([rawEvent({ reason: 'x'.repeat(70000) })])),
      413,
      'TW_ERR_PAYLOAD_TOO_LARGE',
    ],
    ['an empty array', () => post('[]'), 400, 'TW_ERR_BAD_REQUEST'],
    [
      'an event over the size limit',
      () =>
        post(
          JSON.stringify(
            rawEvent({
              metadata: {
                a: 'x'.repeat(8000),
                b: 'y'.repeat(8000),
                c: 'z'.repeat(8000),
                d: 'w'.repeat(8000),
                e: 'v'.repeat(8000),
              },
            }),
          ),
        ),
      422,
      'TW_ERR_INVALID_EVENTS',
    ],
    [
      'a missing field',
      () => post(JSON.stringify({ ...rawEvent(), actor: undefined })),
      422,
      'TW_ERR_INVALID_EVENTS',
    ],
    ['a mistyped field', () => post(JSON.stringify(rawEvent({ outcome: 1 }))), 422, 'TW_ERR_INVALID_EVENTS'],
    [
      'a timestamp that is not ISO 8601',
      () => post(JSON.stringify(rawEvent({ timestamp: '15/03/2026 08:42' }))),
      422,
      'TW_ERR_INVALID_EVENTS',
    ],
    [
      'a timestamp beyond the skew bound',
      () => post(JSON.stringify(rawEvent({ timestamp: new Date(Date.now() + 3_600_000).toISOString() }))),
      422,
      'TW_ERR_INVALID_EVENTS',
    ],
    [
      'a NUL character in an id',
      () => post(JSON.stringify(rawEvent({ actor: { type: 'user', id: 'a\u0000b' } }))),
      422,
      'TW_ERR_INVALID_EVENTS',
    ],
    [
      'metadata too deep',
      () =>
        post(
          JSON.stringify(
            rawEvent({ metadata: { a: { b: { c: { d: { e: { f: { g: { h: { i: 1 } } } } } } } } } }),
          ),
        ),
      422,
      'TW_ERR_INVALID_EVENTS',
    ],
    [
      'metadata too wide',
      () =>
        post(
          JSON.stringify(
            rawEvent({ metadata: Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, i])) }),
          ),
        ),
      422,
      'TW_ERR_INVALID_EVENTS',
    ],
    [
      'a __proto__ key',
      () =>
        post(
          '{"timestamp":"2026-03-15T08:42:17Z","actor":{"type":"user","id":"u"},"action":"user.login","outcome":"success","metadata":{"__proto__":{"admin":true}}}',
        ),
      422,
      'TW_ERR_INVALID_EVENTS',
    ],
    [
      'a constructor key',
      () => post(JSON.stringify(rawEvent({ metadata: { constructor: 'x' } }))),
      422,
      'TW_ERR_INVALID_EVENTS',
    ],
    [
      'the same event_id twice in a batch with different content',
      () =>
        post(
          JSON.stringify([
            rawEvent({ event_id: 'evt_twice' }),
            rawEvent({ event_id: 'evt_twice', outcome: 'failure' }),
          ]),
        ),
      422,
      'TW_ERR_INVALID_EVENTS',
    ],
    ['a missing key', () => post(JSON.stringify(rawEvent()), { auth: '' }), 401, 'TW_ERR_UNAUTHENTICATED'],
    [
      'a made-up key',
      () =>
        post(JSON.stringify(rawEvent()), {
          auth: 'Bearer tw_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
        }),
      401,
      'TW_ERR_UNAUTHENTICATED',
    ],
  ];
  for (const [what, send, status, code] of badBodies) {
    test(`${what} gets ${status} ${code} and changes nothing`, async () => {
      const before = await head();
      const res = await send();
      assert.equal(res.statusCode, status, JSON.stringify(res.json()));
      assert.equal(res.json().code, code);
      assert.equal(await head(), before);
    });
  }

  test('an auditor key cannot write (403)', async () => {
    const res = await post(JSON.stringify(rawEvent()), { auth: await t.key('auditor', null) });
    assert.equal(res.statusCode, 403);
    assert.equal(res.json().code, 'TW_ERR_FORBIDDEN');
  });

  test("a tenant key writing another tenant's event is refused, stores nothing, and is recorded as audit.access.denied", async () => {
    const before = await head();
    const res = await post(JSON.stringify([rawEvent(), rawEvent({ tenant_id: 'globex' })]));
    assert.equal(res.statusCode, 403);
    const events = await t.parts.ctx.store.readRange(before, 10);
    assert.deepEqual(
      events.map((e) => [e.action, e.tenant_id, e.outcome]),
      [['audit.access.denied', 'acme', 'denied']],
    );
  });

  test('events sent with a tenant key belong to that tenant; all-tenant keys name the tenant or get the default', async () => {
    const r1 = await post(JSON.stringify(rawEvent({ tenant_id: 'acme' })));
    const [stored1] = await t.parts.ctx.store.findByEventId(r1.json().events[0].event_id, 'acme');
    const seq1 = stored1!.seq;
    const r2 = await post(JSON.stringify([rawEvent({ tenant_id: 'globex' }), rawEvent()]), { auth: t.admin });
    const [e1] = await t.parts.ctx.store.readRange(seq1 - 1, 1);
    assert.equal(e1?.tenant_id, 'acme');
    const [stored2] = await t.parts.ctx.store.findByEventId(r2.json().events[0].event_id, 'globex');
    const seq2 = stored2!.seq;
    const [a, b] = await t.parts.ctx.store.readRange(seq2 - 1, 2);
    assert.equal(a?.tenant_id, 'globex');
    assert.equal(b?.tenant_id, 'default');
  });
});
