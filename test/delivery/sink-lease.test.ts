/**
 * One sink's lease on a real SQLite store: taken, renewed, handed back, and
 * given up as soon as it may have expired while the store does not answer.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { SinkLease, sinkLeaseName } from '../../src/delivery/sink-lease.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { DeliveryStore } from '../../src/store/store.js';
import { until } from '../helpers/until.js';

const LEASE_MS = 1000;
const quiet = { warn: () => undefined };

const open: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (open.length > 0) await open.pop()!();
});

async function store(): Promise<SqliteStore> {
  const dir = mkdtempSync(join(tmpdir(), 'tw-lease-'));
  const s = await SqliteStore.open(join(dir, 'trailwarden.db'));
  open.push(() => rmSync(dir, { recursive: true, force: true }));
  open.push(() => s.close());
  return s;
}

/** Hooks that count what the lease made them do. */
function hooks() {
  const seen = { gained: 0, renewed: 0, lost: 0 };
  return {
    seen,
    hooks: {
      gained: async () => {
        seen.gained += 1;
      },
      renewed: () => {
        seen.renewed += 1;
      },
      lost: async () => {
        seen.lost += 1;
      },
    },
  };
}

function lease(delivery: Pick<DeliveryStore, 'acquireLease' | 'releaseLease'>, h: ReturnType<typeof hooks>) {
  const l = new SinkLease(
    'siem',
    { store: delivery, holder: 'node-a', leaseMs: LEASE_MS, log: quiet },
    h.hooks,
  );
  open.push(() => l.close());
  return l;
}

test('a free lease is taken at start, renewed, and released on close', async () => {
  const s = await store();
  const h = hooks();
  const l = lease(s.delivery, h);
  await l.start();
  assert.equal(l.isHeld, true);
  assert.equal(h.seen.gained, 1);
  assert.equal((await s.delivery.leaseHolder(sinkLeaseName('siem')))?.holder, 'node-a');
  await until(() => h.seen.renewed >= 2, 'two renewals');
  await l.close();
  assert.deepEqual({ ...h.seen, renewed: 0 }, { gained: 1, renewed: 0, lost: 1 });
  assert.equal(await s.delivery.leaseHolder(sinkLeaseName('siem')), undefined, 'released');
});

test('a lease another node holds is waited for and taken once that node releases it', async () => {
  const s = await store();
  assert.equal(await s.delivery.acquireLease(sinkLeaseName('siem'), 'node-b', 60_000), true);
  const h = hooks();
  const l = lease(s.delivery, h);
  await l.start();
  assert.equal(l.isHeld, false);
  await until(
    async () => (await s.delivery.leaseHolder(sinkLeaseName('siem')))?.holder === 'node-b',
    'node b still holding',
  );
  assert.equal(h.seen.gained, 0);
  await s.delivery.releaseLease(sinkLeaseName('siem'), 'node-b');
  await until(() => l.isHeld, 'the lease taken over');
  assert.equal(h.seen.gained, 1);
});

test('delivery stops once renewals hang past the lease, and starts again when the store answers', async () => {
  const s = await store();
  // The store stops answering lease calls while `gate` is set (a database out of reach).
  let gate: { opened: Promise<void>; open: () => void } | undefined;
  const flaky: Pick<DeliveryStore, 'acquireLease' | 'releaseLease'> = {
    acquireLease: async (...args) => {
      if (gate) await gate.opened;
      return s.delivery.acquireLease(...args);
    },
    releaseLease: (...args) => s.delivery.releaseLease(...args),
  };
  const h = hooks();
  const l = lease(flaky, h);
  await l.start();
  let openGate = () => {};
  gate = { opened: new Promise<void>((r) => (openGate = r)), open: () => openGate() };
  await until(() => h.seen.lost === 1, 'delivery stopped while the renewal hangs');
  assert.equal(l.isHeld, false);
  gate.open();
  gate = undefined;
  await until(() => l.isHeld, 'the lease taken again');
  assert.equal(h.seen.gained, 2);
});

test('delivery stops once renewals have kept failing for the length of the lease', async () => {
  const s = await store();
  let failing = false;
  const flaky: Pick<DeliveryStore, 'acquireLease' | 'releaseLease'> = {
    acquireLease: (...args) =>
      failing ? Promise.reject(new Error('connection refused')) : s.delivery.acquireLease(...args),
    releaseLease: (...args) => s.delivery.releaseLease(...args),
  };
  const h = hooks();
  const l = lease(flaky, h);
  await l.start();
  failing = true;
  await until(() => h.seen.lost === 1, 'delivery stopped');
  assert.equal(l.isHeld, false);
  failing = false;
  await until(() => l.isHeld, 'the lease taken again once the store answers');
  assert.equal(h.seen.gained, 2);
});

test('closing without release leaves the lease to expire, as a node that died would', async () => {
  const s = await store();
  const h = hooks();
  const l = lease(s.delivery, h);
  await l.start();
  await l.close(false);
  assert.equal(h.seen.lost, 1, 'delivery stopped');
  assert.equal((await s.delivery.leaseHolder(sinkLeaseName('siem')))?.holder, 'node-a', 'not released');
  assert.equal(await s.delivery.acquireLease(sinkLeaseName('siem'), 'node-b', 60_000), false);
});
