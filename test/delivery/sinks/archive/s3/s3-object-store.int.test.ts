import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ObjectStoreError } from '../../../../../src/delivery/sinks/archive/object-store.js';
import { TrailwardenError } from '../../../../../src/errors.js';
import { S3RVER_KEYS, type S3rverPeer, startS3rver } from '../../../../helpers/s3rver-peer.js';
import { archiveObject, s3Store, soon } from './s3-test-store.js';

let peer: S3rverPeer;
let reader: S3Client;

before(async () => {
  peer = await startS3rver({ buckets: ['audit'] });
  reader = new S3Client({
    endpoint: peer.endpoint,
    forcePathStyle: true,
    region: 'us-east-1',
    credentials: { accessKeyId: S3RVER_KEYS.access_key_id, secretAccessKey: S3RVER_KEYS.secret_access_key },
  });
});

after(async () => {
  reader.destroy();
  await peer.close();
});

/** The operator's sink on s3rver (a private address, so allowed explicitly). */
const onPeer = (extra: Record<string, unknown> = {}) => ({
  bucket: 'audit',
  endpoint: peer.endpoint,
  force_path_style: true,
  allow_private_networks: true,
  ...S3RVER_KEYS,
  ...extra,
});

async function readBack(key: string) {
  const got = await reader.send(new GetObjectCommand({ Bucket: 'audit', Key: key }));
  const bytes = Buffer.from((await got.Body?.transformToByteArray()) ?? []);
  return { bytes, got };
}

async function absent(key: string): Promise<boolean> {
  try {
    await reader.send(new HeadObjectCommand({ Bucket: 'audit', Key: key }));
    return false;
  } catch (err) {
    return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404;
  }
}

test('a small object is written in one PutObject and reads back byte for byte with its metadata, encoding and type', async () => {
  const { store } = await s3Store(onPeer());
  try {
    const obj = archiveObject(
      'trailwarden/tenant=acme/dt=2026-12-07/hour=20/0000000000000001-0000000000000003.jsonl.gz',
      randomBytes(2048),
    );
    assert.deepEqual(await store.put(obj, soon()), { status: 'created' });
    const { bytes, got } = await readBack(obj.key);
    assert.ok(bytes.equals(obj.body));
    assert.deepEqual(got.Metadata, obj.metadata);
    assert.equal(got.ContentEncoding, 'gzip');
    assert.equal(got.ContentType, 'application/x-ndjson');
    assert.ok(!peer.log.some((l) => l.includes('0000000000000003.jsonl.gz?uploads')), 'no multipart upload');
  } finally {
    await store.close();
  }
});

test('an object above single_put_max_bytes goes up in parts and reads back the same, metadata included', async () => {
  const { store } = await s3Store(onPeer());
  try {
    const obj = archiveObject(
      'trailwarden/tenant=acme/big.jsonl.gz',
      randomBytes(11 * 1024 * 1024 + 17),
      50_000,
    );
    assert.deepEqual(await store.put(obj, soon()), { status: 'created' });
    const { bytes, got } = await readBack(obj.key);
    assert.ok(bytes.equals(obj.body), 'same bytes');
    const parts = peer.log
      .filter((l) => l.includes('/big.jsonl.gz?partNumber='))
      .map((l) => /partNumber=(\d+)/.exec(l)?.[1]);
    assert.deepEqual(parts.sort(), ['1', '2', '3'], 'three 5 MiB parts (the last one short)');
    assert.deepEqual(got.Metadata, obj.metadata);
    assert.equal(got.ContentEncoding, 'gzip');
    assert.equal(got.ContentType, 'application/x-ndjson');
  } finally {
    await store.close();
  }
});

test('checksum when_required (S3-compatible stores) writes single and multipart objects too', async () => {
  const { store } = await s3Store(onPeer({ checksum: 'when_required' }));
  try {
    for (const size of [100, 6 * 1024 * 1024]) {
      const obj = archiveObject(`compat/${size}.jsonl.gz`, randomBytes(size));
      assert.deepEqual(await store.put(obj, soon()), { status: 'created' });
      assert.ok((await readBack(obj.key)).bytes.equals(obj.body));
    }
  } finally {
    await store.close();
  }
});

