/**
 * Retry delays spent probing, through the delivery engine against a real
 * HTTP receiver that goes away and comes back on the same port (issue 15,
 * item 2: a receiver down for 20 s got its backlog 4.5 minutes later).
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { rawEvent, type TestApp, testApp } from '../helpers/app.js';
import { until } from '../helpers/until.js';

/** One request as the receiver saw it. */
interface Seen {
  attempt: string | undefined;
  seqs: number[];
}

/** A webhook receiver on a fixed port of 127.0.0.1 that can be taken down (connections refused) and brought back. */
interface FlakyReceiver {
  url: string;
  requests: Seen[];
  /** TCP connections accepted since the start. */
  connections(): number;
  up(): Promise<void>;
  down(): Promise<void>;
}

const open: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (open.length > 0) await open.pop()!();
});

/** Starts down: its port was free a moment ago and nothing listens on it. */
async function flakyReceiver(
  answer: () => { status: number; headers?: Record<string, string> } = () => ({ status: 204 }),
): Promise<FlakyReceiver> {
  const requests: Seen[] = [];
  let connections = 0;
  let server: Server | undefined;
  const listen = (port: number) =>
    new Promise<Server>((resolve, reject) => {
      const s = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const events = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Array<{ seq: number }>;
          const attempt = req.headers['x-trailwarden-attempt'];
          requests.push({
            attempt: Array.isArray(attempt) ? attempt[0] : attempt,
            seqs: events.map((e) => e.seq),
          });
          const { status, headers } = answer();
          res.writeHead(status, headers);
          res.end();
        });
      });
      s.on('connection', () => connections++);
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => resolve(s));
    });
  const down = async () => {
    const s = server;
    server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  server = await listen(0);
  const { port } = server.address() as AddressInfo;
  await down();
  const receiver: FlakyReceiver = {
    url: `http://127.0.0.1:${port}/hook`,
    requests,
    connections: () => connections,
    up: async () => {
      server ??= await listen(port);
    },
    down,
  };
  open.push(down);
  return receiver;
}

async function appWith(url: string, sink: Record<string, unknown> = {}): Promise<TestApp> {
  const t = await testApp({
    audit_reads: false,
    sinks: [
      {
        name: 'hook',
        type: 'webhook',
        url,
        allow_private_networks: true,
        start_from: 'beginning',
        batch: { max_wait_ms: 0 },
        ...sink,
      },
    ],
  });
  open.push(() => t.close());
  return t;
}

async function post(t: TestApp, count: number): Promise<void> {
  const res = await t.app.inject({
    method: 'POST',
    url: '/v1/events',
    headers: { authorization: t.admin },
    payload: Array.from({ length: count }, () => rawEvent()),
  });
  assert.equal(res.statusCode, 201, res.body);
}

/** GET /v1/sinks/hook/status through the API, as an operator sees it. */
async function status(t: TestApp) {
  const res = await t.app.inject({
    method: 'GET',
    url: '/v1/sinks/hook/status',
    headers: { authorization: t.admin },
  });
  assert.equal(res.statusCode, 200, res.body);
  return res.json();
}

describe('retry delays spent probing the receiver', () => {
  test('a receiver refusing connections for 20 s gets its backlog within seconds of coming back, under the default webhook schedule', {
    timeout: 60_000,
  }, async (ctx) => {
    const receiver = await flakyReceiver();
    const t = await appWith(receiver.url);
    const downSince = Date.now();
    await post(t, 10);

    // Attempt 1 fails, the 5 s delay passes, attempt 2 fails: the 5-minute delay is spent probing.
    await until(
      async () => (await status(t)).last_healthcheck !== null,
      'a healthcheck during the 5-minute delay',
      20_000,
    );
    const waiting = await status(t);
    assert.equal(waiting.state, 'retrying');
    assert.equal(waiting.counters.retries, 2);
    assert.match(waiting.last_error.reason, /ECONNREFUSED/);
    assert.equal(waiting.last_healthcheck.ok, false);
    assert.match(waiting.last_healthcheck.detail, /ECONNREFUSED/);
    assert.ok(
      Date.parse(waiting.next_attempt_at) - Date.now() > 60_000,
      `the next attempt is the schedule's 5-minute step (${waiting.next_attempt_at})`,
    );

    await sleep(Math.max(0, downSince + 20_000 - Date.now()));
    assert.equal(receiver.connections(), 0, 'nothing reached the receiver while it was down');
    await receiver.up();
    const backAt = Date.now();
    await until(
      () => receiver.requests.flatMap((r) => r.seqs).length >= 10,
      'the backlog, within 30 s of the receiver coming back (the old code waited out the 5 minutes)',
      30_000,
    );
    ctx.diagnostic(`delivered ${Date.now() - backAt} ms after the receiver came back`);

    assert.deepEqual(
      receiver.requests.map((r) => r.seqs),
      [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]],
      'one request with the whole backlog',
    );
    assert.equal(receiver.requests[0]!.attempt, '3', 'the third attempt: the healthchecks were no attempts');
    await until(async () => (await status(t)).cursor === 10, 'the cursor past the backlog');
    const after = await status(t);
    assert.equal(after.state, 'healthy');
    assert.equal(after.next_attempt_at, null);
    assert.equal(after.last_healthcheck.ok, true);
    assert.equal(after.last_healthcheck.detail, `connected to ${new URL(receiver.url).host}`);
    assert.equal(after.counters.retries, 2);
    assert.equal(after.counters.delivered, 10);
  });

  test('a healthcheck sends no event: the receiver sees connections and no request while the sink probes it', async () => {
    const receiver = await flakyReceiver(() => ({ status: 503 }));
    await receiver.up();
    const t = await appWith(receiver.url, { retry: { delays_ms: [60_000], jitter: 0 } });
    await post(t, 1);
    await until(
      () => receiver.connections() >= 3,
      'two healthchecks besides the delivery (one at once, one an interval later)',
      15_000,
    );
    assert.equal(receiver.requests.length, 1, 'only the delivery attempt sent a request');
    const s = await status(t);
    assert.equal(s.state, 'retrying');
    assert.equal(s.counters.retries, 1, 'the healthchecks did not count as attempts');
    assert.equal(s.last_healthcheck.ok, true);
    assert.match(s.last_error.reason, /^HTTP 503/);
    assert.ok(s.next_attempt_at !== null, 'the next attempt is due after the 60 s delay');
    // The probe always reached it (it answers 503 while accepting connections): no early retry.
    assert.equal(receiver.requests.length, 1);
  });

  test("a Retry-After from the receiver is waited out in full, without probes, and shows as the next attempt's time", async () => {
    const receiver = await flakyReceiver(() => ({ status: 503, headers: { 'retry-after': '120' } }));
    await receiver.up();
    const t = await appWith(receiver.url, { retry: { delays_ms: [600_000], jitter: 0 } });
    const before = Date.now();
    await post(t, 1);
    await until(async () => (await status(t)).next_attempt_at !== null, 'the retry delay');
    const s = await status(t);
    const due = Date.parse(s.next_attempt_at) - before;
    assert.ok(
      due >= 119_000 && due <= 125_000,
      `due after the receiver's 120 s, not the schedule's 600 s (${due} ms)`,
    );
    // A probing wait probes at once: give it time to show.
    await sleep(500);
    assert.equal((await status(t)).last_healthcheck, null);
    assert.equal(receiver.connections(), 1, 'the delivery connection only');
  });
});
