import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Pruner, type PrunerSettings } from '../../src/retention/pruner.js';
import { rawEvent, type TestApp, testApp } from '../helpers/app.js';

const DAY_MS = 86_400_000;

/** A pruner over the app's store whose clock runs `aheadDays` in the future (events are then that old). */
function pruner(
  t: TestApp,
  aheadDays: number,
  settings: Partial<PrunerSettings> = {},
  rest?: (ms: number) => Promise<void>,
): Pruner {
  const ctx = t.parts.ctx;
  const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
  return new Pruner({
    store: ctx.store,
    retention: ctx.store.retention,
    audit: ctx.audit,
    settings: {
      defaultDays: null,
      intervalMs: 3_600_000,
      chunkEvents: 100,
      busySharePercent: 100,
      pruneAfterDelivered: [],
      ...settings,
    },
    nodeId: ctx.delivery.nodeId,
    leaseMs: 10_000,
    log: quiet,
    now: () => Date.now() + aheadDays * DAY_MS,
    ...(rest === undefined ? {} : { rest }),
  });
}

async function ingest(t: TestApp, tenant: string, events: Array<Record<string, unknown>>): Promise<void> {
  const res = await t.app.inject({
    method: 'POST',
    url: `/v1/events?tenant_id=${tenant}`,
    headers: { authorization: await t.key('publisher', tenant) },
    payload: events,
  });
  assert.equal(res.statusCode, 201, res.body);
}

async function kept(t: TestApp, tenant: string, action?: string) {
  return t.parts.ctx.store.query(
    { tenantIds: [tenant], ...(action === undefined ? {} : { action: { value: action, prefix: false } }) },
    { order: 'asc', limit: 10_000 },
  );
}

describe('the pruner', () => {
  let t: TestApp;
  before(async () => {
    t = await testApp({ audit_reads: false });
  });
  after(() => t.close());

  test("prunes each tenant's events past its period, never held or exempt ones, logs one record per tenant, and prunes held ones after the lift", async () => {
    const store = t.parts.ctx.store;
    await ingest(
      t,
      'acme',
      Array.from({ length: 120 }, (_, i) =>
        rawEvent({ action: i % 4 === 0 ? 'invoice.paid' : 'user.login' }),
      ),
    );
    await ingest(
      t,
      'globex',
      Array.from({ length: 10 }, () => rawEvent()),
    );
    for (const [tenant, days] of [
      ['acme', 30],
      ['globex', 90],
    ] as const) {
      await t.app.inject({
        method: 'PUT',
        url: `/v1/retention/tenants/${tenant}`,
        headers: { authorization: t.admin },
        payload: { days },
      });
    }
    const hold = (
      await t.app.inject({
        method: 'POST',
        url: '/v1/legal-holds',
        headers: { authorization: t.admin },
        payload: { tenant_id: 'acme', match: { action: 'invoice.*' }, reason: 'invoice dispute' },
      })
    ).json();
    // 60 days on: acme's 30-day period is past, globex's 90 days is not.
    const first = await pruner(t, 60).cycle();
    assert.ok(first);
    assert.equal(first.state, 'done');
    const acme = await kept(t, 'acme');
    assert.deepEqual([...new Set(acme.map((e) => e.action))].sort(), [
      'invoice.paid',
      'log.legal_hold.placed',
      'log.retention.changed',
      'log.retention.pruned',
    ]);
    assert.equal(acme.filter((e) => e.action === 'invoice.paid').length, 30);
    assert.equal((await kept(t, 'globex', 'user.login')).length, 10);
    const [record] = await kept(t, 'acme', 'log.retention.pruned');
    const byRun = await store.retention.prunedByRun(first.id);
    assert.deepEqual(
      byRun.map((g) => g.tenantId),
      ['acme'],
    );
    assert.equal(record?.metadata?.['pruned'], 90);
    assert.equal(record?.metadata?.['seq_digest'], byRun[0]?.seqDigest);
    assert.equal(record?.metadata?.['run_id'], first.id);
    assert.equal(record?.metadata?.['days'], 30);

    // The next run scans only what came after the last cut (the run's own records): it prunes nothing.
    const idle = await pruner(t, 60).cycle();
    assert.equal(idle?.pruned ?? 0, 0);
    assert.equal((await kept(t, 'acme', 'invoice.paid')).length, 30);
    const lift = await t.app.inject({
      method: 'POST',
      url: `/v1/legal-holds/${hold.id}/lift`,
      headers: { authorization: t.admin },
      payload: { reason: 'settled' },
    });
    assert.equal(lift.statusCode, 200);
    const second = await pruner(t, 60).cycle();
    assert.ok(second, 'a lifted hold lets the next run scan again');
    assert.equal(second.pruned, 30);
    assert.equal((await kept(t, 'acme', 'invoice.paid')).length, 0);
    assert.equal(
      (await kept(t, 'acme', 'log.retention.pruned')).length,
      2,
      'the records of retention are never pruned',
    );
  });
});

