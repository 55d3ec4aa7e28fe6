/**
 * The {@link ObjectStore} of the `azure_blob` sink over the official
 * `@azure/storage-blob` SDK (and `@azure/identity` for
 * DefaultAzureCredential), both imported only when such a sink is created.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { BlobServiceClient, ContainerClient, StoragePipelineOptions } from '@azure/storage-blob';
import { TrailwardenError } from '../../../../errors.js';
import type { HealthcheckResult, SinkContext } from '../../../sink.js';
import { type NetworkGuard, sinkNetworkGuard } from '../../net/network-guard.js';
import {
  type ArchiveObject,
  OBJECT_METADATA,
  type ObjectStore,
  ObjectStoreError,
  type PutResult,
} from '../object-store.js';
import { azureFailure, toObjectStoreError } from './azure-blob-errors.js';
import {
  type AzureBlobAuth,
  type AzureBlobOptions,
  azureBlobAuth,
  connectionStringFields,
} from './azure-blob-options.js';

/** Blocks staged at once for one object above the single-put size. */
const BLOCK_CONCURRENCY = 4;

/**
 * The SDK's own retries: two tries in all, the second at once (the
 * exponential policy's first delay is zero). One retry covers a keep-alive
 * connection the service closed between two requests (ECONNRESET) without
 * failing the delivery; anything longer is the sink's retry schedule, which
 * honours Retry-After, shows in the status and can be interrupted, where the
 * SDK's default (4 tries, 4 s to 2 min apart) would hold the delivery for
 * minutes without saying why.
 */
const SDK_MAX_TRIES = 2;

type Agent = http.Agent;

/**
 * An HTTP(S) agent whose connections go through the sink's network guard:
 * hostnames through the guard's `lookup` (checked on the address connected
 * to), IP-literal hosts, for which Node does no lookup, checked here before
 * connecting. Redirects reuse the agent, so they are checked too.
 */
function guardedAgent(protocol: string, guard: NetworkGuard, maxSockets: number): Agent {
  const options = { keepAlive: true, maxSockets, ...(guard.active ? { lookup: guard.lookup } : {}) };
  // A refused address fails the request the way a failed connect does: a socket that errors at once.
  const refusedSocket = (host: string | null | undefined): Socket | null => {
    try {
      guard.checkLiteral(host ?? '');
      return null;
    } catch (err) {
      const socket = new Socket();
      process.nextTick(() => socket.destroy(err instanceof Error ? err : new Error(String(err))));
      return socket;
    }
  };
  if (protocol === 'https:') {
    return new (class extends https.Agent {
      override createConnection(o: https.RequestOptions, cb?: (err: Error | null, stream: Duplex) => void) {
        return refusedSocket(o.host ?? o.hostname) ?? super.createConnection(o, cb);
      }
    })(options);
  }
  return new (class extends http.Agent {
    override createConnection(o: http.ClientRequestArgs, cb?: (err: Error | null, stream: Duplex) => void) {
      return refusedSocket(o.host ?? o.hostname) ?? super.createConnection(o, cb);
    }
  })(options);
}

/** The signature of a SAS token (the part that grants access), raw and URL-decoded. */
function sasSignatures(sas: string): string[] {
  const sig = new URLSearchParams(sas).get('sig');
  return sig ? [sig, encodeURIComponent(sig)] : [];
}

/** The secret values of an authentication, removed from every message. */
function secretsOf(auth: AzureBlobAuth): string[] {
  switch (auth.kind) {
    case 'connection_string': {
      const f = connectionStringFields(auth.connectionString);
      const sas = f.get('sharedaccesssignature');
      return [auth.connectionString, f.get('accountkey') ?? '', ...(sas ? [sas, ...sasSignatures(sas)] : [])];
    }
    case 'sas':
      return [auth.sasToken, ...sasSignatures(auth.sasToken)];
    case 'account_key':
      return [auth.accountKey];
    case 'default_credential':
      return [];
  }
}

/** The blob service URL an authentication names, to pick the agent's protocol. */
function serviceUrl(auth: AzureBlobAuth, fromConnectionString: (cs: string) => string): string {
  return auth.kind === 'connection_string' ? fromConnectionString(auth.connectionString) : auth.accountUrl;
}

async function serviceClient(
  auth: AzureBlobAuth,
  pipeline: StoragePipelineOptions,
): Promise<BlobServiceClient> {
  const sdk = await import('@azure/storage-blob');
  switch (auth.kind) {
    case 'connection_string':
      return sdk.BlobServiceClient.fromConnectionString(auth.connectionString, pipeline);
    case 'sas': {
      const url = new URL(auth.accountUrl);
      url.search = auth.sasToken;
      return new sdk.BlobServiceClient(url.toString(), new sdk.AnonymousCredential(), pipeline);
    }
    case 'account_key':
      return new sdk.BlobServiceClient(
        auth.accountUrl,
        new sdk.StorageSharedKeyCredential(auth.accountName, auth.accountKey),
        pipeline,
      );
    case 'default_credential': {
      const { DefaultAzureCredential } = await import('@azure/identity');
      return new sdk.BlobServiceClient(auth.accountUrl, new DefaultAzureCredential(), pipeline);
    }
  }
}

