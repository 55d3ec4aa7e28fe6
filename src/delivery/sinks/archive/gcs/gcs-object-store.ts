import http from 'node:http';
import https from 'node:https';
import { Socket } from 'node:net';
import { finished } from 'node:stream/promises';
import type { Storage, StorageOptions } from '@google-cloud/storage';
import type { HealthcheckResult, SinkContext } from '../../../sink.js';
import { snippet } from '../../net/describe-error.js';
import { forbiddenAddressIn, type NetworkGuard, sinkNetworkGuard } from '../../net/network-guard.js';
import { retryAfterMs } from '../../net/retry-after.js';
import {
  type ArchiveObject,
  OBJECT_METADATA,
  type ObjectStore,
  ObjectStoreError,
  type ObjectStoreErrorKind,
  type PutResult,
} from '../object-store.js';
import type { GcsOptions } from './gcs-options.js';
import { type GcsAgents, routeJsonApi } from './gcs-transport.js';

/**
 * Retries the SDK makes itself, inside one put, for 429, 5xx and dropped
 * connections of a resumable upload (its session start and chunks). The
 * JSON API requests gcs-transport.ts carries (multipart uploads, metadata
 * reads) are not retried in-process. One only: the sink's own retry
 * schedule, with back-off, status and alerts, handles anything longer, and
 * every SDK retry holds the delivery without showing why.
 */
const SDK_MAX_RETRIES = 1;
/** The SDK's back-off ceiling (seconds) for that one retry. */
const SDK_MAX_RETRY_DELAY_S = 4;

/** GCS answers that no write can fix: a bad object name (400), too large (413), a name too long (414). */
const REJECTED_STATUSES = new Set([400, 413, 414]);
/** Bucket missing (404), bad or expired credentials (401), no permission (403): the settings must change. */
const REFUSED_STATUSES = new Set([401, 403, 404]);
/** Slow down: GCS's rate limit (429) and "service unavailable" (503). */
const THROTTLED_STATUSES = new Set([429, 503]);
const PRECONDITION_FAILED = 412;

/** The value of `name` on `value` when it is an object (errors of three libraries carry different fields). */
function field(value: unknown, name: string): unknown {
  return typeof value === 'object' && value !== null ? new Map(Object.entries(value)).get(name) : undefined;
}

/** The HTTP status an SDK error carries: ApiError.code (JSON API), GaxiosError.response.status (resumable). */
function statusOf(err: unknown): number | undefined {
  for (const candidate of [
    field(err, 'code'),
    field(err, 'status'),
    field(field(err, 'response'), 'status'),
  ]) {
    if (typeof candidate === 'number' && candidate >= 100 && candidate < 600) return candidate;
  }
  return undefined;
}

/** GCS's own reason (`notFound`, `forbidden`, `rateLimitExceeded` …) from an ApiError's first error, if any. */
function reasonOf(err: unknown): string | undefined {
  const errors = field(err, 'errors');
  const reason = Array.isArray(errors) ? field(errors[0], 'reason') : undefined;
  return typeof reason === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(reason) ? reason : undefined;
}

function retryAfterOf(err: unknown, now: number): number | undefined {
  const headers = field(field(err, 'response'), 'headers');
  const value = field(headers, 'retry-after');
  return typeof value === 'string' || Array.isArray(value) ? retryAfterMs(value, now) : undefined;
}

/**
 * Turns what the SDK threw into an ObjectStoreError: refused (bucket
 * missing, credentials, permission, a forbidden address), throttled (429,
 * 503, with Retry-After), rejected (400, 413, 414: this object), transient
 * (other 5xx, timeouts, network errors). `redact` cleans the message.
 */
export function gcsError(
  err: unknown,
  what: string,
  now: number,
  redact: (text: string) => string,
): ObjectStoreError {
  const forbidden = forbiddenAddressIn(err);
  if (forbidden) return new ObjectStoreError('refused', forbidden.code, `${what}: ${forbidden.message}`);
  if (err instanceof ObjectStoreError) return err;
  const status = statusOf(err);
  // A URL's query is left out: a resumable session's upload_id lets anyone holding it write to the session.
  const text = (err instanceof Error ? err.message : String(err)).replace(/\?\S*/g, '?…');
  const message = redact(snippet(text));
  if (status !== undefined) {
    const kind: ObjectStoreErrorKind = REFUSED_STATUSES.has(status)
      ? 'refused'
      : THROTTLED_STATUSES.has(status)
        ? 'throttled'
        : REJECTED_STATUSES.has(status)
          ? 'rejected'
          : status >= 400 && status < 500
            ? 'refused'
            : 'transient';
    const code = reasonOf(err) ?? `HTTP ${status}`;
    const retryAfter = kind === 'throttled' || kind === 'transient' ? retryAfterOf(err, now) : undefined;
    return new ObjectStoreError(kind, code, `${what}: HTTP ${status} ${code}: ${message}`, {
      status,
      ...(retryAfter === undefined ? {} : { retryAfterMs: retryAfter }),
    });
  }
  const errno = field(err, 'code');
  const code = typeof errno === 'string' && /^[A-Z0-9_]{2,40}$/.test(errno) ? errno : 'network';
  // node-fetch (the resumable upload's gaxios) wraps the guard's refusal, keeping only its code.
  if (code === 'TW_FORBIDDEN_ADDRESS') return new ObjectStoreError('refused', code, `${what}: ${message}`);
  // The auth library fails this way when no credentials are found at all: the settings, not the network.
  const kind: ObjectStoreErrorKind = /default credentials/i.test(message) ? 'refused' : 'transient';
  return new ObjectStoreError(kind, code, `${what}: ${message}`);
}

