import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import { ApiClient, ApiError } from '../../src/cli/http-client.js';
import { InputError, type InputRecord, readRecords, SendError, sendEvents } from '../../src/cli/send.js';

async function records(...chunks: string[]): Promise<InputRecord[]> {
  const out: InputRecord[] = [];
  for await (const r of readRecords(chunks)) out.push(r);
  return out;
}

describe('readRecords', () => {
  test('NDJSON gives one record per line with its line number, skipping blank lines', async () => {
    assert.deepEqual(await records('{"a":1}\n\n{"b":"x}{"}\n'), [
      { line: 1, text: '{"a":1}' },
      { line: 3, text: '{"b":"x}{"}' },
    ]);
  });

  test('a pretty-printed JSON array gives each element on one line, numbered by its first line', async () => {
    const input = '[\n  {\n    "a": 1\n  },\n  {"b": [2, 3]}\n]\n';
    assert.deepEqual(await records(input), [
      { line: 2, text: '{     "a": 1   }' },
      { line: 5, text: '{"b": [2, 3]}' },
    ]);
  });

  test('a single pretty-printed object is one record', async () => {
    assert.deepEqual(await records('\n{\n "a": "b\\n"\n}'), [{ line: 2, text: '{  "a": "b\\n" }' }]);
  });

  test('input split into one-character chunks reads the same', async () => {
    const input = '[{"a":"[\\"]"},\n{"b":{}}]';
    assert.deepEqual(await records(...input.split('')), await records(input));
    assert.equal((await records(...input.split(''))).length, 2);
  });

  test('invalid JSON, a non-object and an unclosed object are refused with their line', async () => {
    await assert.rejects(
      records('{"a":1}\n{"a" 1}\n'),
      (e: unknown) => e instanceof InputError && e.line === 2,
    );
    await assert.rejects(records('[{"a":1},\n 42]'), /line 2: expected a JSON object/);
    await assert.rejects(records('{"a":1}\n{"b":\n'), /line 2: the object starting here is never closed/);
    await assert.rejects(records('[{"a":1}'), /never closed/);
  });
});

describe('sendEvents', () => {
  // This tiny server stands in for the real POST /v1/events (which has its own tests):
  // it records each request and answers what the test tells it to.
  interface Recorded {
    contentType: string | undefined;
    authorization: string | undefined;
    lines: string[];
  }
  let requests: Recorded[] = [];
  let answer: (batch: string[], n: number) => { status: number; body: unknown } = () => ({
    status: 200,
    body: {},
  });
  let server: Server;
  let client: ApiClient;

  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => {
        body += c;
      });
      req.on('end', () => {
        const lines = body.split('\n').filter((l) => l !== '');
        requests.push({
          contentType: req.headers['content-type'],
          authorization: req.headers.authorization,
          lines,
        });
        const { status, body: out } = answer(lines, requests.length);
        const type = status >= 400 ? 'application/problem+json' : 'application/json';
        res
          .writeHead(status, { 'content-type': type })
          .end(typeof out === 'string' ? out : JSON.stringify(out));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    client = new ApiClient({
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      key: 'tw_test',
    });
  });
  after(() => server.close());
  beforeEach(() => {
    requests = [];
    answer = (batch) => ({
      status: 200,
      body: {
        accepted: batch.length,
        events: batch.map((l) => {
          const e = JSON.parse(l) as { event_id: string };
          return { event_id: e.event_id, status: e.event_id.endsWith('dup') ? 'duplicate' : 'created' };
        }),
      },
    });
  });

  const ndjson = (ids: string[]) =>
    `${ids.map((id) => JSON.stringify({ event_id: id, action: 'a.b' })).join('\n')}\n`;

  test('posts NDJSON batches of at most batchSize events, in order, with the key', async () => {
    const summary = await sendEvents({
      client,
      input: [ndjson(['e1', 'e2', 'e3dup', 'e4', 'e5'])],
      batchSize: 2,
      maxBatchBytes: 1 << 20,
    });
    assert.deepEqual(
      requests.map((r) => r.lines.map((l) => (JSON.parse(l) as { event_id: string }).event_id)),
      [['e1', 'e2'], ['e3dup', 'e4'], ['e5']],
    );
    assert.ok(requests.every((r) => r.contentType === 'application/x-ndjson'));
    assert.ok(requests.every((r) => r.authorization === 'Bearer tw_test'));
    assert.deepEqual(summary, { events: 5, created: 4, duplicates: 1, nextLine: 6 });
  });

  test('a batch is also closed before it would pass maxBatchBytes', async () => {
    const line = JSON.stringify({ event_id: 'e', action: 'a.b' });
    await sendEvents({
      client,
      input: [ndjson(['e1', 'e2', 'e3'])],
      batchSize: 100,
      maxBatchBytes: (line.length + 2) * 2,
    });
    assert.deepEqual(
      requests.map((r) => r.lines.length),
      [2, 1],
    );
  });

  test('problems in a refused batch are mapped back to input lines', async () => {
    answer = (batch, n) =>
      n === 2
        ? {
            status: 422,
            body: {
              type: 'https://trailwarden.dev/errors/TW_ERR_INVALID_EVENTS',
              title: 'Invalid events',
              status: 422,
              code: 'TW_ERR_INVALID_EVENTS',
              detail: '1 event is invalid',
              problems: [{ index: 1, path: 'actor.id', message: 'is required' }],
            },
          }
        : { status: 200, body: { accepted: batch.length, events: batch.map(() => ({ status: 'created' })) } };
    // Blank lines shift the line numbers, which the mapping must follow.
    const input = ndjson(['e1', 'e2']) + '\n\n' + ndjson(['e3', 'e4', 'e5']);
    await assert.rejects(
      sendEvents({ client, input: [input], batchSize: 2, maxBatchBytes: 1 << 20 }),
      (err: unknown) => {
        assert.ok(err instanceof SendError);
        assert.deepEqual(err.lines, [{ line: 6, text: 'actor.id: is required' }]);
        assert.deepEqual(err.summary, { events: 2, created: 2, duplicates: 0, nextLine: 5 });
        assert.equal(err.uncertain, false);
        assert.match(err.message, /lines 5–6 was refused: TW_ERR_INVALID_EVENTS: 1 event is invalid/);
        return true;
      },
    );
    assert.equal(requests.length, 2);
  });

  test('bad input stops before its batch is sent and says where', async () => {
    await assert.rejects(
      sendEvents({
        client,
        input: [`${ndjson(['e1', 'e2', 'e3'])}not json\n`],
        batchSize: 2,
        maxBatchBytes: 1 << 20,
      }),
      (err: unknown) => {
        assert.ok(err instanceof SendError);
        assert.match(err.message, /line 4: expected a JSON object/);
        assert.deepEqual(err.summary, { events: 2, created: 2, duplicates: 0, nextLine: 3 });
        return true;
      },
    );
    assert.equal(requests.length, 1);
  });

  test('an error that is not problem+json still gives a readable ApiError', async () => {
    answer = () => ({ status: 502, body: 'bad gateway' });
    await assert.rejects(client.request('GET', '/v1/anything'), (err: unknown) => {
      assert.ok(err instanceof ApiError);
      assert.equal(err.status, 502);
      assert.equal(err.message, 'HTTP 502: bad gateway');
      return true;
    });
  });
});