describe('the pruner under a trickle of events', () => {
  let t: TestApp;
  before(async () => {
    t = await testApp({ audit_reads: true });
  });
  after(() => t.close());

  test('reads audited while it runs (a trickle far below busy ingest) do not make it rest', async () => {
    for (let i = 0; i < 6; i++) {
      await ingest(
        t,
        'acme',
        Array.from({ length: 500 }, () => rawEvent()),
      );
    }
    const rests: number[] = [];
    const headBefore = await t.parts.ctx.store.headSeq();
    let running = true;
    let reads = 0;
    const reader = (async () => {
      while (running) {
        await t.app.inject({ method: 'GET', url: '/v1/events?limit=1', headers: { authorization: t.admin } });
        reads++;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const run = await pruner(t, 60, { defaultDays: 30, busySharePercent: 5 }, async (ms) => {
      rests.push(ms);
    })
      .cycle()
      .finally(() => {
        running = false;
      });
    await reader;
    assert.equal(run?.state, 'done');
    assert.ok(reads > 0 && (await t.parts.ctx.store.headSeq()) > headBefore, 'reads were audited meanwhile');
    assert.deepEqual(rests, [], 'no rest for a trickle');
  });
});

describe('prune_after_delivered', () => {
  let t: TestApp;
  before(async () => {
    t = await testApp({
      audit_reads: false,
      sinks: [{ name: 'archive', type: 'stdout', enabled: false }],
      retention: { prune_after_delivered: ['archive'] },
    });
  });
  after(() => t.close());

  test("nothing beyond the slowest named sink's cursor is pruned", async () => {
    const store = t.parts.ctx.store;
    await ingest(
      t,
      'acme',
      Array.from({ length: 40 }, () => rawEvent()),
    );
    const head = await store.headSeq();
    // The sink is paused (disabled) after confirming up to 20 events before the head.
    const state = await store.delivery.ensureSinkState('archive', 0);
    const moved = await store.delivery.moveSinkCursor('archive', state.cursor, head - 20);
    assert.ok(moved.ok);
    const run = await pruner(t, 10, { defaultDays: 1, pruneAfterDelivered: ['archive'] }).cycle();
    assert.ok(run);
    const left = (await kept(t, 'acme', 'user.login')).map((e) => e.seq);
    assert.equal(left.length, 20);
    assert.ok(left.every((s) => s > head - 20));
    assert.ok(run.plan.every((e) => e.throughSeq <= head - 20));
  });

  test('a start naming a sink that does not exist fails with a config error naming it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tw-prune-'));
    try {
      await assert.rejects(
        testApp({ data_dir: dir, retention: { prune_after_delivered: ['siem'] } }),
        /retention\.prune_after_delivered names sink siem, which is neither in sinks nor made through the API/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
