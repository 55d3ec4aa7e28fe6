import type { PutObjectCommandInput, S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { TrailwardenError } from '../../../../errors.js';
import type { HealthcheckResult, SinkContext } from '../../../sink.js';
import { guardedAgents } from '../../net/guarded-agents.js';
import { sinkNetworkGuard } from '../../net/network-guard.js';
import {
  type ArchiveObject,
  OBJECT_METADATA,
  type ObjectStore,
  ObjectStoreError,
  type PutResult,
} from '../object-store.js';
import { s3Failure, serviceFacts } from './s3-errors.js';
import { hasExplicitKeys, placementProblems, type S3Options } from './s3-options.js';

/**
 * Attempts per SDK call: one retry of the SDK's own, and only for a
 * transient failure (a keep-alive connection the store closed under us, a
 * timeout), after {@link SDK_RETRY_DELAY_MS}: a failed part would otherwise
 * restart the whole multipart upload. Throttling and 5xx go back to the sink
 * at once with the store's Retry-After (the SDK would wait it out inside the
 * attempt, up to 20 s each time); the sink's retry schedule and health
 * probes do the rest and show the error code in the status meanwhile.
 */
const SDK_MAX_ATTEMPTS = 2;
const SDK_RETRY_DELAY_MS = 100;

type RetryStrategyV2 = Extract<NonNullable<S3ClientConfig['retryStrategy']>, { recordSuccess: unknown }>;
type RetryToken = Awaited<ReturnType<RetryStrategyV2['acquireInitialRetryToken']>>;

const retryToken = (count: number, delay: number): RetryToken => ({
  getRetryCount: () => count,
  getRetryDelay: () => delay,
});

/** {@link SDK_MAX_ATTEMPTS} as the SDK's retry strategy. */
const ONE_TRANSIENT_RETRY: RetryStrategyV2 = {
  acquireInitialRetryToken: async () => retryToken(0, 0),
  refreshRetryTokenForRetry: async (token, info) => {
    // The SDK rethrows the request's own error when this throws.
    if (info.errorType !== 'TRANSIENT' || token.getRetryCount() + 1 >= SDK_MAX_ATTEMPTS)
      throw new Error('no retry');
    return retryToken(token.getRetryCount() + 1, SDK_RETRY_DELAY_MS);
  },
  recordSuccess: () => undefined,
};
/** How long aborting a multipart upload at the store may take once the put itself was abandoned. */
const ABORT_UPLOAD_TIMEOUT_MS = 10_000;

/** The SDK settings that would otherwise be read from the host's environment or AWS config files. */
const HOST_NEUTRAL: Partial<S3ClientConfig> = {
  defaultsMode: 'standard',
  ignoreConfiguredEndpointUrls: true,
  useArnRegion: false,
  useDualstackEndpoint: false,
  useFipsEndpoint: false,
  disableS3ExpressSessionAuth: true,
  disableMultiregionAccessPoints: true,
};

/** Where the SDK's credentials and region come from, per the owner (docs/security.md, the tenant rule). */
function identityConfig(options: S3Options, tenantBound: boolean): Partial<S3ClientConfig> {
  const config: Partial<S3ClientConfig> = tenantBound ? { ...HOST_NEUTRAL } : {};
  // S3-compatible stores ignore the region but SigV4 needs one; AWS itself needs the bucket's.
  const region = options.region ?? (options.endpoint !== undefined ? 'us-east-1' : undefined);
  if (region !== undefined) config.region = region;
  if (options.access_key_id !== undefined && options.secret_access_key !== undefined) {
    config.credentials = {
      accessKeyId: options.access_key_id,
      secretAccessKey: options.secret_access_key,
      ...(options.session_token !== undefined ? { sessionToken: options.session_token } : {}),
    };
  } else if (options.profile !== undefined && !tenantBound) {
    config.profile = options.profile;
  }
  return config;
}

/**
 * An {@link ObjectStore} over one S3 bucket (AWS or an S3-compatible store)
 * with @aws-sdk/client-s3, imported here only when such a sink is created.
 * Objects up to `single_put_max_bytes` go in one PutObject, larger ones in a
 * multipart upload (@aws-sdk/lib-storage), both conditional on the key being
 * free (`If-None-Match: *`; lib-storage passes it on to
 * CompleteMultipartUpload, where S3 checks it). Connections go through the
 * sink's network guard.
 */
export async function createS3ObjectStore(options: S3Options, ctx: SinkContext): Promise<ObjectStore> {
  const tenantBound = ctx.owner.tenantId !== null;
  const problems = placementProblems(options, {
    owner: ctx.owner,
    fileRoot: ctx.fileRoot,
    dataDir: ctx.dataDir,
  });
  if (problems.length > 0) {
    throw new TrailwardenError(
      'TW_ERR_CONFIG',
      `sink ${ctx.name}: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
    );
  }
  const sdk = await import('@aws-sdk/client-s3');
  const { Upload } = await import('@aws-sdk/lib-storage');

  const guard = sinkNetworkGuard(options.allow_private_networks, ctx);
  // Agents of our own, not options: the SDK builds a fresh agent (without the
  // guard's lookup) for `Expect: 100-continue` requests unless it was given one.
  const agents = guardedAgents(guard, { keepAlive: true, maxSockets: options.max_concurrent_parts + 1 });
  const client: S3Client = new sdk.S3Client({
    ...identityConfig(options, tenantBound),
    ...(options.endpoint !== undefined ? { endpoint: options.endpoint } : {}),
    forcePathStyle: options.force_path_style,
    maxAttempts: SDK_MAX_ATTEMPTS,
    retryStrategy: ONE_TRANSIENT_RETRY,
    requestChecksumCalculation: options.checksum === 'when_required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
    responseChecksumValidation: options.checksum === 'when_required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
    requestHandler: {
      httpAgent: agents.http,
      httpsAgent: agents.https,
      connectionTimeout: options.connect_timeout_ms,
      requestTimeout: options.request_timeout_ms,
    },
  });
  if (!tenantBound && !hasExplicitKeys(options)) {
    ctx.log.info('s3 sink uses the AWS SDK default credential chain', {
      sink: ctx.name,
      profile: options.profile ?? null,
    });
  }

  const bucket = options.bucket;
  const target = `s3://${bucket}${options.endpoint !== undefined ? ` at ${new URL(options.endpoint).origin}` : ''}`;
  /** Ends every call in progress at close(). */
  const closing = new AbortController();
  const inFlight = new Set<Promise<unknown>>();
  const now = ctx.now;

  /** Runs one store operation so close() can abort it and wait for its clean-up. */
  async function tracked<T>(
    operation: string,
    signal: AbortSignal,
    run: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    if (closing.signal.aborted)
      throw new ObjectStoreError('transient', 'Closed', `${target}: ${operation}: the sink is closed`);
    const combined = AbortSignal.any([signal, closing.signal]);
    const p = run(combined);
    inFlight.add(p);
    try {
      return await p;
    } finally {
      inFlight.delete(p);
    }
  }

  /** The object already at `key` (the conditional write found it taken): its SHA-256 metadata. */
  async function existing(key: string, taken: unknown, signal: AbortSignal): Promise<PutResult> {
    try {
      const head = await client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: key }), {
        abortSignal: signal,
      });
      return { status: 'exists', sha256: head.Metadata?.[OBJECT_METADATA.sha256] ?? null };
    } catch (err) {
      // Gone between the two calls (or a conflicting write not finished): the next attempt writes it.
      if (serviceFacts(err)?.status === 404) throw s3Failure(taken, target, `PutObject ${key}`, now);
      throw s3Failure(err, target, `HeadObject ${key}`, now);
    }
  }

  /**
   * The client as lib-storage gets it: every call it makes carries `signal`
   * (it passes none itself, so a part in flight would go on after the put
   * was abandoned, and be retried).
   */
  function abortableClient(signal: AbortSignal): S3Client {
    return new Proxy(client, {
      get(target, prop, receiver) {
        if (prop !== 'send') return Reflect.get(target, prop, receiver);
        return (command: Parameters<S3Client['send']>[0]) => target.send(command, { abortSignal: signal });
      },
    });
  }

  /** Parts of `params.Body` through lib-storage; on abandon, the upload is aborted at the store too. */
  async function multipart(params: PutObjectCommandInput, signal: AbortSignal): Promise<void> {
    const upload = new Upload({
      client: abortableClient(signal),
      params,
      partSize: options.part_size_bytes,
      queueSize: options.max_concurrent_parts,
      leavePartsOnError: false,
    });
    const onAbort = () => void upload.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      if (signal.aborted) onAbort();
      await upload.done();
    } catch (err) {
      // lib-storage aborts the upload itself on a failed part or completion,
      // but not once abandoned (its own abort request carries the aborted
      // signal): abort it here, before close() can end the client.
      if (signal.aborted && upload.uploadId !== undefined)
        await abortUpload(params.Key ?? '', upload.uploadId);
      throw err;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  async function abortUpload(key: string, uploadId: string): Promise<void> {
    try {
      await client.send(
        new sdk.AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }),
        {
          abortSignal: AbortSignal.timeout(ABORT_UPLOAD_TIMEOUT_MS),
        },
      );
    } catch (err) {
      // NoSuchUpload: lib-storage's own abort came first.
      if (serviceFacts(err)?.code === 'NoSuchUpload') return;
      ctx.log.warn('s3 sink could not abort a multipart upload; a lifecycle rule removes its parts', {
        sink: ctx.name,
        key,
        reason: s3Failure(err, target, 'AbortMultipartUpload', now).message,
      });
    }
  }

  return {
    target,

    put(obj: ArchiveObject, signal: AbortSignal): Promise<PutResult> {
      return tracked(`PutObject ${obj.key}`, signal, async (combined) => {
        const params: PutObjectCommandInput = {
          Bucket: bucket,
          Key: obj.key,
          Body: obj.body,
          ContentLength: obj.body.length,
          ContentType: obj.contentType,
          ...(obj.contentEncoding !== undefined ? { ContentEncoding: obj.contentEncoding } : {}),
          Metadata: { ...obj.metadata },
          IfNoneMatch: '*',
          ...(options.storage_class !== undefined ? { StorageClass: options.storage_class } : {}),
          ...(options.sse !== undefined ? { ServerSideEncryption: options.sse } : {}),
          ...(options.sse_kms_key_id !== undefined ? { SSEKMSKeyId: options.sse_kms_key_id } : {}),
        };
        try {
          if (obj.body.length <= options.single_put_max_bytes) {
            await client.send(new sdk.PutObjectCommand(params), { abortSignal: combined });
          } else {
            await multipart(params, combined);
          }
          return { status: 'created' };
        } catch (err) {
          if (combined.aborted) throw s3Failure(err, target, `PutObject ${obj.key}`, now, 'aborted');
          const facts = serviceFacts(err);
          // 412: the key is taken; 409: a write to it is in progress elsewhere (S3 conditional writes).
          if (facts?.status === 412 || facts?.code === 'ConditionalRequestConflict')
            return existing(obj.key, err, combined);
          throw s3Failure(err, target, `PutObject ${obj.key}`, now);
        }
      });
    },

    async healthcheck(signal: AbortSignal): Promise<HealthcheckResult> {
      try {
        return await tracked(`HeadBucket ${bucket}`, signal, async (combined) => {
          const head = await client.send(new sdk.HeadBucketCommand({ Bucket: bucket }), {
            abortSignal: combined,
          });
          const status = head.$metadata.httpStatusCode ?? 200;
          return { ok: true, detail: `HeadBucket ${bucket}: ok (HTTP ${status})` };
        });
      } catch (err) {
        return { ok: false, detail: s3Failure(err, target, `HeadBucket ${bucket}`, now).message };
      }
    },

    async close(): Promise<void> {
      closing.abort();
      await Promise.allSettled([...inFlight]);
      client.destroy();
      agents.destroy();
    },
  };
}
