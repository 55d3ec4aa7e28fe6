import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type TestApp, testApp } from '../helpers/app.js';
import { RawConnection, requestHead } from '../helpers/raw-http.js';

const LIMIT = 64 * 1024;

describe('a body over limits.max_body_bytes', () => {
  let t: TestApp;
  let port: number;
  let publisher: string;
  before(async () => {
    t = await testApp({ audit_reads: false, limits: { max_body_bytes: LIMIT } });
    port = Number(new URL(await t.app.listen({ host: '127.0.0.1', port: 0 })).port);
    publisher = await t.key('publisher', 'acme');
  });
  after(() => t.close());

  /**
   * Sends the whole body before reading anything, as many clients do: the
   * server's 413 must still be readable afterwards, not lost to a reset.
   */
  const sendWholeBodyThenRead = async (framing: 'content-length' | 'chunked') => {
    const c = await RawConnection.open(port);
    try {
      c.socket.pause();
      const size = 3 * LIMIT;
      c.write(
        requestHead('POST', '/v1/events', {
          Authorization: publisher,
          'Content-Type': 'application/json',
          ...(framing === 'chunked' ? { 'Transfer-Encoding': 'chunked' } : { 'Content-Length': size }),
        }),
      );
      const piece = Buffer.alloc(8192, 0x20);
      for (let sent = 0; sent < size; sent += piece.length) {
        if (framing === 'chunked') c.write(`${piece.length.toString(16)}\r\n`);
        c.write(piece);
        if (framing === 'chunked') c.write('\r\n');
        // Let the server read (and answer) while the body is still on its way.
        await new Promise((r) => setImmediate(r));
      }
      if (framing === 'chunked') c.write('0\r\n\r\n');
      // Everything is handed to the kernel before the client starts reading.
      while (c.socket.writableLength > 0 && !c.socket.destroyed) await new Promise((r) => setTimeout(r, 5));
      c.socket.resume();
      const answer = await c.response();
      assert.equal(answer?.status, 413, `no 413 (${c.error ?? 'closed'})`);
      assert.equal(JSON.parse(answer.body).code, 'TW_ERR_PAYLOAD_TOO_LARGE');
      return c;
    } catch (err) {
      c.destroy();
      throw err;
    }
  };

  test('a client that sends its whole declared body before reading gets the 413, not a reset, and the connection serves its next request', async () => {
    for (let i = 0; i < 10; i++) {
      const c = await sendWholeBodyThenRead('content-length');
      // The rest of the body was read and discarded: the connection is still in step.
      c.write(requestHead('GET', '/healthz', {}));
      const both = await c.until((text) => /HTTP\/1\.1 413[\s\S]*HTTP\/1\.1 200/.test(text));
      assert.match(both, /HTTP\/1\.1 413[\s\S]*HTTP\/1\.1 200/);
      c.destroy();
    }
  });

  test('a client that sends a whole chunked body over the limit before reading gets the 413, not a reset', async () => {
    for (let i = 0; i < 10; i++) (await sendWholeBodyThenRead('chunked')).destroy();
  });

  test("Node's fetch posting a body over the limit reads the 413 every time", async () => {
    const body = Buffer.alloc(4 * LIMIT, 0x20);
    for (let i = 0; i < 50; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/v1/events`, {
        method: 'POST',
        headers: { authorization: publisher, 'content-type': 'application/json' },
        body,
      });
      assert.equal(res.status, 413);
      assert.equal(((await res.json()) as { code: string }).code, 'TW_ERR_PAYLOAD_TOO_LARGE');
    }
  });
});
