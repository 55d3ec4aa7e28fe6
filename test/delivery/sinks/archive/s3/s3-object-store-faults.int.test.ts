import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { inspect } from 'node:util';
import { ObjectStoreError } from '../../../../../src/delivery/sinks/archive/object-store.js';
import {
  type FakeS3,
  type FakeS3Answer,
  type FakeS3Reply,
  type FakeS3Request,
  multipartAnswer,
  s3ErrorXml,
  startFakeS3,
} from '../../../../helpers/fake-s3.js';
import { until } from '../../../../helpers/until.js';
import { archiveObject, s3Store, soon } from './s3-test-store.js';

// s3rver ignores If-None-Match: these tests script the answers S3 gives to conditional writes and faults.

const keys = {
  access_key_id: 'AKIAFAKEKEYID0000001',
  secret_access_key: 'fakeSecretKey/0123456789abcdefSECRET',
};
const xml = (
  status: number,
  code: string,
  message: string,
  extra: Record<string, string> = {},
): FakeS3Reply => ({
  status,
  headers: { 'content-type': 'application/xml' },
  body: s3ErrorXml(code, message, extra),
});
const PRECONDITION_FAILED = xml(
  412,
  'PreconditionFailed',
  'At least one of the pre-conditions you specified did not hold',
  {
    Condition: 'If-None-Match',
  },
);
const isPut = (r: FakeS3Request) => r.method === 'PUT' && !r.url.includes('partNumber=');
const isComplete = (r: FakeS3Request) => r.method === 'POST' && r.url.includes('uploadId=');
const isAbort = (r: FakeS3Request) => r.method === 'DELETE' && r.url.includes('uploadId=upload-1');

async function withFake(
  answer: (req: FakeS3Request) => FakeS3Answer,
  raw: Record<string, unknown>,
  body: (
    ctx: Awaited<ReturnType<typeof s3Store>> & { requests: FakeS3Request[]; fake: FakeS3 },
  ) => Promise<void>,
): Promise<void> {
  const fake = await startFakeS3(answer);
  const made = await s3Store({
    bucket: 'audit',
    endpoint: fake.endpoint,
    force_path_style: true,
    allow_private_networks: true,
    ...keys,
    ...raw,
  });
  try {
    await body({ ...made, requests: fake.requests, fake });
  } finally {
    await made.store.close();
    await fake.close();
  }
}

/**
 * Waits out the SDK's retry delay (100 ms) a few times over, then checks
 * that no part was sent twice: a part in flight when its upload was
 * abandoned is not retried (lib-storage sends parts without the put's signal).
 */
async function noPartRetried(started: string[]): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 500));
  const parts = started.filter((s) => s.includes('partNumber='));
  assert.deepEqual(parts, [...new Set(parts)], `a part sent twice: ${parts.join(', ')}`);
}

