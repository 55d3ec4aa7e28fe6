import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  cidrProblem,
  isForbiddenAddress,
  networkGuard,
} from '../../../../src/delivery/sinks/net/network-guard.js';
import { createWebhookSink, newSecret, startReceiver, testBatch } from '../../../helpers/webhook-receiver.js';

const FORBIDDEN = [
  '0.0.0.0',
  '0.1.2.3',
  '10.0.0.1',
  '10.255.255.255',
  '100.64.0.1',
  '100.127.255.254',
  '127.0.0.1',
  '127.45.6.7',
  '169.254.169.254',
  '172.16.0.1',
  '172.20.10.5',
  '172.31.255.255',
  '192.0.0.8',
  '192.168.1.1',
  '198.18.0.1',
  '224.0.0.251',
  '239.255.255.250',
  '240.0.0.1',
  '255.255.255.255',
  '::',
  '::1',
  '0:0:0:0:0:0:0:1',
  'fc00::1',
  'fd12:3456:789a::1',
  'fe80::1',
  'fe80::1%eth0',
  'febf::1',
  'fec0::1',
  'ff02::1',
  '::ffff:127.0.0.1',
  '::ffff:7f00:1',
  '::ffff:10.1.2.3',
  '::ffff:169.254.169.254',
  '::127.0.0.1',
  '64:ff9b::10.0.0.1',
  '64:ff9b:1::1',
  '2002:c0a8:0101::1',
  '100::1',
  'not-an-ip',
  '',
];

const ALLOWED = [
  '1.1.1.1',
  '8.8.8.8',
  '9.255.255.255',
  '11.0.0.1',
  '100.63.255.255',
  '100.128.0.1',
  '126.255.255.255',
  '128.0.0.1',
  '169.253.255.255',
  '172.15.255.255',
  '172.32.0.1',
  '192.167.255.255',
  '192.169.0.1',
  '203.0.113.9',
  '223.255.255.255',
  '2001:4860:4860::8888',
  '2606:4700:4700::1111',
  '2a00:1450:4001::200e',
  'fbff::1',
  'fe7f::1',
  '::ffff:8.8.8.8',
  '64:ff9b::8.8.8.8',
  '2002:0808:0808::1',
];

test('private, loopback, link-local, unique-local, CGNAT, multicast and unspecified addresses are forbidden', () => {
  for (const ip of FORBIDDEN) assert.equal(isForbiddenAddress(ip), true, ip);
});

test('public addresses are allowed, including IPv6 forms embedding a public IPv4 address', () => {
  for (const ip of ALLOWED) assert.equal(isForbiddenAddress(ip), false, ip);
});

test('a target on 127.0.0.1 is refused before any byte is sent unless private networks are allowed', async () => {
  const secret = newSecret();
  const receiver = await startReceiver({ secret });
  const refused = await createWebhookSink({ url: receiver.url, secret });
  const allowed = await createWebhookSink({ url: receiver.url, secret, allow_private_networks: true });
  try {
    const reason =
      'target address 127.0.0.1 is in a private range; set allow_private_networks: true to allow';
    assert.deepEqual(await refused.deliver(testBatch(), new AbortController().signal), {
      kind: 'permanent',
      reason,
    });
    assert.deepEqual(await refused.healthcheck(), { ok: false, detail: reason });
    assert.equal(receiver.connections(), 0);
    assert.equal(receiver.requests.length, 0);

    assert.equal((await allowed.deliver(testBatch(), new AbortController().signal)).kind, 'ok');
    assert.equal(receiver.requests.length, 1);
    assert.ok(receiver.requests[0]?.verified);
  } finally {
    await refused.close();
    await allowed.close();
    await receiver.close();
  }
});

test('a hostname is checked on the address it resolves to, not on its name', async () => {
  const receiver = await startReceiver();
  const sink = await createWebhookSink({ url: `http://localhost:${receiver.port}/hook` });
  try {
    const outcome = await sink.deliver(testBatch(), new AbortController().signal);
    assert.equal(outcome.kind, 'permanent');
    assert.match(
      (outcome as { reason: string }).reason,
      /^target address (127\.0\.0\.1|::1) is in a private range; set allow_private_networks: true to allow$/,
    );
    assert.equal(receiver.connections(), 0);
  } finally {
    await sink.close();
    await receiver.close();
  }
});

test('an IPv6 literal target in a private range is refused', async () => {
  const sink = await createWebhookSink({ url: 'http://[::ffff:127.0.0.1]:9/hook' });
  try {
    const outcome = await sink.deliver(testBatch(), new AbortController().signal);
    assert.equal(outcome.kind, 'permanent');
    assert.match((outcome as { reason: string }).reason, /private range/);
  } finally {
    await sink.close();
  }
});

test('allowed_private_networks lets exactly the listed networks through, IPv4-mapped IPv6 included', () => {
  const guard = networkGuard({ allowPrivate: false, allowed: ['127.0.0.1/32', 'fd00:1::/32'] });
  assert.equal(guard.forbidden('127.0.0.1'), false);
  assert.equal(guard.forbidden('::ffff:127.0.0.1'), false);
  assert.equal(guard.forbidden('127.0.0.2'), true);
  assert.equal(guard.forbidden('10.0.0.1'), true);
  assert.equal(guard.forbidden('169.254.169.254'), true);
  assert.equal(guard.forbidden('fd00:1::5'), false);
  assert.equal(guard.forbidden('fd00:2::5'), true);
  assert.equal(guard.forbidden('203.0.113.7'), false);
  assert.throws(() => guard.checkLiteral('[::1]'), /private range/);
  assert.equal(cidrProblem('10.0.0.0/8'), null);
  assert.match(cidrProblem('10.0.0.0') ?? '', /expected a network/);
  assert.match(cidrProblem('10.0.0.0/33') ?? '', /too long/);
  assert.match(cidrProblem('example.com/8') ?? '', /expected a network/);
});

test("a tenant-bound admin's sink is guarded even when its stored settings say allow_private_networks: true", async () => {
  const receiver = await startReceiver();
  const sink = await createWebhookSink(
    { url: receiver.url, allow_private_networks: true },
    { owner: { source: 'api', tenantId: 'acme' } },
  );
  try {
    const outcome = await sink.deliver(testBatch(), new AbortController().signal);
    assert.equal(outcome.kind, 'permanent');
    assert.match(
      (outcome as { reason: string }).reason,
      /tenant-bound admin's sink reaches public addresses only/,
    );
    assert.equal(receiver.connections(), 0);
  } finally {
    await sink.close();
    await receiver.close();
  }
});
