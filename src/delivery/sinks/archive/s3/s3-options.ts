import { isIP } from 'node:net';
import { z } from 'zod';
import type { SinkOptions, SinkPlacement } from '../../../sink.js';
import { httpUrl } from '../../net/http-url.js';

/** lib-storage's (and S3's) smallest part; every part but the last must be at least this big. */
export const MIN_PART_SIZE_BYTES = 5 * 1024 * 1024;
/** S3's largest single PutObject (5 GiB). */
const MAX_SINGLE_PUT_BYTES = 5 * 1024 * 1024 * 1024;
/** Parts are slices of the object held in memory: capped so one upload cannot take a gigabyte per part. */
const MAX_PART_SIZE_BYTES = 512 * 1024 * 1024;

// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const NO_SPACE = /^[^\s\u0000-\u001f\u007f]+$/;

/** Prefixes and suffixes AWS reserves for its own bucket kinds (access point aliases, S3 Express, tables …). */
const RESERVED_PREFIXES = ['xn--', 'sthree-', 'amzn-s3-demo-'];
const RESERVED_SUFFIXES = ['-s3alias', '--ol-s3', '.mrap', '--x-s3', '--table-s3'];

/**
 * Why `name` breaks S3's general-purpose bucket naming rules, or `null`
 * ("Bucket naming rules", Amazon S3 user guide). An ARN is refused too: an
 * access point or a multi-region access point would route the objects
 * somewhere the name does not say.
 */
export function bucketNameProblem(name: string): string | null {
  if (name.length < 3 || name.length > 63) return `a bucket name has 3 to 63 characters, got ${name.length}`;
  if (!/^[a-z0-9.-]+$/.test(name))
    return 'a bucket name has lowercase letters, digits, dots and hyphens only (give the name, not an ARN or URL)';
  if (!/^[a-z0-9].*[a-z0-9]$/.test(name)) return 'a bucket name begins and ends with a letter or digit';
  if (name.includes('..')) return 'a bucket name has no two dots in a row';
  if (isIP(name) === 4) return 'a bucket name is not an IP address';
  const prefix = RESERVED_PREFIXES.find((p) => name.startsWith(p));
  if (prefix) return `a bucket name cannot begin with ${prefix} (reserved by AWS)`;
  const suffix = RESERVED_SUFFIXES.find((s) => name.endsWith(s));
  if (suffix) return `a bucket name cannot end with ${suffix} (reserved by AWS)`;
  return null;
}

