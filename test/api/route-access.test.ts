import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Fastify from 'fastify';
import { limitBodies } from '../../src/api/body-budget.js';
import { RouteGate } from '../../src/api/route-access.js';
import type { Role } from '../../src/store/store.js';
import { type TestApp, testApp } from '../helpers/app.js';

type Access = 'write' | 'read' | 'admin' | 'public';
type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * Every route and what it asks of its caller. A request a role may make is
 * sent so that it ends in a refusal of its own (a bad parameter, an unknown
 * name) or a read: the table probes access, it changes nothing.
 */
const ROUTES: Array<{ method: Method; path: string; access: Access; probe?: string }> = [
  { method: 'POST', path: '/v1/events', access: 'write' },
  { method: 'GET', path: '/v1/events', access: 'read' },
  { method: 'GET', path: '/v1/events/{event_id}', access: 'read', probe: '/v1/events/evt_none' },
  { method: 'GET', path: '/v1/events/{event_id}/proof', access: 'read', probe: '/v1/events/evt_none/proof' },
  { method: 'GET', path: '/v1/export', access: 'read', probe: '/v1/export?format=x' },
  { method: 'GET', path: '/v1/stream', access: 'read', probe: '/v1/stream?after=x' },
  { method: 'GET', path: '/v1/checkpoints', access: 'read' },
  { method: 'GET', path: '/v1/checkpoints/latest', access: 'read' },
  { method: 'GET', path: '/v1/checkpoints/consistency', access: 'read' },
  { method: 'GET', path: '/v1/checkpoints/key', access: 'read' },
  { method: 'GET', path: '/v1/keys', access: 'admin' },
  { method: 'POST', path: '/v1/keys', access: 'admin' },
  { method: 'DELETE', path: '/v1/keys/{key_id}', access: 'admin', probe: '/v1/keys/nokey' },
  { method: 'GET', path: '/v1/sinks', access: 'admin' },
  { method: 'POST', path: '/v1/sinks', access: 'admin' },
  { method: 'GET', path: '/v1/sinks/{name}', access: 'admin', probe: '/v1/sinks/nosink' },
  { method: 'PATCH', path: '/v1/sinks/{name}', access: 'admin', probe: '/v1/sinks/nosink' },
  { method: 'DELETE', path: '/v1/sinks/{name}', access: 'admin', probe: '/v1/sinks/nosink' },
  { method: 'GET', path: '/v1/sinks/{name}/status', access: 'admin', probe: '/v1/sinks/nosink/status' },
  { method: 'POST', path: '/v1/sinks/{name}/replay', access: 'admin', probe: '/v1/sinks/nosink/replay' },
  { method: 'POST', path: '/v1/sinks/{name}/pause', access: 'admin', probe: '/v1/sinks/nosink/pause' },
  { method: 'POST', path: '/v1/sinks/{name}/resume', access: 'admin', probe: '/v1/sinks/nosink/resume' },
  {
    method: 'GET',
    path: '/v1/sinks/{name}/dead-letters',
    access: 'admin',
    probe: '/v1/sinks/nosink/dead-letters',
  },
  {
    method: 'GET',
    path: '/v1/sinks/{name}/dead-letters/{id}',
    access: 'admin',
    probe: '/v1/sinks/nosink/dead-letters/1',
  },
  {
    method: 'POST',
    path: '/v1/sinks/{name}/dead-letters/redrive',
    access: 'admin',
    probe: '/v1/sinks/nosink/dead-letters/redrive',
  },
  { method: 'GET', path: '/v1/retention', access: 'read' },
  { method: 'GET', path: '/v1/retention/runs/{id}', access: 'read', probe: '/v1/retention/runs/prn_none' },
  {
    method: 'PUT',
    path: '/v1/retention/tenants/{tenant}',
    access: 'admin',
    probe: '/v1/retention/tenants/acme',
  },
  {
    method: 'DELETE',
    path: '/v1/retention/tenants/{tenant}',
    access: 'admin',
    probe: '/v1/retention/tenants/none',
  },
  { method: 'POST', path: '/v1/retention/runs', access: 'admin', probe: '/v1/retention/runs?probe=1' },
  { method: 'GET', path: '/v1/legal-holds', access: 'read' },
  { method: 'GET', path: '/v1/legal-holds/{id}', access: 'read', probe: '/v1/legal-holds/hold_none' },
  { method: 'POST', path: '/v1/legal-holds', access: 'admin' },
  {
    method: 'POST',
    path: '/v1/legal-holds/{id}/lift',
    access: 'admin',
    probe: '/v1/legal-holds/hold_none/lift',
  },
  { method: 'GET', path: '/v1/erasures', access: 'read' },
  { method: 'GET', path: '/v1/erasures/{id}', access: 'read', probe: '/v1/erasures/era_none' },
  {
    method: 'GET',
    path: '/v1/erasures/{id}/events',
    access: 'read',
    probe: '/v1/erasures/era_none/events',
  },
  { method: 'POST', path: '/v1/erasures', access: 'admin' },
  { method: 'GET', path: '/v1/actions', access: 'public' },
  { method: 'GET', path: '/healthz', access: 'public' },
  { method: 'GET', path: '/readyz', access: 'public' },
  { method: 'GET', path: '/openapi.json', access: 'public' },
];

