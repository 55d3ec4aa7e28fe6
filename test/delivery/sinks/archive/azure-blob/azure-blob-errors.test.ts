import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RestError } from '@azure/storage-blob';
import {
  azureErrorKind,
  toObjectStoreError,
} from '../../../../../src/delivery/sinks/archive/azure-blob/azure-blob-errors.js';

const NOW = Date.parse('2026-12-07T21:00:00Z');

/** A RestError as the SDK throws it for a failed response: status, x-ms-error-code in details, headers. */
function restError(status: number, code: string, message: string, headers: Record<string, string> = {}) {
  const err = new RestError(message, { statusCode: status, code });
  Object.assign(err, {
    details: { errorCode: code },
    response: { headers: { get: (name: string) => headers[name.toLowerCase()] } },
  });
  return err;
}

test('settings problems are refused: container, authentication, role, a forbidden address', () => {
  for (const code of [
    'ContainerNotFound',
    'AuthenticationFailed',
    'AuthorizationFailure',
    'AuthorizationPermissionMismatch',
    'InvalidAuthenticationInfo',
    'NoAuthenticationInformation',
    'TW_FORBIDDEN_ADDRESS',
    'CredentialUnavailableError',
  ]) {
    assert.equal(azureErrorKind(code, code.startsWith('Auth') ? 403 : undefined), 'refused', code);
  }
  // Any other 401/403/404, and a 4xx this code does not know: nothing parked.
  assert.equal(azureErrorKind('SomethingNew', 403), 'refused');
  assert.equal(azureErrorKind('SomethingNew', 400), 'refused');
});

test('an object Azure can never take is rejected: invalid blob or block, body too large, invalid name', () => {
  for (const code of [
    'InvalidBlobOrBlock',
    'RequestBodyTooLarge',
    'InvalidResourceName',
    'InvalidMetadata',
  ]) {
    assert.equal(azureErrorKind(code, 400), 'rejected', code);
  }
});

test('ServerBusy, 503 and 429 are throttled; OperationTimedOut, 500 and network errors are transient', () => {
  assert.equal(azureErrorKind('ServerBusy', 503), 'throttled');
  assert.equal(azureErrorKind('ServerBusy', 500), 'throttled');
  assert.equal(azureErrorKind('503', 503), 'throttled');
  assert.equal(azureErrorKind('TooManyRequests', 429), 'throttled');
  assert.equal(azureErrorKind('OperationTimedOut', 500), 'transient');
  assert.equal(azureErrorKind('InternalError', 500), 'transient');
  assert.equal(azureErrorKind('ECONNRESET', undefined), 'transient');
  assert.equal(azureErrorKind('REQUEST_SEND_ERROR', undefined), 'transient');
});

test('a RestError becomes an ObjectStoreError with the Azure code, the status, the first line and the Retry-After', () => {
  const err = toObjectStoreError(
    restError(503, 'ServerBusy', 'The server is busy.\nRequestId:abc\nTime:2026', { 'retry-after': '12' }),
    'put k into https://a.blob.core.windows.net/c',
    [],
    NOW,
  );
  assert.equal(err.kind, 'throttled');
  assert.equal(err.code, 'ServerBusy');
  assert.equal(err.options.status, 503);
  assert.equal(err.options.retryAfterMs, 12_000);
  assert.equal(
    err.message,
    'put k into https://a.blob.core.windows.net/c: ServerBusy (HTTP 503): The server is busy.',
  );
  // An HTTP-date works too; a refusal carries no wait.
  const dated = toObjectStoreError(
    restError(503, 'ServerBusy', 'busy', { 'retry-after': new Date(NOW + 30_000).toUTCString() }),
    'x',
    [],
    NOW,
  );
  assert.equal(dated.options.retryAfterMs, 30_000);
  assert.equal(
    toObjectStoreError(restError(403, 'AuthorizationFailure', 'no'), 'x', [], NOW).options.retryAfterMs,
    undefined,
  );
});

test('a network error keeps its errno as the code', () => {
  const err = toObjectStoreError(
    new RestError('connect ECONNREFUSED 127.0.0.1:1', { code: 'ECONNREFUSED' }),
    'x',
    [],
    NOW,
  );
  assert.equal(err.kind, 'transient');
  assert.equal(err.code, 'ECONNREFUSED');
});

test('secrets in a message are removed: the known values, any SAS signature, an AccountKey', () => {
  const key = Buffer.alloc(64, 3).toString('base64');
  const sig = 'c2VjcmV0LXNpZ25hdHVyZQ%3D%3D';
  const text = `s3cr3tvalue, key ${key}; ?sv=2025-01-05&sig=${sig}`;
  const err = toObjectStoreError(restError(400, 'Whatever', text), 'x', [key, 's3cr3tvalue'], NOW);
  assert.equal(err.message, 'x: Whatever (HTTP 400): [secret], key [secret]; ?sv=2025-01-05&sig=[secret]');
  const cs = toObjectStoreError(restError(400, 'Whatever', `bad AccountKey=${key};`), 'x', [], NOW);
  assert.equal(cs.message, 'x: Whatever (HTTP 400): bad AccountKey=[secret];');
  assert.ok(!err.message.includes(sig), err.message);
  assert.ok(!err.message.includes(key), err.message);
  assert.ok(!err.message.includes('s3cr3tvalue'), err.message);
  assert.match(err.message, /sig=\[secret\]/);
  // A SAS signature unknown to the store (another URL in a message) goes too.
  const other = toObjectStoreError(restError(400, 'Whatever', 'see ?sv=1&sig=abcdefgh'), 'x', [], NOW);
  assert.equal(other.message, 'x: Whatever (HTTP 400): see ?sv=1&sig=[secret]');
});

test('the ObjectStoreError keeps no cause: the SDK error holds the request, its URL (a SAS) and headers', () => {
  const err = toObjectStoreError(restError(403, 'AuthorizationFailure', 'no'), 'x', [], NOW);
  assert.equal(err.cause, undefined);
});
