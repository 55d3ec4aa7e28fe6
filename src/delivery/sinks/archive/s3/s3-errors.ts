import { snippet } from '../../net/describe-error.js';
import { forbiddenAddressIn } from '../../net/network-guard.js';
import { retryAfterMs } from '../../net/retry-after.js';
import { ObjectStoreError, type ObjectStoreErrorKind } from '../object-store.js';

/**
 * S3 error codes ("Error responses", Amazon S3 API reference) by what the
 * archive sink does about them. Anything not listed: 5xx and no answer are
 * transient, another 4xx is refused (the sink fails visibly and keeps its
 * events rather than parking them as dead letters for a reason nobody
 * classified).
 */
const REFUSED = new Set([
  'NoSuchBucket',
  'AccessDenied',
  'AllAccessDisabled',
  'AccountProblem',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'PermanentRedirect',
  'AuthorizationHeaderMalformed',
  'IllegalLocationConstraintException',
  'InvalidBucketName',
  'InvalidStorageClass',
  'KMS.NotFoundException',
  'KMS.DisabledException',
  // No credentials or region found by the SDK's default chains.
  'CredentialsProviderError',
  'RegionMissing',
]);
const THROTTLED = new Set([
  'SlowDown',
  'ServiceUnavailable',
  'TooManyRequests',
  'TooManyRequestsException',
  'ThrottlingException',
  'Throttling',
  'RequestLimitExceeded',
  'KMS.ThrottlingException',
]);
const REJECTED = new Set([
  'KeyTooLongError',
  'InvalidObjectName',
  'EntityTooLarge',
  'MetadataTooLarge',
  'InvalidURI',
]);
const TRANSIENT = new Set([
  'RequestTimeout',
  'InternalError',
  'OperationAborted',
  'ConditionalRequestConflict',
  'RequestTimeTooSkewed',
  'NoSuchUpload',
  'PreconditionFailed',
]);

/** HEAD answers carry no body, so the SDK names their errors after the status only. */
const HEAD_CODES: Readonly<Record<number, string>> = {
  301: 'PermanentRedirect',
  403: 'AccessDenied',
  404: 'NoSuchBucket',
};

/** What an S3 answer said, read from an SDK service exception (never its request, which holds the signature). */
export interface ServiceFacts {
  code: string;
  status: number | undefined;
  message: string;
  retryAfter: string | undefined;
  /** `x-amz-bucket-region`: where the bucket really is, on a wrong-region answer. */
  bucketRegion: string | undefined;
}

function field(o: unknown, key: string): unknown {
  return typeof o === 'object' && o !== null && key in o ? Reflect.get(o, key) : undefined;
}

function headerOf(headers: unknown, name: string): string | undefined {
  const v = field(headers, name);
  return typeof v === 'string' ? v : undefined;
}

/** The facts of an SDK service exception (an answer from the store), or `undefined` for any other error. */
export function serviceFacts(err: unknown): ServiceFacts | undefined {
  // `$fault` marks an answer from the store; the SDK adds `$metadata` to network errors too.
  if (!(err instanceof Error) || field(err, '$fault') === undefined) return undefined;
  const status = field(field(err, '$metadata'), 'httpStatusCode');
  const headers = field(field(err, '$response'), 'headers');
  const statusCode = typeof status === 'number' ? status : undefined;
  // Without a body the SDK calls the error after the status ("NotFound", "403").
  const generic =
    err.name === 'NotFound' || err.name === 'Forbidden' || /^\d+$/.test(err.name) || err.name === 'Unknown';
  const code =
    generic && statusCode !== undefined ? (HEAD_CODES[statusCode] ?? String(statusCode)) : err.name;
  return {
    code,
    status: statusCode,
    // The SDK's text for a body-less answer ("UnknownError") says nothing.
    message: generic ? '' : err.message,
    retryAfter: headerOf(headers, 'retry-after'),
    bucketRegion: headerOf(headers, 'x-amz-bucket-region'),
  };
}

function kindOf(code: string, status: number | undefined): ObjectStoreErrorKind {
  if (REFUSED.has(code)) return 'refused';
  if (THROTTLED.has(code) || status === 429 || status === 503) return 'throttled';
  if (REJECTED.has(code)) return 'rejected';
  if (TRANSIENT.has(code)) return 'transient';
  if (status === undefined || status >= 500) return 'transient';
  return 'refused';
}

/** `Error` codes of a failed connection (`ECONNREFUSED`, `TimeoutError` …), which hold no secret. */
function networkCode(err: unknown): string {
  const code = field(err, 'code');
  if (typeof code === 'string' && code !== '') return code;
  return err instanceof Error && err.name !== 'Error' ? err.name : 'NetworkError';
}

/**
 * An SDK failure as an {@link ObjectStoreError} with the S3 error code. The
 * message names the store, the operation and the code, and quotes the
 * store's message (cut, control characters escaped). The SDK's exception is
 * not kept as the cause: it carries fields of the request (the access key
 * id, the string to sign) that a logger would print. `aborted`: the caller
 * gave up (stop, close()); transient.
 */
export function s3Failure(
  err: unknown,
  target: string,
  operation: string,
  now: () => number,
  aborted?: 'aborted',
): ObjectStoreError {
  if (err instanceof ObjectStoreError) return err;
  const forbidden = forbiddenAddressIn(err);
  if (forbidden) {
    return new ObjectStoreError('refused', forbidden.code, `${target}: ${operation}: ${forbidden.message}`);
  }
  if (aborted) return new ObjectStoreError('transient', 'Aborted', `${target}: ${operation}: aborted`);
  const facts = serviceFacts(err);
  if (facts) {
    const kind = kindOf(facts.code, facts.status);
    const status = facts.status !== undefined ? ` (HTTP ${facts.status})` : '';
    const region =
      facts.bucketRegion !== undefined ? `; the bucket is in region ${snippet(facts.bucketRegion, 40)}` : '';
    const text = facts.message && facts.message !== facts.code ? `: ${snippet(facts.message)}` : '';
    const retryAfterHint = kind === 'throttled' ? retryAfterMs(facts.retryAfter, now()) : undefined;
    return new ObjectStoreError(
      kind,
      facts.code,
      `${target}: ${operation}: ${facts.code}${status}${text}${region}`,
      {
        ...(facts.status !== undefined ? { status: facts.status } : {}),
        ...(retryAfterHint !== undefined ? { retryAfterMs: retryAfterHint } : {}),
      },
    );
  }
  const message = err instanceof Error ? err.message : String(err);
  if (/region is missing/i.test(message)) {
    return new ObjectStoreError(
      'refused',
      'RegionMissing',
      `${target}: ${operation}: no region: set region (e.g. eu-west-1) or AWS_REGION`,
    );
  }
  if (field(err, 'name') === 'CredentialsProviderError') {
    return new ObjectStoreError(
      'refused',
      'CredentialsProviderError',
      `${target}: ${operation}: no AWS credentials found by the default chain: ${snippet(message)}; set access_key_id and secret_access_key, or give the server an identity`,
    );
  }
  const code = networkCode(err);
  return new ObjectStoreError('transient', code, `${target}: ${operation}: ${code}: ${snippet(message)}`, {
    cause: err,
  });
}
