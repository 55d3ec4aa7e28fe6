/**
 * A contract fake of Google Cloud Storage's JSON API, because no GCS
 * emulator runs here (fake-gcs-server is Go, the Firebase emulator downloads
 * a jar). The real @google-cloud/storage talks to it through `apiEndpoint`
 * (and then sends no auth). It implements what the gcs ObjectStore uses:
 * bucket metadata, object metadata, multipart uploads and resumable uploads
 * (POST to start, PUT of the bytes in Content-Range chunks), honours
 * `ifGenerationMatch=0` (412 when the object exists), answers md5Hash and
 * crc32c as GCS does (the SDK checks them), can answer an error status the
 * next N requests, and records every request for the tests to assert on.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CRC32C } from '@google-cloud/storage';

/** One request as the fake received it. */
export interface GcsFakeRequest {
  method: string;
  /** Path as sent (URL-encoded). */
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  bodyBytes: number;
  /** What the fake answered. */
  status: number;
}

/** One stored object. */
export interface GcsFakeObject {
  bytes: Buffer;
  /** The object resource as the fake returns it (contentType, contentEncoding, metadata …). */
  resource: Record<string, unknown>;
}

interface ResumableSession {
  bucket: string;
  name: string;
  meta: Record<string, unknown>;
  ifGenerationMatch: string | null;
  chunks: Buffer[];
}

export interface GcsFake {
  /** `http://127.0.0.1:PORT`, for `api_endpoint`. */
  url: string;
  requests: GcsFakeRequest[];
  objects: Map<string, GcsFakeObject>;
  /** Adds a bucket (none exist at first). */
  addBucket(name: string): void;
  /** The next `count` requests get `status` (with Retry-After when given) instead of an answer. */
  failNext(count: number, status: number, retryAfterSeconds?: number): void;
  /** Holds every upload request's answer until the returned function is called. */
  stall(): () => void;
  object(bucket: string, name: string): GcsFakeObject | undefined;
  /** Connections open to the fake now. */
  connections(): Promise<number>;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** The two parts of a multipart/related body: JSON metadata, then the bytes. */
function multipartParts(body: Buffer, contentType: string): { meta: Record<string, unknown>; bytes: Buffer } {
  const boundary = /boundary=("?)([^";]+)\1/.exec(contentType)?.[2];
  if (!boundary) throw new Error('no multipart boundary');
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: Buffer[] = [];
  let at = body.indexOf(delimiter);
  while (at !== -1) {
    const next = body.indexOf(delimiter, at + delimiter.length);
    if (next === -1) break;
    parts.push(body.subarray(at + delimiter.length, next));
    at = next;
  }
  const content = (part: Buffer | undefined): Buffer => {
    if (!part) throw new Error('missing multipart part');
    const start = part.indexOf('\r\n\r\n') + 4;
    // Each part ends with the CRLF before the next delimiter.
    return part.subarray(start, part.length - 2);
  };
  return { meta: JSON.parse(content(parts[0]).toString('utf8')), bytes: content(parts[1]) };
}

/** CRC32C of the bytes, base64 of its big-endian value, as GCS answers it. */
function crc32c(bytes: Buffer): string {
  const crc = new CRC32C();
  crc.update(bytes);
  return crc.toString();
}

