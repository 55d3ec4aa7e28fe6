import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { TrailwardenError } from '../../../../src/errors.js';
import { makeTestPki, type TestPki } from '../../../helpers/test-pki.js';
import {
  createWebhookSink,
  newSecret,
  type Receiver,
  startReceiver,
  testBatch,
} from '../../../helpers/webhook-receiver.js';

/** A throwaway CA, a server certificate for IP 127.0.0.1 and a client certificate, both signed by the CA. */
let pki: TestPki;
const file = (name: string) => join(pki.dir, name);
const read = (name: string) => readFileSync(file(name), 'utf8');

before(() => {
  pki = makeTestPki();
});

after(() => pki.remove());

async function mtlsReceiver(secret: string): Promise<Receiver> {
  return startReceiver({
    secret,
    tls: { key: read('server.key'), cert: read('server.pem'), ca: read('ca.pem'), requestCert: true },
  });
}

test('mutual TLS: with the custom CA and a client certificate the batch is delivered and verified', async () => {
  const secret = newSecret();
  const receiver = await mtlsReceiver(secret);
  const sink = await createWebhookSink({
    url: receiver.url,
    secret,
    allow_private_networks: true,
    tls: { ca_file: file('ca.pem'), cert_file: file('client.pem'), key_file: file('client.key') },
  });
  try {
    assert.deepEqual(await sink.deliver(testBatch(2), new AbortController().signal), { kind: 'ok' });
    assert.ok(receiver.requests[0]?.verified, receiver.requests[0]?.verifyError);
    assert.equal((await sink.healthcheck()).ok, true);
  } finally {
    await sink.close();
    await receiver.close();
  }
});

test('mutual TLS: without a client certificate the receiver refuses and the outcome is a retry', async () => {
  const secret = newSecret();
  const receiver = await mtlsReceiver(secret);
  const sink = await createWebhookSink({
    url: receiver.url,
    secret,
    allow_private_networks: true,
    tls: { ca_file: file('ca.pem') },
  });
  try {
    const outcome = await sink.deliver(testBatch(), new AbortController().signal);
    assert.equal(outcome.kind, 'retry', JSON.stringify(outcome));
    assert.match((outcome as { reason: string }).reason, /^cannot deliver to 127\.0\.0\.1:\d+: /);
    assert.equal(receiver.requests.length, 0);
  } finally {
    await sink.close();
    await receiver.close();
  }
});

test('a server certificate from an unknown CA is refused unless its CA is configured', async () => {
  const receiver = await startReceiver({ tls: { key: read('server.key'), cert: read('server.pem') } });
  const untrusted = await createWebhookSink({ url: receiver.url, allow_private_networks: true });
  const trusted = await createWebhookSink({
    url: receiver.url,
    allow_private_networks: true,
    tls: { ca_file: file('ca.pem') },
  });
  try {
    const outcome = await untrusted.deliver(testBatch(), new AbortController().signal);
    assert.equal(outcome.kind, 'retry');
    assert.match((outcome as { reason: string }).reason, /certificate/i);
    assert.equal((await untrusted.healthcheck()).ok, false);
    assert.equal((await trusted.deliver(testBatch(), new AbortController().signal)).kind, 'ok');
    assert.equal(receiver.requests.length, 1);
  } finally {
    await untrusted.close();
    await trusted.close();
    await receiver.close();
  }
});

test('unreadable TLS files and TLS options on an http URL are configuration errors at create', async () => {
  await assert.rejects(
    createWebhookSink({ url: 'https://127.0.0.1:1/hook', tls: { ca_file: file('missing.pem') } }),
    (err: unknown) =>
      err instanceof TrailwardenError &&
      err.code === 'TW_ERR_CONFIG' &&
      /tls\.ca_file .*missing\.pem/.test(err.message),
  );
  await assert.rejects(
    createWebhookSink({ url: 'http://127.0.0.1:1/hook', tls: { ca_file: file('ca.pem') } }),
    /tls options need an https:\/\/ url/,
  );
});

test("a tenant-bound admin's sink gives its CA, certificate and key inline; a *_file is refused even if stored", async () => {
  const secret = newSecret();
  const receiver = await mtlsReceiver(secret);
  const tenant = {
    owner: { source: 'api' as const, tenantId: 'acme' },
    allowedPrivateNetworks: ['127.0.0.1/32'],
  };
  const sink = await createWebhookSink(
    {
      url: receiver.url,
      secret,
      tls: { ca: read('ca.pem'), cert: read('client.pem'), key: read('client.key') },
    },
    tenant,
  );
  try {
    assert.deepEqual(await sink.deliver(testBatch(2), new AbortController().signal), { kind: 'ok' });
    assert.ok(receiver.requests[0]?.verified, receiver.requests[0]?.verifyError);
  } finally {
    await sink.close();
    await receiver.close();
  }
  await assert.rejects(
    createWebhookSink({ url: 'https://127.0.0.1:1/hook', tls: { ca_file: file('ca.pem') } }, tenant),
    (err: unknown) => err instanceof TrailwardenError && err.code === 'TW_ERR_FORBIDDEN',
  );
});
