import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { rawEvent, type TestApp, testApp } from '../helpers/app.js';
import { RawConnection, requestHead } from '../helpers/raw-http.js';

const FIVE_MIB = 5 * 1024 * 1024;

/** Without the bounds under test these requests would hang; the runner then reports a failure. */
const BOUNDED = { timeout: 30_000 };

describe('requests are authenticated on their headers, before any body is read', () => {
  let t: TestApp;
  let port: number;
  let publisher: string;
  let auditor: string;
  before(async () => {
    t = await testApp({ audit_reads: false });
    port = Number(new URL(await t.app.listen({ host: '127.0.0.1', port: 0 })).port);
    publisher = await t.key('publisher', 'acme');
    auditor = await t.key('auditor', 'acme');
  });
  after(() => t.close());

  const declareBigBody = (auth: Record<string, string>) =>
    requestHead('POST', '/v1/events', {
      'Content-Type': 'application/json',
      'Content-Length': FIVE_MIB,
      ...auth,
    });

  test(
    '100 connections without a key that declare 5 MiB bodies and never send them each get a 401 problem at once',
    BOUNDED,
    async () => {
      const connections = await Promise.all(Array.from({ length: 100 }, () => RawConnection.open(port)));
      try {
        // Half send no key, half a forged one.
        connections.forEach((c, i) => {
          c.write(declareBigBody(i % 2 === 0 ? {} : { Authorization: 'Bearer tw_aaaaaaaaaaaaaaaa_forged' }));
        });
        const answers = await Promise.all(connections.map((c) => c.response()));
        for (const a of answers) {
          assert.equal(a?.status, 401);
          assert.equal(a.headers['content-type'], 'application/problem+json; charset=utf-8');
          assert.equal(JSON.parse(a.body).code, 'TW_ERR_UNAUTHENTICATED');
        }
      } finally {
        for (const c of connections) c.destroy();
      }
    },
  );

  test('a key whose role cannot write gets its 403 before sending the body', BOUNDED, async () => {
    const c = await RawConnection.open(port);
    try {
      c.write(declareBigBody({ Authorization: auditor }));
      const answer = await c.response();
      assert.equal(answer?.status, 403);
      assert.equal(JSON.parse(answer.body).code, 'TW_ERR_FORBIDDEN');
    } finally {
      c.destroy();
    }
  });

  test('a valid key still has its body read and stored', BOUNDED, async () => {
    const res = await fetch(`http://127.0.0.1:${port}/v1/events`, {
      method: 'POST',
      headers: { authorization: publisher, 'content-type': 'application/json' },
      body: JSON.stringify(rawEvent({ event_id: 'evt_after_headers' })),
    });
    assert.equal(res.status, 201);
  });

  test(
    'the public routes answer without a key; an unknown route is a 404 problem without one',
    BOUNDED,
    async () => {
      for (const path of ['/healthz', '/readyz', '/openapi.json', '/v1/actions']) {
        assert.equal((await t.app.inject({ method: 'GET', url: path })).statusCode, 200, path);
      }
      const unknown = await t.app.inject({ method: 'POST', url: '/v1/nothing', payload: 'x' });
      assert.equal(unknown.statusCode, 404);
      assert.equal(unknown.json().code, 'TW_ERR_NOT_FOUND');
    },
  );
});