const GRANTS: Record<Role, Access[]> = {
  publisher: ['write'],
  auditor: ['read'],
  admin: ['write', 'read', 'admin'],
};

describe('every route asks its role of the caller', () => {
  let t: TestApp;
  const keys = {} as Record<Role, string>;
  before(async () => {
    t = await testApp({ audit_reads: false });
    keys.admin = t.admin;
    keys.publisher = await t.key('publisher');
    keys.auditor = await t.key('auditor');
  });
  after(() => t.close());

  const call = (r: (typeof ROUTES)[number], authorization?: string) =>
    t.app.inject({
      method: r.method,
      url: r.probe ?? r.path,
      headers: authorization === undefined ? {} : { authorization },
    });

  test('the table names every route the server has (the OpenAPI document and the document itself)', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json() as {
      paths: Record<string, Record<string, unknown>>;
    };
    const served = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`),
    );
    served.push('GET /openapi.json');
    assert.deepEqual(served.sort(), ROUTES.map((r) => `${r.method} ${r.path}`).sort());
  });

  for (const r of ROUTES) {
    if (r.access === 'public') {
      test(`${r.method} ${r.path} answers without a key`, async () => {
        const res = await call(r);
        assert.equal(res.statusCode, 200, res.body);
      });
      continue;
    }
    test(`${r.method} ${r.path} asks for a key allowed to ${r.access}`, async () => {
      const keyless = await call(r);
      assert.equal(keyless.statusCode, 401, keyless.body);
      assert.equal(keyless.json().code, 'TW_ERR_UNAUTHENTICATED');
      for (const role of Object.keys(GRANTS) as Role[]) {
        const res = await call(r, keys[role]);
        if (GRANTS[role].includes(r.access)) {
          assert.ok(![401, 403].includes(res.statusCode), `${role}: ${res.statusCode} ${res.body}`);
        } else {
          assert.equal(res.statusCode, 403, `${role}: ${res.body}`);
          assert.equal(
            res.json().detail,
            `this key has the role ${role}, which cannot ${r.access}; use a key with the ${
              r.access === 'write' ? 'publisher or admin' : r.access === 'read' ? 'auditor or admin' : 'admin'
            } role`,
          );
        }
      }
    });
  }
});

describe('RouteGate', () => {
  let t: TestApp;
  before(async () => {
    t = await testApp({ audit_reads: false });
  });
  after(() => t.close());

  const gated = () => {
    const app = Fastify();
    const gate = new RouteGate(
      t.parts.ctx.store,
      limitBodies({ max_body_bytes: 1024, max_inflight_body_bytes: 4096 }),
    );
    gate.install(app);
    return { app, gate };
  };

  test('a route registered outside any group stops the app from starting, naming the route', async () => {
    const { app, gate } = gated();
    await app.register(
      gate.group('read', async (scope) => {
        scope.get('/grouped', async () => 'ok');
      }),
      { ctx: t.parts.ctx },
    );
    app.get('/loose', async () => 'reachable without a key');
    await assert.rejects(async () => {
      await app.ready();
    }, /outside a RouteGate group \(no access declared\): GET \/loose/);
  });

  test("a route that declares another access than its group's is refused when registered", async () => {
    const { app, gate } = gated();
    await assert.rejects(async () => {
      await app.register(
        gate.group('read', async (scope) => {
          scope.get('/admin-only', { config: { access: 'admin' } }, async () => 'ok');
        }),
        { ctx: t.parts.ctx },
      );
    }, /GET \/admin-only declares access admin in a read group/);
  });

  test("a group's routes carry its access, and reading the caller on a public route is an error, not a caller", async () => {
    const { app, gate } = gated();
    await app.register(
      gate.group('public', async (scope) => {
        scope.get('/whoami', async (req) => ({
          access: req.routeOptions.config.access,
          key: req.principal.keyId,
        }));
      }),
      { ctx: t.parts.ctx },
    );
    await app.register(
      gate.group('admin', async (scope) => {
        scope.get('/mine', async (req) => ({
          access: req.routeOptions.config.access,
          role: req.principal.role,
        }));
      }),
      { ctx: t.parts.ctx },
    );
    try {
      const res = await app.inject({ method: 'GET', url: '/whoami' });
      assert.equal(res.statusCode, 500);
      assert.match(res.json().message, /GET \/whoami asks for a caller but is public/);
      const mine = await app.inject({ method: 'GET', url: '/mine', headers: { authorization: t.admin } });
      assert.deepEqual(mine.json(), { access: 'admin', role: 'admin' });
    } finally {
      await app.close();
    }
  });
});
