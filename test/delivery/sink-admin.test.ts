/**
 * Sink administration without the HTTP layer: the tenant rule lives in
 * delivery, so any caller of the admin seam (the API's routes, a CLI, a
 * test) gets it. Sinks here are `enabled: false`, so nothing is delivered.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { SelfAudit } from '../../src/audit/self-audit.js';
import { DeliveryEngine } from '../../src/delivery/delivery-engine.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';

const open: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (open.length > 0) await open.pop()!();
});

async function engine(): Promise<DeliveryEngine> {
  const dir = mkdtempSync(join(tmpdir(), 'tw-sink-admin-'));
  open.push(() => rmSync(dir, { recursive: true, force: true }));
  const store = await SqliteStore.open(join(dir, 'trailwarden.db'));
  open.push(() => store.close());
  const e = new DeliveryEngine({
    store,
    audit: new SelfAudit(store, 'default'),
    dataDir: dir,
    secrets: null,
    allowedPrivateNetworks: [],
    configSinks: [],
    emit: null,
    log: { info() {}, warn() {} },
    nodeId: 'node-a',
    leaseMs: 10_000,
  });
  await e.start();
  open.push(() => e.stop());
  return e;
}

const hook = { name: 'siem', type: 'webhook', url: 'https://siem.example.com/hook', enabled: false };

describe("a tenant's sink carries only its tenant's events", () => {
  test('created in a tenant scope, it gets filter.tenants: [tenant], kept in its settings as shown', async () => {
    const { admin } = await engine();
    const sink = await admin.create({ ...hook, filter: { outcomes: ['failure'] } }, 'acme');
    assert.deepEqual(sink.raw['filter'], { outcomes: ['failure'], tenants: ['acme'] });
    assert.deepEqual(sink.config.filter.tenants, ['acme']);
    assert.deepEqual(sink.config.filter.outcomes, ['failure']);
    assert.deepEqual(admin.entry({ name: 'siem', tenantId: 'acme' }, null).raw['filter'], sink.raw['filter']);
  });

  test('a filter naming another tenant, or several, is refused when the sink is created', async () => {
    const { admin } = await engine();
    for (const tenants of [['globex'], ['acme', 'globex']]) {
      await assert.rejects(admin.create({ ...hook, filter: { tenants } }, 'acme'), {
        code: 'TW_ERR_FORBIDDEN',
        message: "this sink belongs to tenant acme; it can only carry that tenant's events",
      });
    }
    assert.deepEqual(admin.list(null), []);
    const own = await admin.create({ ...hook, filter: { tenants: ['acme'] } }, 'acme');
    assert.deepEqual(own.config.filter.tenants, ['acme']);
  });

  test('a change cannot widen it: filter.tenants is set back to the tenant, whoever sends the change', async () => {
    const { admin } = await engine();
    const ref = { name: 'siem', tenantId: 'acme' };
    await admin.create(hook, 'acme');
    const changed = await admin.update(ref, { ...hook, filter: { tenants: null }, enabled: false }, null);
    assert.deepEqual(changed, [], 'the filter ends as it was');
    assert.deepEqual(admin.entry(ref, null).config.filter.tenants, ['acme']);
    await admin.update(ref, { ...hook, filter: { tenants: ['globex'] } }, null);
    assert.deepEqual(admin.entry(ref, null).raw['filter'], { tenants: ['acme'] });
  });

  test("an operator's sink is kept as given, with no tenant filter", async () => {
    const { admin } = await engine();
    const sink = await admin.create(hook, null);
    assert.equal(sink.raw['filter'], undefined);
    assert.equal(sink.config.filter.tenants, null);
    const sameName = await admin.create(hook, 'acme');
    assert.deepEqual(sameName.config.filter.tenants, ['acme'], 'names are scoped per tenant');
    assert.deepEqual(
      admin.list(null).map((s) => [s.tenantId, s.name]),
      [
        [null, 'siem'],
        ['acme', 'siem'],
      ],
    );
  });
});
