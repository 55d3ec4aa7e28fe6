/**
 * The Azure Blob object store against real peers: Azurite 3.35 (started once
 * for the file, test/helpers/azurite.ts), a server answering 503 ServerBusy
 * and a server that never answers. Over 400 lines because every case shares
 * the one Azurite and the secrets they hand the store, which the last test
 * looks for in every error, detail and log line.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { after, before, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import {
  BlobSASPermissions,
  BlobServiceClient,
  type ContainerClient,
  generateBlobSASQueryParameters,
  StorageSharedKeyCredential,
} from '@azure/storage-blob';
import { z } from 'zod';
import type { SinkContext, SinkOwner } from '../../../../../src/delivery/sink.js';
import { createAzureBlobObjectStore } from '../../../../../src/delivery/sinks/archive/azure-blob/azure-blob-object-store.js';
import { azureBlobOptionsShape } from '../../../../../src/delivery/sinks/archive/azure-blob/azure-blob-options.js';
import {
  type ArchiveObject,
  OBJECT_METADATA,
  type ObjectStore,
  ObjectStoreError,
} from '../../../../../src/delivery/sinks/archive/object-store.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, type Azurite, startAzurite } from '../../../../helpers/azurite.js';

const OPERATOR: SinkOwner = { source: 'config', tenantId: null };
const TENANT_ADMIN: SinkOwner = { source: 'api', tenantId: 'acme' };
const CONTAINER = 'audit-archive';

let azurite: Azurite;
let admin: ContainerClient;
/** Every message a store under test logged, to look for secrets. */
const logged: string[] = [];

before(async () => {
  azurite = await startAzurite();
  admin = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(CONTAINER);
  await admin.create();
});
after(async () => {
  await azurite.stop();
});

function ctx(owner: SinkOwner = OPERATOR): SinkContext {
  const log = (msg: string, extra?: object) => logged.push(`${msg} ${JSON.stringify(extra ?? {})}`);
  return {
    name: 'archive',
    owner,
    format: 'json',
    dataDir: tmpdir(),
    allowedPrivateNetworks: [],
    fileRoot: null,
    now: Date.now,
    log: { info: log, warn: log },
  };
}

async function openStore(raw: Record<string, unknown>, owner?: SinkOwner): Promise<ObjectStore> {
  const options = z.object(azureBlobOptionsShape).parse({ container: CONTAINER, ...raw });
  return createAzureBlobObjectStore(options, ctx(owner));
}

/** An archive object as the writer makes it: gzipped JSON lines with their metadata. */
function archiveObject(key: string, body: Buffer = gzipSync('{"seq":1}\n{"seq":2}\n')): ArchiveObject {
  const sha256 = createHash('sha256').update(body).digest('hex');
  return {
    key,
    body,
    contentType: 'application/x-ndjson',
    contentEncoding: 'gzip',
    metadata: {
      [OBJECT_METADATA.firstSeq]: '1',
      [OBJECT_METADATA.lastSeq]: '2',
      [OBJECT_METADATA.events]: '2',
      [OBJECT_METADATA.sha256]: sha256,
    },
    sha256,
  };
}

const signal = () => new AbortController().signal;

async function withStore(
  raw: Record<string, unknown>,
  fn: (store: ObjectStore) => Promise<void>,
  owner?: SinkOwner,
) {
  const store = await openStore(raw, owner);
  try {
    await fn(store);
  } finally {
    await store.close();
  }
}

