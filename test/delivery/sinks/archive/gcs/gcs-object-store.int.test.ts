import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { after, before, test } from 'node:test';
import { z } from 'zod';
import type { SinkContext, SinkOwner } from '../../../../../src/delivery/sink.js';
import { createGcsObjectStore } from '../../../../../src/delivery/sinks/archive/gcs/gcs-object-store.js';
import {
  type GcsOptions,
  gcsOptionsShape,
} from '../../../../../src/delivery/sinks/archive/gcs/gcs-options.js';
import {
  type ArchiveObject,
  OBJECT_METADATA,
  ObjectStoreError,
} from '../../../../../src/delivery/sinks/archive/object-store.js';
import { type GcsFake, startGcsFake } from '../../../../helpers/gcs-fake.js';

const BUCKET = 'audit-archive';
const OPERATOR: SinkOwner = { source: 'config', tenantId: null };
const TENANT: SinkOwner = { source: 'api', tenantId: 'acme' };

let fake: GcsFake;
before(async () => {
  fake = await startGcsFake();
  fake.addBucket(BUCKET);
});
after(() => fake.close());

function context(owner: SinkOwner, logs: string[] = []): SinkContext {
  return {
    name: 'archive',
    owner,
    format: 'json',
    dataDir: '/nonexistent',
    allowedPrivateNetworks: [],
    fileRoot: null,
    now: () => Date.now(),
    log: {
      info: (msg, extra) => logs.push(`${msg} ${JSON.stringify(extra ?? {})}`),
      warn: (msg, extra) => logs.push(`${msg} ${JSON.stringify(extra ?? {})}`),
    },
  };
}

function options(extra: Record<string, unknown> = {}): GcsOptions {
  return z.object(gcsOptionsShape).parse({
    bucket: BUCKET,
    api_endpoint: fake.url,
    allow_private_networks: true,
    request_timeout_ms: 10_000,
    ...extra,
  });
}

function archiveObject(key: string, body: Buffer, gzip = true): ArchiveObject {
  const sha256 = createHash('sha256').update(body).digest('hex');
  return {
    key,
    body,
    contentType: 'application/x-ndjson',
    ...(gzip ? { contentEncoding: 'gzip' as const } : {}),
    metadata: {
      [OBJECT_METADATA.firstSeq]: '1',
      [OBJECT_METADATA.lastSeq]: '2',
      [OBJECT_METADATA.events]: '2',
      [OBJECT_METADATA.sha256]: sha256,
    },
    sha256,
  };
}

const never = () => new AbortController().signal;
let keys = 0;
const freshKey = () =>
  `trailwarden/tenant=acme/dt=2026-12-07/hour=21/${String(++keys).padStart(16, '0')}-x.jsonl.gz`;

test('a small object goes up in one multipart request, with ifGenerationMatch=0, its URL-encoded name, encoding and metadata', async () => {
  const store = await createGcsObjectStore(options(), context(OPERATOR));
  const key = freshKey();
  const obj = archiveObject(key, Buffer.from([0x1f, 0x8b, 1, 2, 3, 4]));
  const before = fake.requests.length;
  assert.deepEqual(await store.put(obj, never()), { status: 'created' });
  const sent = fake.requests.slice(before);
  assert.equal(sent.length, 1);
  const [upload] = sent;
  assert.equal(upload?.method, 'POST');
  assert.equal(upload?.path, `/upload/storage/v1/b/${BUCKET}/o`);
  assert.equal(upload?.query.get('uploadType'), 'multipart');
  assert.equal(upload?.query.get('ifGenerationMatch'), '0');
  assert.equal(upload?.query.get('name'), key);
  const stored = fake.object(BUCKET, key);
  assert.deepEqual(stored?.bytes, obj.body, 'the gzip body is stored as given, not compressed again');
  assert.equal(stored?.resource['contentEncoding'], 'gzip');
  assert.equal(stored?.resource['contentType'], 'application/x-ndjson');
  assert.deepEqual(stored?.resource['metadata'], obj.metadata);
  assert.equal(store.target, `gs://${BUCKET}`);
  await store.close();
});

