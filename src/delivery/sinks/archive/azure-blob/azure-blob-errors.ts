/**
 * Azure Storage failures as the archive sink acts on them
 * ({@link ObjectStoreError} kinds), from the SDK's RestError read by shape
 * (code, status, `x-ms-error-code`, Retry-After), so this module needs no SDK.
 */
import { snippet } from '../../net/describe-error.js';
import { retryAfterMs } from '../../net/retry-after.js';
import { ObjectStoreError, type ObjectStoreErrorKind } from '../object-store.js';

/** The sink's settings are wrong (container, credentials, role, address): `failing` until fixed, nothing parked. */
const REFUSED = new Set([
  'ContainerNotFound',
  'ContainerBeingDeleted',
  'ContainerDisabled',
  'AuthenticationFailed',
  'AuthorizationFailure',
  'AuthorizationPermissionMismatch',
  'AuthorizationProtocolMismatch',
  'AuthorizationResourceTypeMismatch',
  'AuthorizationServiceMismatch',
  'AuthorizationSourceIPMismatch',
  'InsufficientAccountPermissions',
  'InvalidAuthenticationInfo',
  'NoAuthenticationInformation',
  'AccountIsDisabled',
  'KeyVaultEncryptionKeyNotFound',
  // @azure/identity: DefaultAzureCredential found no identity, or it was refused.
  'AggregateAuthenticationError',
  'CredentialUnavailableError',
  'AuthenticationError',
  'AuthenticationRequiredError',
  // network-guard.ts: the endpoint resolves to a private address.
  'TW_FORBIDDEN_ADDRESS',
]);

/** This object can never be written as it is: its events are parked. */
const REJECTED = new Set([
  'InvalidBlobOrBlock',
  'RequestBodyTooLarge',
  'InvalidResourceName',
  'InvalidMetadata',
  'MetadataTooLarge',
  'BlockCountExceedsLimit',
  'InvalidBlobType',
]);

/** Azure asks the client to slow down. */
const THROTTLED = new Set(['ServerBusy', 'TooManyRequests']);

/** The service failed this time: retried on the sink's schedule. */
const TRANSIENT = new Set([
  'OperationTimedOut',
  'InternalError',
  'Md5Mismatch',
  'InvalidBlockList',
  'BlobNotFound',
]);

/** @azure/identity errors, whose message names each credential tried and why it failed. */
const IDENTITY_ERRORS = new Set([
  'AggregateAuthenticationError',
  'CredentialUnavailableError',
  'AuthenticationError',
]);

/** What a failed SDK call tells, read without trusting its type. */
export interface AzureFailure {
  code: string;
  status: number | undefined;
  message: string;
  retryAfter: string | undefined;
}

function field(value: unknown, name: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[name] : undefined;
}

/** The facts of an SDK error (a RestError, an AbortError, an identity error, anything thrown). */
export function azureFailure(err: unknown): AzureFailure {
  const status = field(err, 'statusCode');
  const errorCode = field(field(err, 'details'), 'errorCode');
  const code = field(err, 'code');
  const name = field(err, 'name');
  const headers = field(field(err, 'response'), 'headers');
  const get = field(headers, 'get');
  const retryAfter = typeof get === 'function' ? get.call(headers, 'retry-after') : undefined;
  return {
    code:
      typeof errorCode === 'string' && errorCode !== ''
        ? errorCode
        : typeof code === 'string' && code !== ''
          ? code
          : typeof name === 'string' && name !== 'Error' && name !== 'RestError'
            ? name
            : typeof status === 'number'
              ? String(status)
              : 'UnknownError',
    status: typeof status === 'number' ? status : undefined,
    message: err instanceof Error ? err.message : String(err),
    retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined,
  };
}

/** Which kind of failure an Azure error code and HTTP status are. */
export function azureErrorKind(code: string, status: number | undefined): ObjectStoreErrorKind {
  if (REFUSED.has(code)) return 'refused';
  if (REJECTED.has(code)) return 'rejected';
  if (THROTTLED.has(code) || status === 429 || status === 503) return 'throttled';
  if (TRANSIENT.has(code) || status === undefined || status >= 500 || status === 408) return 'transient';
  if (status === 401 || status === 403 || status === 404) return 'refused';
  // Another 4xx the sink does not know: held as a settings problem (nothing parked) rather than losing events.
  return 'refused';
}

/**
 * Removes secrets from text the SDK or the service wrote: each known secret
 * value, and any SAS signature (`sig=…`) a URL in a message may carry.
 */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s.length >= 8) out = out.split(s).join('[secret]');
  return out.replace(/([?&;]|\b)(sig|SharedAccessSignature|AccountKey)=[^&;\s'"]*/gi, '$1$2=[secret]');
}

/** An {@link ObjectStoreError} for a failed call: `what` names the call and its target (never a secret). */
export function toObjectStoreError(
  err: unknown,
  what: string,
  secrets: readonly string[],
  now: number,
): ObjectStoreError {
  if (err instanceof ObjectStoreError) return err;
  const f = azureFailure(err);
  const kind = azureErrorKind(f.code, f.status);
  // The service's message ends with RequestId and Time lines; the first line says what went wrong.
  // An identity error lists each credential it tried, one a line: those lines are the point.
  const firstLine = IDENTITY_ERRORS.has(f.code) ? f.message : (f.message.split('\n')[0] ?? '');
  const status = f.status === undefined ? '' : ` (HTTP ${f.status})`;
  const message = `${what}: ${f.code}${status}: ${snippet(redact(firstLine, secrets))}`;
  const wait = kind === 'throttled' || kind === 'transient' ? retryAfterMs(f.retryAfter, now) : undefined;
  return new ObjectStoreError(kind, f.code, message, {
    ...(f.status === undefined ? {} : { status: f.status }),
    ...(wait === undefined ? {} : { retryAfterMs: wait }),
  });
}
