import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { rootCertificates } from 'node:tls';
import { z } from 'zod';
import { TrailwardenError } from '../../../errors.js';
import type { SinkContext } from '../../sink.js';

/** Largest inline PEM accepted (a CA bundle of a few dozen certificates). */
const MAX_PEM_CHARS = 65_536;
const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----/g;

/** The PEM blocks of a text, each as its own string. */
function pemBlocks(pem: string): string[] {
  return [...pem.matchAll(PEM_BLOCK)].map((m) => m[0]);
}

function certificatesProblem(pem: string): string | null {
  const blocks = pemBlocks(pem);
  if (blocks.length === 0) return 'expected PEM certificates ("-----BEGIN CERTIFICATE-----" …)';
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (err) {
      return `PEM block ${i + 1} is not a certificate: ${(err as Error).message}`;
    }
  }
  return null;
}

function privateKeyProblem(pem: string): string | null {
  try {
    createPrivateKey(pem);
    return null;
  } catch (err) {
    return `expected a PEM private key ("-----BEGIN PRIVATE KEY-----" …): ${(err as Error).message}`;
  }
}

const pem = (what: 'certificates' | 'key') =>
  z
    .string()
    .min(1)
    .max(MAX_PEM_CHARS, { error: `at most ${MAX_PEM_CHARS} characters` })
    .superRefine((v, ctx) => {
      const problem = what === 'key' ? privateKeyProblem(v) : certificatesProblem(v);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    });

/**
 * The `tls` settings of a sink that opens TLS connections. Certificates and
 * the client key may be given inline (PEM): what a tenant-bound admin uses to
 * pin its collector's CA, since files on the server's host are the operator's
 * (`*_file` are host options).
 */
export function tlsSchema() {
  return z
    .strictObject({
      /** CA certificates (PEM) added to Node's bundled CAs. */
      ca: pem('certificates').optional(),
      ca_file: z.string().min(1).optional(),
      /** Client certificate (PEM) for mutual TLS, with `key`. */
      cert: pem('certificates').optional(),
      cert_file: z.string().min(1).optional(),
      /** Client private key (PEM), a secret. */
      key: pem('key').optional(),
      key_file: z.string().min(1).optional(),
      /** Name checked against the peer's certificate (and sent as SNI); default the URL's or `host`'s. */
      servername: z.string().min(1).optional(),
      reject_unauthorized: z.boolean().default(true),
    })
    .superRefine((t, ctx) => {
      for (const field of ['ca', 'cert', 'key'] as const) {
        if (t[field] !== undefined && t[`${field}_file`] !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: [field],
            message: `give ${field} or ${field}_file, not both`,
          });
        }
      }
      const hasCert = t.cert !== undefined || t.cert_file !== undefined;
      const hasKey = t.key !== undefined || t.key_file !== undefined;
      if (hasCert !== hasKey) {
        ctx.addIssue({
          code: 'custom',
          message: 'set a client certificate and its key together (cert or cert_file with key or key_file)',
        });
      }
    });
}

/** The `tls` settings shared by every sink that opens TLS connections. */
export type TlsSettings = z.output<ReturnType<typeof tlsSchema>>;

/** Options of `tls` that read files on the server's host: the operator's and all-tenant admins' only. */
export const TLS_HOST_OPTIONS = ['tls.ca_file', 'tls.cert_file', 'tls.key_file'] as const;

/**
 * Node TLS options from a sink's `tls` settings, reading the files once at
 * create so a missing file is a configuration error, not a delivery failure.
 * A custom CA is added to Node's bundled CAs rather than replacing them.
 */
export function tlsConnectionOptions(
  t: TlsSettings | undefined,
  ctx: SinkContext,
  kind: string,
): ConnectionOptions {
  if (!t) return { rejectUnauthorized: true };
  const read = (field: string, path: string | undefined, inline: string | undefined) => {
    if (inline !== undefined) return inline;
    if (path === undefined) return undefined;
    if (ctx.owner.tenantId !== null) {
      // Refused when the sink is created; this guards a record written before that check existed.
      throw new TrailwardenError(
        'TW_ERR_FORBIDDEN',
        `sink ${ctx.name}: tls.${field}_file reads the server's host; a tenant-bound admin's sink gives tls.${field} inline`,
      );
    }
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new TrailwardenError(
        'TW_ERR_CONFIG',
        `sink ${ctx.name}: cannot read tls.${field}_file ${path}: ${(err as Error).message}`,
      );
    }
  };
  if (!t.reject_unauthorized)
    ctx.log.warn(`${kind} sink does not verify the peer's certificate`, { sink: ctx.name });
  const ca = read('ca', t.ca_file, t.ca);
  const cert = read('cert', t.cert_file, t.cert);
  const key = read('key', t.key_file, t.key);
  return {
    rejectUnauthorized: t.reject_unauthorized,
    ...(t.servername ? { servername: t.servername } : {}),
    ...(ca !== undefined ? { ca: [...rootCertificates, ca] } : {}),
    ...(cert !== undefined && key !== undefined ? { cert, key } : {}),
  };
}
