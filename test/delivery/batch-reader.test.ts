import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { BatchReader, PARTIAL_BATCH_POLL_MS, receivedAtOf } from '../../src/delivery/batch-reader.js';
import type { BatchLimits } from '../../src/delivery/sink.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { RawStoredEvent } from '../../src/store/store.js';
import { makeEvent, prepare } from '../helpers/events.js';

let dir: string;
let store: SqliteStore;
/** `readRangeRaw` calls: after which seq, how many rows asked, how many came. */
let reads: Array<{ after: number; limit: number; got: number }>;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tw-batch-reader-'));
  store = await SqliteStore.open(join(dir, 'trailwarden.db'));
  reads = [];
  const read = store.readRangeRaw.bind(store);
  store.readRangeRaw = async (after, limit) => {
    const rows = await read(after, limit);
    reads.push({ after, limit, got: rows.length });
    return rows;
  };
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const append = (n: number) => store.append(Array.from({ length: n }, () => prepare(makeEvent())));

function reader(batch: BatchLimits, now: () => number = Date.now): BatchReader {
  return new BatchReader('r', {
    store,
    filter: () => true,
    shape: (e) => ({ ...e }),
    encode: JSON.stringify,
    sendStoredJson: true,
    batch,
    now,
  });
}

describe('the batch reader', () => {
  test('a partial batch with a long wait leaves as soon as max_events arrive, reading only the new rows', async () => {
    await append(2);
    const waits: number[] = [];
    const batch = await reader({ max_events: 5, max_bytes: 1 << 20, max_wait_ms: 60_000 }).next(
      0,
      0,
      async (ms) => {
        waits.push(ms);
        if (waits.length === 1) await append(3);
        return true;
      },
    );
    assert.deepEqual(
      batch?.events.map((e) => e.seq),
      [1, 2, 3, 4, 5],
    );
    assert.equal(waits.length, 1, 'one look after the events came');
    assert.ok(waits[0]! <= PARTIAL_BATCH_POLL_MS, `waited ${waits[0]} ms, not the whole max_wait_ms`);
    assert.deepEqual(reads, [
      { after: 0, limit: 512, got: 2 },
      { after: 2, limit: 510, got: 3 },
    ]);
  });

  test('a partial batch leaves as soon as its events reach max_bytes', async () => {
    await append(1);
    const waits: number[] = [];
    const batch = await reader({ max_events: 1000, max_bytes: 2048, max_wait_ms: 60_000 }).next(
      0,
      0,
      async (ms) => {
        waits.push(ms);
        if (waits.length === 1) await append(20);
        return true;
      },
    );
    assert.equal(waits.length, 1);
    assert.ok(waits[0]! <= PARTIAL_BATCH_POLL_MS, `waited ${waits[0]} ms, not the whole max_wait_ms`);
    assert.ok(batch !== undefined && batch.events.length > 1 && batch.events.length < 21);
  });

  test('with nothing new, a long wait looks once a second until max_wait_ms after the oldest event', async () => {
    await append(2);
    const [first] = await store.readRangeRaw(0, 1);
    let clock = Date.parse(receivedAtOf(first!));
    reads = [];
    const waits: number[] = [];
    const batch = await reader({ max_events: 5, max_bytes: 1 << 20, max_wait_ms: 3500 }, () => clock).next(
      0,
      0,
      async (ms) => {
        waits.push(ms);
        clock += ms;
        return true;
      },
    );
    assert.deepEqual(waits, [1000, 1000, 1000, 500]);
    assert.equal(batch?.events.length, 2);
    assert.deepEqual(
      reads.map((r) => r.after),
      [0, 2, 2, 2, 2],
      'after the first window, only rows past the last seen',
    );
  });

  test('a short wait is waited out in one go, as before', async () => {
    await append(2);
    const [first] = await store.readRangeRaw(0, 1);
    const clock = Date.parse(receivedAtOf(first!)) + 50;
    const waits: number[] = [];
    const batch = await reader({ max_events: 5, max_bytes: 1 << 20, max_wait_ms: 200 }, () => clock).next(
      0,
      0,
      async (ms) => {
        waits.push(ms);
        return true;
      },
    );
    assert.deepEqual(waits, [150]);
    assert.equal(batch?.events.length, 2);
  });

  test('a wait the worker gives up ends the read with no batch', async () => {
    await append(1);
    const batch = await reader({ max_events: 5, max_bytes: 1 << 20, max_wait_ms: 60_000 }).next(
      0,
      0,
      async () => false,
    );
    assert.equal(batch, undefined);
  });

  test('each event carries its received_at and timestamp, whatever the shape', async () => {
    await append(1);
    const [row] = await store.readRangeRaw(0, 1);
    const stored = JSON.parse(row!.body) as { received_at: string; timestamp: string };
    const shaped = new BatchReader('r', {
      store,
      filter: () => true,
      shape: () => ({ only: 'this' }),
      encode: JSON.stringify,
      sendStoredJson: false,
      batch: { max_events: 5, max_bytes: 1 << 20, max_wait_ms: 0 },
      now: Date.now,
    }).outgoing(row!);
    const raw = reader({ max_events: 5, max_bytes: 1 << 20, max_wait_ms: 0 }).outgoing(row!);
    for (const e of [shaped, raw]) {
      assert.equal(e.receivedAt, stored.received_at);
      assert.equal(e.timestamp, stored.timestamp);
    }
  });
});

