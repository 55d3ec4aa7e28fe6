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