async function refusal(p: Promise<unknown>): Promise<ObjectStoreError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ObjectStoreError, `expected an ObjectStoreError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the call to fail');
}

/** Every secret the tests hand a store; none may appear in an error, a detail or a log line. */
const BAD_KEY = Buffer.alloc(64, 9).toString('base64');
const secretsSeen: string[] = [];

test('an object up to the single-put size is written in one request with its bytes, metadata, type and encoding', async () => {
  await withStore(
    { connection_string: azurite.connectionString, allow_private_networks: true },
    async (store) => {
      const obj = archiveObject(
        'trailwarden/tenant=acme/dt=2026-12-07/hour=21/0000000000000001-0000000000000002.jsonl.gz',
      );
      assert.deepEqual(await store.put(obj, signal()), { status: 'created' });
      const blob = admin.getBlockBlobClient(obj.key);
      assert.deepEqual(await blob.downloadToBuffer(), obj.body);
      const props = await blob.getProperties();
      assert.deepEqual(props.metadata, obj.metadata);
      assert.equal(props.contentType, 'application/x-ndjson');
      assert.equal(props.contentEncoding, 'gzip');
      // One Put Blob: no block was staged or committed.
      const blocks = await blob.getBlockList('all');
      assert.equal((blocks.committedBlocks ?? []).length, 0);
      assert.equal((blocks.uncommittedBlocks ?? []).length, 0);
    },
  );
});

test('an object above the single-put size goes as staged blocks and one conditional commit, read back byte for byte', async () => {
  await withStore(
    {
      connection_string: azurite.connectionString,
      allow_private_networks: true,
      single_put_max_bytes: 65_536,
      block_size_bytes: 65_536,
    },
    async (store) => {
      const body = randomBytes(200 * 1024 + 17);
      const obj = {
        ...archiveObject('big/0000000000000001-0000000000009999.log', body),
        contentEncoding: undefined,
      };
      obj.contentType = 'text/plain; charset=utf-8';
      assert.deepEqual(await store.put(obj, signal()), { status: 'created' });
      const blob = admin.getBlockBlobClient(obj.key);
      assert.deepEqual(await blob.downloadToBuffer(), body);
      const blocks = await blob.getBlockList('committed');
      assert.deepEqual(
        (blocks.committedBlocks ?? []).map((b) => b.size),
        [65_536, 65_536, 65_536, 200 * 1024 + 17 - 3 * 65_536],
      );
      const props = await blob.getProperties();
      assert.equal(props.metadata?.[OBJECT_METADATA.sha256], obj.sha256);
      assert.equal(props.contentType, 'text/plain; charset=utf-8');
      assert.equal(props.contentEncoding, undefined);
      // A second put of the same range: the commit's ifNoneMatch refuses it, the existing SHA-256 is reported.
      assert.deepEqual(await store.put(obj, signal()), { status: 'exists', sha256: obj.sha256 });
    },
  );
});

test('a second put of the same key leaves the first object and answers exists with its SHA-256', async () => {
  await withStore(
    { connection_string: azurite.connectionString, allow_private_networks: true },
    async (store) => {
      const first = archiveObject('again/0000000000000001-0000000000000002.jsonl.gz');
      assert.deepEqual(await store.put(first, signal()), { status: 'created' });
      const other = archiveObject(first.key, gzipSync('{"seq":1,"changed":true}\n'));
      assert.deepEqual(await store.put(other, signal()), { status: 'exists', sha256: first.sha256 });
      assert.deepEqual(await admin.getBlockBlobClient(first.key).downloadToBuffer(), first.body);
    },
  );
});

test('an object at the key without the SHA-256 metadata answers exists with null', async () => {
  const key = 'foreign/0000000000000001-0000000000000002.jsonl.gz';
  await admin.getBlockBlobClient(key).upload('foreign', 7);
  await withStore(
    { connection_string: azurite.connectionString, allow_private_networks: true },
    async (store) => {
      assert.deepEqual(await store.put(archiveObject(key), signal()), { status: 'exists', sha256: null });
    },
  );
});

test('healthcheck reads the container properties and writes nothing; a missing container is refused with ContainerNotFound', async () => {
  await withStore(
    { connection_string: azurite.connectionString, allow_private_networks: true },
    async (store) => {
      const before = await listKeys();
      const health = await store.healthcheck(signal());
      assert.equal(health.ok, true, health.detail);
      assert.match(health.detail, /audit-archive/);
      assert.deepEqual(await listKeys(), before);
    },
  );
  await withStore(
    {
      connection_string: azurite.connectionString,
      allow_private_networks: true,
      container: 'no-such-container',
    },
    async (store) => {
      const health = await store.healthcheck(signal());
      assert.equal(health.ok, false);
      assert.match(health.detail, /ContainerNotFound \(HTTP 404\)/);
      const err = await refusal(store.put(archiveObject('x.jsonl.gz'), signal()));
      assert.equal(err.kind, 'refused');
      assert.equal(err.code, 'ContainerNotFound');
      assert.equal(err.options.status, 404);
      secretsSeen.push(err.message, health.detail);
    },
  );
});

async function listKeys(): Promise<string[]> {
  const keys: string[] = [];
  for await (const b of admin.listBlobsFlat()) keys.push(b.name);
  return keys.sort();
}

test('a wrong account key is refused with the Azure error code, in a connection string and as account_key', async () => {
  const wrong = azurite.connectionString.replace(AZURITE_KEY, BAD_KEY);
  await withStore({ connection_string: wrong, allow_private_networks: true }, async (store) => {
    const err = await refusal(store.put(archiveObject('bad-key/a.jsonl.gz'), signal()));
    assert.equal(err.kind, 'refused');
    assert.equal(err.code, 'AuthorizationFailure');
    assert.equal(err.options.status, 403);
    const health = await store.healthcheck(signal());
    assert.equal(health.ok, false);
    assert.match(health.detail, /AuthorizationFailure/);
    secretsSeen.push(err.message, health.detail);
  });
  await withStore(
    {
      account_url: azurite.accountUrl,
      account_name: AZURITE_ACCOUNT,
      account_key: BAD_KEY,
      allow_private_networks: true,
    },
    async (store) => {
      const err = await refusal(store.put(archiveObject('bad-key/b.jsonl.gz'), signal()));
      assert.equal(err.kind, 'refused');
      assert.equal(err.code, 'AuthorizationFailure');
      secretsSeen.push(err.message);
    },
  );
  assert.deepEqual(
    (await listKeys()).filter((k) => k.startsWith('bad-key/')),
    [],
  );
});

test('account_url with account_name and account_key writes, reads back and checks health', async () => {
  await withStore(
    {
      account_url: azurite.accountUrl,
      account_name: AZURITE_ACCOUNT,
      account_key: AZURITE_KEY,
      allow_private_networks: true,
    },
    async (store) => {
      const obj = archiveObject('key-auth/0000000000000001-0000000000000002.jsonl.gz');
      assert.deepEqual(await store.put(obj, signal()), { status: 'created' });
      assert.deepEqual(await store.put(obj, signal()), { status: 'exists', sha256: obj.sha256 });
      assert.equal((await store.healthcheck(signal())).ok, true);
    },
  );
});

test('a SAS token with only the read, create and write permissions is enough to write, to find an existing object and for the healthcheck', async () => {
  const sas = generateBlobSASQueryParameters(
    {
      containerName: CONTAINER,
      permissions: BlobSASPermissions.parse('rcw'),
      expiresOn: new Date(Date.now() + 3_600_000),
    },
    new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
  ).toString();
  secretsSeen.push(sas);
  await withStore(
    { account_url: azurite.accountUrl, sas_token: sas, allow_private_networks: true },
    async (store) => {
      const health = await store.healthcheck(signal());
      assert.equal(health.ok, true, health.detail);
      // A container SAS may not read the container's properties: the healthcheck read a blob that is not there.
      assert.match(health.detail, /may not read container properties; a blob read answered/);
      const obj = archiveObject('sas/0000000000000001-0000000000000002.jsonl.gz');
      assert.deepEqual(await store.put(obj, signal()), { status: 'created' });
      assert.deepEqual(await store.put(obj, signal()), { status: 'exists', sha256: obj.sha256 });
      assert.deepEqual(await admin.getBlockBlobClient(obj.key).downloadToBuffer(), obj.body);
    },
  );
});

/** A blob service that answers every request with 503 ServerBusy and a Retry-After, counting requests. */
async function busyServer(): Promise<{ server: Server; url: string; requests: IncomingMessage[] }> {
  const requests: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    requests.push(req);
    req.resume();
    req.on('end', () => {
      res.writeHead(503, {
        'content-type': 'application/xml',
        'retry-after': '7',
        'x-ms-error-code': 'ServerBusy',
      });
      res.end(
        '<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code><Message>Ingress is over the account limit.\nRequestId:1</Message></Error>',
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/${AZURITE_ACCOUNT}`,
    requests,
  };
}