test('a key with characters to escape reaches GCS as the same object name', async () => {
  const store = await createGcsObjectStore(options(), context(OPERATOR));
  const key = 'trailwarden/tenant=a b+c%d/dt=2026-12-07/0000000000000001-0000000000000002.log';
  await store.put(archiveObject(key, Buffer.from('line\n'), false), never());
  assert.ok(fake.object(BUCKET, key), 'stored under the exact key');
  assert.equal(fake.object(BUCKET, key)?.resource['contentEncoding'], undefined);
  await store.close();
});

test('an object above the threshold goes up in a resumable upload, in chunks, with ifGenerationMatch=0', async () => {
  const store = await createGcsObjectStore(
    options({ resumable_threshold_bytes: 262_144 }),
    context(OPERATOR),
  );
  const key = freshKey();
  const body = Buffer.alloc(600_000, 7);
  const before = fake.requests.length;
  assert.deepEqual(await store.put(archiveObject(key, body), never()), { status: 'created' });
  const sent = fake.requests.slice(before);
  const start = sent[0];
  assert.equal(start?.method, 'POST');
  assert.equal(start?.query.get('uploadType'), 'resumable');
  assert.equal(start?.query.get('ifGenerationMatch'), '0');
  const puts = sent.filter((r) => r.method === 'PUT');
  assert.ok(puts.length >= 2, `chunked: ${puts.length} PUTs`);
  assert.ok(puts.every((r) => /^bytes \d+-\d+\/(\d+|\*)$/.test(String(r.headers['content-range']))));
  assert.deepEqual(fake.object(BUCKET, key)?.bytes, body);
  assert.equal(fake.object(BUCKET, key)?.resource['contentEncoding'], 'gzip');
  await store.close();
});

test('a key already taken answers exists with the stored SHA-256, not a second object', async () => {
  const store = await createGcsObjectStore(options(), context(OPERATOR));
  const key = freshKey();
  const obj = archiveObject(key, Buffer.from('first\n'), false);
  await store.put(obj, never());
  const generation = fake.object(BUCKET, key)?.resource['generation'];
  const again = await store.put(obj, never());
  assert.deepEqual(again, { status: 'exists', sha256: obj.sha256 });
  const other = await store.put(archiveObject(key, Buffer.from('other\n'), false), never());
  assert.deepEqual(other, { status: 'exists', sha256: obj.sha256 }, 'the stored object, not the new one');
  assert.equal(fake.object(BUCKET, key)?.resource['generation'], generation, 'never overwritten');
  await store.close();
});

test('a 429 with Retry-After is retried by the SDK once, then succeeds (resumable)', async () => {
  const store = await createGcsObjectStore(
    options({ resumable_threshold_bytes: 262_144 }),
    context(OPERATOR),
  );
  const key = freshKey();
  fake.failNext(1, 429, 0);
  const before = fake.requests.length;
  assert.deepEqual(await store.put(archiveObject(key, Buffer.alloc(300_000, 1)), never()), {
    status: 'created',
  });
  const statuses = fake.requests.slice(before).map((r) => r.status);
  assert.equal(statuses[0], 429);
  assert.ok(fake.object(BUCKET, key));
  await store.close();
});

test('throttling that outlasts the SDK retry fails as throttled with the Retry-After hint; 503 too', async () => {
  const store = await createGcsObjectStore(options(), context(OPERATOR));
  for (const status of [429, 503]) {
    fake.failNext(5, status, 7);
    const err = await store
      .put(archiveObject(freshKey(), Buffer.from('x\n'), false), never())
      .catch((e) => e);
    fake.failNext(0, 0);
    assert.ok(err instanceof ObjectStoreError, String(err));
    assert.equal(err.kind, 'throttled');
    assert.equal(err.options.status, status);
    assert.equal(err.options.retryAfterMs, 7_000);
  }
  await store.close();
});

