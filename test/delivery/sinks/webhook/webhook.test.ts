import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { type AddressInfo, createServer as createNetServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { z } from 'zod';
import type { DeliveryOutcome, Sink } from '../../../../src/delivery/sink.js';
import { webhookSink } from '../../../../src/delivery/sinks/webhook/webhook.js';
import { until } from '../../../helpers/until.js';
import {
  createWebhookSink,
  newSecret,
  type Receiver,
  type ReceiverResponse,
  startReceiver,
  testBatch,
} from '../../../helpers/webhook-receiver.js';

/** Starts a receiver and a sink pointed at it (private networks allowed: the receiver is on 127.0.0.1). */
async function setup(
  opts: {
    respond?: (n: number) => ReceiverResponse;
    options?: Record<string, unknown>;
    format?: string;
  } = {},
): Promise<{ receiver: Receiver; sink: Sink; secret: string; close: () => Promise<void> }> {
  const secret = newSecret();
  const receiver = await startReceiver({
    secret,
    respond: (_req, n) => opts.respond?.(n) ?? { status: 204 },
  });
  const sink = await createWebhookSink(
    { url: receiver.url, secret, allow_private_networks: true, ...opts.options },
    opts.format ? { format: opts.format } : {},
  );
  return {
    receiver,
    sink,
    secret,
    close: async () => {
      await sink.close();
      await receiver.close();
    },
  };
}

function assertRetry(outcome: DeliveryOutcome, pattern: RegExp): Extract<DeliveryOutcome, { kind: 'retry' }> {
  assert.equal(outcome.kind, 'retry', JSON.stringify(outcome));
  assert.match((outcome as { reason: string }).reason, pattern);
  return outcome as Extract<DeliveryOutcome, { kind: 'retry' }>;
}

test('a batch arrives as a JSON array with a signature the official verifier accepts', async () => {
  const t = await setup({ options: { headers: { Authorization: 'Bearer abc', 'X-Team': 'sec' } } });
  try {
    const batch = testBatch(3, { firstSeq: 10, lastSeq: 14 });
    assert.deepEqual(await t.sink.deliver(batch, new AbortController().signal), { kind: 'ok' });
    const [req] = t.receiver.requests;
    assert.ok(req?.verified, req?.verifyError);
    assert.equal(req.method, 'POST');
    assert.equal(req.path, '/hook');
    assert.deepEqual(
      req.parsed,
      batch.events.map((e) => e.event),
    );
    assert.equal(req.headers['content-type'], 'application/json');
    assert.match(String(req.headers['user-agent']), /^trailwarden\/\d+\.\d+\.\d+/);
    assert.equal(req.headers['webhook-id'], batch.id);
    assert.equal(req.headers['x-trailwarden-seq-first'], '10');
    assert.equal(req.headers['x-trailwarden-seq-last'], '14');
    assert.equal(req.headers['x-trailwarden-attempt'], '1');
    assert.equal(req.headers.authorization, 'Bearer abc');
    assert.equal(req.headers['x-team'], 'sec');
    const ts = Number(req.headers['webhook-timestamp']);
    assert.ok(Math.abs(ts - Date.now() / 1000) < 5);
  } finally {
    await t.close();
  }
});

test('with several secrets every one signs, so receivers knowing only the old or only the new one accept', async () => {
  const oldSecret = newSecret();
  const newOne = newSecret();
  const receiver = await startReceiver({ secret: newOne });
  const sink = await createWebhookSink({
    url: receiver.url,
    secret: [oldSecret, newOne],
    allow_private_networks: true,
  });
  try {
    assert.equal((await sink.deliver(testBatch(2), new AbortController().signal)).kind, 'ok');
    const [req] = receiver.requests;
    assert.ok(req?.verified, req?.verifyError);
    const headers = req.headers as Record<string, string>;
    assert.equal(headers['webhook-signature']?.split(' ').length, 2);
    assert.doesNotThrow(() => new Webhook(oldSecret).verify(req.body, headers));
    assert.throws(() => new Webhook(newSecret()).verify(req.body, headers), /No matching signature/);
  } finally {
    await sink.close();
    await receiver.close();
  }
});

test('retries of the same batch carry the same webhook-id and a fresh attempt number', async () => {
  const t = await setup({ respond: (n) => ({ status: n === 1 ? 500 : 200 }) });
  try {
    const batch = testBatch(1);
    assertRetry(await t.sink.deliver(batch, new AbortController().signal), /HTTP 500/);
    assert.equal((await t.sink.deliver({ ...batch, attempt: 2 }, new AbortController().signal)).kind, 'ok');
    const [first, second] = t.receiver.requests;
    assert.ok(first?.verified && second?.verified);
    assert.equal(first.headers['webhook-id'], batch.id);
    assert.equal(second.headers['webhook-id'], batch.id);
    assert.equal(first.headers['x-trailwarden-attempt'], '1');
    assert.equal(second.headers['x-trailwarden-attempt'], '2');
  } finally {
    await t.close();
  }
});

test('body: object sends the single event itself and refuses a batch of several', async () => {
  const t = await setup({ options: { body: 'object', method: 'PUT' } });
  try {
    const batch = testBatch(1);
    assert.equal((await t.sink.deliver(batch, new AbortController().signal)).kind, 'ok');
    const [req] = t.receiver.requests;
    assert.ok(req?.verified, req?.verifyError);
    assert.equal(req.method, 'PUT');
    assert.deepEqual(req.parsed, batch.events[0]?.event);
    const refused = await t.sink.deliver(testBatch(2), new AbortController().signal);
    assert.equal(refused.kind, 'permanent');
    assert.match((refused as { reason: string }).reason, /max_events: 1/);
    assert.equal(t.receiver.requests.length, 1);
  } finally {
    await t.close();
  }
});

test('format jsonl sends newline-delimited JSON, one event per line', async () => {
  const t = await setup({ format: 'jsonl' });
  try {
    const batch = testBatch(3);
    assert.equal((await t.sink.deliver(batch, new AbortController().signal)).kind, 'ok');
    const [req] = t.receiver.requests;
    assert.ok(req?.verified, req?.verifyError);
    assert.equal(req.headers['content-type'], 'application/x-ndjson');
    assert.equal(req.body, `${batch.events.map((e) => e.text).join('\n')}\n`);
    assert.deepEqual(
      req.parsed,
      batch.events.map((e) => e.event),
    );
  } finally {
    await t.close();
  }
});

test('body: lines with format json also sends NDJSON', async () => {
  const t = await setup({ options: { body: 'lines' } });
  try {
    assert.equal((await t.sink.deliver(testBatch(2), new AbortController().signal)).kind, 'ok');
    assert.equal(t.receiver.requests[0]?.headers['content-type'], 'application/x-ndjson');
    assert.equal(t.receiver.requests[0]?.body.split('\n').length, 3);
  } finally {
    await t.close();
  }
});

test('5xx, 429 and 408 answers are retried', async () => {
  for (const status of [500, 501, 502, 503, 504, 429, 408]) {
    const t = await setup({ respond: () => ({ status, body: 'busy' }) });
    try {
      const outcome = assertRetry(await t.sink.deliver(testBatch(), new AbortController().signal), /busy/);
      assert.match(outcome.reason, new RegExp(`HTTP ${status}`));
      assert.equal(outcome.afterMs, undefined);
    } finally {
      await t.close();
    }
  }
});

test('Retry-After in seconds becomes the retry delay', async () => {
  const t = await setup({ respond: () => ({ status: 503, headers: { 'retry-after': '7' } }) });
  try {
    const outcome = assertRetry(await t.sink.deliver(testBatch(), new AbortController().signal), /HTTP 503/);
    assert.equal(outcome.afterMs, 7000);
  } finally {
    await t.close();
  }
});

test('Retry-After as an HTTP-date becomes the delay until then, and huge values are capped at an hour', async () => {
  const now = Math.floor(Date.now() / 1000) * 1000;
  const answers = [new Date(now + 30_000).toUTCString(), '999999'];
  const secret = newSecret();
  const receiver = await startReceiver({
    secret,
    respond: (_r, n) => ({ status: 429, headers: { 'retry-after': answers[n - 1] ?? '' } }),
  });
  const sink = await createWebhookSink(
    { url: receiver.url, secret, allow_private_networks: true },
    { now: () => now },
  );
  try {
    assert.equal(
      assertRetry(await sink.deliver(testBatch(), new AbortController().signal), /429/).afterMs,
      30_000,
    );
    assert.equal(
      assertRetry(await sink.deliver(testBatch(), new AbortController().signal), /429/).afterMs,
      3_600_000,
    );
  } finally {
    await sink.close();
    await receiver.close();
  }
});

test('a receiver that never answers gives a retry once request_timeout_ms has passed', async () => {
  const t = await setup({ respond: () => ({ hang: true }), options: { request_timeout_ms: 300 } });
  try {
    const started = Date.now();
    assertRetry(
      await t.sink.deliver(testBatch(), new AbortController().signal),
      /request_timeout_ms \(300 ms\)/,
    );
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 2000, `took ${took} ms`);
  } finally {
    await t.close();
  }
});

