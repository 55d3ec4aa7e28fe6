import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { rawEvent, type TestApp, testApp } from '../helpers/app.js';

/** The parts of a served event these tests read. */
interface Served {
  seq: number;
  event_id: string;
  action: string;
  actor: { id: string; name?: string; email?: string };
  source_ip?: string;
  metadata?: Record<string, unknown>;
  redaction?: { erasure_id: string; fields: string[] };
}

async function ingest(t: TestApp, events: Array<Record<string, unknown>>, tenant: string) {
  const res = await t.app.inject({
    method: 'POST',
    url: `/v1/events?tenant_id=${tenant}`,
    headers: { authorization: await t.key('publisher', tenant) },
    payload: events,
  });
  assert.equal(res.statusCode, 201, res.body);
}

describe('retention, legal hold and erasure API: who may do what', () => {
  let t: TestApp;
  let tenantAdmin: string;
  let auditor: string;
  let tenantAuditor: string;
  let publisher: string;
  before(async () => {
    t = await testApp({ retention: { minimum_days: 7, default_days: 365 } });
    tenantAdmin = await t.key('admin', 'acme');
    auditor = await t.key('auditor', null);
    tenantAuditor = await t.key('auditor', 'acme');
    publisher = await t.key('publisher', null);
    for (const [tenant, days] of [
      ['acme', 30],
      ['globex', 90],
    ] as const) {
      const put = await t.app.inject({
        method: 'PUT',
        url: `/v1/retention/tenants/${tenant}`,
        headers: { authorization: t.admin },
        payload: { days },
      });
      assert.equal(put.statusCode, 200, put.body);
    }
  });
  after(() => t.close());

  const call = (method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, auth: string, payload?: object) =>
    t.app.inject({
      method,
      url,
      headers: { authorization: auth },
      ...(payload === undefined ? {} : { payload }),
    });

  test("a tenant-bound admin or auditor reads only its tenant's period; a global auditor reads all; a publisher nothing", async () => {
    const own = (await call('GET', '/v1/retention', tenantAdmin)).json();
    assert.deepEqual(
      own.tenants.map((x: { tenant_id: string }) => x.tenant_id),
      ['acme'],
    );
    assert.equal(own.minimum_days, 7);
    assert.equal(own.prune_after_delivered, undefined);
    assert.deepEqual(
      (await call('GET', '/v1/retention', tenantAuditor)).json().tenants.map((x: { days: number }) => x.days),
      [30],
    );
    const all = (await call('GET', '/v1/retention', auditor)).json();
    assert.deepEqual(all.tenants.map((x: { tenant_id: string }) => x.tenant_id).sort(), ['acme', 'globex']);
    assert.equal((await call('GET', '/v1/retention', publisher)).statusCode, 403);
    assert.equal((await call('GET', '/v1/legal-holds', publisher)).statusCode, 403);
    assert.equal((await call('GET', '/v1/erasures', publisher)).statusCode, 403);
  });

  test('a tenant-bound admin cannot set or remove periods, start runs, place or lift holds: a global admin must', async () => {
    for (const [method, url, payload] of [
      ['PUT', '/v1/retention/tenants/acme', { days: 3650 }],
      ['DELETE', '/v1/retention/tenants/acme', undefined],
      ['POST', '/v1/retention/runs', undefined],
      ['POST', '/v1/legal-holds', { tenant_id: 'acme', reason: 'mine' }],
    ] as const) {
      const res = await call(method, url, tenantAdmin, payload);
      assert.equal(res.statusCode, 403, `${method} ${url}`);
      assert.match(res.json().detail, /a global admin must do it/);
    }
    const hold = await call('POST', '/v1/legal-holds', t.admin, {
      tenant_id: 'acme',
      reason: 'litigation 2026-17',
    });
    assert.equal(hold.statusCode, 201, hold.body);
    const lift = await call('POST', `/v1/legal-holds/${hold.json().id}/lift`, tenantAdmin, {
      reason: 'we are done',
    });
    assert.equal(lift.statusCode, 403);
    assert.match(lift.json().detail, /lifting a legal hold needs an admin key for all tenants/);
    // It may read its own tenant's hold, and an auditor may too.
    assert.equal((await call('GET', `/v1/legal-holds/${hold.json().id}`, tenantAdmin)).statusCode, 200);
    assert.equal((await call('GET', `/v1/legal-holds/${hold.json().id}`, auditor)).statusCode, 200);
    // An auditor reads but never changes.
    assert.equal(
      (await call('POST', '/v1/legal-holds', auditor, { tenant_id: 'acme', reason: 'x' })).statusCode,
      403,
    );
    assert.equal((await call('PUT', '/v1/retention/tenants/acme', auditor, { days: 30 })).statusCode, 403);
  });

  test("another tenant's holds and erasures are invisible to a tenant-bound key, and asking for that tenant is refused and recorded", async () => {
    const hold = await call('POST', '/v1/legal-holds', t.admin, {
      tenant_id: 'globex',
      reason: 'regulator inquiry',
    });
    const id = hold.json().id;
    assert.equal((await call('GET', `/v1/legal-holds/${id}`, tenantAdmin)).statusCode, 404);
    const listed = (await call('GET', '/v1/legal-holds', tenantAdmin)).json().legal_holds;
    assert.ok(listed.every((h: { tenant_id: string }) => h.tenant_id === 'acme'));
    assert.equal((await call('GET', '/v1/legal-holds?tenant_id=globex', tenantAuditor)).statusCode, 403);
    const foreign = await call('POST', '/v1/erasures', tenantAdmin, {
      tenant_id: 'globex',
      subject: { actor_id: 'usr_bob' },
      reason: 'not mine to ask',
    });
    assert.equal(foreign.statusCode, 403);
    const denied = await t.parts.ctx.store.query(
      { tenantIds: ['acme'], action: { value: 'audit.access.denied', prefix: false } },
      { order: 'desc', limit: 5 },
    );
    assert.ok(denied.some((e) => e.metadata?.['requested_tenant'] === 'globex'));
    const globexErasure = await call('POST', '/v1/erasures', t.admin, {
      tenant_id: 'globex',
      subject: { email: 'bob@globex.example' },
      reason: 'GDPR art. 17',
    });
    assert.equal(globexErasure.statusCode, 200, globexErasure.body);
    assert.equal((await call('GET', `/v1/erasures/${globexErasure.json().id}`, tenantAdmin)).statusCode, 404);
    assert.ok(
      (await call('GET', '/v1/erasures', tenantAuditor))
        .json()
        .erasures.every((e: { tenant_id: string }) => e.tenant_id === 'acme'),
    );
  });

  test('a tenant-bound admin erases in its own tenant (tenant_id implied), answered with the counts', async () => {
    const res = await call('POST', '/v1/erasures', tenantAdmin, {
      subject: { actor_id: 'usr_nobody' },
      reason: 'data subject request 42',
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().tenant_id, 'acme');
  });
});

describe('retention API: bad input', () => {
  let t: TestApp;
  before(async () => {
    t = await testApp({ retention: { minimum_days: 7 } });
  });
  after(() => t.close());

  const post = (method: 'PUT' | 'POST', url: string, payload: unknown) =>
    t.app.inject({ method, url, headers: { authorization: t.admin }, payload: payload as object });

  test('days below the minimum, above 36,500 or not whole are refused with 400 saying the bound', async () => {
    for (const [days, message] of [
      [6, /days must be at least 7 \(retention\.minimum_days\)/],
      [36_501, /days must be at most 36500/],
      [30.5, /days must be a whole number of days from 7 to 36500/],
      ['30', /whole number/],
    ] as const) {
      const res = await post('PUT', '/v1/retention/tenants/acme', { days });
      assert.equal(res.statusCode, 400, String(days));
      assert.equal(res.json().code, 'TW_ERR_BAD_REQUEST');
      assert.match(res.json().detail, message);
    }
    assert.match(
      (await post('PUT', '/v1/retention/tenants/acme', { day: 30 })).json().detail,
      /unknown field day/,
    );
  });

  test('a hold with an unknown match field or without a reason is refused with 400', async () => {
    const unknown = await post('POST', '/v1/legal-holds', {
      tenant_id: 'acme',
      match: { user: 'x' },
      reason: 'r',
    });
    assert.equal(unknown.statusCode, 400);
    assert.match(unknown.json().detail, /match: unknown field user; use action, actor_id/);
    const noReason = await post('POST', '/v1/legal-holds', { tenant_id: 'acme' });
    assert.equal(noReason.statusCode, 400);
    assert.match(noReason.json().detail, /legal hold: reason is required/);
  });

  test('an erasure with no subject, two subjects, an empty or an over-long reason is refused with 400', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ tenant_id: 'acme', subject: {}, reason: 'r' }, /subject names no one/],
      [
        { tenant_id: 'acme', subject: { actor_id: 'a', email: 'a@b.c' }, reason: 'r' },
        /subject names actor_id and email; give exactly one/,
      ],
      [{ tenant_id: 'acme', subject: { actor_id: 'a' }, reason: '' }, /erasure: reason must not be empty/],
      [
        { tenant_id: 'acme', subject: { actor_id: 'a' }, reason: 'x'.repeat(1001) },
        /reason is 1001 characters long; at most 1000/,
      ],
      [{ subject: { actor_id: 'a' }, reason: 'r' }, /tenant_id is required/],
    ];
    for (const [body, message] of cases) {
      const res = await post('POST', '/v1/erasures', body);
      assert.equal(res.statusCode, 400, JSON.stringify(body).slice(0, 80));
      assert.match(res.json().detail, message);
    }
  });

  test('an erasure of an unknown subject answers 200 with zero counts, and is recorded and logged', async () => {
    const res = await post('POST', '/v1/erasures', {
      tenant_id: 'acme',
      subject: { email: 'ghost@example.com' },
      reason: 'request 7',
    });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    assert.deepEqual([body.matched, body.redacted, body.held], [0, 0, 0]);
    const kept = await t.app.inject({
      method: 'GET',
      url: `/v1/erasures/${body.id}`,
      headers: { authorization: t.admin },
    });
    assert.equal(kept.json().state, 'done');
    const logged = await t.parts.ctx.store.query(
      { tenantIds: ['acme'], action: { value: 'log.erasure.completed', prefix: false } },
      { order: 'desc', limit: 1 },
    );
    assert.equal(logged[0]?.metadata?.['erasure_id'], body.id);
    assert.equal(logged[0]?.seq, body.completed_seq);
    assert.ok(!JSON.stringify(logged[0]).includes('ghost@example.com'), 'the subject is never logged');
  });
});