test('503 ServerBusy with Retry-After is throttled with the hint, after one quick retry by the SDK', async () => {
  const busy = await busyServer();
  try {
    await withStore(
      {
        account_url: busy.url,
        account_name: AZURITE_ACCOUNT,
        account_key: AZURITE_KEY,
        allow_private_networks: true,
      },
      async (store) => {
        const err = await refusal(store.put(archiveObject('busy/a.jsonl.gz'), signal()));
        assert.equal(err.kind, 'throttled');
        assert.equal(err.code, 'ServerBusy');
        assert.equal(err.options.status, 503);
        assert.equal(err.options.retryAfterMs, 7_000);
        assert.match(err.message, /ServerBusy \(HTTP 503\): Ingress is over the account limit\.$/);
        assert.equal(busy.requests.length, 2);
      },
    );
  } finally {
    busy.server.closeAllConnections();
    await new Promise((r) => busy.server.close(r));
  }
});

test("a tenant-bound admin's store reaches no private address: an IP literal and a name that resolves to one are refused before any request", async () => {
  const before = await listKeys();
  for (const host of ['127.0.0.1', 'localhost']) {
    const url = azurite.accountUrl.replace('127.0.0.1', host);
    // allow_private_networks is the operator's: a tenant-bound admin's sink is held to public addresses anyway.
    for (const allow of [false, true]) {
      await withStore(
        {
          account_url: url,
          account_name: AZURITE_ACCOUNT,
          account_key: AZURITE_KEY,
          allow_private_networks: allow,
        },
        async (store) => {
          const err = await refusal(store.put(archiveObject(`tenant/${host}.jsonl.gz`), signal()));
          assert.equal(err.kind, 'refused', err.message);
          assert.equal(err.code, 'TW_FORBIDDEN_ADDRESS');
          assert.match(
            err.message,
            /127\.0\.0\.1 is in a private range; a tenant-bound admin's sink reaches public addresses only/,
          );
          const health = await store.healthcheck(signal());
          assert.equal(health.ok, false);
          assert.match(health.detail, /TW_FORBIDDEN_ADDRESS/);
        },
        TENANT_ADMIN,
      );
    }
  }
  assert.deepEqual(await listKeys(), before);
});