test('the healthcheck asks HeadBucket: ok for the bucket, NoSuchBucket for a missing one, and writes nothing', async () => {
  const { store } = await s3Store(onPeer());
  const { store: missing } = await s3Store(onPeer({ bucket: 'no-such-bucket' }));
  try {
    assert.deepEqual(await store.healthcheck(soon()), {
      ok: true,
      detail: 'HeadBucket audit: ok (HTTP 200)',
    });
    const bad = await missing.healthcheck(soon());
    assert.equal(bad.ok, false);
    assert.match(bad.detail, /HeadBucket no-such-bucket: NoSuchBucket \(HTTP 404\)$/);
  } finally {
    await store.close();
    await missing.close();
  }
});

test('a closed store answers every call with Closed, without a request', async () => {
  const { store } = await s3Store(onPeer());
  const seen = peer.log.length;
  await store.close();
  const err = await store.put(archiveObject('after-close.jsonl.gz', Buffer.from('x')), soon()).then(
    () => assert.fail('put succeeded'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ObjectStoreError);
  assert.deepEqual([err.kind, err.code], ['transient', 'Closed']);
  assert.deepEqual(await store.healthcheck(soon()), {
    ok: false,
    detail: `s3://audit at ${peer.endpoint}: HeadBucket audit: the sink is closed`,
  });
  assert.equal(peer.log.length, seen);
});

test('a put to a missing bucket is refused with NoSuchBucket', async () => {
  const { store } = await s3Store(onPeer({ bucket: 'no-such-bucket' }));
  try {
    const err = await store.put(archiveObject('k.jsonl.gz', Buffer.from('x')), soon()).then(
      () => assert.fail('put succeeded'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ObjectStoreError);
    assert.equal(err.kind, 'refused');
    assert.equal(err.code, 'NoSuchBucket');
    assert.equal(err.options.status, 404);
  } finally {
    await store.close();
  }
});

test("a tenant-bound admin's sink cannot reach 127.0.0.1: the put is refused (forbidden address) and nothing is written", async () => {
  for (const allow of [false, true]) {
    const { store } = await s3Store(
      {
        bucket: 'audit',
        region: 'us-east-1',
        endpoint: peer.endpoint,
        force_path_style: true,
        allow_private_networks: allow,
        ...S3RVER_KEYS,
      },
      { tenantId: 'acme' },
    );
    try {
      const obj = archiveObject(`tenant-${allow}.jsonl.gz`, Buffer.from('{"a":1}\n'));
      const err = await store.put(obj, soon()).then(
        () => assert.fail('put succeeded'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof ObjectStoreError);
      assert.equal(err.kind, 'refused');
      assert.equal(err.code, 'TW_FORBIDDEN_ADDRESS');
      assert.match(
        err.message,
        /127\.0\.0\.1 is in a private range; a tenant-bound admin's sink reaches public addresses only/,
      );
      const health = await store.healthcheck(soon());
      assert.equal(health.ok, false);
      assert.match(health.detail, /127\.0\.0\.1 is in a private range/);
      assert.ok(await absent(obj.key));
    } finally {
      await store.close();
    }
  }
});

test('a hostname that resolves to a private address is refused too, also for a large single put (Expect: 100-continue)', async () => {
  const endpoint = peer.endpoint.replace('127.0.0.1', 'localhost');
  const { store } = await s3Store(
    {
      bucket: 'audit',
      region: 'us-east-1',
      endpoint,
      force_path_style: true,
      single_put_max_bytes: 8 * 1024 * 1024,
      ...S3RVER_KEYS,
    },
    { tenantId: 'acme' },
  );
  try {
    for (const size of [10, 3 * 1024 * 1024]) {
      const obj = archiveObject(`localhost-${size}.jsonl.gz`, randomBytes(size));
      const err = await store.put(obj, soon()).then(
        () => assert.fail(`put of ${size} bytes succeeded`),
        (e: unknown) => e,
      );
      assert.ok(err instanceof ObjectStoreError);
      assert.equal(err.code, 'TW_FORBIDDEN_ADDRESS', `${size} bytes: ${err.message}`);
      assert.ok(await absent(obj.key));
    }
  } finally {
    await store.close();
  }
});

test("the operator's sink reaches 127.0.0.1 only with allow_private_networks", async () => {
  const { store: closed } = await s3Store(onPeer({ allow_private_networks: false }));
  const { store: open } = await s3Store(onPeer());
  try {
    const err = await closed.put(archiveObject('op-closed.jsonl.gz', Buffer.from('x')), soon()).then(
      () => assert.fail('put succeeded'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ObjectStoreError);
    assert.equal(err.code, 'TW_FORBIDDEN_ADDRESS');
    assert.match(err.message, /set allow_private_networks: true to allow/);
    assert.deepEqual(await open.put(archiveObject('op-open.jsonl.gz', Buffer.from('x')), soon()), {
      status: 'created',
    });
  } finally {
    await closed.close();
    await open.close();
  }
});

test("a tenant-bound admin's store is not created without its own keys (never the SDK's default chain)", async () => {
  await assert.rejects(
    s3Store({ bucket: 'audit', region: 'eu-west-1' }, { tenantId: 'acme' }),
    (err: unknown) =>
      err instanceof TrailwardenError &&
      err.code === 'TW_ERR_CONFIG' &&
      /access_key_id: a tenant-bound admin's S3 sink must give access_key_id and secret_access_key/.test(
        err.message,
      ),
  );
});

test("an endpoint the SDK reads from AWS_ENDPOINT_URL_S3 is guarded too, and a tenant-bound admin's client ignores it", async () => {
  const before = process.env.AWS_ENDPOINT_URL_S3;
  process.env.AWS_ENDPOINT_URL_S3 = peer.endpoint;
  const common = {
    bucket: 'audit',
    region: 'us-east-1',
    force_path_style: true,
    connect_timeout_ms: 2_000,
    ...S3RVER_KEYS,
  };
  const { store: open } = await s3Store({ ...common, allow_private_networks: true });
  const { store: guarded } = await s3Store(common);
  const { store: tenant } = await s3Store(common, { tenantId: 'acme' });
  try {
    const readFromEnv = archiveObject('env-endpoint.jsonl.gz', Buffer.from('x'));
    assert.deepEqual(
      await open.put(readFromEnv, soon()),
      { status: 'created' },
      'the operator may point the SDK at a store',
    );
    assert.ok(!(await absent(readFromEnv.key)));

    const err = await guarded.put(archiveObject('env-guarded.jsonl.gz', Buffer.from('x')), soon()).then(
      () => assert.fail('put succeeded'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ObjectStoreError);
    assert.equal(err.code, 'TW_FORBIDDEN_ADDRESS', err.message);

    const tenantObj = archiveObject('env-tenant.jsonl.gz', Buffer.from('x'));
    // It goes to AWS's own endpoint instead: refused or unreachable from here, but not the host's private one.
    const tenantErr = await tenant.put(tenantObj, soon()).then(
      () => assert.fail('the tenant-bound put reached a store'),
      (e: unknown) => e,
    );
    assert.ok(tenantErr instanceof ObjectStoreError);
    assert.notEqual(tenantErr.code, 'TW_FORBIDDEN_ADDRESS', tenantErr.message);
    assert.doesNotMatch(tenantErr.message, /127\.0\.0\.1/);
    assert.ok(!peer.log.some((l) => l.includes('env-tenant')), 's3rver saw no request for it');
    assert.ok(
      await absent(tenantObj.key),
      "the tenant's object did not go to the host's configured endpoint",
    );
  } finally {
    if (before === undefined) delete process.env.AWS_ENDPOINT_URL_S3;
    else process.env.AWS_ENDPOINT_URL_S3 = before;
    await open.close();
    await guarded.close();
    await tenant.close();
  }
});
