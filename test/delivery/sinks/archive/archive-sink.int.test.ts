/**
 * The archive builder (defineArchiveSink) proven through the real engine: a
 * test-only kind over the memory object store, run by a SinkRunner and its
 * worker on a SQLite log. The providers' adapters have their own tests
 * against real peers; what is pinned here is what every archive shares.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { z } from 'zod';
import { createEncoder } from '../../../../src/delivery/formats/registry.js';
import { kindSchema, type SinkConfig } from '../../../../src/delivery/sink-config.js';
import type { FailureDetail } from '../../../../src/delivery/sink-health.js';
import { SinkRunner } from '../../../../src/delivery/sink-runner.js';
import { defineArchiveSink } from '../../../../src/delivery/sinks/archive/archive-sink.js';
import type { AuditEvent } from '../../../../src/event/event.js';
import { SqliteStore } from '../../../../src/store/sqlite/sqlite-store.js';
import { makeEvent, prepare } from '../../../helpers/events.js';
import { MemoryObjectStore } from '../../../helpers/memory-object-store.js';
import { until } from '../../../helpers/until.js';

let dir: string;
let log: SqliteStore;
let bucket: MemoryObjectStore;
let runners: SinkRunner[];
let alerts: Array<{ kind: 'failing' | 'recovered'; detail: FailureDetail }>;
let progress: number;
/** How many times the log was read (the worker's readRangeRaw calls). */
let reads: number;

const memoryArchive = defineArchiveSink({
  kind: 'memory_archive',
  description: 'An archive in memory (tests only).',
  options: { bucket: z.string().min(1) },
  secretFields: [],
  hostOptions: [],
  placementProblems: () => [],
  createStore: async () => bucket,
});

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tw-archive-sink-'));
  log = await SqliteStore.open(join(dir, 'trailwarden.db'));
  reads = 0;
  const read = log.readRangeRaw.bind(log);
  log.readRangeRaw = (after, limit) => {
    reads += 1;
    return read(after, limit);
  };
  bucket = new MemoryObjectStore();
  runners = [];
  alerts = [];
  progress = 0;
});

afterEach(async () => {
  for (const r of runners) await r.close();
  await log.close();
  rmSync(dir, { recursive: true, force: true });
});

function config(over: Record<string, unknown> = {}): SinkConfig {
  return kindSchema(memoryArchive).parse({
    name: 'archive',
    type: 'memory_archive',
    bucket: 'b',
    start_from: 'beginning',
    partition_by: 'timestamp',
    send_checkpoints: false,
    batch: { max_wait_ms: 0 },
    retry: { backoff: { initial_ms: 10, max_ms: 50 }, jitter: 0 },
    ...over,
  });
}

async function start(c: SinkConfig): Promise<SinkRunner> {
  const runner = new SinkRunner(c, memoryArchive, {
    key: c.name,
    owner: { source: 'config', tenantId: null },
    store: log,
    nodeId: 'archive-test',
    leaseMs: 60_000,
    dataDir: dir,
    allowedPrivateNetworks: [],
    fileRoot: null,
    now: Date.now,
    log: { info() {}, warn() {} },
    onProgress: (to) => {
      progress = to;
    },
    onAlert: (kind, detail) => alerts.push({ kind, detail }),
  });
  runners.push(runner);
  await runner.start();
  return runner;
}

/** Events of tenants acme and beta in hours 08 and 09 (by timestamp). */
async function appendMixed(): Promise<AuditEvent[]> {
  const at = (hh: string, mm: string) => `2026-03-15T${hh}:${mm}:00.000Z`;
  const events = [
    makeEvent({ tenant_id: 'acme', timestamp: at('08', '10') }),
    makeEvent({ tenant_id: 'beta', timestamp: at('08', '20') }),
    makeEvent({ tenant_id: 'acme', timestamp: at('08', '30') }),
    makeEvent({ tenant_id: 'acme', timestamp: at('09', '05') }),
    makeEvent({ tenant_id: 'beta', timestamp: at('09', '15') }),
  ];
  await log.append(events.map(prepare));
  return events;
}