/**
 * The keep-alive agents every SDK request that can take one goes through:
 * a connection is made only after the guard's `lookup` accepted the
 * addresses a hostname resolves to, and IP-literal hosts (which Node does
 * not look up) are checked as the connection is created.
 */
function guardedAgents(guard: NetworkGuard, timeoutMs: number): GcsAgents {
  const options = { keepAlive: true, timeout: timeoutMs, ...(guard.active ? { lookup: guard.lookup } : {}) };
  const agents = { http: new http.Agent(options), https: new https.Agent(options) };
  if (guard.active) {
    for (const agent of [agents.http, agents.https]) {
      const connect = agent.createConnection.bind(agent);
      agent.createConnection = (opts, callback) => {
        try {
          guard.checkLiteral(String(opts.host ?? opts.hostname ?? ''));
        } catch (err) {
          // A socket that fails at once: the request reports the refusal as its error.
          const refused = new Socket();
          process.nextTick(() => refused.destroy(err instanceof Error ? err : new Error(String(err))));
          return refused;
        }
        return connect(opts, callback);
      };
    }
  }
  return agents;
}

/**
 * Refuses an IP-literal endpoint the guard forbids before anything is sent:
 * with credentials, the SDK would first fetch a token from Google, and the
 * refusal would hide behind that request's own failure. (Every connection
 * is still checked by the agents; this only answers sooner and clearer.)
 */
function endpointCheck(guard: NetworkGuard, endpoint: URL | undefined): () => void {
  if (!guard.active || endpoint === undefined) return () => undefined;
  const host = endpoint.hostname;
  return () => guard.checkLiteral(host);
}

/** Removes the inline key's private key (and the whole key text) from a message, should a library ever quote it. */
function redactor(credentialsJson: string | undefined): (text: string) => string {
  if (credentialsJson === undefined) return (text) => text;
  const privateKey = field(JSON.parse(credentialsJson), 'private_key');
  const secrets = [
    credentialsJson,
    ...(typeof privateKey === 'string' ? [privateKey, ...privateKey.split('\n')] : []),
  ]
    .map((s) => s.trim())
    .filter((s) => s.length >= 16 && !s.startsWith('-----'));
  return (text) => secrets.reduce((t, secret) => t.split(secret).join('[redacted]'), text);
}

/** The SDK's settings from the sink's: credentials, endpoint, retries and per-request timeout. */
function storageOptions(options: GcsOptions): StorageOptions {
  const base: StorageOptions = {
    timeout: options.request_timeout_ms,
    retryOptions: {
      autoRetry: true,
      maxRetries: SDK_MAX_RETRIES,
      maxRetryDelay: SDK_MAX_RETRY_DELAY_S,
      totalTimeout: Math.ceil((2 * options.request_timeout_ms) / 1000),
    },
    ...(options.project_id === undefined ? {} : { projectId: options.project_id }),
    ...(options.api_endpoint === undefined ? {} : { apiEndpoint: new URL(options.api_endpoint).origin }),
  };
  if (options.credentials_json !== undefined) {
    const key = JSON.parse(options.credentials_json);
    const email = field(key, 'client_email');
    const privateKey = field(key, 'private_key');
    return {
      ...base,
      credentials: {
        ...(typeof email === 'string' ? { client_email: email } : {}),
        ...(typeof privateKey === 'string' ? { private_key: privateKey } : {}),
      },
      // A custom endpoint gets no Authorization header unless asked: an emulator needs none, a real endpoint does.
      useAuthWithCustomEndpoint: true,
    };
  }
  if (options.key_file !== undefined)
    return { ...base, keyFilename: options.key_file, useAuthWithCustomEndpoint: true };
  return base;
}