test('a missing bucket and refused credentials are refused, with the provider code; the healthcheck says so', async () => {
  const missing = await createGcsObjectStore(options({ bucket: 'no-such-bucket' }), context(OPERATOR));
  const err = await missing.put(archiveObject(freshKey(), Buffer.from('x\n')), never()).catch((e) => e);
  assert.ok(err instanceof ObjectStoreError);
  assert.equal(err.kind, 'refused');
  assert.equal(err.code, 'notFound');
  const health = await missing.healthcheck(never());
  assert.equal(health.ok, false);
  assert.match(health.detail, /gs:\/\/no-such-bucket.*404.*notFound/);
  await missing.close();

  const store = await createGcsObjectStore(options(), context(OPERATOR));
  for (const [status, reason] of [
    [401, 'required'],
    [403, 'forbidden'],
  ] as const) {
    fake.failNext(1, status);
    const denied = await store.put(archiveObject(freshKey(), Buffer.from('x\n')), never()).catch((e) => e);
    assert.ok(denied instanceof ObjectStoreError);
    assert.equal(denied.kind, 'refused');
    assert.equal(denied.code, reason);
  }
  await store.close();
});

test('the healthcheck reads the bucket metadata and writes nothing', async () => {
  const store = await createGcsObjectStore(options(), context(OPERATOR));
  const before = fake.requests.length;
  const objects = fake.objects.size;
  assert.deepEqual(await store.healthcheck(never()), { ok: true, detail: `bucket gs://${BUCKET} readable` });
  const sent = fake.requests.slice(before);
  assert.deepEqual(
    sent.map((r) => `${r.method} ${r.path}`),
    [`GET /storage/v1/b/${BUCKET}`],
  );
  assert.equal(fake.objects.size, objects);
  await store.close();
});

test('close() ends an upload in progress: the put fails at once, while GCS has not answered', async () => {
  const store = await createGcsObjectStore(options(), context(OPERATOR));
  const release = fake.stall();
  const key = freshKey();
  const put = store.put(archiveObject(key, Buffer.from('x\n')), never()).catch((e) => e);
  while (!fake.requests.some((r) => r.query.get('name') === key)) await new Promise((r) => setTimeout(r, 10));
  await store.close();
  const err = await put;
  assert.ok(err instanceof ObjectStoreError, String(err));
  assert.equal(err.kind, 'transient');
  release();
});

test('put honours its signal: aborted while GCS has not answered, it fails at once as transient', async () => {
  const store = await createGcsObjectStore(options(), context(OPERATOR));
  const release = fake.stall();
  const key = freshKey();
  const controller = new AbortController();
  const put = store.put(archiveObject(key, Buffer.from('x\n')), controller.signal).catch((e) => e);
  while (!fake.requests.some((r) => r.query.get('name') === key)) await new Promise((r) => setTimeout(r, 10));
  controller.abort();
  const err = await put;
  release();
  assert.ok(err instanceof ObjectStoreError, String(err));
  assert.equal(err.kind, 'transient');
  assert.equal(err.code, 'aborted');
  await store.close();
});

test('close() leaves no connection open to the endpoint, after multipart, resumable and metadata requests', async () => {
  // A fake of its own: connections other tests' stores left would be counted too.
  const own = await startGcsFake();
  own.addBucket(BUCKET);
  const store = await createGcsObjectStore(
    options({ api_endpoint: own.url, resumable_threshold_bytes: 262_144 }),
    context(OPERATOR),
  );
  await store.healthcheck(never());
  await store.put(archiveObject(freshKey(), Buffer.from('x\n')), never());
  await store.put(archiveObject(freshKey(), Buffer.alloc(300_000, 2)), never());
  assert.ok((await own.connections()) > 0, 'keep-alive connections while open');
  await store.close();
  for (let i = 0; i < 100 && (await own.connections()) > 0; i++) await new Promise((r) => setTimeout(r, 10));
  const left = await own.connections();
  await own.close();
  assert.equal(left, 0);
});