/** Denials of a container read to a SAS scoped to the container or to objects; the healthcheck then reads a blob. */
const CONTAINER_READ_DENIED = new Set([
  'AuthorizationPermissionMismatch',
  'AuthorizationResourceTypeMismatch',
]);
/** A key no archive writes (the writer's keys end in .jsonl, .log, .gz or .note), read by the healthcheck. */
const HEALTHCHECK_KEY = '.trailwarden-healthcheck';

/** Deterministic block ids (same object, same ids), of equal length as Azure requires. */
function blockId(index: number): string {
  return Buffer.from(`trailwarden-block-${String(index).padStart(6, '0')}`).toString('base64');
}

const md5 = (b: Buffer) => createHash('md5').update(b).digest();

/**
 * Creates the Azure Blob object store of a sink: the options' one
 * authentication, an HTTP agent through the sink's network guard, small SDK
 * retries and a timeout on every call. Fails with `TW_ERR_CONFIG` when the
 * options authenticate ambiguously or, for a tenant-bound admin's sink, as
 * the server (placementProblems refuses both before a sink is stored).
 */
export async function createAzureBlobObjectStore(
  options: AzureBlobOptions,
  ctx: SinkContext,
): Promise<ObjectStore> {
  const chosen = azureBlobAuth(options);
  if ('problems' in chosen) {
    const text = chosen.problems.map((p) => `${p.path}: ${p.message}`).join('; ');
    throw new TrailwardenError('TW_ERR_CONFIG', `sink ${ctx.name}: ${text}`);
  }
  const auth = chosen.auth;
  if (auth.kind === 'default_credential' && ctx.owner.tenantId !== null) {
    throw new TrailwardenError(
      'TW_ERR_CONFIG',
      `sink ${ctx.name}: a tenant-bound admin's sink cannot use DefaultAzureCredential; set sas_token or account_name with account_key`,
    );
  }
  const sdk = await import('@azure/storage-blob');
  let url: string;
  try {
    url = serviceUrl(auth, (cs) => sdk.BlobServiceClient.fromConnectionString(cs).url);
  } catch {
    // The SDK's message may quote the connection string: not passed on.
    throw new TrailwardenError(
      'TW_ERR_CONFIG',
      `sink ${ctx.name}: connection_string: the Azure SDK cannot read it; copy it again from the portal (Access keys) or use account_url`,
    );
  }
  const guard = sinkNetworkGuard(options.allow_private_networks, ctx);
  const agent = guardedAgent(new URL(url).protocol, guard, options.max_connections);
  // StoragePipelineOptions does not declare `agent`, but the SDK hands its
  // options on to core-rest-pipeline's createPipelineFromOptions, whose
  // agentPolicy puts this agent on every request (what the guard relies on;
  // azure-blob-object-store.int.test.ts checks it with a hostname that
  // resolves to a private address).
  const pipeline: StoragePipelineOptions & { agent: Agent } = {
    agent,
    retryOptions: { maxTries: SDK_MAX_TRIES, tryTimeoutInMs: options.request_timeout_ms },
    userAgentOptions: { userAgentPrefix: 'trailwarden' },
  };
  const container = (await serviceClient(auth, pipeline)).getContainerClient(options.container);
  return new AzureBlobObjectStore(container, agent, options, auth, ctx);
}

class AzureBlobObjectStore implements ObjectStore {
  readonly target: string;
  private readonly closing = new AbortController();
  private readonly secrets: string[];

  constructor(
    private readonly container: ContainerClient,
    private readonly agent: Agent,
    private readonly options: AzureBlobOptions,
    auth: AzureBlobAuth,
    private readonly ctx: SinkContext,
  ) {
    const u = new URL(container.url);
    u.search = '';
    this.target = u.toString();
    this.secrets = secretsOf(auth);
    ctx.log.info('azure blob archive store ready', { target: this.target, authentication: auth.kind });
  }