/** Starts the fake on 127.0.0.1, a free port. */
export async function startGcsFake(): Promise<GcsFake> {
  const buckets = new Set<string>();
  const objects = new Map<string, GcsFakeObject>();
  const sessions = new Map<string, ResumableSession>();
  const requests: GcsFakeRequest[] = [];
  let failures: { count: number; status: number; retryAfter?: number } = { count: 0, status: 0 };
  let generation = 1_000;
  let stalled: Promise<void> | null = null;
  let url = '';

  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', ...headers });
    res.end(JSON.stringify(body));
  };
  const error = (res: ServerResponse, status: number, reason: string, message: string) =>
    json(res, status, { error: { code: status, message, errors: [{ reason, message, domain: 'global' }] } });

  const store = (
    bucket: string,
    name: string,
    meta: Record<string, unknown>,
    bytes: Buffer,
  ): Record<string, unknown> => {
    generation += 1;
    const resource = {
      ...meta,
      kind: 'storage#object',
      bucket,
      name,
      generation: String(generation),
      metageneration: '1',
      size: String(bytes.length),
      md5Hash: createHash('md5').update(bytes).digest('base64'),
      crc32c: crc32c(bytes),
    };
    objects.set(`${bucket}/${name}`, { bytes, resource });
    return resource;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> => {
    const u = new URL(req.url ?? '/', 'http://fake');
    const q = u.searchParams;
    const bucketPath = /^\/storage\/v1\/b\/([^/]+)$/.exec(u.pathname);
    const objectPath = /^\/storage\/v1\/b\/([^/]+)\/o\/([^/]+)$/.exec(u.pathname);
    const uploadPath = /^\/upload\/storage\/v1\/b\/([^/]+)\/o$/.exec(u.pathname);
    if (req.method === 'GET' && bucketPath?.[1]) {
      const bucket = decodeURIComponent(bucketPath[1]);
      if (!buckets.has(bucket)) return error(res, 404, 'notFound', 'The specified bucket does not exist.');
      return json(res, 200, { kind: 'storage#bucket', name: bucket, id: bucket, location: 'EU' });
    }
    if (req.method === 'GET' && objectPath?.[1] && objectPath[2]) {
      const obj = objects.get(`${decodeURIComponent(objectPath[1])}/${decodeURIComponent(objectPath[2])}`);
      if (!obj) return error(res, 404, 'notFound', 'No such object.');
      return json(res, 200, obj.resource);
    }
    if (uploadPath?.[1]) {
      const bucket = decodeURIComponent(uploadPath[1]);
      if (!buckets.has(bucket)) return error(res, 404, 'notFound', 'The specified bucket does not exist.');
      if (stalled) await stalled;
      const exists = (name: string) => objects.has(`${bucket}/${name}`);
      if (req.method === 'POST' && q.get('uploadType') === 'multipart') {
        const { meta, bytes } = multipartParts(body, String(req.headers['content-type']));
        const name = q.get('name') ?? String(meta.name);
        if (q.get('ifGenerationMatch') === '0' && exists(name))
          return error(
            res,
            412,
            'conditionNotMet',
            'At least one of the pre-conditions you specified did not hold.',
          );
        return json(res, 200, store(bucket, name, meta, bytes));
      }
      if (req.method === 'POST' && q.get('uploadType') === 'resumable') {
        const meta = body.length > 0 ? JSON.parse(body.toString('utf8')) : {};
        const name = q.get('name') ?? String(meta.name);
        const id = randomUUID();
        sessions.set(id, { bucket, name, meta, ifGenerationMatch: q.get('ifGenerationMatch'), chunks: [] });
        res.writeHead(200, { location: `${url}${u.pathname}?uploadType=resumable&upload_id=${id}` });
        return void res.end();
      }
      if (req.method === 'PUT' && q.get('upload_id')) {
        const session = sessions.get(q.get('upload_id') ?? '');
        if (!session) return error(res, 404, 'notFound', 'No such upload.');
        const range = /^bytes (?:(\d+)-(\d+)|\*)\/(\d+|\*)$/.exec(String(req.headers['content-range'] ?? ''));
        session.chunks.push(body);
        const received = session.chunks.reduce((n, c) => n + c.length, 0);
        const total = range?.[3] === undefined || range[3] === '*' ? null : Number(range[3]);
        if (total === null || received < total) {
          res.writeHead(308, received > 0 ? { range: `bytes=0-${received - 1}` } : {});
          return void res.end();
        }
        sessions.delete(q.get('upload_id') ?? '');
        if (session.ifGenerationMatch === '0' && exists(session.name))
          return error(
            res,
            412,
            'conditionNotMet',
            'At least one of the pre-conditions you specified did not hold.',
          );
        return json(
          res,
          200,
          store(session.bucket, session.name, session.meta, Buffer.concat(session.chunks)),
        );
      }
    }
    return error(res, 400, 'invalid', `the fake does not implement ${req.method} ${u.pathname}`);
  };

  const server: Server = createServer((req, res) => {
    readBody(req).then(
      async (body) => {
        const u = new URL(req.url ?? '/', 'http://fake');
        const record: GcsFakeRequest = {
          method: req.method ?? '',
          path: (req.url ?? '').split('?')[0] ?? '',
          query: u.searchParams,
          headers: req.headers,
          bodyBytes: body.length,
          status: 0,
        };
        requests.push(record);
        res.on('finish', () => {
          record.status = res.statusCode;
        });
        if (failures.count > 0) {
          failures.count -= 1;
          const headers: Record<string, string> =
            failures.retryAfter === undefined ? {} : { 'retry-after': String(failures.retryAfter) };
          res.writeHead(failures.status, { 'content-type': 'application/json', ...headers });
          const reason = { 401: 'required', 403: 'forbidden', 429: 'rateLimitExceeded', 503: 'backendError' }[
            failures.status
          ];
          return void res.end(
            JSON.stringify({
              error: {
                code: failures.status,
                message: 'fake failure',
                errors: [{ reason: reason ?? 'fake' }],
              },
            }),
          );
        }
        await handle(req, res, body).catch((err: Error) => {
          if (!res.headersSent) error(res, 500, 'fakeError', err.message);
        });
      },
      (err: Error) => res.destroy(err),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    requests,
    objects,
    addBucket: (name) => void buckets.add(name),
    failNext(count, status, retryAfterSeconds) {
      failures = {
        count,
        status,
        ...(retryAfterSeconds === undefined ? {} : { retryAfter: retryAfterSeconds }),
      };
    },
    stall() {
      let release: () => void = () => undefined;
      stalled = new Promise<void>((resolve) => {
        release = resolve;
      });
      return () => {
        stalled = null;
        release();
      };
    },
    object: (bucket, name) => objects.get(`${bucket}/${name}`),
    connections: () =>
      new Promise<number>((resolve, reject) =>
        server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
      ),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
