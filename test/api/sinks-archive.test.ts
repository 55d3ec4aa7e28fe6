/**
 * Archive sinks (s3, azure_blob, gcs) through the sink API: key templates
 * checked with the sink's filter in view, and what a hostile tenant-bound
 * admin can do with them (docs/security.md): never the host's identity
 * (SDK default credential chains), files or private networks. The attacks
 * on a private address are made against a real S3 peer (s3rver) that must
 * see no request.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { rawEvent, type TestApp, testApp } from '../helpers/app.js';
import { S3RVER_KEYS, type S3rverPeer, startS3rver } from '../helpers/s3rver-peer.js';
import { until } from '../helpers/until.js';

const open: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (open.length > 0) await open.pop()!();
});

async function app(): Promise<TestApp> {
  const t = await testApp({ audit_reads: false });
  open.push(() => t.close());
  return t;
}

function call(t: TestApp, method: 'GET' | 'POST' | 'PATCH', url: string, auth: string, payload?: unknown) {
  return t.app.inject({
    method,
    url,
    headers: { authorization: auth },
    ...(payload === undefined ? {} : { payload: payload as object }),
  });
}

/** An S3 sink to AWS with keys of its own: what a tenant admin may create. */
const s3 = (extra: Record<string, unknown> = {}) => ({
  name: 'archive',
  type: 's3',
  bucket: 'acme-audit',
  region: 'eu-west-1',
  access_key_id: 'AKIAIOSFODNN7EXAMPLE',
  secret_access_key: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
  ...extra,
});

describe('key templates', () => {
  test('an operator sink of every tenant needs {tenant} in its key; one tenant in the filter does without', async () => {
    const t = await app();
    const shared = await call(t, 'POST', '/v1/sinks', t.admin, {
      ...s3({ key_template: 'audit/{yyyy}/{mm}/{dd}/{first_seq}-{last_seq}' }),
    });
    assert.equal(shared.statusCode, 422, shared.body);
    assert.equal(shared.json().code, 'TW_ERR_INVALID_SINK');
    assert.match(shared.json().detail, /key_template/);
    assert.match(shared.json().detail, /\{tenant\}/);
    const one = await call(t, 'POST', '/v1/sinks', t.admin, {
      ...s3({ key_template: 'audit/{yyyy}/{mm}/{dd}/{first_seq}-{last_seq}' }),
      filter: { tenants: ['acme'] },
    });
    assert.equal(one.statusCode, 201, one.body);
  });

  test('an unknown placeholder, no {first_seq}, a hole in the dates or a .. folder is refused, naming it', async () => {
    const t = await app();
    for (const [template, problem] of [
      ['t={tenant}/{yyyy}/{week}/{first_seq}', /\{week\}/],
      ['t={tenant}/{yyyy}/{mm}/part', /\{first_seq\}/],
      ['t={tenant}/{yyyy}/{dd}/{first_seq}', /\{dd\}.*\{mm\}|\{mm\}.*\{dd\}/],
      ['../t={tenant}/{first_seq}', /\.\./],
    ] as const) {
      const res = await call(t, 'POST', '/v1/sinks', t.admin, s3({ key_template: template }));
      assert.equal(res.statusCode, 422, `${template}: ${res.body}`);
      assert.match(res.json().detail, problem, template);
    }
  });

  test("a tenant-bound admin's sink is its tenant's only, so its key may leave {tenant} out", async () => {
    const t = await app();
    const acme = await t.key('admin', 'acme');
    const res = await call(t, 'POST', '/v1/sinks', acme, s3({ key_template: 'audit/{yyyy}/{first_seq}' }));
    assert.equal(res.statusCode, 201, res.body);
    assert.deepEqual(res.json().filter.tenants, ['acme']);
    assert.equal(res.json().secret_access_key, '********', 'the secret is masked');
  });
});

