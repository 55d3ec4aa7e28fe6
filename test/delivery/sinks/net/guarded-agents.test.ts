import assert from 'node:assert/strict';
import { type Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { guardedAgents } from '../../../../src/delivery/sinks/net/guarded-agents.js';
import { ForbiddenAddressError, networkGuard } from '../../../../src/delivery/sinks/net/network-guard.js';

const server = createServer((_req, res) => res.end('ok'));
let port: number;

before(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** GET / on `host` through `agent`: the body, or the error the request failed with. */
function get(agent: Agent, host: string): Promise<string | Error> {
  return new Promise((resolve) => {
    const req = request({ host, port, path: '/', agent }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c.toString('utf8');
      });
      res.on('end', () => resolve(body));
    });
    req.on('error', (err) => resolve(err));
    req.end();
  });
}

test('a guarded agent refuses an IP-literal host in a private range, and a hostname resolving to one', async () => {
  const agents = guardedAgents(networkGuard({ allowPrivate: false }), { keepAlive: false });
  try {
    for (const host of ['127.0.0.1', 'localhost']) {
      const result = await get(agents.http, host);
      assert.ok(result instanceof ForbiddenAddressError, `${host}: ${String(result)}`);
      assert.match(result.message, /127\.0\.0\.1 is in a private range/);
    }
  } finally {
    agents.destroy();
  }
});

test('an open guard (allow_private_networks) lets the same agents connect', async () => {
  const agents = guardedAgents(networkGuard({ allowPrivate: true }), { keepAlive: false });
  try {
    assert.equal(await get(agents.http, '127.0.0.1'), 'ok');
  } finally {
    agents.destroy();
  }
});

test('a private network the operator allowed is reachable through a guarded agent', async () => {
  const agents = guardedAgents(networkGuard({ allowPrivate: false, allowed: ['127.0.0.0/8'] }), {
    keepAlive: false,
  });
  try {
    assert.equal(await get(agents.http, '127.0.0.1'), 'ok');
  } finally {
    agents.destroy();
  }
});

test('after destroy() the agents open no connection: a late request (an SDK retry, a clean-up) fails at once', async () => {
  const agents = guardedAgents(networkGuard({ allowPrivate: true }), { keepAlive: true });
  let connections = 0;
  const count = () => {
    connections++;
  };
  server.on('connection', count);
  try {
    assert.equal(await get(agents.http, '127.0.0.1'), 'ok');
    agents.destroy();
    const late = await get(agents.http, '127.0.0.1');
    assert.ok(late instanceof Error);
    assert.match(late.message, /the sink is closed/);
    assert.equal(connections, 1, 'only the request before destroy() connected');
  } finally {
    server.off('connection', count);
  }
});
