/**
 * The peers of the archive sinks as the sink conformance suite drives them
 * (see sink-peers.ts for the others): s3rver for `s3`, Azurite for
 * `azure_blob`, and for `gcs` the JSON-API contract fake (no GCS emulator
 * runs here: test/helpers/gcs-fake.ts). Each sits behind a TCP gate, so it
 * can go down and come back at the same address, and is read back the way
 * a bucket's reader would (listing, then each object's bytes, gunzipped).
 *
 * Every sink opened on a peer writes under a prefix of its own
 * (`run-0001/…`), so sinks of different tests never meet at a key, and the
 * objects sorted by key list what the peer took in the order it took it.
 */
import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { BUCKET, type Downloaded, startAzuriteBucket, startS3rverBucket } from './archive-buckets.js';
import { AZURITE_ACCOUNT, AZURITE_KEY } from './azurite.js';
import { startGcsFake } from './gcs-fake.js';
import { S3RVER_KEYS } from './s3rver-peer.js';
import { gateConnections, inProcessHost, type SinkPeer } from './sink-peers.js';
import { startTcpGate, type TcpGate } from './tcp-gate.js';

/** An object's lines as the sink wrote them (gunzipped when its bytes are gzip). */
function linesOf(bytes: Uint8Array): string[] {
  const buf = Buffer.from(bytes);
  const text = (buf[0] === 0x1f && buf[1] === 0x8b ? gunzipSync(buf) : buf).toString('utf8');
  return text.split('\n').slice(0, -1);
}

/** The seq of each event of the data objects (checkpoint notes left out), objects in key order. */
function seqsOf(objects: Array<{ key: string; bytes: Uint8Array }>): number[] {
  return objects
    .filter((o) => !o.key.includes('/_checkpoints/'))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .flatMap((o) => linesOf(o.bytes).map((l) => Number((JSON.parse(l) as { seq?: unknown }).seq)));
}

/** What every archive peer shares: the gate, a prefix per opened sink, the contract's reads. */
function archivePeer(opts: {
  kind: string;
  gate: TcpGate;
  options: Record<string, unknown>;
  secrets: Record<string, string>;
  objects(): Promise<Array<{ key: string; bytes: Uint8Array }>>;
  stop(): Promise<void>;
}): SinkPeer {
  let runs = 0;
  const dataObjects = async () => (await opts.objects()).filter((o) => !o.key.includes('/_checkpoints/'));
  return {
    host: inProcessHost(opts.kind),
    options: () => {
      runs += 1;
      return {
        ...opts.options,
        key_template: `run-${String(runs).padStart(4, '0')}/tenant={tenant}/dt={yyyy}-{mm}-{dd}/{first_seq}-{last_seq}`,
        // An object waits for no company: the contract's batches are small.
        batch: { max_wait_ms: 0 },
        allow_private_networks: true,
      };
    },
    secrets: opts.secrets,
    held: async () => seqsOf(await opts.objects()),
    deliveries: async () => (await dataObjects()).length,
    problems: () => [],
    goDown: () => opts.gate.down(),
    comeBack: () => opts.gate.up(),
    heldOpen: () => gateConnections(opts.gate),
    async stop() {
      await opts.gate.close();
      await opts.stop();
    },
  };
}

/** What the contract reads of a downloaded object. */
const keyAndBytes = (objects: Downloaded[]) => objects.map((o) => ({ key: o.key, bytes: o.bytes }));

/** s3rver behind a gate, with explicit keys and a session token (s3rver signs with its fixed keys). */
export async function startS3Peer(): Promise<SinkPeer> {
  const bucket = await startS3rverBucket();
  const gate = await startTcpGate(bucket.port);
  const sessionToken = `tw-session-${randomBytes(18).toString('base64url')}`;
  return archivePeer({
    kind: 's3',
    gate,
    options: {
      ...bucket.sinkOptions(`http://127.0.0.1:${gate.port}`),
      session_token: sessionToken,
      connect_timeout_ms: 2000,
      request_timeout_ms: 5000,
    },
    secrets: { ...S3RVER_KEYS, session_token: sessionToken },
    objects: async () => keyAndBytes(await bucket.download()),
    stop: () => bucket.stop(),
  });
}

/** How an azure_blob entry authenticates to Azurite (each secret option by one entry). */
export type AzureAuth = 'connection_string' | 'account_key' | 'sas_token';

/** Azurite behind a gate, its container made, the sink authenticated one of three ways. */
export async function startAzureBlobPeer(auth: AzureAuth): Promise<SinkPeer> {
  const bucket = await startAzuriteBucket();
  const gate = await startTcpGate(bucket.port);
  const endpoint = `http://127.0.0.1:${gate.port}`;
  const accountUrl = `${endpoint}/${AZURITE_ACCOUNT}`;
  let options: Record<string, unknown>;
  let secrets: Record<string, string>;
  if (auth === 'connection_string') {
    options = bucket.sinkOptions(endpoint);
    secrets = { connection_string: String(options['connection_string']) };
  } else if (auth === 'account_key') {
    options = {
      container: BUCKET,
      account_url: accountUrl,
      account_name: AZURITE_ACCOUNT,
      account_key: AZURITE_KEY,
    };
    secrets = { account_key: AZURITE_KEY };
  } else {
    const blob = await import('@azure/storage-blob');
    const sas = blob
      .generateBlobSASQueryParameters(
        {
          containerName: BUCKET,
          permissions: blob.BlobSASPermissions.parse('rcw'),
          expiresOn: new Date(Date.now() + 3_600_000),
        },
        new blob.StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
      )
      .toString();
    options = { container: BUCKET, account_url: accountUrl, sas_token: sas };
    secrets = { sas_token: sas };
  }
  return archivePeer({
    kind: 'azure_blob',
    gate,
    options: { request_timeout_ms: 5000, ...options },
    secrets,
    objects: async () => keyAndBytes(await bucket.download()),
    stop: () => bucket.stop(),
  });
}

/**
 * The GCS contract fake behind a gate. Without credentials: with a key the
 * SDK first fetches a token from Google's fixed token endpoint, which
 * nothing here can stand in for (see the suite's entry).
 */
export async function startGcsPeer(): Promise<SinkPeer> {
  const fake = await startGcsFake();
  fake.addBucket(BUCKET);
  const gate = await startTcpGate(Number(new URL(fake.url).port));
  return archivePeer({
    kind: 'gcs',
    gate,
    options: {
      bucket: BUCKET,
      project_id: 'conformance',
      api_endpoint: `http://127.0.0.1:${gate.port}`,
      request_timeout_ms: 5000,
    },
    secrets: {},
    objects: async () =>
      [...fake.objects.entries()]
        .filter(([key]) => key.startsWith(`${BUCKET}/`))
        .map(([key, o]) => ({ key: key.slice(BUCKET.length + 1), bytes: o.bytes })),
    stop: () => fake.close(),
  });
}
