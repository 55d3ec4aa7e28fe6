import { randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { PassThrough, type Readable } from 'node:stream';
import type { Storage } from '@google-cloud/storage';

/**
 * Why this module exists: @google-cloud/storage 7 sends its JSON API
 * requests (bucket and object metadata, multipart uploads) through
 * teeny-request, which always takes its agent from a process-wide pool and
 * accepts none from the caller; only its resumable uploads (gaxios) take
 * one. A gcs sink must connect through its own agents (the network guard's
 * lookup, and sockets that close() can end), so these requests are sent
 * here instead: the SDK still builds them and authorises them (its
 * `makeAuthenticatedRequest` with `onAuthenticated`), this module only
 * carries them over the sink's agents and hands the answer back as the SDK's
 * own transport would (JSON body, ApiError for a non-2xx).
 */

type RequestFn = Storage['request'];
type RequestOptions = Parameters<RequestFn>[0];
type ResponseCallback = Parameters<RequestFn>[1];
type SdkResponse = NonNullable<Parameters<ResponseCallback>[2]>;
type Sdk = typeof import('@google-cloud/storage');

/** Answers are object or bucket resources (a few KiB); anything past this is cut. */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/** The agents a gcs sink's requests go through, one per scheme. */
export interface GcsAgents {
  http: http.Agent;
  https: https.Agent;
}

function field(value: unknown, name: string): unknown {
  return typeof value === 'object' && value !== null ? new Map(Object.entries(value)).get(name) : undefined;
}

async function bytesOf(body: string | Readable): Promise<Buffer> {
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  const chunks: Buffer[] = [];
  for await (const chunk of body)
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** The request body and its content type, from the SDK's `multipart`, `json` or `body`. */
async function bodyOf(opts: RequestOptions): Promise<{ bytes: Buffer; contentType?: string } | undefined> {
  if (Array.isArray(opts.multipart)) {
    const boundary = randomUUID();
    const pieces: Buffer[] = [];
    for (const part of opts.multipart) {
      const type = field(part, 'Content-Type');
      pieces.push(Buffer.from(`--${boundary}\r\nContent-Type: ${String(type)}\r\n\r\n`));
      pieces.push(await bytesOf(part.body));
      pieces.push(Buffer.from('\r\n'));
    }
    pieces.push(Buffer.from(`--${boundary}--`));
    return { bytes: Buffer.concat(pieces), contentType: `multipart/related; boundary=${boundary}` };
  }
  if (typeof opts.json === 'object' && opts.json !== null)
    return { bytes: Buffer.from(JSON.stringify(opts.json)), contentType: 'application/json' };
  if (typeof opts.body === 'string' || Buffer.isBuffer(opts.body)) return { bytes: Buffer.from(opts.body) };
  return undefined;
}

function urlOf(baseUrl: string, opts: RequestOptions): URL {
  // As the SDK's Service.request_ builds it: relative URIs hang below the service's base URL.
  const uri = /^https?:/.test(opts.uri)
    ? opts.uri
    : `${baseUrl.replace(/\/+$/, '')}/${opts.uri.replace(/^\/+/, '')}`.replace(/\/:/g, ':');
  const url = new URL(uri);
  const qs: unknown = opts.qs;
  if (typeof qs === 'object' && qs !== null) {
    for (const [name, value] of Object.entries(qs)) {
      if (value !== undefined && value !== null) url.searchParams.append(name, String(value));
    }
  }
  return url;
}

/**
 * Sends the storage client's JSON API requests over `agents`, each ending
 * after `timeoutMs` without progress. Returns a function that ends every
 * request in flight.
 */
export function routeJsonApi(storage: Storage, sdk: Sdk, agents: GcsAgents, timeoutMs: number): () => void {
  const inFlight = new Set<http.ClientRequest>();

  const send = async (opts: RequestOptions): Promise<{ resp: SdkResponse; body: unknown }> => {
    const url = urlOf(storage.baseUrl, opts);
    const payload = await bodyOf(opts);
    const agent = url.protocol === 'http:' ? agents.http : agents.https;
    const headers: Record<string, string> = {
      ...Object.fromEntries(Object.entries(opts.headers ?? {}).map(([k, v]) => [k, String(v)])),
      ...(payload?.contentType === undefined ? {} : { 'content-type': payload.contentType }),
      ...(payload === undefined ? {} : { 'content-length': String(payload.bytes.length) }),
    };
    const request = url.protocol === 'http:' ? http.request : https.request;
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        { method: opts.method ?? 'GET', headers, agent, timeout: timeoutMs },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size <= MAX_RESPONSE_BYTES) chunks.push(chunk);
          });
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let body: unknown = text;
            try {
              body = text === '' ? undefined : JSON.parse(text);
            } catch {
              // Not JSON (a proxy's HTML page): kept as text.
            }
            const resp: SdkResponse = {
              statusCode: res.statusCode ?? 0,
              ...(res.statusMessage === undefined ? {} : { statusMessage: res.statusMessage }),
              headers: res.headers,
              body: text,
              // The SDK reads nothing of the request but its URL: no agent is handed out.
              request: Object.assign(new PassThrough(), { agent: false as const, headers, href: url.href }),
            };
            resolve({ resp, body });
          });
        },
      );
      inFlight.add(req);
      req.on('close', () => inFlight.delete(req));
      req.on('timeout', () =>
        req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })),
      );
      req.on('error', reject);
      req.end(payload?.bytes);
    });
  };

  storage.request = (reqOpts, callback) => {
    storage.makeAuthenticatedRequest(reqOpts, {
      onAuthenticated: (authError, authorized) => {
        if (authError || authorized === undefined) {
          callback(authError ?? new Error('the storage client could not authorise a request'));
          return;
        }
        send(authorized).then(({ resp, body }) => {
          if (resp.statusCode >= 200 && resp.statusCode < 300) {
            callback(null, body, resp);
            return;
          }
          const error = field(body, 'error');
          const message = field(error, 'message');
          const errors = field(error, 'errors');
          callback(
            new sdk.ApiError({
              code: resp.statusCode,
              message:
                typeof message === 'string' ? message : (resp.statusMessage ?? `HTTP ${resp.statusCode}`),
              errors: Array.isArray(errors) ? errors : [],
              response: resp,
            }),
            body,
            resp,
          );
        }, callback);
      },
    });
  };

  return () => {
    for (const req of inFlight) req.destroy(new Error('the sink is closing'));
  };
}