describe('received_at from the stored JSON', () => {
  const row = (body: string): RawStoredEvent => ({
    seq: 7,
    event_id: 'e"1',
    tenant_id: 't',
    action: 'user.login',
    outcome: 'success',
    timestamp: '2026-03-15T08:00:00.000Z',
    actor_id: 'a',
    resource_id: null,
    body,
  });

  test('is read from the start the store writes, without parsing the rest', () => {
    const body = `{"seq":7,"event_id":"e\\"1","timestamp":"2026-03-15T08:00:00.000Z","received_at":"2026-03-15T09:00:00.000Z", not json`;
    assert.equal(receivedAtOf(row(body)), '2026-03-15T09:00:00.000Z');
  });

  test('the rows the store writes are read on that path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tw-received-at-'));
    const own = await SqliteStore.open(join(dir, 'trailwarden.db'));
    try {
      await own.append([prepare(makeEvent({ event_id: 'quote"d', timestamp: '2026-03-15T10:00:00+02:00' }))]);
      const [stored] = await own.readRangeRaw(0, 1);
      const { received_at } = JSON.parse(stored!.body) as { received_at: string };
      const end = stored!.body.indexOf(`"received_at":"${received_at}"`) + received_at.length + 16;
      // Cut after the value: only the start is read, or the parse of what is left throws.
      assert.equal(
        receivedAtOf({ ...stored!, body: `${stored!.body.slice(0, end)}, not json` }),
        received_at,
      );
    } finally {
      await own.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a nested received_at is never taken for the event's own", () => {
    const body = JSON.stringify({
      seq: 7,
      event_id: 'e"1',
      timestamp: '2026-03-15T08:00:00.000Z',
      metadata: { received_at: '1999-01-01T00:00:00.000Z' },
      received_at: '2026-03-15T09:00:00.000Z',
    });
    assert.equal(receivedAtOf(row(body)), '2026-03-15T09:00:00.000Z');
    const sneaky = JSON.stringify({
      seq: 7,
      event_id: 'x","timestamp":"2026-03-15T08:00:00.000Z","received_at":"1999',
      received_at: '2026-03-15T09:00:00.000Z',
    });
    assert.equal(receivedAtOf({ ...row(sneaky), event_id: 'x' }), '2026-03-15T09:00:00.000Z');
  });
});