async function putError(promise: Promise<unknown>): Promise<ObjectStoreError> {
  const err = await promise.then(
    () => assert.fail('put succeeded'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ObjectStoreError, `an ObjectStoreError, got ${inspect(err)}`);
  return err;
}

test('a taken key (412 to If-None-Match: *) is answered `exists` with the SHA-256 metadata HeadObject finds', async () => {
  const obj = archiveObject('trailwarden/taken.jsonl.gz', Buffer.from('{"seq":1}\n'));
  for (const [headers, sha256] of [
    [{ 'x-amz-meta-trailwarden_sha256': obj.sha256 }, obj.sha256],
    [{ 'x-amz-meta-trailwarden_sha256': 'f'.repeat(64) }, 'f'.repeat(64)],
    [{}, null],
  ] as const) {
    await withFake(
      (req) => {
        if (req.method === 'PUT') return PRECONDITION_FAILED;
        if (req.method === 'HEAD') return { status: 200, headers: { etag: '"e"', ...headers } };
        return { status: 500 };
      },
      {},
      async ({ store, requests }) => {
        assert.deepEqual(await store.put(obj, soon()), { status: 'exists', sha256 });
        assert.deepEqual(
          requests.map((r) => `${r.method} ${r.url.split('?')[0]}`),
          ['PUT /audit/trailwarden/taken.jsonl.gz', 'HEAD /audit/trailwarden/taken.jsonl.gz'],
        );
        assert.equal(requests[0]?.headers['if-none-match'], '*');
        assert.equal(requests[0]?.headers['x-amz-meta-trailwarden_sha256'], obj.sha256);
        assert.equal(requests[0]?.headers['content-encoding'], 'gzip');
        assert.equal(requests[0]?.headers['content-type'], 'application/x-ndjson');
      },
    );
  }
});

test('a conditional write in conflict (409) whose object is not there yet is transient, for the next attempt to write', async () => {
  await withFake(
    (req) =>
      req.method === 'PUT'
        ? xml(
            409,
            'ConditionalRequestConflict',
            'A conflicting conditional operation is currently in progress',
          )
        : { status: 404 },
    {},
    async ({ store, requests }) => {
      const err = await putError(store.put(archiveObject('k.jsonl.gz', Buffer.from('x')), soon()));
      assert.equal(err.kind, 'transient');
      assert.equal(err.code, 'ConditionalRequestConflict');
      assert.deepEqual(
        requests.map((r) => r.method),
        ['PUT', 'HEAD'],
      );
    },
  );
});

test('a multipart upload is conditional at CompleteMultipartUpload: 412 there answers `exists` and the upload is aborted', async () => {
  const obj = archiveObject('trailwarden/big.jsonl.gz', randomBytes(6 * 1024 * 1024));
  await withFake(
    (req) => {
      if (isComplete(req)) return PRECONDITION_FAILED;
      if (req.method === 'HEAD')
        return { status: 200, headers: { etag: '"e"', 'x-amz-meta-trailwarden_sha256': obj.sha256 } };
      return multipartAnswer(req) ?? { status: 500 };
    },
    { single_put_max_bytes: 1024 * 1024 },
    async ({ store, requests }) => {
      assert.deepEqual(await store.put(obj, soon()), { status: 'exists', sha256: obj.sha256 });
      const create = requests.find((r) => r.method === 'POST' && r.url.includes('?uploads'));
      assert.equal(
        create?.headers['x-amz-meta-trailwarden_sha256'],
        obj.sha256,
        'metadata set when the upload starts',
      );
      assert.equal(create?.headers['content-encoding'], 'gzip');
      assert.equal(requests.filter((r) => r.url.includes('partNumber=')).length, 2, 'two parts');
      assert.equal(requests.find(isComplete)?.headers['if-none-match'], '*');
      assert.ok(requests.some(isAbort), 'the upload was aborted at the store');
      assert.ok(!requests.some(isPut), 'no single PutObject');
    },
  );
});

test('503 SlowDown with Retry-After is throttled with the hint, at once (the SDK does not wait it out)', async () => {
  await withFake(
    () => ({ ...xml(503, 'SlowDown', 'Please reduce your request rate.'), headers: { 'retry-after': '7' } }),
    {},
    async ({ store, requests }) => {
      const err = await putError(store.put(archiveObject('k.jsonl.gz', Buffer.from('x')), soon()));
      assert.equal(err.kind, 'throttled');
      assert.equal(err.code, 'SlowDown');
      assert.equal(err.options.retryAfterMs, 7_000);
      assert.equal(err.options.status, 503);
      assert.match(
        err.message,
        /PutObject k\.jsonl\.gz: SlowDown \(HTTP 503\): Please reduce your request rate\./,
      );
      assert.equal(requests.length, 1, 'no retry inside the attempt');
    },
  );
});

test('403 InvalidAccessKeyId is refused with its code, without a retry', async () => {
  await withFake(
    () => xml(403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.'),
    {},
    async ({ store, requests }) => {
      const err = await putError(store.put(archiveObject('k.jsonl.gz', Buffer.from('x')), soon()));
      assert.equal(err.kind, 'refused');
      assert.equal(err.code, 'InvalidAccessKeyId');
      assert.equal(requests.length, 1);
    },
  );
});

test('each class of S3 error maps to its kind: wrong region refused (naming the region), key too long rejected, 500 transient', async () => {
  const cases: Array<[FakeS3Answer, string, string, RegExp?]> = [
    [
      {
        ...xml(
          301,
          'PermanentRedirect',
          'The bucket you are attempting to access must be addressed using the specified endpoint.',
        ),
        headers: { 'content-type': 'application/xml', 'x-amz-bucket-region': 'eu-central-1' },
      },
      'refused',
      'PermanentRedirect',
      /the bucket is in region eu-central-1/,
    ],
    [
      xml(400, 'AuthorizationHeaderMalformed', "the region 'us-east-1' is wrong; expecting 'eu-west-1'"),
      'refused',
      'AuthorizationHeaderMalformed',
    ],
    [xml(403, 'AccessDenied', 'Access Denied'), 'refused', 'AccessDenied'],
    [xml(400, 'ExpiredToken', 'The provided token has expired.'), 'refused', 'ExpiredToken'],
    [xml(400, 'KeyTooLongError', 'Your key is too long'), 'rejected', 'KeyTooLongError'],
    [
      xml(400, 'EntityTooLarge', 'Your proposed upload exceeds the maximum allowed object size.'),
      'rejected',
      'EntityTooLarge',
    ],
    [
      xml(500, 'InternalError', 'We encountered an internal error. Please try again.'),
      'transient',
      'InternalError',
    ],
    [
      xml(400, 'RequestTimeout', 'Your socket connection to the server was not read from or written to'),
      'transient',
      'RequestTimeout',
    ],
    [{ status: 429, headers: { 'retry-after': '3' } }, 'throttled', '429'],
  ];
  for (const [answer, kind, code, message] of cases) {
    await withFake(
      () => answer,
      {},
      async ({ store }) => {
        const err = await putError(store.put(archiveObject('k.jsonl.gz', Buffer.from('x')), soon()));
        assert.deepEqual([err.kind, err.code], [kind, code], err.message);
        if (message) assert.match(err.message, message);
      },
    );
  }
});

test('an abandoned multipart upload is aborted at the store, its parts in flight cut off, and the put fails transient', async () => {
  await withFake(
    (req) => (req.url.includes('partNumber=') ? 'hang' : (multipartAnswer(req) ?? { status: 500 })),
    { single_put_max_bytes: 1024 * 1024 },
    async ({ store, requests, fake }) => {
      const abandon = new AbortController();
      const put = store.put(archiveObject('big.jsonl.gz', randomBytes(12 * 1024 * 1024)), abandon.signal);
      await until(() => requests.some((r) => r.url.includes('partNumber=')), 'a part to arrive');
      abandon.abort();
      const err = await putError(put);
      assert.equal(err.kind, 'transient');
      assert.equal(err.code, 'Aborted');
      assert.ok(requests.some(isAbort), 'AbortMultipartUpload sent before the put settled');
      await until(() => fake.hanging() === 0, 'the parts in flight to be cut off', 2_000);
      await noPartRetried(fake.started);
    },
  );
});

test('close() ends a multipart upload in progress, aborts it at the store and leaves no socket open', async () => {
  const fake = await startFakeS3((req) =>
    req.url.includes('partNumber=') ? 'hang' : (multipartAnswer(req) ?? { status: 500 }),
  );
  const { store } = await s3Store({
    bucket: 'audit',
    endpoint: fake.endpoint,
    force_path_style: true,
    allow_private_networks: true,
    single_put_max_bytes: 1024 * 1024,
    ...keys,
  });
  try {
    const put = store.put(archiveObject('big.jsonl.gz', randomBytes(12 * 1024 * 1024)), soon());
    await until(() => fake.requests.some((r) => r.url.includes('partNumber=')), 'a part to arrive');
    await store.close();
    const err = await putError(put);
    assert.equal(err.kind, 'transient');
    assert.ok(fake.requests.some(isAbort), 'AbortMultipartUpload sent before close() returned');
    // Both ends are in this process: the fake's side closes once the client's has.
    const sockets = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
    await until(() => sockets() === 0, 'every socket to close', 2_000);
    await noPartRetried(fake.started);
    assert.equal(sockets(), 0, 'no socket opened after close()');
  } finally {
    await fake.close();
  }
});

test('no secret reaches an error, its inspection, a healthcheck detail or the log, even when the store echoes the key id', async () => {
  const session_token = 'FwoGZXIvYXdzEFAKE/SESSION+TOKEN==';
  const secrets = [keys.access_key_id, keys.secret_access_key, session_token];
  const signatureMismatch = xml(
    403,
    'SignatureDoesNotMatch',
    'The request signature we calculated does not match the signature you provided.',
    {
      AWSAccessKeyId: keys.access_key_id,
      StringToSign: `AWS4-HMAC-SHA256 ${keys.access_key_id}`,
      SignatureProvided: 'abc123',
      CanonicalRequest: `PUT /audit/k x-amz-security-token:${session_token}`,
    },
  );
  await withFake(
    (req) => {
      if (req.url.includes('partNumber=')) return 'hang';
      if (req.method === 'DELETE') return signatureMismatch;
      if (req.method === 'POST') return multipartAnswer(req) ?? signatureMismatch;
      return signatureMismatch;
    },
    { session_token, single_put_max_bytes: 1024 * 1024 },
    async ({ store, logs, requests }) => {
      const seen: string[] = [];
      const err = await putError(store.put(archiveObject('k.jsonl.gz', Buffer.from('x')), soon()));
      assert.equal(err.code, 'SignatureDoesNotMatch');
      seen.push(err.message, inspect(err, { depth: 10, showHidden: true }), JSON.stringify(err));
      seen.push((await store.healthcheck(soon())).detail);
      // An abandoned upload whose abort fails: logged as a warning.
      const abandon = new AbortController();
      const put = store.put(archiveObject('big.jsonl.gz', randomBytes(6 * 1024 * 1024)), abandon.signal);
      await until(() => requests.some((r) => r.url.includes('partNumber=')), 'a part to arrive');
      abandon.abort();
      const aborted = await putError(put);
      seen.push(aborted.message, inspect(aborted, { depth: 10, showHidden: true }));
      assert.ok(
        logs.some((l) => l.level === 'warn'),
        'the failed abort was logged',
      );
      seen.push(...logs.map((l) => JSON.stringify(l)));
      for (const text of seen) for (const s of secrets) assert.ok(!text.includes(s), `a secret in: ${text}`);
    },
  );
});
