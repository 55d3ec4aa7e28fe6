import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type TestApp, testApp } from '../helpers/app.js';
import { makeEvent, prepare } from '../helpers/events.js';

describe('GET /v1/stream with a slow client', () => {
  let t: TestApp;
  let port: number;
  let auditor: string;
  const responses: Array<{ url: string; res: ServerResponse }> = [];
  before(async () => {
    t = await testApp({ audit_reads: false, stream: { heartbeat_ms: 1000 } });
    const url = await t.app.listen({ host: '127.0.0.1', port: 0 });
    port = Number(new URL(url).port);
    auditor = await t.key('auditor', null);
    t.app.server.on('request', (req: IncomingMessage, res: ServerResponse) =>
      responses.push({ url: req.url ?? '', res }),
    );
    // ~80 MB of events: far more than any sane buffer.
    const blob = 'x'.repeat(4000);
    for (let i = 0; i < 20; i++) {
      await t.parts.ctx.store.append(
        Array.from({ length: 1000 }, () => prepare(makeEvent({ metadata: { blob } }))),
      );
    }
  });
  after(() => t.close());

  test('a client that stops reading never makes the server buffer more than about one batch', async () => {
    const socket = connect(port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    socket.write(`GET /v1/stream?after=0 HTTP/1.1\r\nHost: x\r\nAuthorization: ${auditor}\r\n\r\n`);
    // Read a little so the response has started, then stop reading entirely.
    await new Promise((r) => socket.once('data', r));
    socket.pause();
    const stream = responses.find((r) => r.url.startsWith('/v1/stream'))?.res;
    assert.ok(stream, 'the stream response was not seen');
    let maxBuffered = 0;
    for (let i = 0; i < 30; i++) {
      await new Promise((r) => setTimeout(r, 50));
      maxBuffered = Math.max(maxBuffered, stream.writableLength);
    }
    // One read batch is 256 events of ~4.3 KB; 80 MB are waiting in the log.
    assert.ok(maxBuffered > 0, 'the server should have data waiting for the client');
    assert.ok(maxBuffered < 2 * 1024 * 1024, `server buffered ${maxBuffered} bytes for one paused client`);
    socket.destroy();
  });

  test('an idle stream sends heartbeats', async () => {
    const ac = new AbortController();
    const res = await fetch(`http://127.0.0.1:${port}/v1/stream`, {
      headers: { authorization: auditor },
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    let text = '';
    const deadline = setTimeout(() => ac.abort(), 5000);
    try {
      while (!text.includes(': ping')) {
        const { value, done } = await reader.read();
        if (done) break;
        text += Buffer.from(value).toString('utf8');
      }
    } finally {
      clearTimeout(deadline);
      ac.abort();
    }
    assert.ok(text.includes(': ping'), `no heartbeat in ${JSON.stringify(text)}`);
  });
});

describe('GET /v1/stream with stream.max_buffered_bytes', () => {
  let t: TestApp;
  let port: number;
  let auditor: string;
  const streams: ServerResponse[] = [];
  before(async () => {
    t = await testApp({ audit_reads: false, stream: { heartbeat_ms: 1000, max_buffered_bytes: 65536 } });
    const url = await t.app.listen({ host: '127.0.0.1', port: 0 });
    port = Number(new URL(url).port);
    auditor = await t.key('auditor', null);
    t.app.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.url?.startsWith('/v1/stream')) streams.push(res);
    });
  });
  after(() => t.close());

  test('a live client that reads gets a burst far larger than the limit whole', {
    timeout: 60_000,
  }, async () => {
    const ac = new AbortController();
    const res = await fetch(`http://127.0.0.1:${port}/v1/stream`, {
      headers: { authorization: auditor },
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    try {
      let text = '';
      while (!text.includes('retry:')) text += Buffer.from((await reader.read()).value!).toString('utf8');
      const blob = 'y'.repeat(4000);
      // One commit of ~4 MB: sixty times the limit, arriving at once.
      const outcomes = await t.parts.ctx.store.append(
        Array.from({ length: 1000 }, () => prepare(makeEvent({ metadata: { blob } }))),
      );
      const last = outcomes.at(-1)!.seq!;
      while (!text.includes(`id: ${last}\n`)) {
        const { value, done } = await reader.read();
        assert.ok(!done, 'the reading client was disconnected');
        text += Buffer.from(value).toString('utf8');
      }
      assert.equal([...text.matchAll(/^id: \d+$/gm)].length, 1000);
    } finally {
      ac.abort();
    }
  });

  test('a live client that never reads is disconnected once its unread output passes the limit, and can resume', {
    timeout: 60_000,
  }, async () => {
    const socket = connect(port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    // The client never reads while events arrive: the kernel's buffers fill, then the server's.
    socket.pause();
    const earlier = streams.length;
    socket.write(`GET /v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: ${auditor}\r\n\r\n`);
    while (streams.length === earlier) await new Promise((r) => setTimeout(r, 10));
    const stream = streams[earlier]!;
    const blob = 'x'.repeat(4000);
    let appended = 0;
    let mostHeld = 0;
    // Up to 100 MB: far past any kernel buffer and the 64 KiB limit.
    for (let i = 0; i < 100 && !stream.destroyed; i++) {
      await t.parts.ctx.store.append(
        Array.from({ length: 250 }, () => prepare(makeEvent({ metadata: { blob } }))),
      );
      appended += 250;
      await new Promise((r) => setImmediate(r));
      if (!stream.destroyed) mostHeld = Math.max(mostHeld, stream.writableLength);
    }
    assert.ok(stream.destroyed, `the server still holds the stream after ${appended} events`);
    // Never more than the limit and one write (16 KiB and an event) on top.
    assert.ok(mostHeld <= 65536 + 32768, `the server held ${mostHeld} bytes for the client`);
    // When the client finally reads, it gets what the kernel held, then the end.
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
    });
    socket.resume();
    await new Promise((r) => socket.once('close', r));
    const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    assert.ok(ids.length > 0, 'the client got nothing before the end');
    assert.ok(ids.length < appended, `the client got all ${appended} events`);
    // It resumes after the last event it received, and the stream goes on from there.
    const last = ids.at(-1)!;
    const ac = new AbortController();
    const res = await fetch(`http://127.0.0.1:${port}/v1/stream`, {
      headers: { authorization: auditor, 'last-event-id': String(last) },
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    let resumed = '';
    try {
      while (!/^id: \d+$/m.test(resumed)) {
        const { value, done } = await reader.read();
        assert.ok(!done);
        resumed += Buffer.from(value).toString('utf8');
      }
    } finally {
      ac.abort();
    }
    assert.equal(Number(/^id: (\d+)$/m.exec(resumed)?.[1]), last + 1);
  });
});
