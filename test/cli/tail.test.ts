import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { ApiClient } from '../../src/cli/http-client.js';
import { type SseItem, SseParser, tailEvents } from '../../src/cli/tail.js';

function feedAll(chunks: string[]): SseItem[] {
  const parser = new SseParser();
  return chunks.flatMap((c) => parser.feed(c));
}

describe('SseParser', () => {
  test('an event split across chunks at every position is parsed the same', () => {
    const text = 'id: 7\nevent: audit\ndata: {"seq":7}\n\n';
    for (let cut = 0; cut <= text.length; cut++) {
      const items = feedAll([text.slice(0, cut), text.slice(cut)]);
      assert.deepEqual(
        items,
        [{ kind: 'message', id: '7', event: 'audit', data: '{"seq":7}' }],
        `cut at ${cut}`,
      );
    }
  });

  test('several data lines join with newlines', () => {
    const items = feedAll(['data: {"a":\ndata:1}\n\n']);
    assert.deepEqual(items, [{ kind: 'message', id: undefined, event: 'message', data: '{"a":\n1}' }]);
  });

  test('comments come out as comments and do not end or start an event', () => {
    const items = feedAll([': ping\n', 'id: 1\n:keepalive\ndata: x\n\n']);
    assert.deepEqual(items, [
      { kind: 'comment', text: 'ping' },
      { kind: 'comment', text: 'keepalive' },
      { kind: 'message', id: '1', event: 'message', data: 'x' },
    ]);
  });

  test('CRLF and lone CR end lines, even with CR and LF in different chunks', () => {
    const items = feedAll(['id: 1\r', '\ndata: a\r\r', 'data: b\r\n\r\n']);
    assert.deepEqual(items, [
      { kind: 'message', id: '1', event: 'message', data: 'a' },
      { kind: 'message', id: '1', event: 'message', data: 'b' },
    ]);
  });

  test('the last event id persists and an event without data is not dispatched', () => {
    const parser = new SseParser('3');
    assert.deepEqual(parser.feed('event: audit\n\nid: 4\n\n'), []);
    assert.equal(parser.lastEventId, '4');
    assert.deepEqual(parser.feed('data: z\n\nretry: 500\n'), [
      { kind: 'message', id: '4', event: 'message', data: 'z' },
      { kind: 'retry', ms: 500 },
    ]);
  });

  test('an event not closed by a blank line is held back', () => {
    assert.deepEqual(feedAll(['data: half\n']), []);
  });
});

describe('tailEvents', () => {
  // This tiny server stands in for the real GET /v1/stream, which has its own tests.
  const requests: IncomingMessage[] = [];
  let server: Server;
  after(() => server?.close());

  test('after a dropped connection it reconnects with Last-Event-ID and prints nothing twice', async () => {
    server = createServer((req, res) => {
      requests.push(req);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const ev = (seq: number) =>
        `id: ${seq}\nevent: audit\ndata: ${JSON.stringify({ seq, timestamp: 't', tenant_id: 'acme', action: 'a.b', outcome: 'success', actor: { type: 'user', id: 'u' } })}\n\n`;
      if (requests.length === 1) {
        res.write(`: ping\n\n${ev(1)}${ev(2)}`);
        setTimeout(() => res.destroy(), 20);
      } else {
        res.write(ev(3));
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const lines: string[] = [];
    const notices: string[] = [];
    const controller = new AbortController();
    await tailEvents({
      client: new ApiClient({ url: `http://127.0.0.1:${port}`, key: 'k1' }),
      query: { action: 'a.*' },
      json: true,
      write: (line) => {
        lines.push(line);
        if (lines.length === 3) controller.abort();
      },
      notice: (text) => notices.push(text),
      signal: controller.signal,
      backoff: { initialMs: 10, maxMs: 20 },
    });
    assert.deepEqual(
      lines.map((l) => (JSON.parse(l) as { seq: number }).seq),
      [1, 2, 3],
    );
    assert.equal(requests.length, 2);
    assert.equal(requests[0]?.headers['last-event-id'], undefined);
    assert.equal(requests[1]?.headers['last-event-id'], '2');
    assert.equal(requests[1]?.headers.authorization, 'Bearer k1');
    assert.match(requests[1]?.url ?? '', /action=a\.\*/);
    assert.equal(notices.length, 1);
    assert.match(notices[0] ?? '', /reconnecting/);
    server.closeAllConnections();
  });
});
