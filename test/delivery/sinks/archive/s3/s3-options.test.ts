import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import type { SinkPlacement } from '../../../../../src/delivery/sink.js';
import {
  bucketNameProblem,
  hostOptions,
  placementProblems,
  s3OptionsShape,
  secretFields,
} from '../../../../../src/delivery/sinks/archive/s3/s3-options.js';

const schema = z.strictObject(s3OptionsShape);
const operator: SinkPlacement = {
  owner: { source: 'config', tenantId: null },
  fileRoot: null,
  dataDir: '/data',
};
const allTenantAdmin: SinkPlacement = {
  owner: { source: 'api', tenantId: null },
  fileRoot: null,
  dataDir: '/data',
};
const tenantAdmin: SinkPlacement = {
  owner: { source: 'api', tenantId: 'acme' },
  fileRoot: null,
  dataDir: '/data',
};
const keys = { access_key_id: 'AKIAEXAMPLE', secret_access_key: 'wJalrXUtnFEMI/K7MDENG' };

/** The messages zod gives for `input`, one string per issue (`path: message`). */
function issues(input: Record<string, unknown>): string[] {
  const r = schema.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

test('bucket names follow S3 naming rules, and an ARN or URL is refused with a message saying what a name is', () => {
  for (const ok of ['audit', 'audit-archive.eu', 'a1b', 'x'.repeat(63)])
    assert.equal(bucketNameProblem(ok), null, ok);
  const bad: Array<[string, RegExp]> = [
    ['ab', /3 to 63 characters/],
    ['x'.repeat(64), /3 to 63 characters/],
    ['Audit', /lowercase letters/],
    ['arn:aws:s3:eu-west-1:123456789012:accesspoint/ap', /not an ARN or URL/],
    ['s3://audit', /not an ARN or URL/],
    ['-audit', /begins and ends/],
    ['audit..logs', /two dots/],
    ['192.168.5.4', /not an IP address/],
    ['xn--audit', /cannot begin with xn--/],
    ['audit-s3alias', /cannot end with -s3alias/],
  ];
  for (const [name, message] of bad) assert.match(bucketNameProblem(name) ?? '', message, name);
  assert.deepEqual(issues({ bucket: 'Audit' }), [
    'bucket: a bucket name has lowercase letters, digits, dots and hyphens only (give the name, not an ARN or URL)',
  ]);
});

test('the defaults: 5 MiB single puts and parts, 4 parts at once, checksums when supported, private networks refused', () => {
  const o = schema.parse({ bucket: 'audit' });
  assert.equal(o.single_put_max_bytes, 5 * 1024 * 1024);
  assert.equal(o.part_size_bytes, 5 * 1024 * 1024);
  assert.equal(o.max_concurrent_parts, 4);
  assert.equal(o.checksum, 'when_supported');
  assert.equal(o.allow_private_networks, false);
  assert.equal(o.force_path_style, false);
  assert.equal(o.connect_timeout_ms, 5_000);
  assert.equal(o.request_timeout_ms, 60_000);
});

test('every limit is enforced with a message naming it', () => {
  assert.deepEqual(issues({ bucket: 'audit', part_size_bytes: 1024 }), [
    "part_size_bytes: at least 5242880 bytes (5 MiB, S3's smallest part)",
  ]);
  assert.deepEqual(issues({ bucket: 'audit', part_size_bytes: 1024 * 1024 * 1024 }), [
    'part_size_bytes: at most 536870912 bytes (512 MiB)',
  ]);
  assert.deepEqual(issues({ bucket: 'audit', single_put_max_bytes: 6 * 1024 ** 3 }), [
    "single_put_max_bytes: at most 5368709120 bytes (5 GiB, S3's PutObject limit)",
  ]);
  assert.deepEqual(issues({ bucket: 'audit', max_concurrent_parts: 17 }), [
    'max_concurrent_parts: at most 16 parts at once',
  ]);
  assert.deepEqual(issues({ bucket: 'audit', request_timeout_ms: 600_001 }), [
    'request_timeout_ms: at most 600000 ms',
  ]);
  assert.match(
    issues({ bucket: 'audit', region: 'EU West' })[0] ?? '',
    /^region: expected a region such as eu-west-1/,
  );
  assert.match(issues({ bucket: 'audit', sse: 'aes' })[0] ?? '', /^sse: expected AES256 or aws:kms/);
  assert.match(
    issues({ bucket: 'audit', storage_class: 'COLD' })[0] ?? '',
    /^storage_class: expected one of STANDARD/,
  );
  assert.match(issues({ bucket: 'audit', checksum: 'never' })[0] ?? '', /^checksum: expected when_supported/);
  assert.match(
    issues({ bucket: 'audit', secret_access_key: 'has space' })[0] ?? '',
    /^secret_access_key: the secret access key cannot contain spaces/,
  );
  assert.match(issues({ bucket: 'audit', profile: 'a/b' })[0] ?? '', /^profile: a profile name has 1 to 64/);
});

test('the endpoint is an http(s) origin: no path, credentials, query or fragment', () => {
  assert.deepEqual(issues({ bucket: 'audit', endpoint: 'https://s3.example.com' }), []);
  assert.deepEqual(issues({ bucket: 'audit', endpoint: 'http://127.0.0.1:9000/' }), []);
  assert.match(
    issues({ bucket: 'audit', endpoint: 'ftp://s3.example.com' })[0] ?? '',
    /expected an http\(s\) URL/,
  );
  assert.match(
    issues({ bucket: 'audit', endpoint: 'https://k:s@s3.example.com' })[0] ?? '',
    /no credentials/,
  );
  assert.match(
    issues({ bucket: 'audit', endpoint: 'https://s3.example.com/audit' })[0] ?? '',
    /without a path/,
  );
  assert.match(issues({ bucket: 'audit', endpoint: 'not a url' })[0] ?? '', /expected the endpoint URL/);
});

test('keys, session token, profile and KMS key id are checked together', () => {
  const problems = (input: Record<string, unknown>) =>
    placementProblems(schema.parse({ bucket: 'audit', ...input }), operator).map((p) => p.path);
  assert.deepEqual(problems({ access_key_id: 'AKIAEXAMPLE' }), ['secret_access_key']);
  assert.deepEqual(problems({ secret_access_key: 'x' }), ['access_key_id']);
  assert.deepEqual(problems({ session_token: 'tok' }), ['session_token']);
  assert.deepEqual(problems({ ...keys, profile: 'audit' }), ['profile']);
  assert.deepEqual(problems({ sse_kms_key_id: 'alias/audit' }), ['sse_kms_key_id']);
  assert.deepEqual(
    problems({ sse: 'aws:kms', sse_kms_key_id: 'alias/audit', ...keys, session_token: 't' }),
    [],
  );
});

test("the operator's and all-tenant admins' sinks may use the SDK's default chain (no keys, no region)", () => {
  const o = schema.parse({ bucket: 'audit' });
  assert.deepEqual(placementProblems(o, operator), []);
  assert.deepEqual(placementProblems(o, allTenantAdmin), []);
  assert.deepEqual(placementProblems(schema.parse({ bucket: 'audit', profile: 'archive' }), operator), []);
});

test("a tenant-bound admin's sink must give its own keys and region: the host's identity is the operator's", () => {
  const problems = placementProblems(schema.parse({ bucket: 'audit' }), tenantAdmin);
  assert.deepEqual(
    problems.map((p) => p.path),
    ['access_key_id', 'region'],
  );
  assert.match(problems[0]?.message ?? '', /must give access_key_id and secret_access_key/);
  assert.match(problems[0]?.message ?? '', /instance role/);
  assert.match(problems[1]?.message ?? '', /must give region/);
  assert.deepEqual(
    placementProblems(schema.parse({ bucket: 'audit', region: 'eu-west-1', ...keys }), tenantAdmin),
    [],
  );
});

test('the keys are secret fields, and the profile and private networks are host options', () => {
  assert.deepEqual([...secretFields], ['access_key_id', 'secret_access_key', 'session_token']);
  assert.deepEqual([...hostOptions].sort(), ['allow_private_networks', 'profile']);
  for (const field of [...secretFields, ...hostOptions]) assert.ok(field in s3OptionsShape, field);
});