describe('erasure and legal holds', () => {
  let t: TestApp;
  before(async () => {
    t = await testApp({ retention: { erasure: { metadata_paths: ['metadata.phone'] } } });
  });
  after(() => t.close());

  test('an erasure redacts the personal fields of the subject, leaves held events and other tenants alone, and the served event says so', async () => {
    const alice = { type: 'user', id: 'usr_alice', name: 'Alice', email: 'alice@example.com' };
    await ingest(
      t,
      [
        rawEvent({ actor: alice, action: 'user.login', metadata: { phone: '+33 1', plan: 'pro' } }),
        rawEvent({ actor: alice, action: 'invoice.viewed', resource: { type: 'invoice', id: 'inv_1' } }),
        rawEvent({ actor: alice, action: 'user.logout' }),
      ],
      'acme',
    );
    await ingest(t, [rawEvent({ actor: alice })], 'globex');
    const hold = await t.app.inject({
      method: 'POST',
      url: '/v1/legal-holds',
      headers: { authorization: t.admin },
      payload: { tenant_id: 'acme', match: { action: 'invoice.*' }, reason: 'invoice dispute' },
    });
    assert.equal(hold.statusCode, 201);
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/erasures',
      headers: { authorization: t.admin },
      payload: { tenant_id: 'acme', subject: { actor_id: 'usr_alice' }, reason: 'GDPR art. 17, ticket 9' },
    });
    assert.equal(res.statusCode, 200, res.body);
    const out = res.json();
    assert.deepEqual([out.matched, out.redacted, out.held], [3, 2, 1]);
    assert.deepEqual(out.fields, ['actor.name', 'actor.email', 'source_ip', 'user_agent', 'metadata.phone']);
    const events = (
      await t.app.inject({
        method: 'GET',
        url: '/v1/events?tenant_id=acme&actor_id=usr_alice',
        headers: { authorization: t.admin },
      })
    ).json().events;
    const byAction = new Map((events as Served[]).map((e) => [e.action, e]));
    const login = byAction.get('user.login') as Served;
    assert.deepEqual(login.actor, { type: 'user', id: 'usr_alice' });
    assert.equal(login.source_ip, undefined);
    assert.deepEqual(login.metadata, { plan: 'pro' });
    assert.deepEqual(login.redaction, {
      erasure_id: out.id,
      fields: ['actor.name', 'actor.email', 'source_ip', 'metadata.phone'],
    });
    const listed = await t.app.inject({
      method: 'GET',
      url: `/v1/erasures/${out.id}/events`,
      headers: { authorization: t.admin },
    });
    assert.equal(listed.statusCode, 200, listed.body);
    assert.deepEqual(
      listed.json().events,
      (events as Served[])
        .filter((e) => e.redaction !== undefined)
        .map((e) => ({ seq: e.seq, event_id: e.event_id }))
        .sort((a, b) => a.seq - b.seq),
      'the redacted events, by seq and event_id, for a SIEM to mask its copies',
    );
    assert.equal(listed.json().next_after_seq, null);
    // An erased event retention pruned since is still listed, without its event_id.
    const [firstRedacted] = listed.json().events as Array<{ seq: number; event_id: string }>;
    assert.ok(firstRedacted);
    await t.parts.ctx.store.retention.pruneEvents('prn_erasure_page_test', [firstRedacted.seq]);
    const afterPrune = await t.app.inject({
      method: 'GET',
      url: `/v1/erasures/${out.id}/events`,
      headers: { authorization: t.admin },
    });
    assert.deepEqual(afterPrune.json().events[0], { seq: firstRedacted.seq, event_id: null });
    assert.equal(afterPrune.json().events.length, listed.json().events.length);
    const held = byAction.get('invoice.viewed') as Served;
    assert.equal(held.actor.email, 'alice@example.com', 'a held event is not erased');
    assert.equal(held.redaction, undefined);
    const other = (
      await t.app.inject({
        method: 'GET',
        url: '/v1/events?tenant_id=globex',
        headers: { authorization: t.admin },
      })
    ).json().events;
    assert.equal(
      other.find((e: { actor: { id: string } }) => e.actor.id === 'usr_alice').actor.name,
      'Alice',
    );
    // The text search no longer finds her by name in the erased events.
    const q = (
      await t.app.inject({
        method: 'GET',
        url: '/v1/events?tenant_id=acme&q=alice@example',
        headers: { authorization: t.admin },
      })
    ).json().events;
    assert.deepEqual(
      q.map((e: { action: string }) => e.action),
      ['invoice.viewed'],
    );
    const placed = await t.parts.ctx.store.query(
      { tenantIds: ['acme'], action: { value: 'log.legal_hold.', prefix: true } },
      { order: 'asc', limit: 5 },
    );
    assert.deepEqual(
      placed.map((e) => e.metadata?.['reason']),
      ['invoice dispute'],
    );
  });

  test('lifting a hold twice answers 409 the second time, and each lift is logged once', async () => {
    const hold = (
      await t.app.inject({
        method: 'POST',
        url: '/v1/legal-holds',
        headers: { authorization: t.admin },
        payload: { tenant_id: 'initech', reason: 'audit' },
      })
    ).json();
    const lift = () =>
      t.app.inject({
        method: 'POST',
        url: `/v1/legal-holds/${hold.id}/lift`,
        headers: { authorization: t.admin },
        payload: { reason: 'case closed' },
      });
    const first = await lift();
    assert.equal(first.statusCode, 200);
    assert.equal(first.json().active, false);
    const second = await lift();
    assert.equal(second.statusCode, 409);
    assert.equal(second.json().code, 'TW_ERR_HOLD_LIFTED');
    const logged = await t.parts.ctx.store.query(
      { tenantIds: ['initech'], action: { value: 'log.legal_hold.lifted', prefix: false } },
      { order: 'asc', limit: 5 },
    );
    assert.equal(logged.length, 1);
    assert.equal(logged[0]?.metadata?.['reason'], 'case closed');
  });
});