  /** One SDK call under the caller's signal, close() and the request timeout; its failure as an ObjectStoreError. */
  private async call<T>(what: string, signal: AbortSignal, fn: (abortSignal: AbortSignal) => Promise<T>) {
    const timeout = AbortSignal.timeout(this.options.request_timeout_ms);
    try {
      return await fn(AbortSignal.any([signal, this.closing.signal, timeout]));
    } catch (err) {
      if (this.closing.signal.aborted)
        throw new ObjectStoreError('transient', 'Closed', `${what}: the sink closed`);
      if (signal.aborted) throw new ObjectStoreError('transient', 'Aborted', `${what}: aborted`);
      if (timeout.aborted && azureFailure(err).status === undefined) {
        throw new ObjectStoreError(
          'transient',
          'RequestTimeout',
          `${what}: no answer within request_timeout_ms (${this.options.request_timeout_ms} ms)`,
        );
      }
      throw toObjectStoreError(err, what, this.secrets, this.ctx.now());
    }
  }

  async put(obj: ArchiveObject, signal: AbortSignal): Promise<PutResult> {
    const blob = this.container.getBlockBlobClient(obj.key);
    const common = {
      conditions: { ifNoneMatch: '*' },
      metadata: { ...obj.metadata, [OBJECT_METADATA.sha256]: obj.sha256 },
      blobHTTPHeaders: {
        blobContentType: obj.contentType,
        ...(obj.contentEncoding ? { blobContentEncoding: obj.contentEncoding } : {}),
      },
    };
    const what = `put ${obj.key} into ${this.target}`;
    try {
      if (obj.body.length <= this.options.single_put_max_bytes) {
        await this.call(what, signal, (abortSignal) =>
          blob.upload(obj.body, obj.body.length, {
            ...common,
            blobHTTPHeaders: { ...common.blobHTTPHeaders, blobContentMD5: md5(obj.body) },
            abortSignal,
          }),
        );
      } else {
        const ids = await this.stageBlocks(obj, what, signal);
        await this.call(what, signal, (abortSignal) => blob.commitBlockList(ids, { ...common, abortSignal }));
      }
      return { status: 'created' };
    } catch (err) {
      if (!(err instanceof ObjectStoreError) || !['BlobAlreadyExists', 'ConditionNotMet'].includes(err.code))
        throw err;
    }
    // The key is taken (a retry after a crash or a timeout): what is there?
    const props = await this.call(
      `read the properties of ${obj.key} in ${this.target}`,
      signal,
      (abortSignal) => blob.getProperties({ abortSignal }),
    );
    return { status: 'exists', sha256: props.metadata?.[OBJECT_METADATA.sha256] ?? null };
  }

  /** Stages the body as blocks of block_size_bytes, a few at once; returns their ids in order. */
  private async stageBlocks(obj: ArchiveObject, what: string, signal: AbortSignal): Promise<string[]> {
    const blob = this.container.getBlockBlobClient(obj.key);
    const size = this.options.block_size_bytes;
    const ids = Array.from({ length: Math.ceil(obj.body.length / size) }, (_, i) => blockId(i));
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < ids.length; i = next++) {
        const part = obj.body.subarray(i * size, Math.min((i + 1) * size, obj.body.length));
        await this.call(`${what}, block ${i + 1} of ${ids.length}`, signal, (abortSignal) =>
          blob.stageBlock(ids[i] ?? blockId(i), part, part.length, {
            transactionalContentMD5: md5(part),
            abortSignal,
          }),
        );
      }
    };
    await Promise.all(Array.from({ length: Math.min(BLOCK_CONCURRENCY, ids.length) }, worker));
    return ids;
  }

  /**
   * Reads the container's properties. A SAS scoped to the container (or to
   * objects) may not read them (AuthorizationPermissionMismatch,
   * AuthorizationResourceTypeMismatch); then the properties of a blob that
   * is not there are read instead: BlobNotFound proves the container, the
   * credentials and the read permission as well. Nothing is written.
   */
  async healthcheck(signal: AbortSignal): Promise<HealthcheckResult> {
    try {
      await this.call(`read the properties of container ${this.target}`, signal, (abortSignal) =>
        this.container.getProperties({ abortSignal }),
      );
      return {
        ok: true,
        detail: `container ${this.target} answered (container properties read, nothing written)`,
      };
    } catch (err) {
      if (!(err instanceof ObjectStoreError) || !CONTAINER_READ_DENIED.has(err.code)) {
        return { ok: false, detail: err instanceof Error ? err.message : String(err) };
      }
    }
    try {
      await this.call(`read the properties of ${HEALTHCHECK_KEY} in ${this.target}`, signal, (abortSignal) =>
        this.container.getBlobClient(HEALTHCHECK_KEY).getProperties({ abortSignal }),
      );
    } catch (err) {
      if (!(err instanceof ObjectStoreError) || err.code !== 'BlobNotFound') {
        return { ok: false, detail: err instanceof Error ? err.message : String(err) };
      }
    }
    return {
      ok: true,
      detail: `container ${this.target} answered (the credentials may not read container properties; a blob read answered, nothing written)`,
    };
  }

  async close(): Promise<void> {
    this.closing.abort();
    this.agent.destroy();
  }
}
