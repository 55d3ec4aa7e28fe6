import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfig } from '../../src/config/load-config.js';
import { nextDelay } from '../../src/delivery/retry-policy.js';
import { defineSink, ok } from '../../src/delivery/sink.js';
import { kindSchema, maskSecrets } from '../../src/delivery/sink-config.js';

/** A `${NAME}` reference, written without tripping the template-literal lint. */
const ref = (name: string) => '$' + `{${name}}`;

const load = (yaml: string, env: Record<string, string> = {}) =>
  parseConfig(yaml, { env, fileName: 'trailwarden.yaml' });

describe('sinks in the config file', () => {
  test('a webhook sink gets the kind defaults: batching, the webhook retry schedule, json, start from now', () => {
    const c = load('sinks:\n  - name: siem\n    type: webhook\n    url: https://siem.example.com/hook\n');
    const sink = c.sinks[0] as unknown as {
      format: string;
      start_from: string;
      batch: unknown;
      failing_after_ms: number;
      retry: unknown;
    };
    assert.equal(sink.format, 'json');
    assert.equal(sink.start_from, 'now');
    assert.deepEqual(sink.batch, { max_events: 100, max_bytes: 1_048_576, max_wait_ms: 200 });
    assert.equal(sink.failing_after_ms, 900_000);
    assert.equal(sink.retry, undefined, 'the kind default applies at run time');
  });

  test('errors name the exact path: sinks[0].url, sinks[1].type, sinks[0].filter.include_actions[0]', () => {
    assert.throws(
      () => load('sinks:\n  - name: siem\n    type: webhook\n    url: not a url\n'),
      (err: Error) => /sinks\[0\]\.url: /.test(err.message),
    );
    assert.throws(
      () => load('sinks:\n  - name: a\n    type: stdout\n  - name: b\n    type: kafka\n'),
      (err: Error) => /sinks\[1\](\.type)?: .*webhook/.test(err.message),
    );
    assert.throws(
      () =>
        load('sinks:\n  - name: a\n    type: stdout\n    filter:\n      include_actions: ["User Login"]\n'),
      (err: Error) => /sinks\[0\]\.filter\.include_actions\[0\]: expected an action/.test(err.message),
    );
    assert.throws(
      () => load('sinks:\n  - name: a\n    type: stdout\n    colour: red\n'),
      (err: Error) => /sinks\[0\].*colour/.test(err.message),
    );
  });

  test('sink names are unique and the emit policy may only name existing sinks', () => {
    assert.throws(
      () => load('sinks:\n  - name: a\n    type: stdout\n  - name: a\n    type: stdout\n'),
      (err: Error) => /sinks\[1\]\.name: a is used by another sink/.test(err.message),
    );
    assert.throws(
      () => load('sinks:\n  - name: a\n    type: stdout\nemit:\n  to_all_of: [b]\n'),
      (err: Error) => /emit\.to_all_of\[0\]: no sink named b/.test(err.message),
    );
    const ok = load(
      'sinks:\n  - name: a\n    type: stdout\nemit:\n  at_least_one_of: [a]\n  timeout_ms: 5000\n',
    );
    assert.deepEqual(ok.emit, { to_all_of: [], at_least_one_of: ['a'], timeout_ms: 5000 });
  });

  test('secrets may come from the environment and are masked when shown', () => {
    const c = load(
      'sinks:\n  - name: siem\n    type: webhook\n    url: https://x.example/h\n    secret: ' +
        ref('HOOK_SECRET') +
        '\n',
      {
        HOOK_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      },
    );
    const sink = c.sinks[0] as Record<string, unknown>;
    assert.equal(sink['secret'], 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
    assert.equal(maskSecrets(sink)['secret'], '********');
    assert.deepEqual(maskSecrets({ ...sink, tls: { key: 'PEM', reject_unauthorized: true } })['tls'], {
      key: '********',
      reject_unauthorized: true,
    });
    assert.deepEqual(maskSecrets({ ...sink, headers: { authorization: 'Bearer t' } })['headers'], {
      authorization: '********',
    });
  });
});

describe('retry schedules', () => {
  test('a delay schedule gives up after its last delay; jitter stays within ±jitter/2', () => {
    const p = { delays_ms: [1000, 5000], jitter: 0.2 };
    assert.equal(
      nextDelay(p, 1, () => 0.5),
      1000,
    );
    assert.equal(
      nextDelay(p, 1, () => 0),
      900,
    );
    assert.equal(
      nextDelay(p, 1, () => 1),
      1100,
    );
    assert.equal(
      nextDelay(p, 2, () => 0.5),
      5000,
    );
    assert.equal(
      nextDelay(p, 3, () => 0.5),
      undefined,
    );
  });

  test('a backoff doubles from its start to its cap and never gives up', () => {
    const p = { backoff: { initial_ms: 1000, max_ms: 60_000 }, jitter: 0 };
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 100].map((n) => nextDelay(p, n)),
      [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000],
    );
  });
});

