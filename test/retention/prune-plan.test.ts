import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DEFAULT_TENANT_ENTRY,
  entryFor,
  periodsOf,
  receivedBeforeFor,
  scanStart,
} from '../../src/retention/prune-plan.js';
import type { LegalHold, PruneRun } from '../../src/store/retention-store.js';

const run = (plan: PruneRun['plan']): PruneRun => ({
  id: 'prn_1',
  startedAt: '2026-03-01T00:00:00.000Z',
  finishedAt: '2026-03-01T00:01:00.000Z',
  state: 'done',
  plan,
  scannedThrough: 500,
  pruned: 10,
});
const entry = (tenantId: string, days: number, throughSeq: number) => ({
  tenantId,
  days,
  receivedBefore: '2026-02-01T00:00:00.000Z',
  throughSeq,
});
const lifted = (at: string): LegalHold => ({
  id: 'hold_1',
  tenantId: 'acme',
  match: {},
  reason: 'r',
  createdAt: '2026-01-01T00:00:00.000Z',
  createdBy: 'k',
  liftedAt: at,
  liftedBy: 'k',
  liftReason: 'done',
});

describe('prune plan', () => {
  test("each tenant's period is its own, the default stands for every other tenant, none means kept forever", () => {
    const periods = periodsOf([{ tenantId: 'acme', days: 30, updatedAt: '', updatedBy: '' }], 365);
    assert.deepEqual(periods, [
      { tenantId: 'acme', days: 30 },
      { tenantId: DEFAULT_TENANT_ENTRY, days: 365 },
    ]);
    const plan = [entry('acme', 30, 10), entry(DEFAULT_TENANT_ENTRY, 365, 5)];
    assert.equal(entryFor(plan, 'acme')?.days, 30);
    assert.equal(entryFor(plan, 'globex')?.days, 365);
    assert.equal(entryFor([entry('acme', 30, 10)], 'globex'), undefined);
    assert.deepEqual(periodsOf([], null), []);
  });

  test('the cut is now minus the period in whole days', () => {
    assert.equal(receivedBeforeFor(Date.parse('2026-03-31T12:00:00.000Z'), 30), '2026-03-01T12:00:00.000Z');
  });

  test("a new run starts scanning at the last finished run's lowest cut, and at 0 after a lift or a shorter or new period", () => {
    const last = run([entry('acme', 30, 400), entry(DEFAULT_TENANT_ENTRY, 365, 250)]);
    const same = [entry('acme', 30, 900), entry(DEFAULT_TENANT_ENTRY, 365, 600)];
    assert.equal(scanStart(undefined, same, []), 0);
    assert.equal(scanStart(last, same, []), 250);
    assert.equal(scanStart(last, [entry('acme', 60, 900), entry(DEFAULT_TENANT_ENTRY, 365, 600)], []), 250);
    assert.equal(scanStart(last, [entry('acme', 7, 900), entry(DEFAULT_TENANT_ENTRY, 365, 600)], []), 0);
    assert.equal(scanStart(last, [...same, entry('globex', 90, 700)], []), 0);
    assert.equal(scanStart(last, same, [lifted('2026-03-02T00:00:00.000Z')]), 0);
    assert.equal(
      scanStart(last, same, [lifted('2026-02-02T00:00:00.000Z')]),
      250,
      'a lift before the last run changes nothing',
    );
  });
});
