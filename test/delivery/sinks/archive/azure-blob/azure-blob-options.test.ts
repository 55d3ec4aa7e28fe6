import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { z } from 'zod';
import type { SinkPlacement } from '../../../../../src/delivery/sink.js';
import {
  type AzureBlobOptions,
  azureBlobAuth,
  azureBlobHostOptions,
  azureBlobOptionsShape,
  azureBlobPlacementProblems,
  azureBlobSecretFields,
} from '../../../../../src/delivery/sinks/archive/azure-blob/azure-blob-options.js';

const schema = z.object(azureBlobOptionsShape);
const KEY = Buffer.alloc(64, 7).toString('base64');
const SAS = 'sv=2025-01-05&ss=b&srt=co&sp=rcw&se=2030-01-01T00:00:00Z&sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D';
const CS = `DefaultEndpointsProtocol=https;AccountName=auditacct;AccountKey=${KEY};EndpointSuffix=core.windows.net`;

function parse(raw: Record<string, unknown>): AzureBlobOptions {
  return schema.parse({ container: 'audit-archive', ...raw });
}

/** The messages of a refused option set, by path. */
function issues(raw: Record<string, unknown>): string[] {
  const r = schema.safeParse({ container: 'audit-archive', ...raw });
  assert.equal(r.success, false, `expected ${JSON.stringify(raw)} to be refused`);
  return r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

const operator: SinkPlacement = {
  owner: { source: 'config', tenantId: null },
  fileRoot: null,
  dataDir: '/tmp',
};
const allTenantAdmin: SinkPlacement = {
  owner: { source: 'api', tenantId: null },
  fileRoot: null,
  dataDir: '/tmp',
};
const tenantAdmin: SinkPlacement = {
  owner: { source: 'api', tenantId: 'acme' },
  fileRoot: null,
  dataDir: '/tmp',
};

test('container names follow the Azure rules, with a message saying them', () => {
  for (const bad of ['ab', 'Audit', 'audit--log', '-audit', 'audit-', 'a'.repeat(64), 'audit_log']) {
    const msgs = issues({ container: bad, connection_string: CS });
    assert.match(msgs.join(), /container: an Azure container name has 3 to 63 characters/, bad);
  }
  for (const good of ['abc', 'audit-log-2026', 'a'.repeat(63), '0audit']) {
    assert.equal(parse({ container: good, connection_string: CS }).container, good);
  }
});

test('defaults: 32 MiB single put, 8 MiB blocks, 60 s per request, 4 connections, private networks refused', () => {
  const o = parse({ connection_string: CS });
  assert.equal(o.single_put_max_bytes, 32 * 1024 * 1024);
  assert.equal(o.block_size_bytes, 8 * 1024 * 1024);
  assert.equal(o.request_timeout_ms, 60_000);
  assert.equal(o.max_connections, 4);
  assert.equal(o.allow_private_networks, false);
});

test('sizes, timeout and connections have limits that say the bound', () => {
  assert.match(
    issues({ connection_string: CS, block_size_bytes: 1000 }).join(),
    /block_size_bytes: at least 65536 bytes/,
  );
  assert.match(
    issues({ connection_string: CS, single_put_max_bytes: 512 * 1024 * 1024 }).join(),
    /single_put_max_bytes: at most 268435456 bytes/,
  );
  assert.match(
    issues({ connection_string: CS, request_timeout_ms: 10 }).join(),
    /request_timeout_ms: at least 1000 ms/,
  );
  assert.match(issues({ connection_string: CS, max_connections: 0 }).join(), /max_connections: at least 1/);
});

test('a connection string without a key or SAS, or not one at all, is refused without quoting it', () => {
  const noKey = 'DefaultEndpointsProtocol=https;AccountName=auditacct;EndpointSuffix=core.windows.net';
  assert.match(
    issues({ connection_string: noKey }).join(),
    /holds no AccountKey and no SharedAccessSignature/,
  );
  const junk = `not-a-connection-string-${KEY}`;
  const msgs = issues({ connection_string: junk }).join();
  assert.match(msgs, /expected a connection string such as/);
  assert.ok(!msgs.includes(KEY), 'the message quotes the secret');
  assert.equal(
    parse({ connection_string: 'UseDevelopmentStorage=true' }).connection_string,
    'UseDevelopmentStorage=true',
  );
});

test('account_url is an http(s) URL without credentials or a query, so no SAS is stored in plain text', () => {
  assert.match(
    issues({ account_url: 'ftp://x.example' }).join(),
    /expected an http\(s\) URL, got a ftp: URL/,
  );
  assert.match(issues({ account_url: 'not a url' }).join(), /expected an http\(s\) URL such as/);
  assert.match(
    issues({ account_url: `https://acct.blob.core.windows.net/?${SAS}` }).join(),
    /put the SAS token in sas_token/,
  );
});

test('a SAS token, account name and account key are checked for their form', () => {
  const url = 'https://auditacct.blob.core.windows.net';
  assert.match(issues({ account_url: url, sas_token: 'hello' }).join(), /sas_token: expected a SAS token/);
  assert.match(
    issues({ account_url: url, account_name: 'Audit_Acct', account_key: KEY }).join(),
    /account_name: an Azure storage account name has 3 to 24/,
  );
  assert.match(
    issues({ account_url: url, account_name: 'auditacct', account_key: 'not base64!' }).join(),
    /account_key: expected the account key in base64/,
  );
});

test('exactly one way to authenticate is chosen, and each mix names the option to leave out', () => {
  const url = 'https://auditacct.blob.core.windows.net';
  const problems = (raw: Record<string, unknown>) => azureBlobPlacementProblems(parse(raw), operator);
  assert.deepEqual(
    problems({ connection_string: CS, account_url: url }).map((p) => p.path),
    ['account_url'],
  );
  assert.match(problems({ connection_string: CS, sas_token: SAS })[0]?.message ?? '', /leave this out/);
  assert.deepEqual(
    problems({}).map((p) => p.path),
    ['account_url'],
  );
  assert.match(problems({})[0]?.message ?? '', /set connection_string, or account_url/);
  assert.deepEqual(
    problems({ account_url: url, sas_token: SAS, account_name: 'auditacct', account_key: KEY }).map(
      (p) => p.path,
    ),
    ['sas_token'],
  );
  assert.deepEqual(
    problems({ account_url: url, account_key: KEY }).map((p) => p.path),
    ['account_name'],
  );
  assert.deepEqual(
    problems({ account_url: url, account_name: 'auditacct' }).map((p) => p.path),
    ['account_key'],
  );

  const kind = (raw: Record<string, unknown>) => {
    const r = azureBlobAuth(parse(raw));
    return 'auth' in r ? r.auth.kind : 'problems';
  };
  assert.equal(kind({ connection_string: CS }), 'connection_string');
  assert.equal(kind({ account_url: url, sas_token: `?${SAS}` }), 'sas');
  assert.equal(kind({ account_url: url, account_name: 'auditacct', account_key: KEY }), 'account_key');
  assert.equal(kind({ account_url: url }), 'default_credential');
});

test('a leading ? of a pasted SAS token is dropped', () => {
  const r = azureBlobAuth(parse({ account_url: 'https://a.blob.core.windows.net', sas_token: `?${SAS}` }));
  assert.ok('auth' in r && r.auth.kind === 'sas');
  assert.equal(r.auth.sasToken, SAS);
});

test("DefaultAzureCredential is for the operator's and all-tenant admins' sinks only, never a tenant-bound admin's", () => {
  const o = parse({ account_url: 'https://auditacct.blob.core.windows.net' });
  assert.deepEqual(azureBlobPlacementProblems(o, operator), []);
  assert.deepEqual(azureBlobPlacementProblems(o, allTenantAdmin), []);
  const refused = azureBlobPlacementProblems(o, tenantAdmin);
  assert.deepEqual(
    refused.map((p) => p.path),
    ['account_url'],
  );
  assert.match(
    refused[0]?.message ?? '',
    /cannot use the server's own Azure identity \(DefaultAzureCredential\)/,
  );
  // With its own credentials a tenant-bound admin's sink is fine.
  const own = parse({ account_url: 'https://auditacct.blob.core.windows.net', sas_token: SAS });
  assert.deepEqual(azureBlobPlacementProblems(own, tenantAdmin), []);
});

test('the secrets are the connection string, the SAS token and the account key; allow_private_networks is a host option', () => {
  assert.deepEqual([...azureBlobSecretFields].sort(), ['account_key', 'connection_string', 'sas_token']);
  assert.deepEqual([...azureBlobHostOptions], ['allow_private_networks']);
});

test('no Azure SDK is loaded with the options or the error mapping, and the store imports it only when created', () => {
  const dir = new URL('../../../../../src/delivery/sinks/archive/azure-blob/', import.meta.url);
  const source = (file: string) => readFileSync(new URL(file, dir), 'utf8');
  // A static import other than `import type` would load the SDK with the registry, on every server.
  const staticSdkImport = /^import(?!\s+type\b)[^;]*from\s+'@azure\//m;
  for (const file of ['azure-blob-options.ts', 'azure-blob-errors.ts', 'azure-blob-object-store.ts']) {
    assert.doesNotMatch(source(file), staticSdkImport, file);
  }
  const store = source('azure-blob-object-store.ts');
  assert.match(store, /await import\('@azure\/storage-blob'\)/);
  assert.match(store, /await import\('@azure\/identity'\)/);
});
