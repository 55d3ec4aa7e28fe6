import { z } from 'zod';
import type { SinkOptions, SinkPlacement } from '../../../sink.js';
import { httpUrl } from '../../net/http-url.js';

/** Service-account key JSON is a few KiB (the RSA private key most of it); anything far larger is not one. */
const MAX_CREDENTIALS_JSON_CHARS = 16_384;
/** GCS's resumable chunks must be multiples of 256 KiB; below one chunk a resumable upload only adds a request. */
const MIN_RESUMABLE_THRESHOLD_BYTES = 262_144;
/** GCS's largest object (5 TiB) is far beyond any archive object; 5 GiB bounds a typo. */
const MAX_RESUMABLE_THRESHOLD_BYTES = 5 * 1024 ** 3;

/** Bucket names (cloud.google.com/storage/docs/buckets#naming): 3–63 characters, or up to 222 with dots. */
const BUCKET = /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/;
/** Project ids: 6–30 characters, lowercase letters, digits and hyphens, starting with a letter. */
const PROJECT_ID = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/;

/**
 * What is wrong with a service-account key given inline, or `null`. The
 * messages never repeat the value: it holds a private key.
 */
function credentialsProblem(text: string): string | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return "credentials_json: expected the service-account key file's JSON text (IAM › Service accounts › Keys › Add key › JSON); it is not valid JSON";
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    return 'credentials_json: expected a JSON object, the service-account key file as downloaded';
  const key = new Map(Object.entries(parsed));
  if (key.get('type') !== 'service_account')
    return 'credentials_json: expected a key of "type": "service_account" (user or external-account credentials are not accepted inline)';
  const email = key.get('client_email');
  if (typeof email !== 'string' || !email.includes('@'))
    return 'credentials_json: the key has no client_email; download the key file again';
  const privateKey = key.get('private_key');
  if (typeof privateKey !== 'string' || !privateKey.includes('PRIVATE KEY'))
    return 'credentials_json: the key has no PEM private_key; download the key file again';
  // The universe decides which hosts the SDK talks to: only Google's public one is accepted.
  const universe = key.get('universe_domain');
  if (universe !== undefined && universe !== 'googleapis.com')
    return 'credentials_json: only keys of universe_domain googleapis.com are accepted';
  return null;
}

const apiEndpoint = httpUrl({
  expected: 'expected the JSON API base URL, e.g. https://storage.googleapis.com',
  max: { chars: 2048, message: 'api_endpoint: at most 2048 characters' },
  rules: (u) =>
    u.username || u.password || u.search || u.hash || u.pathname !== '/'
      ? "give the endpoint's origin alone (scheme, host, port): no path, credentials, ?query or #fragment"
      : null,
});

/** The gcs sink's own options (zod raw shape), beside the archive writer's common ones. */
export const gcsOptionsShape = {
  bucket: z.string({ error: 'expected the bucket name, e.g. acme-audit-archive' }).regex(BUCKET, {
    error:
      'expected a bucket name: 3–222 lowercase letters, digits, dots, hyphens and underscores, starting and ending with a letter or digit (no gs:// prefix)',
  }),
  project_id: z
    .string()
    .regex(PROJECT_ID, {
      error: 'expected a project id such as acme-audit-123 (6–30 lowercase letters, digits, hyphens)',
    })
    .optional(),
  /** A service-account key (the JSON key file's text), given inline: secret. */
  credentials_json: z
    .string({ error: "expected the service-account key file's JSON text" })
    .max(MAX_CREDENTIALS_JSON_CHARS, {
      error: `credentials_json: at most ${MAX_CREDENTIALS_JSON_CHARS} characters (a service-account key is about 2,400)`,
    })
    .superRefine((value, ctx) => {
      const problem = credentialsProblem(value);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .optional(),
  /** A path to a service-account key file on the server's host: a host option. */
  key_file: z
    .string({ error: 'expected the path of a service-account key file' })
    .min(1, { error: 'key_file: expected a path' })
    .max(4096, { error: 'key_file: at most 4096 characters' })
    .optional(),
  /** The JSON API's origin instead of https://storage.googleapis.com (an emulator, a Private Service Connect endpoint); held to public addresses unless allow_private_networks. */
  api_endpoint: apiEndpoint.optional(),
  allow_private_networks: z.boolean().default(false),
  /** Objects larger than this go up in a resumable upload (in chunks of this size), smaller ones in one multipart request. */
  resumable_threshold_bytes: z
    .number()
    .int()
    .min(MIN_RESUMABLE_THRESHOLD_BYTES, {
      error: `resumable_threshold_bytes: at least ${MIN_RESUMABLE_THRESHOLD_BYTES} (256 KiB, GCS's chunk unit)`,
    })
    .max(MAX_RESUMABLE_THRESHOLD_BYTES, { error: 'resumable_threshold_bytes: at most 5368709120 (5 GiB)' })
    .multipleOf(MIN_RESUMABLE_THRESHOLD_BYTES, {
      error: 'resumable_threshold_bytes: a multiple of 262144 (256 KiB), as GCS requires of upload chunks',
    })
    .default(8 * 1024 * 1024),
  /** Each HTTP request (one upload request or chunk, a metadata read) fails after this long. */
  request_timeout_ms: z
    .number()
    .int()
    .min(1_000, { error: 'request_timeout_ms: at least 1000' })
    .max(600_000, { error: 'request_timeout_ms: at most 600000 (10 minutes)' })
    .default(60_000),
};

/** The gcs sink's own options after validation (defaults applied). */
export type GcsOptions = SinkOptions<typeof gcsOptionsShape>;

/** Options whose values are secrets: never returned by the API or logged, stored encrypted. */
export const gcsSecretFields: readonly string[] = ['credentials_json'];

/**
 * Options that reach the server's host or its networks: a key file on the
 * host, private addresses. A tenant-bound admin may not set them; its
 * `api_endpoint` is held to public addresses by the network guard.
 */
export const gcsHostOptions: readonly string[] = ['key_file', 'allow_private_networks'];

/**
 * What is wrong with the credentials of a gcs sink where it would run: one
 * kind of credentials at most, and for a tenant-bound admin's sink a key
 * given inline, never the host's application default credentials (its
 * environment, gcloud files, the metadata server's service account).
 */
export function gcsPlacementProblems(
  options: GcsOptions,
  placement: SinkPlacement,
): Array<{ path: string; message: string }> {
  const problems: Array<{ path: string; message: string }> = [];
  if (options.credentials_json !== undefined && options.key_file !== undefined) {
    problems.push({
      path: 'key_file',
      message: 'key_file: give credentials_json or key_file, not both',
    });
  }
  if (placement.owner.tenantId !== null && options.credentials_json === undefined) {
    problems.push({
      path: 'credentials_json',
      message:
        "credentials_json: a tenant-bound admin's gcs sink must give a service-account key inline; " +
        "without it the SDK would use the server's own application default credentials",
    });
  }
  return problems;
}