const bucket = z
  .string({ error: 'expected the bucket name, e.g. audit-archive' })
  .superRefine((value, ctx) => {
    const problem = bucketNameProblem(value);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

const ENDPOINT_EXAMPLE = 'e.g. https://s3.eu-central-1.wasabisys.com or http://127.0.0.1:9000';

const endpoint = httpUrl({
  expected: `expected the endpoint URL, ${ENDPOINT_EXAMPLE}`,
  rules: (u) =>
    u.username || u.password || u.search || u.hash
      ? 'give the endpoint alone: no credentials, ?query or #fragment (keys go in access_key_id and secret_access_key)'
      : u.pathname !== '/'
        ? `give the endpoint without a path, e.g. ${u.origin} (the bucket goes in bucket; set force_path_style for /bucket/key addressing)`
        : null,
});

const secret = (what: string, max: number) =>
  z
    .string({ error: `expected the ${what}` })
    .min(1, { error: `the ${what} cannot be empty` })
    .max(max, { error: `the ${what} has at most ${max} characters` })
    .regex(NO_SPACE, { error: `the ${what} cannot contain spaces or control characters` });

const ms = (def: number, max: number) =>
  z
    .number()
    .int()
    .min(1)
    .max(max, { error: `at most ${max} ms` })
    .default(def);

/** Storage classes PutObject and CreateMultipartUpload accept for new objects. */
const STORAGE_CLASSES = [
  'STANDARD',
  'STANDARD_IA',
  'ONEZONE_IA',
  'INTELLIGENT_TIERING',
  'GLACIER',
  'GLACIER_IR',
  'DEEP_ARCHIVE',
  'REDUCED_REDUNDANCY',
] as const;

/**
 * The S3 provider's own options (flat, beside the archive writer's), as a
 * zod raw shape. No SDK is imported here: the registry loads this module
 * whether or not any S3 sink is configured.
 */
export const s3OptionsShape = {
  bucket,
  region: z
    .string({ error: 'expected the bucket region, e.g. eu-west-1' })
    .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, {
      error:
        'expected a region such as eu-west-1 (lowercase letters, digits and hyphens; auto for Cloudflare R2)',
    })
    .optional(),
  endpoint: endpoint.optional(),
  force_path_style: z.boolean().default(false),
  access_key_id: secret('access key id', 128).optional(),
  secret_access_key: secret('secret access key', 256).optional(),
  session_token: secret('session token', 8192).optional(),
  profile: z
    .string({ error: 'expected the name of a profile in the AWS config files' })
    .regex(/^[A-Za-z0-9_.@+-]{1,64}$/, {
      error: 'a profile name has 1 to 64 letters, digits and _ . @ + -',
    })
    .optional(),
  allow_private_networks: z.boolean().default(false),
  storage_class: z
    .enum(STORAGE_CLASSES, { error: `expected one of ${STORAGE_CLASSES.join(', ')}` })
    .optional(),
  sse: z.enum(['AES256', 'aws:kms'], { error: 'expected AES256 or aws:kms' }).optional(),
  sse_kms_key_id: z
    .string({ error: 'expected a KMS key id, alias or ARN' })
    .min(1)
    .max(2048)
    .regex(NO_SPACE, { error: 'a KMS key id cannot contain spaces or control characters' })
    .optional(),
  single_put_max_bytes: z
    .number()
    .int()
    .min(1)
    .max(MAX_SINGLE_PUT_BYTES, {
      error: `at most ${MAX_SINGLE_PUT_BYTES} bytes (5 GiB, S3's PutObject limit)`,
    })
    .default(MIN_PART_SIZE_BYTES),
  part_size_bytes: z
    .number()
    .int()
    .min(MIN_PART_SIZE_BYTES, { error: `at least ${MIN_PART_SIZE_BYTES} bytes (5 MiB, S3's smallest part)` })
    .max(MAX_PART_SIZE_BYTES, { error: `at most ${MAX_PART_SIZE_BYTES} bytes (512 MiB)` })
    .default(MIN_PART_SIZE_BYTES),
  max_concurrent_parts: z.number().int().min(1).max(16, { error: 'at most 16 parts at once' }).default(4),
  checksum: z
    .enum(['when_supported', 'when_required'], {
      error:
        'expected when_supported (AWS) or when_required (S3-compatible stores that refuse x-amz-checksum-*)',
    })
    .default('when_supported'),
  connect_timeout_ms: ms(5_000, 120_000),
  request_timeout_ms: ms(60_000, 600_000),
};

/** The S3 options after validation (defaults applied). */
export type S3Options = SinkOptions<typeof s3OptionsShape>;

/** Options whose values are secrets: masked by the API, encrypted at rest, never logged. */
export const secretFields = ['access_key_id', 'secret_access_key', 'session_token'] as const;

/**
 * Options that reach the host (a profile in its AWS config files) or its
 * private networks: a tenant-bound admin may not set them.
 */
export const hostOptions = ['allow_private_networks', 'profile'] as const;

/** Whether the options name keys of their own, so the SDK's default credential chain is not used. */
export function hasExplicitKeys(options: Pick<S3Options, 'access_key_id' | 'secret_access_key'>): boolean {
  return options.access_key_id !== undefined && options.secret_access_key !== undefined;
}

/**
 * What is wrong with a sink's S3 options taken together, and with where it
 * would act. The tenant rule (docs/security.md): a tenant-bound admin's
 * sink never uses the host's identity, so it must give its own keys and
 * region (no environment, profile, instance role or web identity); its
 * endpoint is held to public addresses by the network guard when it
 * connects. `path` names the option.
 */
export function placementProblems(
  options: S3Options,
  placement: SinkPlacement,
): Array<{ path: string; message: string }> {
  const problems: Array<{ path: string; message: string }> = [];
  const keyId = options.access_key_id !== undefined;
  const key = options.secret_access_key !== undefined;
  if (keyId !== key) {
    problems.push({
      path: keyId ? 'secret_access_key' : 'access_key_id',
      message:
        'access_key_id and secret_access_key go together: give both, or neither to use the default chain',
    });
  }
  if (options.session_token !== undefined && !(keyId && key)) {
    problems.push({
      path: 'session_token',
      message: 'session_token belongs to temporary keys: give access_key_id and secret_access_key with it',
    });
  }
  if (options.profile !== undefined && (keyId || key)) {
    problems.push({
      path: 'profile',
      message: 'give either a profile or access_key_id and secret_access_key, not both',
    });
  }
  if (options.sse_kms_key_id !== undefined && options.sse !== 'aws:kms') {
    problems.push({ path: 'sse_kms_key_id', message: 'sse_kms_key_id needs sse: aws:kms' });
  }
  if (placement.owner.tenantId !== null) {
    if (!(keyId && key)) {
      problems.push({
        path: 'access_key_id',
        message:
          "a tenant-bound admin's S3 sink must give access_key_id and secret_access_key: " +
          "the server's own AWS identity (environment, profile, instance role, web identity) is the operator's",
      });
    }
    if (options.region === undefined) {
      problems.push({
        path: 'region',
        message:
          "a tenant-bound admin's S3 sink must give region (e.g. eu-west-1; auto for Cloudflare R2): " +
          "the server's own AWS configuration is the operator's",
      });
    }
  }
  return problems;
}
