import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { test } from 'node:test';
import { createEncoder } from '../../../src/delivery/formats/registry.js';
import type { DeliveryBatch, Sink } from '../../../src/delivery/sink.js';
import { splunkHecSink } from '../../../src/delivery/sinks/splunk-hec.js';
import { HEC_TOKEN, type HecMode, type HecReceiver, startHec } from '../../helpers/hec-receiver.js';
import { until } from '../../helpers/until.js';

// No Splunk runs here: test/helpers/hec-receiver.ts emulates its documented HEC API.
const TOKEN = HEC_TOKEN;

const formatCtx = { vendor: 'Trailwarden', product: 'Trailwarden', version: '0.1.0', hostname: 'tw-host' };

function hecBatch(count: number): DeliveryBatch {
  const encode = createEncoder('splunk_hec', { index: 'audit' }, formatCtx);
  const events = Array.from({ length: count }, (_, i) => {
    const event = {
      seq: i + 1,
      event_id: `evt_${i + 1}`,
      timestamp: '2026-03-15T08:42:17.003Z',
      action: 'user.login',
      reason: 'a "quoted" {brace} \n newline',
    };
    return {
      seq: i + 1,
      eventId: event.event_id,
      tenantId: 't1',
      receivedAt: event.timestamp,
      timestamp: event.timestamp,
      action: event.action,
      event,
      text: encode(event),
    };
  });
  return { id: 'dlv_1', attempt: 1, firstSeq: 1, lastSeq: count, events };
}

async function createSink(raw: Record<string, unknown>): Promise<Sink> {
  return splunkHecSink.create(raw, {
    name: 'test-hec',
    owner: { source: 'config', tenantId: null },
    format: 'splunk_hec',
    dataDir: tmpdir(),
    allowedPrivateNetworks: [],
    fileRoot: null,
    now: Date.now,
    log: { info() {}, warn() {} },
  });
}

async function withHec(
  mode: HecMode,
  options: Record<string, unknown>,
  fn: (hec: HecReceiver, sink: Sink) => Promise<void>,
) {
  const hec = await startHec(mode);
  const sink = await createSink({ url: hec.url, token: TOKEN, allow_private_networks: true, ...options });
  try {
    await fn(hec, sink);
  } finally {
    await sink.close();
    await hec.close();
  }
}

const signal = () => new AbortController().signal;