describe('reading ahead', () => {
  const limits = { max_events: 4, max_bytes: 1 << 20, max_wait_ms: 0 };

  test('the window after a batch in flight is read while it travels, and the next batch takes it without reading again', async () => {
    await append(512 + 600);
    const r = reader({ ...limits, max_events: 512 });
    const first = await r.next(0, 0, async () => true);
    assert.equal(first?.lastSeq, 512);
    r.prefetch(512, 0);
    await new Promise((resolve) => setImmediate(resolve));
    const readsAfterPrefetch = reads.length;
    assert.deepEqual(reads.at(-1), { after: 512, limit: 512, got: 512 }, 'read ahead in the background');
    const second = await r.next(512, 0, async () => true);
    assert.equal(second?.firstSeq, 513);
    assert.equal(second?.lastSeq, 1024);
    assert.equal(second?.events[0]?.seq, 513);
    assert.equal(reads.length, readsAfterPrefetch, 'no second read of the same window');
    const fresh = await reader({ ...limits, max_events: 512 }).next(512, 0, async () => true);
    assert.deepEqual(
      { id: second?.id, events: second?.events.map((e) => [e.seq, e.text]) },
      { id: fresh?.id, events: fresh?.events.map((e) => [e.seq, e.text]) },
      'the batch packed ahead is the one next() packs from scratch',
    );
  });

  test('a batch packed ahead is not used after the cursor epoch changed (a replay): its delivery id would be stale', async () => {
    await append(512 + 600);
    const r = reader({ ...limits, max_events: 512 });
    await r.next(0, 0, async () => true);
    r.prefetch(512, 0);
    await new Promise((resolve) => setImmediate(resolve));
    const before = reads.length;
    const batch = await r.next(512, 1, async () => true);
    assert.equal(reads.length, before + 1, 'read again for the new epoch');
    assert.equal(batch?.id, r.deliveryId(1, 513, 1024));
  });

  test('a window read ahead is not used when it came back short, nor for another cursor', async () => {
    await append(6);
    const r = reader(limits);
    r.prefetch(0, 0);
    await new Promise((resolve) => setImmediate(resolve));
    // Short: events may have come since, so the window is read again.
    await append(600);
    const batch = await r.next(0, 0, async () => true);
    assert.equal(batch?.events.length, 4);
    assert.deepEqual(reads.at(-1), { after: 0, limit: 512, got: 512 });
    r.prefetch(4, 0);
    await new Promise((resolve) => setImmediate(resolve));
    const before = reads.length;
    const other = await r.next(100, 0, async () => true);
    assert.equal(other?.firstSeq, 101, 'a replay or another cursor reads its own window');
    assert.equal(reads.length, before + 1);
  });

  test('a sink that keeps up (its last window came back short) reads nothing ahead', async () => {
    await append(6);
    const r = reader(limits);
    const batch = await r.next(0, 0, async () => true);
    assert.equal(batch?.events.length, 4);
    const before = reads.length;
    r.prefetch(4, 0);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(reads.length, before, 'no read ahead');
  });
});

describe('over events pruned by retention (gaps in seq)', () => {
  const limits = { max_events: 100, max_bytes: 1 << 20, max_wait_ms: 0 };
  const noWait = async () => true;

  test('the delivery in flight is rebuilt from its own range only, not the kept events after it', async () => {
    await append(10);
    await store.retention.pruneEvents('prn_t', [3, 4]);
    const batch = await reader(limits).inflight(1, 5, 0);
    assert.deepEqual(
      batch.events.map((e) => e.seq),
      [2, 5],
    );
    assert.deepEqual([batch.firstSeq, batch.lastSeq], [2, 5]);
  });

  test('a window over a pruned stretch reads on to the next kept events, and the cursor moves past the gap', async () => {
    await append(10);
    await store.retention.pruneEvents('prn_t', [2, 3, 4, 5, 6, 7]);
    const batch = await reader(limits).next(1, 0, noWait);
    assert.deepEqual(
      batch?.events.map((e) => e.seq),
      [8, 9, 10],
    );
    assert.equal(batch?.lastSeq, 10);
  });

  test('a pruned tail up to the head is passed by an empty batch, not taken for caught up', async () => {
    await append(6);
    await store.retention.pruneEvents('prn_t', [4, 5, 6]);
    const r = reader(limits);
    const batch = await r.next(3, 0, noWait);
    assert.deepEqual(batch && [batch.firstSeq, batch.lastSeq, batch.events.length], [4, 6, 0]);
    assert.equal(await r.next(6, 0, noWait), undefined, 'caught up at the head');
    await append(1);
    assert.deepEqual(
      (await r.next(6, 0, noWait))?.events.map((e) => e.seq),
      [7],
    );
  });
});