test('the operator reaches a private address only with allow_private_networks', async () => {
  const url = azurite.accountUrl.replace('127.0.0.1', 'localhost');
  const raw = { account_url: url, account_name: AZURITE_ACCOUNT, account_key: AZURITE_KEY };
  await withStore(raw, async (store) => {
    const err = await refusal(store.put(archiveObject('operator/a.jsonl.gz'), signal()));
    assert.equal(err.code, 'TW_FORBIDDEN_ADDRESS');
    assert.match(err.message, /set allow_private_networks: true to allow/);
  });
  await withStore({ ...raw, allow_private_networks: true }, async (store) => {
    assert.deepEqual(await store.put(archiveObject('operator/a.jsonl.gz'), signal()), { status: 'created' });
  });
});

test("a tenant-bound admin's store cannot be created with DefaultAzureCredential", async () => {
  await assert.rejects(
    openStore({ account_url: 'https://auditacct.blob.core.windows.net' }, TENANT_ADMIN),
    (err: Error & { code?: string }) =>
      err.code === 'TW_ERR_CONFIG' && /cannot use DefaultAzureCredential/.test(err.message),
  );
});

/** A server that takes requests and never answers. */
async function silentServer(): Promise<{ server: Server; url: string; closed: Promise<void> }> {
  let onClose: () => void = () => undefined;
  const closed = new Promise<void>((r) => {
    onClose = r;
  });
  const server = createServer((req) => {
    req.socket.on('close', onClose);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/${AZURITE_ACCOUNT}`,
    closed,
  };
}

test('a request without an answer fails as transient after request_timeout_ms', {
  timeout: 30_000,
}, async () => {
  const silent = await silentServer();
  try {
    await withStore(
      {
        account_url: silent.url,
        account_name: AZURITE_ACCOUNT,
        account_key: AZURITE_KEY,
        allow_private_networks: true,
        request_timeout_ms: 1_000,
      },
      async (store) => {
        const err = await refusal(store.put(archiveObject('silent/a.jsonl.gz'), signal()));
        assert.equal(err.kind, 'transient');
        assert.equal(err.code, 'RequestTimeout');
      },
    );
  } finally {
    silent.server.closeAllConnections();
    await new Promise((r) => silent.server.close(r));
  }
});

test('close() ends an upload in progress and its connection', { timeout: 30_000 }, async () => {
  const silent = await silentServer();
  try {
    const store = await openStore({
      account_url: silent.url,
      account_name: AZURITE_ACCOUNT,
      account_key: AZURITE_KEY,
      allow_private_networks: true,
    });
    const put = refusal(store.put(archiveObject('closing/a.jsonl.gz'), signal()));
    await new Promise((r) => silent.server.once('request', r));
    await store.close();
    const err = await put;
    assert.equal(err.kind, 'transient');
    assert.equal(err.code, 'Closed');
    await silent.closed; // the server saw the connection end
  } finally {
    silent.server.closeAllConnections();
    await new Promise((r) => silent.server.close(r));
  }
});

test('a put aborted by its caller fails as transient and ends its request', { timeout: 30_000 }, async () => {
  const silent = await silentServer();
  try {
    await withStore(
      {
        account_url: silent.url,
        account_name: AZURITE_ACCOUNT,
        account_key: AZURITE_KEY,
        allow_private_networks: true,
      },
      async (store) => {
        const abort = new AbortController();
        const put = refusal(store.put(archiveObject('aborted/a.jsonl.gz'), abort.signal));
        await new Promise((r) => silent.server.once('request', r));
        abort.abort();
        const err = await put;
        assert.equal(err.kind, 'transient');
        assert.equal(err.code, 'Aborted');
        await silent.closed;
      },
    );
  } finally {
    silent.server.closeAllConnections();
    await new Promise((r) => silent.server.close(r));
  }
});

test("an operator's store with account_url alone uses DefaultAzureCredential, and no identity on the host is refused with the reason", async () => {
  // This machine has no Azure identity: no AZURE_* variables (cleared here), no managed identity, no CLI login.
  const saved = Object.entries(process.env).filter(([k]) => k.startsWith('AZURE_'));
  for (const [k] of saved) delete process.env[k];
  try {
    // https (bearer tokens are never sent over http) to a port nobody listens on: the token is asked for first.
    await withStore(
      { account_url: 'https://127.0.0.1:9/devstoreaccount1', allow_private_networks: true },
      async (store) => {
        const err = await refusal(store.put(archiveObject('dac/a.jsonl.gz'), signal()));
        assert.equal(err.kind, 'refused', err.message);
        assert.equal(err.code, 'AggregateAuthenticationError');
        assert.match(
          err.message,
          /ChainedTokenCredential authentication failed\.\\nCredentialUnavailableError: EnvironmentCredential is unavailable/,
        );
        const health = await store.healthcheck(signal());
        assert.equal(health.ok, false);
        assert.match(health.detail, /AggregateAuthenticationError/);
      },
    );
  } finally {
    for (const [k, v] of saved) process.env[k] = v;
  }
});

test('no secret appears in an error, a healthcheck detail or a log line', () => {
  const sasSig = /sig=([^&]+)/.exec(secretsSeen.find((s) => s.includes('sig=')) ?? '')?.[1];
  assert.ok(sasSig, 'the SAS test ran');
  const texts = [...secretsSeen.filter((s) => !s.includes('sig=')), ...logged];
  assert.ok(logged.length > 0, 'the stores logged');
  for (const text of texts) {
    for (const secret of [
      AZURITE_KEY,
      BAD_KEY,
      azurite.connectionString,
      sasSig,
      decodeURIComponent(sasSig),
    ]) {
      assert.ok(!text.includes(secret), `a secret in: ${text}`);
    }
  }
});

test('a connection string the SDK cannot read is a config error that does not quote it', async () => {
  const unreadable = `AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};EndpointSuffix=`;
  await assert.rejects(openStore({ connection_string: unreadable }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'TW_ERR_CONFIG');
    assert.match(err.message, /connection_string: the Azure SDK cannot read it/);
    assert.ok(!err.message.includes(AZURITE_KEY));
    return true;
  });
});