test('an endpoint whose name resolves to a loopback address is refused when connecting, not only IP literals', async () => {
  const store = await createGcsObjectStore(
    options({
      allow_private_networks: false,
      api_endpoint: fake.url.replace('127.0.0.1', 'localhost'),
      resumable_threshold_bytes: 262_144,
    }),
    context(OPERATOR),
  );
  const before = fake.requests.length;
  // 10 bytes: multipart (gcs-transport.ts); 300,000: resumable (the SDK's gaxios, given the agent).
  for (const size of [10, 300_000]) {
    const err = await store.put(archiveObject(freshKey(), Buffer.alloc(size, 3)), never()).catch((e) => e);
    assert.ok(err instanceof ObjectStoreError, String(err));
    assert.equal(err.kind, 'refused');
    assert.equal(err.code, 'TW_FORBIDDEN_ADDRESS');
  }
  const health = await store.healthcheck(never());
  assert.equal(health.ok, false);
  assert.match(health.detail, /TW_FORBIDDEN_ADDRESS/);
  assert.equal(fake.requests.length, before, 'no request reached the fake');
  await store.close();
});

test("an api_endpoint at 127.0.0.1 is refused without allow_private_networks, and reached with it (the operator's)", async () => {
  const guarded = await createGcsObjectStore(options({ allow_private_networks: false }), context(OPERATOR));
  const before = fake.requests.length;
  const err = await guarded.put(archiveObject(freshKey(), Buffer.from('x\n')), never()).catch((e) => e);
  assert.ok(err instanceof ObjectStoreError, String(err));
  assert.equal(err.kind, 'refused');
  assert.equal(err.code, 'TW_FORBIDDEN_ADDRESS');
  assert.equal((await guarded.healthcheck(never())).ok, false);
  assert.equal(fake.requests.length, before, 'no request reached the fake');
  await guarded.close();

  const allowed = await createGcsObjectStore(options({ allow_private_networks: true }), context(OPERATOR));
  assert.equal((await allowed.healthcheck(never())).ok, true);
  await allowed.close();
});

test("a tenant-bound admin's sink is held to public addresses even with allow_private_networks", async () => {
  const key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
    type: 'pkcs8',
    format: 'pem',
  });
  const credentials = JSON.stringify({
    type: 'service_account',
    client_email: 'a@p.iam.gserviceaccount.com',
    private_key: key,
  });
  const store = await createGcsObjectStore(
    options({ allow_private_networks: true, credentials_json: credentials }),
    context(TENANT),
  );
  const before = fake.requests.length;
  const err = await store.put(archiveObject(freshKey(), Buffer.from('x\n')), never()).catch((e) => e);
  assert.ok(err instanceof ObjectStoreError, String(err));
  assert.equal(err.code, 'TW_FORBIDDEN_ADDRESS');
  assert.equal(fake.requests.length, before);
  await store.close();
});

test('no part of an inline private key appears in errors, healthchecks or logs', async () => {
  const pem = String(
    generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
  );
  const credentials = JSON.stringify({
    type: 'service_account',
    client_email: 'a@p.iam.gserviceaccount.com',
    private_key: pem,
  });
  const logs: string[] = [];
  // Credentials make the SDK fetch a token from Google first: unreachable here, so every call fails in auth.
  const store = await createGcsObjectStore(
    options({ credentials_json: credentials }),
    context(OPERATOR, logs),
  );
  const err = await store.put(archiveObject(freshKey(), Buffer.from('x\n')), never()).catch((e) => e);
  const health = await store.healthcheck(never());
  await store.close();
  assert.ok(err instanceof ObjectStoreError, String(err));
  assert.equal(health.ok, false);
  const seen = [err.message, err.code, String(err.stack), health.detail, ...logs].join('\n');
  const body = pem.split('\n').filter((l) => l.length > 0 && !l.startsWith('-----'));
  for (const line of body) assert.ok(!seen.includes(line), 'a line of the private key leaked');
});