describe('settings only the SDK can check', () => {
  const unreadable = 'AccountName=acme;AccountKey=a2V5a2V5a2V5;';

  test('an Azure connection string the SDK cannot read is a 422 on create, and no sink is left stored', async () => {
    const t = await app();
    const res = await call(t, 'POST', '/v1/sinks', t.admin, {
      name: 'az',
      type: 'azure_blob',
      container: 'audit',
      connection_string: unreadable,
    });
    assert.equal(res.statusCode, 422, res.body);
    assert.equal(res.json().code, 'TW_ERR_INVALID_SINK');
    assert.match(res.json().detail, /connection_string: the Azure SDK cannot read it/);
    assert.doesNotMatch(res.body, /a2V5a2V5a2V5/, 'the key is not repeated');
    assert.equal((await call(t, 'GET', '/v1/sinks/az', t.admin)).statusCode, 404);
    assert.deepEqual(await t.parts.ctx.store.delivery.listSinkConfigs(), []);
  });

  test('a change to such a string is a 422, and the sink goes on with its settings before', async () => {
    const t = await app();
    const good = {
      name: 'az',
      type: 'azure_blob',
      container: 'audit',
      account_url: 'https://acme.blob.core.windows.net',
      sas_token: 'sv=2024-08-04&sp=rcw&sig=c2lnbmF0dXJl',
      enabled: false,
    };
    assert.equal((await call(t, 'POST', '/v1/sinks', t.admin, good)).statusCode, 201);
    // A merge patch: the SAS way out, the connection string in, the sink on.
    const res = await call(t, 'PATCH', '/v1/sinks/az', t.admin, {
      account_url: null,
      sas_token: null,
      connection_string: unreadable,
      enabled: true,
    });
    assert.equal(res.statusCode, 422, res.body);
    assert.match(res.json().detail, /connection_string: the Azure SDK cannot read it/);
    const kept = await call(t, 'GET', '/v1/sinks/az', t.admin);
    assert.equal(kept.statusCode, 200, kept.body);
    assert.equal(kept.json().account_url, good.account_url);
    assert.equal(kept.json().connection_string, undefined);
    assert.equal(kept.json().enabled, false);
    const [stored] = await t.parts.ctx.store.delivery.listSinkConfigs();
    assert.doesNotMatch(stored?.config ?? '', /connection_string/);
  });
});

describe('a bucket that is not there', () => {
  let peer: S3rverPeer;
  before(async () => {
    peer = await startS3rver({ buckets: [] });
  });
  after(() => peer.close());

  test('makes the sink failing at once with the provider code and an alert, parks nothing, and delivers once it is made', async () => {
    const t = await app();
    const created = await call(t, 'POST', '/v1/sinks', t.admin, {
      ...s3({ ...S3RVER_KEYS, bucket: 'late-bucket', region: 'us-east-1' }),
      endpoint: peer.endpoint,
      force_path_style: true,
      allow_private_networks: true,
      start_from: 'beginning',
      batch: { max_wait_ms: 0 },
      retry: { delays_ms: [200], jitter: 0 },
    });
    assert.equal(created.statusCode, 201, created.body);
    const posted = await call(t, 'POST', '/v1/events', t.admin, [
      rawEvent({ tenant_id: 'acme' }),
      rawEvent({ tenant_id: 'globex' }),
    ]);
    assert.equal(posted.statusCode, 201, posted.body);
    type Status = {
      state: string;
      lag_events: number;
      dead_letters: number;
      last_error: { reason: string } | null;
    };
    const status = async () => (await call(t, 'GET', '/v1/sinks/archive/status', t.admin)).json() as Status;
    await until(async () => (await status()).state === 'failing', 'the sink failing');
    const failing = await status();
    assert.match(failing.last_error?.reason ?? '', /NoSuchBucket/);
    assert.equal(failing.dead_letters, 0, 'nothing parked');
    const alerts = await call(t, 'GET', '/v1/events?action=sink.delivery.failing', t.admin);
    assert.match(alerts.body, /NoSuchBucket/);

    const { S3Client, CreateBucketCommand, ListObjectsV2Command } = await import('@aws-sdk/client-s3');
    const s3client = new S3Client({
      endpoint: peer.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: S3RVER_KEYS.access_key_id, secretAccessKey: S3RVER_KEYS.secret_access_key },
    });
    try {
      await s3client.send(new CreateBucketCommand({ Bucket: 'late-bucket' }));
      await until(async () => (await status()).lag_events === 0, 'the sink caught up', 20_000);
      assert.equal((await status()).state, 'healthy');
      const listed = await s3client.send(new ListObjectsV2Command({ Bucket: 'late-bucket' }));
      const keys = (listed.Contents ?? [])
        .map((o) => o.Key ?? '')
        .filter((k) => !k.includes('_checkpoints/'));
      // Our two events, each in its tenant's object; the service's own (sink.created, the alerts) under tenant=default.
      for (const tenant of ['acme', 'globex'])
        assert.ok(
          keys.some((k) => k.includes(`tenant=${tenant}/`)),
          `an object of ${tenant}: ${keys.join(', ')}`,
        );
    } finally {
      s3client.destroy();
    }
  });
});