/** A kind for these tests only, with its own batch maximums, checkpoints on, and a cross-field rule. */
const bigKind = defineSink({
  kind: 'big',
  description: 'test kind',
  options: {},
  secretFields: [],
  retryDefault: 'streaming',
  batchDefault: { max_events: 10_000, max_bytes: 16 * 1024 * 1024, max_wait_ms: 300_000 },
  batchMax: { max_events: 100_000, max_bytes: 64 * 1024 * 1024, max_wait_ms: 86_400_000 },
  sendCheckpointsDefault: true,
  settingsProblems: (_options, common) =>
    common.tenants?.length === 1
      ? []
      : [{ path: 'filter.tenants', message: `one tenant, not ${common.tenants}` }],
  create: () => ({
    deliver: async () => ok(),
    healthcheck: async () => ({ ok: true, detail: 'ok' }),
    close: async () => {},
  }),
});

describe('kind-level sink settings', () => {
  const parse = (over: Record<string, unknown>) =>
    kindSchema(bigKind).safeParse({ name: 'b', type: 'big', filter: { tenants: ['acme'] }, ...over });

  test("a kind's batch defaults and maximums apply to it, and other kinds keep 10,000 events and 60 s", () => {
    const d = parse({});
    assert.ok(d.success);
    assert.deepEqual(d.data.batch, { max_events: 10_000, max_bytes: 16 * 1024 * 1024, max_wait_ms: 300_000 });
    assert.ok(
      parse({ batch: { max_events: 100_000, max_bytes: 64 * 1024 * 1024, max_wait_ms: 86_400_000 } }).success,
    );
    assert.ok(!parse({ batch: { max_events: 100_001 } }).success);
    assert.ok(!parse({ batch: { max_wait_ms: 86_400_001 } }).success);
    assert.throws(
      () => load('sinks:\n  - name: s\n    type: stdout\n    batch:\n      max_events: 10001\n'),
      /sinks\[0\]\.batch\.max_events/,
    );
    assert.throws(
      () => load('sinks:\n  - name: s\n    type: stdout\n    batch:\n      max_wait_ms: 60001\n'),
      /sinks\[0\]\.batch\.max_wait_ms/,
    );
  });

  test('send_checkpoints takes the kind default (on here, off for a webhook) unless set', () => {
    const d = parse({});
    assert.ok(d.success && d.data.send_checkpoints === true);
    const off = parse({ send_checkpoints: false });
    assert.ok(off.success && off.data.send_checkpoints === false);
    const c = load('sinks:\n  - name: siem\n    type: webhook\n    url: https://siem.example.com/hook\n');
    assert.equal((c.sinks[0] as unknown as { send_checkpoints: boolean }).send_checkpoints, false);
  });

  test("a kind's problems with its options beside the common settings refuse the sink, naming the path", () => {
    const r = parse({ filter: { tenants: ['a', 'b'] } });
    assert.ok(!r.success);
    assert.deepEqual(r.error.issues[0]?.path, ['filter', 'tenants']);
    assert.match(r.error.issues[0]?.message ?? '', /one tenant, not a,b/);
  });
});