/** Every event id the bucket's data objects hold, with the number of times each appears. */
function eventIdsInBucket(): Map<string, number> {
  const seen = new Map<string, number>();
  for (const o of bucket.objects.values()) {
    if (o.key.includes('/_checkpoints/')) continue;
    for (const line of gunzipSync(o.body).toString('utf8').split('\n').filter(Boolean)) {
      const id = (JSON.parse(line) as { event_id: string }).event_id;
      seen.set(id, (seen.get(id) ?? 0) + 1);
    }
  }
  return seen;
}

function assertEachOnce(events: AuditEvent[]): void {
  const seen = eventIdsInBucket();
  assert.deepEqual(
    [...seen.entries()].sort(),
    events.map((e) => [e.event_id, 1]).sort(),
    'each event exactly once in the bucket',
  );
}

describe('an archive sink through the worker', () => {
  test('writes one object per tenant and hour, Hive-style, with range and count metadata', async () => {
    const events = await appendMixed();
    await start(config());
    await until(() => progress === 5, 'the worker to confirm seq 5');
    assert.deepEqual(bucket.keys(), [
      'trailwarden/tenant=acme/dt=2026-03-15/hour=08/0000000000000001-0000000000000003.jsonl.gz',
      'trailwarden/tenant=acme/dt=2026-03-15/hour=09/0000000000000004-0000000000000004.jsonl.gz',
      'trailwarden/tenant=beta/dt=2026-03-15/hour=08/0000000000000002-0000000000000002.jsonl.gz',
      'trailwarden/tenant=beta/dt=2026-03-15/hour=09/0000000000000005-0000000000000005.jsonl.gz',
    ]);
    const acme08 = bucket.objects.get(bucket.keys()[0]!)!;
    assert.equal(acme08.metadata['trailwarden_events'], '2');
    assert.equal(acme08.metadata['trailwarden_first_seq'], '1');
    assert.equal(acme08.metadata['trailwarden_last_seq'], '3');
    const lines = gunzipSync(acme08.body).toString('utf8');
    const stored = await log.readRangeRaw(0, 3);
    assert.equal(lines, `${stored[0]!.body}\n${stored[2]!.body}\n`, 'the stored JSON, byte for byte');
    assertEachOnce(events);
  });

  for (const format of ['ocsf', 'ecs'] as const) {
    test(`format ${format}: .jsonl objects whose lines are the format's encoding of each event`, async () => {
      await appendMixed();
      await start(config({ format }));
      await until(() => progress === 5, 'the worker to confirm seq 5');
      assert.equal(bucket.keys().length, 4);
      const encode = createEncoder(format, {});
      const stored = (await log.readRangeRaw(0, 5)).map((r) => JSON.parse(r.body) as Record<string, unknown>);
      for (const key of bucket.keys()) {
        assert.match(key, /\.jsonl\.gz$/);
        const o = bucket.objects.get(key)!;
        assert.equal(o.contentType, 'application/x-ndjson');
        const first = Number(o.metadata['trailwarden_first_seq']);
        const [line] = gunzipSync(o.body).toString('utf8').split('\n');
        assert.equal(line, encode(stored[first - 1]!), `${key}: the ${format} line of seq ${first}`);
      }
    });
  }

  test('after a crash mid-delivery, the restarted worker writes the same keys and bytes: each event once', async () => {
    const events = await appendMixed();
    // The provider took the third object, but its answer was lost; the next attempt is an hour away.
    bucket.faultFor = (key) =>
      key.includes('tenant=acme/dt=2026-03-15/hour=09') ? { writeThenFail: true } : undefined;
    const first = await start(config({ retry: { delays_ms: [3_600_000], jitter: 0 } }));
    await until(() => bucket.attempts.length === 3, 'three puts');
    const before = new Map([...bucket.objects].map(([k, o]) => [k, o.body]));
    await first.close();
    bucket.faultFor = undefined;
    await start(config());
    await until(() => progress === 5, 'the restarted worker to confirm seq 5');
    assert.equal(bucket.attempts.filter((k) => k.includes('tenant=acme/dt=2026-03-15/hour=09')).length, 2);
    for (const [k, body] of before) assert.deepEqual(bucket.objects.get(k)!.body, body, `${k} unchanged`);
    assert.equal(bucket.objects.size, 4);
    assertEachOnce(events);
  });

  test('a put that times out is aborted and retried to the same key; the bucket ends with each event once', async () => {
    const events = await appendMixed();
    bucket.faults.push({ writeThenFail: true }, { fail: 'transient', code: 'ETIMEDOUT' });
    await start(config());
    await until(() => progress === 5, 'the worker to confirm seq 5');
    assert.equal(bucket.attempts[0], bucket.attempts[1]);
    assertEachOnce(events);
  });

  test('signed checkpoints go under _checkpoints/ after the events they cover', async () => {
    await appendMixed();
    await log.addCheckpoint({
      treeSize: 5,
      rootHash: 'r5',
      issuedAt: new Date().toISOString(),
      note: 'origin\n5\nr5\n\n— sig\n',
    });
    await start(config({ send_checkpoints: undefined }));
    await until(
      () => bucket.objects.has('trailwarden/_checkpoints/0000000000000005.note'),
      'the checkpoint note',
    );
    assert.equal(bucket.attempts.at(-1), 'trailwarden/_checkpoints/0000000000000005.note');
    assert.equal(bucket.attempts.length, 5, 'four data objects first');
    assert.equal(
      bucket.objects.get('trailwarden/_checkpoints/0000000000000005.note')!.body.toString(),
      'origin\n5\nr5\n\n— sig\n',
    );
  });

  test('a refused bucket makes the sink failing at once with the code and an alert, parks nothing, and resumes when fixed', async () => {
    const events = await appendMixed();
    bucket.down = { kind: 'refused', code: 'NoSuchBucket' };
    const runner = await start(config({ failing_after_ms: 3_600_000 }));
    await until(() => runner.worker?.health === 'failing', 'failing');
    assert.match(runner.worker?.lastError?.reason ?? '', /NoSuchBucket/);
    await until(() => alerts.length === 1, 'the failing alert');
    assert.equal(alerts[0]!.kind, 'failing');
    assert.match(alerts[0]!.detail.reason, /memory:\/\/test-bucket: NoSuchBucket/);
    // Past the schedule's end (backoff: never), still retrying, nothing parked.
    await until(() => bucket.attempts.length >= 10, 'ten refused attempts');
    assert.equal(await log.delivery.countDeadLetters('archive'), 0);
    bucket.down = undefined;
    await until(() => progress === 5, 'delivery after the bucket is back');
    await until(() => alerts.length === 2, 'the recovery');
    assert.equal(alerts[1]!.kind, 'recovered');
    assert.equal(runner.worker?.health, 'healthy');
    assertEachOnce(events);
  });

  test('a refused bucket is never parked, even past a schedule that would give up', async () => {
    await appendMixed();
    bucket.down = { kind: 'refused', code: 'AccessDenied' };
    await start(config({ retry: { delays_ms: [5, 5], jitter: 0 } }));
    await until(() => bucket.attempts.length >= 20, '20 attempts, well past the schedule (3 attempts)');
    assert.equal(await log.delivery.countDeadLetters('archive'), 0);
    assert.equal(progress, 0, 'nothing passed');
    bucket.down = undefined;
    await until(() => progress === 5, 'delivery after access is granted');
  });

  test('throttling is retried after the provider hint, not the schedule', async () => {
    await appendMixed();
    bucket.faults.push({ fail: 'throttled', code: 'SlowDown', retryAfterMs: 50 });
    // Without the hint the next attempt would be an hour away.
    await start(config({ retry: { delays_ms: [3_600_000], jitter: 0 } }));
    await until(() => progress === 5, 'delivery after the hinted wait');
    assert.equal(bucket.attempts[0], bucket.attempts[1]);
  });

  test("a rejected object's events become dead letters with the provider's reason; the others are written once", async () => {
    await appendMixed();
    bucket.faultFor = (key) =>
      key.includes('tenant=beta') ? { fail: 'rejected', code: 'KeyTooLongError' } : undefined;
    await start(config());
    await until(() => progress === 5, 'the worker to pass seq 5');
    const letters = await log.delivery.listDeadLetters('archive', { limit: 10 });
    assert.deepEqual(
      letters.map((l) => l.seq),
      [2, 5],
    );
    assert.match(letters[0]!.reason, /KeyTooLongError/);
    assert.equal(bucket.objects.size, 2);
    assert.equal(new Set(bucket.attempts).size, bucket.attempts.length, 'no object tried twice');
  });

  test('an object with other content at its key disables the sink, naming the key', async () => {
    await appendMixed();
    bucket.faults.push({ exists: 'a'.repeat(64) });
    const runner = await start(config());
    await until(() => runner.worker?.health === 'disabled', 'disabled');
    assert.match(
      runner.worker?.disabledReason ?? '',
      /trailwarden\/tenant=acme\/dt=2026-03-15\/hour=08\/0000000000000001-0000000000000003\.jsonl\.gz.*key_template prefix/,
    );
    assert.equal(bucket.objects.size, 0);
    assert.equal(progress, 0);
  });
});