test('a batch is posted to /services/collector/event as concatenated envelopes with the Splunk token', async () => {
  await withHec('ok', {}, async (hec, sink) => {
    const batch = hecBatch(3);
    assert.deepEqual(await sink.deliver(batch, signal()), { kind: 'ok' });
    const [req] = hec.requests;
    assert.equal(req?.path, '/services/collector/event');
    assert.equal(req.headers.authorization, `Splunk ${TOKEN}`);
    assert.match(String(req.headers['x-splunk-request-channel']), /^[0-9a-f-]{36}$/);
    assert.doesNotMatch(req.body, /^\[/);
    assert.deepEqual(
      hec.events,
      batch.events.map((e) => ({
        time: 1773564137.003,
        host: 'tw-host',
        source: 'trailwarden',
        sourcetype: 'trailwarden:audit',
        index: 'audit',
        event: e.event,
      })),
    );
  });
});

test('a base URL with a path prefix keeps it in front of /services/collector', async () => {
  const hec = await startHec('ok');
  const sink = await createSink({ url: `${hec.url}/splunk/`, token: TOKEN, allow_private_networks: true });
  try {
    await sink.deliver(hecBatch(1), signal());
    assert.equal(hec.requests[0]?.path, '/splunk/services/collector/event');
  } finally {
    await sink.close();
    await hec.close();
  }
});

test('with ack enabled the sink polls /services/collector/ack on its channel until the id is true', async () => {
  await withHec(
    'ok',
    { ack: { enabled: true, poll_interval_ms: 20, timeout_ms: 5000 } },
    async (hec, sink) => {
      assert.deepEqual(await sink.deliver(hecBatch(2), signal()), { kind: 'ok' });
      assert.deepEqual(await sink.deliver(hecBatch(1), signal()), { kind: 'ok' });
      const acks = hec.requests.filter((r) => r.path === '/services/collector/ack');
      assert.equal(acks.length, 4, 'two polls per delivery');
      assert.deepEqual(JSON.parse(acks[0]?.body ?? ''), { acks: [0] });
      assert.deepEqual(JSON.parse(acks[3]?.body ?? ''), { acks: [1] });
      const channels = new Set(hec.requests.map((r) => r.headers['x-splunk-request-channel']));
      assert.equal(channels.size, 1, 'one channel for the sink');
      assert.equal(acks[0]?.headers.authorization, `Splunk ${TOKEN}`);
    },
  );
});

test('an ack that never turns true is retried after ack.timeout_ms', async () => {
  await withHec(
    'ack-never',
    { ack: { enabled: true, poll_interval_ms: 20, timeout_ms: 150 } },
    async (hec, sink) => {
      const started = Date.now();
      const outcome = await sink.deliver(hecBatch(1), signal());
      assert.equal(outcome.kind, 'retry', JSON.stringify(outcome));
      assert.match(
        (outcome as { reason: string }).reason,
        /indexer acknowledgement 0 not received within ack\.timeout_ms \(150 ms\)/,
      );
      assert.ok(Date.now() - started >= 140);
      assert.ok((hec.polls.get(0) ?? 0) >= 2);
    },
  );
});

test('a rejected token disables the sink', async () => {
  const hec = await startHec('ok');
  const sink = await createSink({ url: hec.url, token: 'wrong-token', allow_private_networks: true });
  try {
    const outcome = await sink.deliver(hecBatch(1), signal());
    assert.deepEqual(outcome, {
      kind: 'disable',
      reason: 'token rejected: HTTP 403: Invalid token (code 4)',
    });
  } finally {
    await sink.close();
    await hec.close();
  }
});

test('HEC refusing the data (400, code 6) is permanent', async () => {
  await withHec('bad-data', {}, async (_hec, sink) => {
    assert.deepEqual(await sink.deliver(hecBatch(1), signal()), {
      kind: 'permanent',
      reason: 'HTTP 400: Invalid data format (code 6)',
    });
  });
});

test('a busy HEC (503, code 9) is retried', async () => {
  await withHec('busy', {}, async (_hec, sink) => {
    assert.deepEqual(await sink.deliver(hecBatch(1), signal()), {
      kind: 'retry',
      reason: 'HTTP 503: Server is busy (code 9)',
    });
  });
});

test('private addresses are refused unless allowed, like the webhook sink', async () => {
  const hec = await startHec('ok');
  const sink = await createSink({ url: hec.url, token: TOKEN });
  try {
    const outcome = await sink.deliver(hecBatch(1), signal());
    assert.equal(outcome.kind, 'permanent');
    assert.match((outcome as { reason: string }).reason, /private range/);
    assert.equal(hec.requests.length, 0);
  } finally {
    await sink.close();
    await hec.close();
  }
});

test('the health check asks /services/collector/health without sending an event', async () => {
  await withHec('ok', {}, async (hec, sink) => {
    assert.deepEqual(await sink.healthcheck(), { ok: true, detail: 'HTTP 200: HEC is healthy (code 17)' });
    assert.equal(hec.events.length, 0);
  });
});

test('close() ends a health check the HEC has not answered, without waiting for request_timeout_ms', {
  timeout: 10_000,
}, async () => {
  const asked: Array<() => void> = [];
  const server = createServer((req) => {
    asked.push(() => req.socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    const sink = await createSink({
      url: `http://127.0.0.1:${port}`,
      token: TOKEN,
      allow_private_networks: true,
      request_timeout_ms: 600_000,
    });
    const probing = sink.healthcheck();
    await until(() => asked.length > 0, 'the health request');
    await sink.close();
    assert.deepEqual(await probing, { ok: false, detail: 'healthcheck aborted: the sink is closing' });
  } finally {
    for (const hangUp of asked) hangUp();
    server.close();
  }
});

test('the sink config defaults the format to splunk_hec and refuses another', async () => {
  const { sinkConfigSchema } = await import('../../../src/delivery/sink-config.js');
  const good = sinkConfigSchema.parse({
    name: 'hec',
    type: 'splunk_hec',
    url: 'https://splunk.example.com:8088',
    token: TOKEN,
  });
  assert.equal(good.format, 'splunk_hec');
  const bad = sinkConfigSchema.safeParse({
    name: 'hec',
    type: 'splunk_hec',
    url: 'https://splunk.example.com:8088/services/collector/event',
    token: TOKEN,
    format: 'json',
  });
  assert.equal(bad.success, false);
  const paths = bad.error?.issues.map((i) => i.path.join('.'));
  assert.deepEqual(paths?.sort(), ['format', 'url']);
});
