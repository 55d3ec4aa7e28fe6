import { createHmac } from 'node:crypto';
import { z } from 'zod';

/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com/): the
 * receiver recomputes HMAC-SHA256 over `${webhook-id}.${webhook-timestamp}.${body}`
 * with the shared secret and compares it with one of the space-separated
 * `v1,<base64>` entries of `webhook-signature`.
 */

const PREFIX = 'whsec_';
/** The spec recommends secrets of 24 to 64 bytes. */
const MIN_SECRET_BYTES = 24;
const MAX_SECRET_BYTES = 64;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The key bytes of a `whsec_<base64>` secret, or why it is not one. */
export function decodeSecret(secret: string): Buffer | string {
  if (!secret.startsWith(PREFIX)) return 'expected a Standard Webhooks secret: "whsec_" followed by base64';
  const b64 = secret.slice(PREFIX.length);
  if (!BASE64.test(b64)) return 'the part after "whsec_" must be base64 (A-Z a-z 0-9 + /, = padding)';
  const key = Buffer.from(b64, 'base64');
  if (key.length < MIN_SECRET_BYTES || key.length > MAX_SECRET_BYTES) {
    return `the secret must decode to ${MIN_SECRET_BYTES}-${MAX_SECRET_BYTES} bytes, got ${key.length}; generate one with: echo "whsec_$(openssl rand -base64 32)"`;
  }
  return key;
}

const oneSecret = z.string().superRefine((value, ctx) => {
  const key = decodeSecret(value);
  if (typeof key === 'string') ctx.addIssue({ code: 'custom', message: key });
});

/**
 * One secret, or several during rotation: every delivery is signed with each,
 * so a receiver that knows either the old or the new secret accepts it.
 */
export const webhookSecretSchema = z.union(
  [oneSecret, z.array(oneSecret).min(1, 'list at least one secret')],
  {
    error: 'expected a "whsec_…" secret or a list of them',
  },
);

/** The `webhook-signature` header value: one `v1,<base64>` entry per key, space-separated. */
export function signatureHeader(
  keys: readonly Buffer[],
  id: string,
  timestamp: number,
  body: string,
): string {
  const signed = `${id}.${timestamp}.${body}`;
  return keys
    .map((key) => `v1,${createHmac('sha256', key).update(signed, 'utf8').digest('base64')}`)
    .join(' ');
}