/**
 * An ObjectStore over one Google Cloud Storage bucket, through the official
 * SDK (@google-cloud/storage 7, loaded here, when a gcs sink is created).
 * Every write is conditional (`ifGenerationMatch=0`): a key already taken
 * answers `exists` with the object's `trailwarden_sha256`. Objects up to
 * `resumable_threshold_bytes` go up in one multipart request, larger ones in
 * a resumable upload in chunks of that size. The SDK's gzip on upload is
 * off (the writer gzips), and its CRC32C/MD5 check of what GCS stored is on.
 */
export async function createGcsObjectStore(options: GcsOptions, ctx: SinkContext): Promise<ObjectStore> {
  const sdk = await import('@google-cloud/storage');
  const target = `gs://${options.bucket}`;
  const endpoint = options.api_endpoint === undefined ? undefined : new URL(options.api_endpoint);
  const guard = sinkNetworkGuard(options.allow_private_networks, ctx);
  const agents = guardedAgents(guard, options.request_timeout_ms);
  const checkEndpoint = endpointCheck(guard, endpoint);
  const redact = redactor(options.credentials_json);
  const storage: Storage = new sdk.Storage(storageOptions(options));
  const endRequests = routeJsonApi(storage, sdk, agents, options.request_timeout_ms);
  storage.interceptors.push({
    // Read by the resumable upload (gaxios); the JSON API requests go through gcs-transport.ts.
    request: (reqOpts) => ({
      ...reqOpts,
      uri: 'uri' in reqOpts ? reqOpts.uri : reqOpts.url,
      agent: (url: URL) => (url.protocol === 'http:' ? agents.http : agents.https),
      timeout: options.request_timeout_ms,
    }),
  });
  const bucket = storage.bucket(options.bucket);
  const inFlight = new Set<AbortController>();
  let closed = false;

  /** Runs one SDK call, ending it (its stream, then its sockets) when `signal` or close() aborts. */
  async function guarded<T>(
    what: string,
    signal: AbortSignal,
    run: (abort: AbortSignal) => Promise<T>,
  ): Promise<T> {
    if (closed) throw new ObjectStoreError('transient', 'closed', `${what}: the sink is closing`);
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    inFlight.add(controller);
    try {
      if (signal.aborted) throw new ObjectStoreError('transient', 'aborted', `${what}: aborted`);
      checkEndpoint();
      return await run(controller.signal);
    } catch (err) {
      if (controller.signal.aborted) throw new ObjectStoreError('transient', 'aborted', `${what}: aborted`);
      throw gcsError(err, what, ctx.now(), redact);
    } finally {
      signal.removeEventListener('abort', onAbort);
      inFlight.delete(controller);
    }
  }

  async function upload(obj: ArchiveObject, abort: AbortSignal): Promise<void> {
    const resumable = obj.body.length > options.resumable_threshold_bytes;
    const stream = bucket.file(obj.key).createWriteStream({
      resumable,
      ...(resumable ? { chunkSize: options.resumable_threshold_bytes } : {}),
      // The body is already gzip when contentEncoding says so: the SDK must not compress it again.
      gzip: false,
      validation: 'crc32c',
      preconditionOpts: { ifGenerationMatch: 0 },
      metadata: {
        contentType: obj.contentType,
        ...(obj.contentEncoding === undefined ? {} : { contentEncoding: obj.contentEncoding }),
        metadata: { ...obj.metadata },
      },
    });
    const onAbort = () => stream.destroy(new Error('upload aborted'));
    abort.addEventListener('abort', onAbort, { once: true });
    try {
      stream.end(obj.body);
      await finished(stream);
    } finally {
      abort.removeEventListener('abort', onAbort);
    }
  }

  return {
    target,
    async put(obj, signal): Promise<PutResult> {
      const what = `writing ${target}/${obj.key}`;
      try {
        await guarded(what, signal, (abort) => upload(obj, abort));
        return { status: 'created' };
      } catch (err) {
        if (!(err instanceof ObjectStoreError) || err.options.status !== PRECONDITION_FAILED) throw err;
      }
      // ifGenerationMatch=0 failed: an object is at the key (a retry after a crash or a timeout).
      const [metadata] = await guarded(`reading ${target}/${obj.key}`, signal, () =>
        bucket.file(obj.key).getMetadata(),
      );
      const sha256 = metadata.metadata?.[OBJECT_METADATA.sha256];
      return { status: 'exists', sha256: typeof sha256 === 'string' ? sha256 : null };
    },
    async healthcheck(signal): Promise<HealthcheckResult> {
      try {
        await guarded(`reading bucket ${target}`, signal, () => bucket.getMetadata());
        return { ok: true, detail: `bucket ${target} readable` };
      } catch (err) {
        const e = err instanceof ObjectStoreError ? err : gcsError(err, target, ctx.now(), redact);
        return { ok: false, detail: `${e.message} (${e.code})` };
      }
    },
    async close() {
      closed = true;
      for (const controller of inFlight) controller.abort(new Error('sink closing'));
      endRequests();
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}