describe('request timeouts', () => {
  let t: TestApp;
  let port: number;
  let publisher: string;
  let auditor: string;
  before(async () => {
    t = await testApp({
      audit_reads: false,
      limits: { headers_timeout_ms: 300, request_timeout_ms: 600, keep_alive_timeout_ms: 200 },
      stream: { heartbeat_ms: 1000 },
    });
    port = Number(new URL(await t.app.listen({ host: '127.0.0.1', port: 0 })).port);
    publisher = await t.key('publisher', 'acme');
    auditor = await t.key('auditor', 'acme');
  });
  after(() => t.close());

  /** Sends one byte every 100 ms until the server closes the connection. */
  const trickle = async (c: RawConnection, byte: string) => {
    const timer = setInterval(() => c.write(byte), 100);
    try {
      await c.untilClosed();
    } finally {
      clearInterval(timer);
    }
  };

  test(
    'a body trickled a byte at a time is cut at limits.request_timeout_ms with a 408 problem, and nothing is stored',
    BOUNDED,
    async () => {
      const head = await t.parts.ctx.store.headSeq();
      const c = await RawConnection.open(port);
      c.write(
        requestHead('POST', '/v1/events', {
          Authorization: publisher,
          'Content-Type': 'application/json',
          'Content-Length': 4096,
        }),
      );
      await trickle(c, ' ');
      const answer = await c.response();
      assert.equal(answer?.status, 408);
      assert.equal(answer.headers['content-type'], 'application/problem+json; charset=utf-8');
      assert.equal(JSON.parse(answer.body).code, 'TW_ERR_REQUEST_TIMEOUT');
      assert.equal(await t.parts.ctx.store.headSeq(), head);
    },
  );

  test(
    'headers trickled a byte at a time are cut at limits.headers_timeout_ms with a 408 problem',
    BOUNDED,
    async () => {
      const c = await RawConnection.open(port);
      c.write('GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      await trickle(c, 'x');
      const answer = await c.response();
      assert.equal(answer?.status, 408);
      assert.equal(JSON.parse(answer.body).code, 'TW_ERR_REQUEST_TIMEOUT');
    },
  );

  test(
    'a kept-alive connection with no next request is closed after limits.keep_alive_timeout_ms',
    BOUNDED,
    async () => {
      const c = await RawConnection.open(port);
      c.write(requestHead('GET', '/healthz', {}));
      assert.equal((await c.response())?.status, 200);
      await c.untilClosed();
      assert.equal(c.error, undefined);
    },
  );

  test(
    'a live stream outlives the request and header timeouts: they bound receiving the request only',
    BOUNDED,
    async () => {
      const ac = new AbortController();
      const res = await fetch(`http://127.0.0.1:${port}/v1/stream`, {
        headers: { authorization: auditor },
        signal: ac.signal,
      });
      const reader = res.body!.getReader();
      try {
        // Several request timeouts pass with the stream open; heartbeats keep coming.
        let text = '';
        while ((text.match(/: ping/g) ?? []).length < 3) {
          const { value, done } = await reader.read();
          assert.ok(!done, 'the stream was closed');
          text += Buffer.from(value).toString('utf8');
        }
        const posted = await fetch(`http://127.0.0.1:${port}/v1/events`, {
          method: 'POST',
          headers: { authorization: publisher, 'content-type': 'application/json' },
          body: JSON.stringify(rawEvent({ event_id: 'evt_through_open_stream' })),
        });
        assert.equal(posted.status, 201);
        while (!text.includes('evt_through_open_stream')) {
          const { value, done } = await reader.read();
          assert.ok(!done, 'the stream was closed before the new event');
          text += Buffer.from(value).toString('utf8');
        }
      } finally {
        ac.abort();
      }
    },
  );
});

describe('limits.idle_timeout_ms', () => {
  let t: TestApp;
  let port: number;
  let publisher: string;
  before(async () => {
    t = await testApp({
      limits: { request_timeout_ms: 600_000, idle_timeout_ms: 2000 },
      stream: { heartbeat_ms: 1000 },
      cluster: { pending_wait_ms: 1000 },
    });
    port = Number(new URL(await t.app.listen({ host: '127.0.0.1', port: 0 })).port);
    publisher = await t.key('publisher', 'acme');
  });
  after(() => t.close());

  test('a connection on which nothing moves while its request is open is closed', BOUNDED, async () => {
    const c = await RawConnection.open(port);
    c.write(
      requestHead('POST', '/v1/events', {
        Authorization: publisher,
        'Content-Type': 'application/json',
        'Content-Length': 100,
      }),
    );
    await c.untilClosed();
    assert.equal(await c.response(), undefined);
  });
});

describe('limits.max_inflight_body_bytes', () => {
  let t: TestApp;
  let port: number;
  let publisher: string;
  before(async () => {
    t = await testApp({
      audit_reads: false,
      limits: { max_event_bytes: 1024, max_body_bytes: 4096, max_inflight_body_bytes: 8192 },
    });
    port = Number(new URL(await t.app.listen({ host: '127.0.0.1', port: 0 })).port);
    publisher = await t.key('publisher', 'acme');
  });
  after(() => t.close());

  const declare = (bytes: number, auth: string | null = publisher) =>
    requestHead('POST', '/v1/events', {
      ...(auth === null ? {} : { Authorization: auth }),
      'Content-Type': 'application/json',
      'Content-Length': bytes,
    });

  test(
    'a body that does not fit beside those being received is refused with 503 and Retry-After before it is read; the room comes back',
    BOUNDED,
    async () => {
      // Unauthenticated callers take no room: they are answered on their headers.
      const strangers = await Promise.all(Array.from({ length: 10 }, () => RawConnection.open(port)));
      const holders = await Promise.all([RawConnection.open(port), RawConnection.open(port)]);
      const late = await RawConnection.open(port);
      try {
        for (const s of strangers) s.write(declare(4096, null));
        for (const s of strangers) assert.equal((await s.response())?.status, 401);
        // Two uploads that never finish hold all 8192 bytes, once the server has seen them.
        let seen = 0;
        const count = (req: IncomingMessage) => {
          if (req.url === '/v1/events') seen += 1;
        };
        t.app.server.on('request', count);
        for (const h of holders) h.write(declare(4096));
        while (seen < 2) await new Promise((r) => setTimeout(r, 10));
        t.app.server.off('request', count);
        await new Promise((r) => setImmediate(r));
        late.write(declare(10));
        const refused = await late.response();
        assert.equal(refused?.status, 503);
        assert.equal(refused.headers['retry-after'], '1');
        assert.equal(JSON.parse(refused.body).code, 'TW_ERR_BUSY');
      } finally {
        for (const c of [...strangers, ...holders, late]) c.destroy();
      }
      // Once the holders are gone their room is free again.
      let status = 0;
      while (status !== 201) {
        const res = await fetch(`http://127.0.0.1:${port}/v1/events`, {
          method: 'POST',
          headers: { authorization: publisher, 'content-type': 'application/json' },
          body: JSON.stringify(rawEvent()),
        });
        status = res.status;
        if (status !== 201) {
          assert.equal(status, 503);
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    },
  );
});
