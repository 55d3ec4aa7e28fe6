import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** One request as the fake S3 saw it. */
export interface FakeS3Request {
  method: string;
  /** Path and query, e.g. `/bucket/key?uploads=`. */
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** An answer of the fake: a status with headers and body. */
export type FakeS3Reply = { status: number; headers?: Record<string, string>; body?: string };

/** What the fake answers: a reply, or no answer at all (`hang`). */
export type FakeS3Answer = FakeS3Reply | 'hang';

/** A small HTTP server speaking as much S3 as a test scripts, recording every request. */
export interface FakeS3 {
  endpoint: string;
  /** Requests whose body arrived in full, in that order. */
  requests: FakeS3Request[];
  /** `METHOD /path?query` of every request as it started (its body may never arrive). */
  started: string[];
  /** How many requests left unanswered (`hang`) still have their connection open. */
  hanging(): number;
  close(): Promise<void>;
}

/** An S3 error document (`<Error><Code>…`), as S3 answers a failed request. */
export function s3ErrorXml(code: string, message: string, extra: Record<string, string> = {}): string {
  const fields = Object.entries(extra)
    .map(([k, v]) => `<${k}>${v}</${k}>`)
    .join('');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message>${fields}<RequestId>4442587FB7D0A2F9</RequestId></Error>`;
}

/** Answers as a real S3 would for the multipart calls a test does not script: create, part, complete, abort. */
export function multipartAnswer(req: FakeS3Request): FakeS3Answer | undefined {
  const url = new URL(req.url, 'http://fake');
  if (req.method === 'POST' && url.searchParams.has('uploads')) {
    const key = url.pathname.split('/').slice(2).join('/');
    return {
      status: 200,
      headers: { 'content-type': 'application/xml' },
      body: `<?xml version="1.0" encoding="UTF-8"?>\n<InitiateMultipartUploadResult><Bucket>audit</Bucket><Key>${key}</Key><UploadId>upload-1</UploadId></InitiateMultipartUploadResult>`,
    };
  }
  if (req.method === 'PUT' && url.searchParams.has('partNumber')) {
    return { status: 200, headers: { etag: `"etag-${url.searchParams.get('partNumber')}"` } };
  }
  if (req.method === 'DELETE' && url.searchParams.has('uploadId')) return { status: 204 };
  return undefined;
}

/**
 * Starts the fake on 127.0.0.1, port 0. `answer` decides each reply from
 * the request (its body read in full first); `hang` leaves the request
 * unanswered until the client gives up or the fake closes.
 */
export async function startFakeS3(answer: (req: FakeS3Request) => FakeS3Answer): Promise<FakeS3> {
  const requests: FakeS3Request[] = [];
  const started: string[] = [];
  let hanging = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    started.push(`${req.method} ${req.url}`);
    let hung = false;
    res.on('close', () => {
      if (hung) hanging--;
    });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen: FakeS3Request = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks),
      };
      requests.push(seen);
      const a = answer(seen);
      if (a === 'hang') {
        hung = true;
        hanging++;
        return;
      }
      res.writeHead(a.status, { 'x-amz-request-id': '4442587FB7D0A2F9', ...a.headers });
      res.end(a.body ?? '');
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    started,
    hanging: () => hanging,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
