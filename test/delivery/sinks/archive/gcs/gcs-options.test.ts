import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { z } from 'zod';
import type { SinkPlacement } from '../../../../../src/delivery/sink.js';
import {
  gcsHostOptions,
  gcsOptionsShape,
  gcsPlacementProblems,
  gcsSecretFields,
} from '../../../../../src/delivery/sinks/archive/gcs/gcs-options.js';

const schema = z.object(gcsOptionsShape);
const pem = String(
  generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
);
const KEY = JSON.stringify({
  type: 'service_account',
  client_email: 'w@p.iam.gserviceaccount.com',
  private_key: pem,
});
const operator: SinkPlacement = {
  owner: { source: 'config', tenantId: null },
  fileRoot: null,
  dataDir: '/data',
};
const allTenants: SinkPlacement = {
  owner: { source: 'api', tenantId: null },
  fileRoot: null,
  dataDir: '/data',
};
const tenant: SinkPlacement = {
  owner: { source: 'api', tenantId: 'acme' },
  fileRoot: null,
  dataDir: '/data',
};

function problems(raw: Record<string, unknown>): string[] {
  const res = schema.safeParse({ bucket: 'audit-archive', ...raw });
  return res.success ? [] : res.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

test('defaults: 8 MiB resumable threshold, 60 s per request, private networks refused', () => {
  const o = schema.parse({ bucket: 'audit-archive' });
  assert.equal(o.resumable_threshold_bytes, 8 * 1024 * 1024);
  assert.equal(o.request_timeout_ms, 60_000);
  assert.equal(o.allow_private_networks, false);
});

test('each option is refused past its limit, with a message naming what is expected', () => {
  assert.match(problems({ bucket: 'gs://Bad' })[0] ?? '', /bucket name.*no gs:\/\/ prefix/);
  assert.match(problems({ project_id: 'X' })[0] ?? '', /project id/);
  assert.match(problems({ resumable_threshold_bytes: 1000 })[0] ?? '', /at least 262144/);
  assert.match(problems({ resumable_threshold_bytes: 300_000 })[0] ?? '', /multiple of 262144/);
  assert.match(problems({ request_timeout_ms: 10 })[0] ?? '', /at least 1000/);
  assert.match(problems({ request_timeout_ms: 700_000 })[0] ?? '', /at most 600000/);
  assert.match(problems({ api_endpoint: 'ftp://x' })[0] ?? '', /http\(s\)/);
  assert.match(problems({ api_endpoint: 'https://u:p@storage.example.com/path' })[0] ?? '', /origin alone/);
  assert.match(problems({ credentials_json: 'x'.repeat(20_000) })[0] ?? '', /at most 16384/);
  assert.deepEqual(problems({ api_endpoint: 'https://storage.example.com', credentials_json: KEY }), []);
});

test('credentials_json must be a service-account key of googleapis.com, and no message repeats it', () => {
  const cases: Array<[string, RegExp]> = [
    ['{not json', /not valid JSON/],
    ['[]', /JSON object/],
    [JSON.stringify({ type: 'authorized_user', refresh_token: 'r' }), /service_account/],
    [JSON.stringify({ type: 'service_account', private_key: pem }), /client_email/],
    [JSON.stringify({ type: 'service_account', client_email: 'a@b' }), /private_key/],
    [
      JSON.stringify({
        type: 'service_account',
        client_email: 'a@b',
        private_key: pem,
        universe_domain: 'evil.test',
      }),
      /universe_domain/,
    ],
  ];
  for (const [value, expected] of cases) {
    const [message = ''] = problems({ credentials_json: value });
    assert.match(message, expected);
    const keyLine = pem.split('\n')[1] ?? '';
    assert.ok(!message.includes(keyLine), 'the private key is not repeated');
  }
});

test('the inline key is secret; the key file and private networks are host options', () => {
  assert.deepEqual([...gcsSecretFields], ['credentials_json']);
  assert.deepEqual([...gcsHostOptions].sort(), ['allow_private_networks', 'key_file']);
});

test("a tenant-bound admin's sink without an inline key is refused (no application default credentials); others may use them", () => {
  const adc = schema.parse({ bucket: 'audit-archive' });
  assert.deepEqual(gcsPlacementProblems(adc, operator), []);
  assert.deepEqual(gcsPlacementProblems(adc, allTenants), []);
  const refused = gcsPlacementProblems(adc, tenant);
  assert.equal(refused.length, 1);
  assert.equal(refused[0]?.path, 'credentials_json');
  assert.match(refused[0]?.message ?? '', /application default credentials/);
  // A key file is the host's too: without an inline key it is refused the same way.
  assert.equal(
    gcsPlacementProblems(schema.parse({ bucket: 'audit-archive', key_file: '/k.json' }), tenant).length,
    1,
  );
  assert.deepEqual(
    gcsPlacementProblems(schema.parse({ bucket: 'audit-archive', credentials_json: KEY }), tenant),
    [],
  );
});

test('credentials_json and key_file together are refused', () => {
  const both = schema.parse({ bucket: 'audit-archive', credentials_json: KEY, key_file: '/k.json' });
  assert.deepEqual(
    gcsPlacementProblems(both, operator).map((p) => p.path),
    ['key_file'],
  );
});
