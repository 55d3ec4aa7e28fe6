import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { rootCertificates } from 'node:tls';
import { TrailwardenError } from '../../errors.js';
import type { SinkContext } from '../sink.js';

/** The `tls` settings shared by every sink that opens TLS connections. */
export interface TlsSettings {
  ca_file?: string | undefined;
  cert_file?: string | undefined;
  key_file?: string | undefined;
  servername?: string | undefined;
  reject_unauthorized: boolean;
}

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
  const read = (field: string, path: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new TrailwardenError(
        'TW_ERR_CONFIG',
        `sink ${ctx.name}: cannot read tls.${field} ${path}: ${(err as Error).message}`,
      );
    }
  };
  if (!t.reject_unauthorized)
    ctx.log.warn(`${kind} sink does not verify the peer's certificate`, { sink: ctx.name });
  return {
    rejectUnauthorized: t.reject_unauthorized,
    ...(t.servername ? { servername: t.servername } : {}),
    ...(t.ca_file ? { ca: [...rootCertificates, read('ca_file', t.ca_file)] } : {}),
    ...(t.cert_file && t.key_file
      ? { cert: read('cert_file', t.cert_file), key: read('key_file', t.key_file) }
      : {}),
  };
}
