import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import type { DeliveryBatch, OutgoingEvent } from '../../../../src/delivery/sink.js';
import type { ArchiveLayout } from '../../../../src/delivery/sinks/archive/archive-objects.js';
import { ArchiveWriter } from '../../../../src/delivery/sinks/archive/archive-writer.js';
import {
  DEFAULT_KEY_TEMPLATE,
  parseKeyTemplate,
} from '../../../../src/delivery/sinks/archive/key-template.js';
import { MemoryObjectStore } from '../../../helpers/memory-object-store.js';

function layout(over: Partial<ArchiveLayout> = {}, template = DEFAULT_KEY_TEMPLATE): ArchiveLayout {
  const t = parseKeyTemplate(template);
  assert.ok(t.ok);
  return {
    template: t.template,
    format: 'json',
    jsonLines: true,
    gzip: true,
    partitionBy: 'received_at',
    ...over,
  };
}

function event(seq: number, tenant: string, receivedAt: string, timestamp = receivedAt): OutgoingEvent {
  const body = { seq, tenant_id: tenant, received_at: receivedAt, timestamp };
  return {
    seq,
    eventId: `e${seq}`,
    tenantId: tenant,
    action: 'user.login',
    receivedAt,
    timestamp,
    event: body,
    text: JSON.stringify(body),
  };
}

function batch(events: OutgoingEvent[]): DeliveryBatch {
  return { id: 'dlv_1', attempt: 1, firstSeq: events[0]!.seq, lastSeq: events.at(-1)!.seq, events };
}

const signal = () => new AbortController().signal;

/** Two tenants over two hours: four objects. */
const mixed = () =>
  batch([
    event(1, 'acme', '2026-03-15T08:59:59.000Z'),
    event(2, 'beta', '2026-03-15T08:59:59.500Z'),
    event(3, 'acme', '2026-03-15T09:00:00.000Z'),
    event(4, 'acme', '2026-03-15T09:10:00.000Z'),
    event(5, 'beta', '2026-03-15T09:20:00.000Z'),
  ]);