describe('an archive object waiting for company', () => {
  test('is written as soon as max_events arrive, not when max_wait_ms ends', async () => {
    const events = await appendMixed();
    await start(config({ batch: { max_events: 8, max_wait_ms: 3_600_000 } }));
    await until(() => bucket.attempts.length === 0 && reads > 1, 'the batch to wait');
    const more = [
      makeEvent({ tenant_id: 'acme' }),
      makeEvent({ tenant_id: 'acme' }),
      makeEvent({ tenant_id: 'acme' }),
    ];
    await log.append(more.map(prepare));
    await until(() => progress === 8, 'the full batch to be written');
    assertEachOnce([...events, ...more]);
  });

  test('a pause through another node ends the wait at once, writing nothing', async () => {
    await appendMixed();
    const runner = await start(config({ batch: { max_wait_ms: 3_600_000 } }));
    await until(() => reads > 1, 'the batch to wait');
    await log.delivery.setSinkFlags('archive', { paused: true });
    await runner.worker?.refresh();
    await until(() => runner.worker?.health === 'paused', 'the pause to apply');
    const seen = reads;
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(reads - seen <= 1, `${reads - seen} reads of the log while paused`);
    assert.equal(bucket.attempts.length, 0);
  });
});

describe('archive sink settings', () => {
  const parse = (over: Record<string, unknown>) =>
    kindSchema(memoryArchive).safeParse({ name: 'a', type: 'memory_archive', bucket: 'b', ...over });

  test('archive defaults: the key template, gzip, received_at, checkpoints, 5,000 events / 8 MiB / 5 min', () => {
    const r = parse({});
    assert.ok(r.success);
    const c: SinkConfig = r.data;
    assert.equal(
      c['key_template'],
      'trailwarden/tenant={tenant}/dt={yyyy}-{mm}-{dd}/hour={hh}/{first_seq}-{last_seq}',
    );
    assert.equal(c['gzip'], true);
    assert.equal(c['partition_by'], 'received_at');
    assert.equal(r.data.send_checkpoints, true);
    assert.deepEqual(r.data.batch, { max_events: 5_000, max_bytes: 8 * 1024 * 1024, max_wait_ms: 300_000 });
    assert.ok(
      parse({ batch: { max_events: 100_000, max_bytes: 64 * 1024 * 1024, max_wait_ms: 86_400_000 } }).success,
    );
    assert.ok(!parse({ batch: { max_events: 100_001 } }).success);
  });

  test('a bad key template is refused at creation under key_template, naming the problem', () => {
    for (const [over, problem] of [
      [{ key_template: 'a/{tenant}/{week}/{first_seq}' }, /unknown placeholder \{week\}/],
      [{ key_template: 'a/{yyyy}/{first_seq}' }, /must name \{tenant\}/],
      [{ key_template: 'a/{tenant}/{dd}/{first_seq}' }, /\{dd\} without \{mm\}/],
      [{ key_template: '../{tenant}/{first_seq}' }, /\.\. folder/],
    ] as const) {
      const r = parse(over);
      assert.ok(!r.success, JSON.stringify(over));
      assert.deepEqual(r.error.issues[0]?.path, ['key_template']);
      assert.match(r.error.issues.map((i) => i.message).join(), problem);
    }
    assert.ok(parse({ key_template: 'a/{yyyy}/{first_seq}', filter: { tenants: ['acme'] } }).success);
  });
});