describe('a tenant-bound admin cannot use the host through an archive sink', () => {
  test('no SDK default credential chain: S3 without keys or region, Azure without its own credential, GCS without a key are refused', async () => {
    const t = await app();
    const acme = await t.key('admin', 'acme');
    const attempts: Array<[Record<string, unknown>, RegExp]> = [
      [{ name: 'a', type: 's3', bucket: 'acme-audit', region: 'eu-west-1' }, /access_key_id|keys/],
      [{ ...s3({ name: 'b' }), region: undefined }, /region/],
      [
        {
          name: 'c',
          type: 'azure_blob',
          container: 'audit',
          account_url: 'https://acme.blob.core.windows.net',
        },
        /DefaultAzureCredential|credential/i,
      ],
      [{ name: 'd', type: 'gcs', bucket: 'acme-audit' }, /credentials_json|default credentials/],
    ];
    for (const [sink, reason] of attempts) {
      const res = await call(t, 'POST', '/v1/sinks', acme, sink);
      assert.equal(res.statusCode, 422, `${sink['name']}: ${res.body}`);
      assert.equal(res.json().code, 'TW_ERR_INVALID_SINK');
      assert.match(res.json().detail, reason);
    }
    // The operator may run on the host's identity (an instance role, workload identity).
    const operator = await call(t, 'POST', '/v1/sinks', t.admin, {
      name: 'op',
      type: 's3',
      bucket: 'audit',
    });
    assert.equal(operator.statusCode, 201, operator.body);
  });

  test('host options (credential files, profiles, private networks) are refused with 403', async () => {
    const t = await app();
    const acme = await t.key('admin', 'acme');
    for (const sink of [
      s3({ allow_private_networks: true }),
      { ...s3(), access_key_id: undefined, secret_access_key: undefined, profile: 'prod' },
      { name: 'g', type: 'gcs', bucket: 'acme-audit', key_file: '/var/run/secrets/gcp/key.json' },
      {
        name: 'z',
        type: 'azure_blob',
        container: 'audit',
        connection_string:
          'DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=a2V5a2V5a2V5;EndpointSuffix=core.windows.net',
        allow_private_networks: true,
      },
    ]) {
      const res = await call(t, 'POST', '/v1/sinks', acme, sink);
      assert.equal(res.statusCode, 403, `${JSON.stringify(sink)}: ${res.body}`);
      assert.match(res.json().detail, /only the operator \(config file\) and all-tenant admins/);
    }
  });

  describe('an endpoint on a private address', () => {
    let peer: S3rverPeer;
    before(async () => {
      peer = await startS3rver({ buckets: ['acme-audit'] });
    });
    after(() => peer.close());

    test('is accepted as a setting but never reached: the sink fails, refused, and the peer sees no request', async () => {
      const t = await app();
      const acme = await t.key('admin', 'acme');
      const before = peer.log.length;
      const created = await call(t, 'POST', '/v1/sinks', acme, {
        ...s3({ ...S3RVER_KEYS, bucket: 'acme-audit', region: 'us-east-1' }),
        endpoint: peer.endpoint,
        force_path_style: true,
        start_from: 'beginning',
        batch: { max_wait_ms: 0 },
      });
      assert.equal(created.statusCode, 201, created.body);
      assert.equal(
        (await call(t, 'POST', '/v1/events', t.admin, rawEvent({ tenant_id: 'acme' }))).statusCode,
        201,
      );
      const status = async () =>
        (await call(t, 'GET', '/v1/sinks/archive/status', acme)).json() as {
          state: string;
          last_error: { reason: string } | null;
        };
      // Refused for its settings: failing at once, not after failing_after_ms.
      await until(async () => (await status()).state === 'failing', 'the sink failing');
      assert.match((await status()).last_error?.reason ?? '', /TW_FORBIDDEN_ADDRESS|private|forbidden/i);
      assert.deepEqual(peer.log.slice(before), [], 'requests s3rver received');
    });
  });
});