test('an abort from the worker ends the attempt at once with a retry', async () => {
  const t = await setup({ respond: () => ({ hang: true }) });
  try {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    assertRetry(await t.sink.deliver(testBatch(), ac.signal), /aborted/);
  } finally {
    await t.close();
  }
});

test('a refused connection gives a retry naming the error', async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const sink = await createWebhookSink({
    url: `http://127.0.0.1:${port}/hook?token=s3cret`,
    allow_private_networks: true,
  });
  try {
    const outcome = assertRetry(
      await sink.deliver(testBatch(), new AbortController().signal),
      /ECONNREFUSED/,
    );
    assert.doesNotMatch(outcome.reason, /s3cret/);
    assert.deepEqual(await sink.healthcheck(), { ok: false, detail: outcome.reason });
  } finally {
    await sink.close();
  }
});

test('a 400 is permanent and quotes the start of the body with control characters escaped', async () => {
  const body = `{"error":"bad field"}\n\u001b[31m${'x'.repeat(500)}`;
  const t = await setup({ respond: () => ({ status: 400, body }) });
  try {
    const outcome = await t.sink.deliver(testBatch(), new AbortController().signal);
    assert.equal(outcome.kind, 'permanent');
    const reason = (outcome as { reason: string }).reason;
    assert.match(reason, /^HTTP 400: \{"error":"bad field"\}\\n\\u001b\[31mx+…$/);
    assert.ok(reason.length < 260, `reason is ${reason.length} chars`);
  } finally {
    await t.close();
  }
});

test('a 410 Gone disables the sink', async () => {
  const t = await setup({ respond: () => ({ status: 410, body: 'webhook deleted' }) });
  try {
    const outcome = await t.sink.deliver(testBatch(), new AbortController().signal);
    assert.equal(outcome.kind, 'disable');
    assert.match((outcome as { reason: string }).reason, /410.*webhook deleted/);
  } finally {
    await t.close();
  }
});

test('a redirect is not followed and is permanent', async () => {
  const t = await setup({
    respond: () => ({ status: 302, headers: { location: 'http://127.0.0.1:1/elsewhere' } }),
  });
  try {
    const outcome = await t.sink.deliver(testBatch(), new AbortController().signal);
    assert.equal(outcome.kind, 'permanent');
    assert.match((outcome as { reason: string }).reason, /HTTP 302: redirects are not followed.*elsewhere/);
    assert.equal(t.receiver.requests.length, 1);
  } finally {
    await t.close();
  }
});

test('consecutive deliveries reuse one kept-alive connection, also after error answers', async () => {
  const t = await setup({ respond: (n) => ({ status: n % 2 === 0 ? 503 : 200, body: 'x'.repeat(100) }) });
  try {
    for (let i = 0; i < 6; i++) {
      await t.sink.deliver(testBatch(2), new AbortController().signal);
      // undici marks the connection free on the next tick; the worker always has work
      // (moving the cursor) between deliveries, a tight loop would open a second one.
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(t.receiver.requests.length, 6);
    assert.ok(t.receiver.requests.every((r) => r.verified));
    assert.equal(t.receiver.connections(), 1);
  } finally {
    await t.close();
  }
});

test('healthcheck connects without sending a request', async () => {
  const t = await setup();
  try {
    assert.deepEqual(await t.sink.healthcheck(), {
      ok: true,
      detail: `connected to 127.0.0.1:${t.receiver.port}`,
    });
    assert.equal(t.receiver.requests.length, 0);
  } finally {
    await t.close();
  }
});

test('close() ends a healthcheck still in its TLS handshake, hanging up the connection', {
  timeout: 10_000,
}, async () => {
  // A peer that accepts the connection and never answers the TLS hello: the handshake hangs.
  const sockets: Socket[] = [];
  const server = createNetServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    socket.resume(); // reads (and drops) the hello, so the hang-up is seen
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    const sink = await createWebhookSink({
      url: `https://127.0.0.1:${port}/hook`,
      allow_private_networks: true,
      connect_timeout_ms: 600_000,
    });
    const probing = sink.healthcheck();
    await until(() => sockets.length > 0, 'the healthcheck connection');
    const hungUp = new Promise((resolve) => sockets[0]!.once('close', resolve));
    await sink.close();
    assert.deepEqual(await probing, { ok: false, detail: 'healthcheck aborted: the sink is closing' });
    await hungUp;
  } finally {
    for (const socket of sockets) socket.destroy();
    server.close();
  }
});

test('options are validated with messages that say what to fix', () => {
  const schema = z.object(webhookSink.options);
  const message = (raw: Record<string, unknown>) => {
    const r = schema.safeParse(raw);
    assert.equal(r.success, false, JSON.stringify(raw));
    return r.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') ?? '';
  };
  const url = 'https://siem.example.com/hook';
  assert.match(message({ url: 'ftp://siem.example.com/' }), /url: expected an http\(s\) URL/);
  assert.match(message({ url: 'not a url' }), /url: expected an http\(s\) URL/);
  assert.match(message({ url: 'https://u:p@siem.example.com/' }), /credentials/);
  assert.match(message({ url, method: 'GET' }), /method: expected "POST" or "PUT"/);
  assert.match(message({ url, headers: { Host: 'x' } }), /headers.Host: "Host" is set by Trailwarden/);
  assert.match(message({ url, headers: { 'Webhook-Signature': 'x' } }), /cannot be overridden/);
  assert.match(message({ url, headers: { 'Transfer-Encoding': 'chunked' } }), /cannot be overridden/);
  assert.match(message({ url, headers: { 'X-A': 'a\r\nb: c' } }), /control characters/);
  assert.match(message({ url, secret: 'not-a-secret' }), /whsec_/);
  assert.match(message({ url, secret: 'whsec_c2hvcnQ=' }), /24-64 bytes, got 5/);
  assert.match(message({ url, secret: [] }), /at least one/);
  assert.match(message({ url, tls: { cert_file: '/x.pem' } }), /client certificate and its key together/);
  assert.match(message({ url, tls: { ca: 'x', ca_file: '/x.pem' } }), /give ca or ca_file, not both/);
  assert.match(message({ url, tls: { key: 'not a key' } }), /expected a PEM private key/);
  assert.match(message({ url, tls: { ca_fil: '/x.pem' } }), /ca_fil/);
  const parsed = schema.parse({ url });
  assert.deepEqual(parsed, {
    url,
    method: 'POST',
    headers: {},
    connect_timeout_ms: 5000,
    request_timeout_ms: 15000,
    allow_private_networks: false,
    max_connections: 4,
  });
  assert.deepEqual(webhookSink.secretFields, ['secret', 'headers', 'tls.key']);
});
