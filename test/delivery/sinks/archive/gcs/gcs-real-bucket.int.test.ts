import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { z } from 'zod';
import { createGcsObjectStore } from '../../../../../src/delivery/sinks/archive/gcs/gcs-object-store.js';
import { gcsOptionsShape } from '../../../../../src/delivery/sinks/archive/gcs/gcs-options.js';
import { OBJECT_METADATA } from '../../../../../src/delivery/sinks/archive/object-store.js';

/**
 * Opt-in: the gcs ObjectStore against a real bucket. Set TW_GCS_TEST_BUCKET
 * and either TW_GCS_TEST_CREDENTIALS_JSON (a service-account key's text) or
 * GOOGLE_APPLICATION_CREDENTIALS. The objects it writes stay in the bucket
 * (under trailwarden-test/); the key needs storage.objects.create and get
 * and storage.buckets.get, nothing more.
 */
const bucket = process.env.TW_GCS_TEST_BUCKET;
const credentials = process.env.TW_GCS_TEST_CREDENTIALS_JSON;
const skip =
  bucket && (credentials || process.env.GOOGLE_APPLICATION_CREDENTIALS)
    ? false
    : 'set TW_GCS_TEST_BUCKET and TW_GCS_TEST_CREDENTIALS_JSON (or GOOGLE_APPLICATION_CREDENTIALS) to run against a real bucket';

test('against a real bucket: healthcheck, a conditional write, then exists for the same key', {
  skip,
}, async () => {
  const options = z
    .object(gcsOptionsShape)
    .parse({ bucket, ...(credentials ? { credentials_json: credentials } : {}) });
  const store = await createGcsObjectStore(options, {
    name: 'gcs-real',
    owner: { source: 'config', tenantId: null },
    format: 'json',
    dataDir: '/nonexistent',
    allowedPrivateNetworks: [],
    fileRoot: null,
    now: () => Date.now(),
    log: { info: () => undefined, warn: () => undefined },
  });
  try {
    assert.equal((await store.healthcheck(new AbortController().signal)).ok, true);
    const body = Buffer.from('{"seq":1}\n');
    const sha256 = createHash('sha256').update(body).digest('hex');
    const obj = {
      key: `trailwarden-test/${randomUUID()}.jsonl`,
      body,
      contentType: 'application/x-ndjson',
      metadata: { [OBJECT_METADATA.sha256]: sha256 },
      sha256,
    };
    assert.deepEqual(await store.put(obj, new AbortController().signal), { status: 'created' });
    assert.deepEqual(await store.put(obj, new AbortController().signal), { status: 'exists', sha256 });
  } finally {
    await store.close();
  }
});
