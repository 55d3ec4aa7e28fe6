/**
 * The attacks of a tenant-bound admin on the sink API (issue 14): reaching
 * the host (file and stdout sinks, files named by TLS options), the server's
 * environment (`${ENV}` references), private networks (webhook, syslog), and
 * other tenants (sink names). Each attack is made as an attacker would make
 * it, with real receivers listening to prove nothing reaches them.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, afterEach, describe, test } from 'node:test';
import { rawEvent, type TestApp, testApp } from '../helpers/app.js';
import { until } from '../helpers/until.js';
import { newSecret, type Receiver, startReceiver } from '../helpers/webhook-receiver.js';

/** `${NAME}`, written so no linter takes it for a template slip. */
const ref = (name: string) => '$' + `{${name}}`;

const open: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (open.length > 0) await open.pop()!();
});

async function app(settings: Record<string, unknown> = {}): Promise<TestApp> {
  const t = await testApp({ audit_reads: false, ...settings });
  open.push(() => t.close());
  return t;
}

async function receiver(secret?: string): Promise<Receiver> {
  const r = await startReceiver(secret === undefined ? {} : { secret });
  open.push(() => r.close());
  return r;
}

/** A TCP listener that counts connections: a syslog collector nothing may reach. */
async function tcpListener(): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const server: Server = createServer((socket) => {
    connections += 1;
    socket.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  open.push(() => new Promise((r) => server.close(() => r())));
  const { port } = server.address() as { port: number };
  return { port, connections: () => connections };
}

function call(
  t: TestApp,
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  url: string,
  auth: string,
  payload?: unknown,
) {
  return t.app.inject({
    method,
    url,
    headers: { authorization: auth },
    ...(payload === undefined ? {} : { payload: payload as object }),
  });
}

describe('a tenant-bound admin cannot reach the host', () => {
  test('file and stdout sinks are refused (the WAL-erasing sink of the issue), with the reason', async () => {
    const t = await app();
    const acme = await t.key('admin', 'acme');
    const attack = {
      name: 'erase',
      type: 'file',
      path: 'trailwarden.db-wal',
      compress: true,
      total_size_cap_bytes: 1,
      rotate: { daily: true, max_bytes: 4096 },
    };
    const res = await call(t, 'POST', '/v1/sinks', acme, attack);
    assert.equal(res.statusCode, 403, res.body);
    assert.equal(res.json().code, 'TW_ERR_FORBIDDEN');
    assert.match(res.json().detail, /file sink writes on the server's host/);
    const stdout = await call(t, 'POST', '/v1/sinks', acme, { name: 'out', type: 'stdout' });
    assert.equal(stdout.statusCode, 403, stdout.body);
    assert.deepEqual((await call(t, 'GET', '/v1/sinks', acme)).json().sinks, []);
  });

  test('TLS files, allow_private_networks, on create and on PATCH, are refused; an inline CA is accepted', async () => {
    const t = await app();
    const acme = await t.key('admin', 'acme');
    const base = { name: 'hook', type: 'webhook', url: 'https://siem.example.com/hook' };
    for (const extra of [
      { tls: { ca_file: '/etc/shadow' } },
      { tls: { cert_file: '/srv/trailwarden/data/signing-key.pem', key_file: '/srv/key.pem' } },
      { allow_private_networks: true },
    ]) {
      const res = await call(t, 'POST', '/v1/sinks', acme, { ...base, ...extra });
      assert.equal(res.statusCode, 403, `${JSON.stringify(extra)}: ${res.body}`);
      assert.match(res.json().detail, /only the operator \(config file\) and all-tenant admins/);
    }
    const syslog = await call(t, 'POST', '/v1/sinks', acme, {
      name: 'sys',
      type: 'syslog',
      host: 'collector.example.com',
      protocol: 'tls',
      tls: { ca_file: '/etc/ssl/private/ca.pem' },
    });
    assert.equal(syslog.statusCode, 403, syslog.body);

    const created = await call(t, 'POST', '/v1/sinks', acme, base);
    assert.equal(created.statusCode, 201, created.body);
    const patched = await call(t, 'PATCH', '/v1/sinks/hook', acme, { allow_private_networks: true });
    assert.equal(patched.statusCode, 403, patched.body);
    const patchedFile = await call(t, 'PATCH', '/v1/sinks/hook', acme, { tls: { ca_file: '/etc/passwd' } });
    assert.equal(patchedFile.statusCode, 403, patchedFile.body);
    const badPem = await call(t, 'PATCH', '/v1/sinks/hook', acme, { tls: { ca: 'not a certificate' } });
    assert.equal(badPem.statusCode, 422, badPem.body);
    assert.match(badPem.json().detail, /tls\.ca: expected PEM certificates/);
  });

  test('a stored tenant sink with host options (kept from before these rules) does not start and writes nothing', async () => {
    const t = await app({ cluster: { lease_ms: 1000 } });
    const acme = await t.key('admin', 'acme');
    await storeRecords(t, [
      { name: 'old-file', type: 'file', path: 'trailwarden.db-wal', total_size_cap_bytes: 1 },
      { name: 'control', type: 'webhook', url: 'https://siem.example.com/h', enabled: false },
    ]);
    await until(
      async () => (await call(t, 'GET', '/v1/sinks/control', acme)).statusCode === 200,
      'the stored sinks to be read',
    );
    assert.equal((await call(t, 'GET', '/v1/sinks/old-file', acme)).statusCode, 404);
  });
});

/** Writes tenant acme's sink records straight into the store, as an earlier version would have kept them. */
async function storeRecords(t: TestApp, sinks: Array<Record<string, unknown>>): Promise<void> {
  const now = new Date().toISOString();
  for (const sink of sinks) {
    await t.parts.ctx.store.delivery.putSinkConfig({
      name: `acme/${String(sink['name'])}`,
      config: JSON.stringify({ ...sink, filter: { tenants: ['acme'] } }),
      tenantId: 'acme',
      createdAt: now,
      updatedAt: now,
    });
  }
}

describe("a tenant-bound admin cannot read the server's environment", () => {
  test('environment references are refused through the API (422), for every admin, and nothing is sent', async () => {
    const secret = newSecret();
    const r = await receiver(secret);
    const t = await app({ allowed_private_networks: ['127.0.0.1/32'] });
    const acme = await t.key('admin', 'acme');
    process.env['TW_TEST_LEAK'] = 'do-not-leak-this';
    try {
      for (const [auth, sink] of [
        [
          acme,
          {
            name: 'leak',
            type: 'webhook',
            url: `${r.url}/leak`,
            secret,
            headers: { 'x-token': ref('TRAILWARDEN_ADMIN_KEY') },
            start_from: 'beginning',
          },
        ],
        [acme, { name: 'leak2', type: 'syslog', host: 'siem.example.com', hostname: ref('TW_TEST_LEAK') }],
        [
          t.admin,
          { name: 'leak3', type: 'webhook', url: `${r.url}/x`, headers: { a: `x ${ref('TW_TEST_LEAK')}` } },
        ],
      ] as const) {
        const res = await call(t, 'POST', '/v1/sinks', auth, sink);
        assert.equal(res.statusCode, 422, res.body);
        assert.equal(res.json().code, 'TW_ERR_INVALID_SINK');
        assert.match(res.json().detail, /environment references .* are resolved only in the config file/);
      }
      const ok = await call(t, 'POST', '/v1/sinks', acme, {
        name: 'plain',
        type: 'webhook',
        url: `${r.url}/plain`,
        secret,
        start_from: 'beginning',
        batch: { max_wait_ms: 0 },
      });
      assert.equal(ok.statusCode, 201, ok.body);
      const patched = await call(t, 'PATCH', '/v1/sinks/plain', acme, {
        headers: { 'x-token': ref('TW_TEST_LEAK') },
      });
      assert.equal(patched.statusCode, 422, patched.body);
      await call(t, 'POST', '/v1/events', t.admin, rawEvent({ tenant_id: 'acme' }));
      await r.waitForRequests(1);
      const seen = JSON.stringify(r.requests.map((q) => [q.headers, q.body]));
      assert.ok(!seen.includes('do-not-leak-this') && !seen.includes('tw_'), seen);
    } finally {
      delete process.env['TW_TEST_LEAK'];
    }
  });

  test('a stored sink holding a reference (created before the rule) is never resolved: it does not start', async () => {
    const r = await receiver();
    const t = await app({ allowed_private_networks: ['127.0.0.1/32'], cluster: { lease_ms: 1000 } });
    const acme = await t.key('admin', 'acme');
    await storeRecords(t, [
      {
        name: 'old',
        type: 'webhook',
        url: `${r.url}/old`,
        headers: { 'x-token': ref('TRAILWARDEN_ADMIN_KEY') },
        start_from: 'beginning',
      },
      { name: 'control', type: 'webhook', url: 'https://siem.example.com/h', enabled: false },
    ]);
    await until(
      async () => (await call(t, 'GET', '/v1/sinks/control', acme)).statusCode === 200,
      'the stored sinks to be read',
    );
    assert.equal((await call(t, 'GET', '/v1/sinks/old', acme)).statusCode, 404);
    await call(t, 'POST', '/v1/events', t.admin, rawEvent({ tenant_id: 'acme' }));
    assert.equal(r.requests.length, 0);
  });
});

describe('a tenant-bound admin reaches public addresses only', () => {
  test('a webhook to a private address gets nothing; the sink is failing with the reason at once', async () => {
    const r = await receiver();
    const t = await app();
    const acme = await t.key('admin', 'acme');
    const created = await call(t, 'POST', '/v1/sinks', acme, {
      name: 'internal',
      type: 'webhook',
      url: `${r.url}/internal`,
      start_from: 'beginning',
      batch: { max_wait_ms: 0 },
    });
    assert.equal(created.statusCode, 201, created.body);
    await call(t, 'POST', '/v1/events', t.admin, [
      rawEvent({ tenant_id: 'acme' }),
      rawEvent({ tenant_id: 'acme' }),
    ]);
    await until(
      async () => (await call(t, 'GET', '/v1/sinks/internal/status', acme)).json().lag_events === 0,
      'the sink to pass both events',
    );
    const status = (await call(t, 'GET', '/v1/sinks/internal/status', acme)).json();
    assert.equal(status.state, 'failing', JSON.stringify(status));
    // Both events, and the sink.created record of its tenant.
    assert.ok(status.dead_letters >= 2, JSON.stringify(status));
    assert.match(status.last_error.reason, /target address 127\.0\.0\.1 is in a private range/);
    assert.equal(r.requests.length, 0);
  });

  test('a syslog sink to a private address opens no connection, whatever allow_private_networks says', async () => {
    const collector = await tcpListener();
    const t = await app();
    const acme = await t.key('admin', 'acme');
    const created = await call(t, 'POST', '/v1/sinks', acme, {
      name: 'sys',
      type: 'syslog',
      host: '127.0.0.1',
      port: collector.port,
      protocol: 'tcp',
      start_from: 'beginning',
    });
    assert.equal(created.statusCode, 201, created.body);
    await call(t, 'POST', '/v1/events', t.admin, rawEvent({ tenant_id: 'acme' }));
    await until(async () => {
      const st = (await call(t, 'GET', '/v1/sinks/sys/status', acme)).json();
      return st.lag_events === 0 && st.dead_letters >= 1;
    }, 'the events to be parked');
    const status = (await call(t, 'GET', '/v1/sinks/sys/status', acme)).json();
    assert.equal(status.state, 'failing');
    assert.match(status.last_error.reason, /private range/);
    assert.equal(collector.connections(), 0);
  });

  test("the operator's allowed_private_networks lets tenant sinks reach a listed network, with only their tenant's events", async () => {
    const secret = newSecret();
    const r = await receiver(secret);
    const t = await app({ allowed_private_networks: ['127.0.0.1/32'] });
    const acme = await t.key('admin', 'acme');
    const created = await call(t, 'POST', '/v1/sinks', acme, {
      name: 'siem',
      type: 'webhook',
      url: `${r.url}/siem`,
      secret,
      start_from: 'beginning',
      batch: { max_wait_ms: 0 },
    });
    assert.equal(created.statusCode, 201, created.body);
    await call(t, 'POST', '/v1/events', t.admin, [
      rawEvent({ tenant_id: 'acme', event_id: 'evt_acme' }),
      rawEvent({ tenant_id: 'globex', event_id: 'evt_globex' }),
    ]);
    await r.waitForRequests(1);
    await until(
      async () => (await call(t, 'GET', '/v1/sinks/siem/status', acme)).json().lag_events === 0,
      'the sink to catch up',
    );
    const events = r.requests.flatMap((q) => q.parsed as Array<{ event_id: string; tenant_id: string }>);
    assert.ok(events.some((e) => e.event_id === 'evt_acme'));
    assert.ok(
      events.every((e) => e.tenant_id === 'acme'),
      JSON.stringify(events),
    );
    assert.ok(r.requests.every((q) => q.verified));
  });
});

describe('sink names are scoped per tenant', () => {
  let t: TestApp;
  after(() => t?.close());

  test("two tenants may use one name; neither sees, nor learns of, the other's", async () => {
    t = await testApp({ audit_reads: false, sinks: [{ name: 'siem', type: 'stdout', enabled: false }] });
    const acme = await t.key('admin', 'acme');
    const globex = await t.key('admin', 'globex');
    const sink = (url: string) => ({ name: 'siem', type: 'webhook', url, enabled: false });
    const a = await call(t, 'POST', '/v1/sinks', acme, sink('https://acme.example.com/h'));
    assert.equal(a.statusCode, 201, a.body);
    const g = await call(t, 'POST', '/v1/sinks', globex, sink('https://globex.example.com/h'));
    assert.equal(g.statusCode, 201, g.body);
    const again = await call(t, 'POST', '/v1/sinks', acme, sink('https://acme.example.com/2'));
    assert.equal(again.statusCode, 409, again.body);

    assert.equal((await call(t, 'GET', '/v1/sinks/siem', acme)).json().url, 'https://acme.example.com/h');
    assert.equal((await call(t, 'GET', '/v1/sinks/siem', globex)).json().url, 'https://globex.example.com/h');
    assert.equal((await call(t, 'GET', '/v1/sinks/siem', t.admin)).json().type, 'stdout');
    const viaAdmin = await call(t, 'GET', '/v1/sinks/siem?tenant_id=globex', t.admin);
    assert.equal(viaAdmin.json().url, 'https://globex.example.com/h');
    assert.deepEqual(
      (await call(t, 'GET', '/v1/sinks', t.admin))
        .json()
        .sinks.map((s: { tenant_id: string | null }) => s.tenant_id),
      [null, 'acme', 'globex'],
    );

    // Deleting one tenant's sink leaves the other's.
    assert.equal((await call(t, 'DELETE', '/v1/sinks/siem', acme)).statusCode, 204);
    assert.equal((await call(t, 'GET', '/v1/sinks/siem', acme)).statusCode, 404);
    assert.equal((await call(t, 'GET', '/v1/sinks/siem', globex)).statusCode, 200);

    const foreign = await call(t, 'GET', '/v1/sinks/siem?tenant_id=globex', acme);
    assert.equal(foreign.statusCode, 403);
    const denied = await t.parts.ctx.store.query(
      { tenantIds: null, action: { value: 'audit.access.denied', prefix: false } },
      { order: 'asc', limit: 10 },
    );
    assert.equal(denied.length, 1);
    assert.equal(denied[0]!.metadata?.['requested_tenant'], 'globex');
  });
});
