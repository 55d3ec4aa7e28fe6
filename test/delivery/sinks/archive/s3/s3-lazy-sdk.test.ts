import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';

// Node runs each test file in a process of its own, so nothing else here has loaded the SDK.
const cache = createRequire(import.meta.url).cache;
const awsModules = () => Object.keys(cache).filter((k) => k.includes('/@aws-sdk/')).length;

test('the AWS SDK is loaded only when an S3 store is created, not when its modules are imported', async () => {
  const { createS3ObjectStore } = await import(
    '../../../../../src/delivery/sinks/archive/s3/s3-object-store.js'
  );
  await import('../../../../../src/delivery/sinks/archive/s3/s3-options.js');
  assert.equal(typeof createS3ObjectStore, 'function');
  assert.equal(awsModules(), 0, 'no @aws-sdk module after importing the S3 modules');
  const { s3Store } = await import('./s3-test-store.js');
  const { store } = await s3Store({
    bucket: 'audit',
    region: 'eu-west-1',
    access_key_id: 'a',
    secret_access_key: 'b',
  });
  await store.close();
  assert.ok(awsModules() > 0, 'the SDK is loaded once a store is created');
});