describe('the archive writer', () => {
  test('writes one object per tenant and hour, in seq order, with its range, count and SHA-256', async () => {
    const store = new MemoryObjectStore();
    const outcome = await new ArchiveWriter(store, layout()).deliver(mixed(), signal());
    assert.deepEqual(outcome, { kind: 'ok' });
    assert.deepEqual(store.attempts, [
      'trailwarden/tenant=acme/dt=2026-03-15/hour=08/0000000000000001-0000000000000001.jsonl.gz',
      'trailwarden/tenant=beta/dt=2026-03-15/hour=08/0000000000000002-0000000000000002.jsonl.gz',
      'trailwarden/tenant=acme/dt=2026-03-15/hour=09/0000000000000003-0000000000000004.jsonl.gz',
      'trailwarden/tenant=beta/dt=2026-03-15/hour=09/0000000000000005-0000000000000005.jsonl.gz',
    ]);
    const obj = store.objects.get(store.attempts[2]!)!;
    const lines = gunzipSync(obj.body).toString('utf8');
    assert.equal(lines, `${mixed().events[2]!.text}\n${mixed().events[3]!.text}\n`);
    assert.equal(obj.contentType, 'application/x-ndjson');
    assert.equal(obj.contentEncoding, 'gzip');
    assert.deepEqual(obj.metadata, {
      trailwarden_first_seq: '3',
      trailwarden_last_seq: '4',
      trailwarden_events: '2',
      trailwarden_sha256: createHash('sha256').update(obj.body).digest('hex'),
    });
  });

  test('a line format that is not JSON writes .log objects as text; gzip false writes the lines as they are', async () => {
    const store = new MemoryObjectStore();
    const l = layout(
      { format: 'cef', jsonLines: false, gzip: false },
      '{tenant}/{format}/{first_seq}-{last_seq}',
    );
    await new ArchiveWriter(store, l).deliver(
      batch([event(1, 'acme', '2026-03-15T08:00:00.000Z')]),
      signal(),
    );
    const obj = store.objects.get('acme/cef/0000000000000001-0000000000000001.log')!;
    assert.equal(obj.contentType, 'text/plain; charset=utf-8');
    assert.equal(obj.contentEncoding, undefined);
    assert.equal(
      obj.body.toString(),
      `${JSON.stringify(event(1, 'acme', '2026-03-15T08:00:00.000Z').event)}\n`,
    );
  });

  test('partition_by timestamp places events by their own time, read as UTC', async () => {
    const store = new MemoryObjectStore();
    const events = [
      event(1, 'acme', '2026-03-15T08:00:00.000Z', '2026-03-14T23:30:00-02:00'),
      event(2, 'acme', '2026-03-15T08:00:01.000Z', '2026-03-15T07:59:00Z'),
    ];
    await new ArchiveWriter(store, layout({ partitionBy: 'timestamp' })).deliver(batch(events), signal());
    assert.deepEqual(store.keys(), [
      'trailwarden/tenant=acme/dt=2026-03-15/hour=01/0000000000000001-0000000000000001.jsonl.gz',
      'trailwarden/tenant=acme/dt=2026-03-15/hour=07/0000000000000002-0000000000000002.jsonl.gz',
    ]);
  });

  test('a retry after a lost answer writes the same key with the same bytes and succeeds on exists', async () => {
    const store = new MemoryObjectStore();
    const writer = new ArchiveWriter(store, layout());
    store.faults.push({ writeThenFail: true });
    assert.equal((await writer.deliver(mixed(), signal())).kind, 'retry');
    const first = new Map([...store.objects].map(([k, o]) => [k, o.body]));
    assert.deepEqual(await writer.deliver(mixed(), signal()), { kind: 'ok' });
    assert.equal(store.objects.size, 4, 'each event once');
    assert.deepEqual(first.get(store.attempts[0]!), store.objects.get(store.attempts[0]!)!.body);
    // A fresh writer (a restarted server) builds the same bytes: gzip is deterministic.
    const again = new MemoryObjectStore();
    await new ArchiveWriter(again, layout()).deliver(mixed(), signal());
    for (const [k, o] of again.objects) assert.deepEqual(o.body, store.objects.get(k)!.body, k);
  });

  test('an object with other content at the key is never overwritten: the sink is disabled, naming the key', async () => {
    const store = new MemoryObjectStore();
    store.faults.push({ exists: 'f'.repeat(64) });
    const outcome = await new ArchiveWriter(store, layout()).deliver(mixed(), signal());
    assert.equal(outcome.kind, 'disable');
    assert.match(
      outcome.kind === 'disable' ? outcome.reason : '',
      /tenant=acme\/dt=2026-03-15\/hour=08\/0000000000000001-0000000000000001\.jsonl\.gz.*new key_template prefix/,
    );
    assert.equal(store.objects.size, 0);
    assert.equal(store.attempts.length, 1, 'nothing written after it');
  });

  test('transient and throttled failures retry, throttled after the provider hint', async () => {
    const store = new MemoryObjectStore();
    const writer = new ArchiveWriter(store, layout());
    store.faults.push({ fail: 'transient', code: 'ECONNRESET' });
    const t = await writer.deliver(mixed(), signal());
    assert.equal(t.kind, 'retry');
    assert.ok(t.kind === 'retry' && t.afterMs === undefined && t.refused === undefined);
    assert.match(t.kind === 'retry' ? t.reason : '', /memory:\/\/test-bucket: ECONNRESET/);
    store.faults.push({ fail: 'throttled', code: 'SlowDown', retryAfterMs: 7000 });
    const s = await writer.deliver(mixed(), signal());
    assert.ok(s.kind === 'retry' && s.afterMs === 7000, JSON.stringify(s));
  });

  test('a refused write retries marked refused, with the provider code in the reason', async () => {
    const store = new MemoryObjectStore();
    store.faults.push({ fail: 'refused', code: 'NoSuchBucket' });
    const r = await new ArchiveWriter(store, layout()).deliver(mixed(), signal());
    assert.ok(r.kind === 'retry' && r.refused === true, JSON.stringify(r));
    assert.match(r.reason, /NoSuchBucket/);
  });

  test('a rejected object parks its own events only; the other objects are written', async () => {
    const store = new MemoryObjectStore();
    store.faultFor = (key) =>
      key.includes('hour=09/0000000000000003') ? { fail: 'rejected', code: 'EntityTooLarge' } : undefined;
    const r = await new ArchiveWriter(store, layout()).deliver(mixed(), signal());
    assert.ok(r.kind === 'permanent', JSON.stringify(r));
    assert.deepEqual(r.seqs, [3, 4]);
    assert.match(r.reason, /EntityTooLarge/);
    assert.equal(store.objects.size, 3);
  });

  test('a checkpoint delivery writes the signed note under <prefix>_checkpoints/', async () => {
    const store = new MemoryObjectStore();
    const note = 'trailwarden.example/log\n42\nabc=\n\n— trailwarden.example/log sig\n';
    const cp: DeliveryBatch = {
      ...batch([event(42, '', '2026-03-15T08:00:00.000Z')]),
      checkpoint: { treeSize: 42, note },
    };
    assert.deepEqual(await new ArchiveWriter(store, layout()).deliver(cp, signal()), { kind: 'ok' });
    const obj = store.objects.get('trailwarden/_checkpoints/0000000000000042.note')!;
    assert.equal(obj.body.toString('utf8'), note);
    assert.equal(obj.contentType, 'text/plain; charset=utf-8');
    assert.equal(obj.contentEncoding, undefined);
    assert.deepEqual(obj.metadata, { trailwarden_sha256: createHash('sha256').update(note).digest('hex') });
    assert.equal(store.objects.size, 1, 'the record itself is not archived as an event');
    // Another note at the same tree size is reported, never fatal to the sink.
    store.faults.push({ exists: '0'.repeat(64) });
    const other = await new ArchiveWriter(store, layout()).deliver(cp, signal());
    assert.equal(other.kind, 'permanent');
  });

  test('close() ends a put in progress and closes the store; healthcheck asks the store', async () => {
    const store = new MemoryObjectStore();
    const writer = new ArchiveWriter(store, layout());
    assert.deepEqual(await writer.healthcheck(), { ok: true, detail: 'memory://test-bucket reachable' });
    store.down = { kind: 'refused', code: 'AccessDenied' };
    assert.equal((await writer.healthcheck()).ok, false);
    store.down = undefined;
    store.faults.push({ hang: true });
    const delivering = writer.deliver(mixed(), signal());
    while (store.inFlight === 0) await new Promise((r) => setImmediate(r));
    await writer.close();
    assert.equal((await delivering).kind, 'retry');
    assert.ok(store.closed);
    assert.equal(store.objects.size, 0);
  });

  test("the worker's abort signal ends a put in progress", async () => {
    const store = new MemoryObjectStore();
    store.faults.push({ hang: true });
    const ctrl = new AbortController();
    const delivering = new ArchiveWriter(store, layout()).deliver(mixed(), ctrl.signal);
    while (store.inFlight === 0) await new Promise((r) => setImmediate(r));
    ctrl.abort();
    assert.equal((await delivering).kind, 'retry');
  });
});
