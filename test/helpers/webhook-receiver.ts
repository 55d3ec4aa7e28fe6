import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { Webhook } from 'standardwebhooks';
import type { DeliveryBatch, OutgoingEvent, Sink, SinkContext } from '../../src/delivery/sink.js';
import { webhookSink } from '../../src/delivery/sinks/webhook/webhook.js';

/** One request as the receiver saw it. */
export interface ReceivedRequest {
  method: string;
  /** Path and query. */
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** Whether the official `standardwebhooks` verifier accepted it (false without a secret). */
  verified: boolean;
  /** Why verification failed, when it did. */
  verifyError?: string;
  /** JSON body parsed; NDJSON as an array of parsed lines; otherwise the text. */
  parsed: unknown;
}

/** What to answer to one request. `hang` never answers; `delayMs` waits first. */
export interface ReceiverResponse {
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  delayMs?: number;
  hang?: boolean;
}

export interface StartReceiverOptions {
  /** The Standard Webhooks secret the receiver verifies with. */
  secret?: string;
  /** Answer for the n-th request (1-based); default 204. */
  respond?: (req: ReceivedRequest, n: number) => ReceiverResponse | Promise<ReceiverResponse>;
  /** Serve HTTPS; with `ca` and `requestCert`, demand a client certificate signed by `ca`. */
  tls?: { key: string; cert: string; ca?: string; requestCert?: boolean };
}

export interface Receiver {
  url: string;
  port: number;
  requests: ReceivedRequest[];
  /** Connections accepted (TLS: completed handshakes), to check keep-alive reuse. */
  connections(): number;
  /** Resolves once `n` requests have arrived. */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

function headerRecord(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers))
    if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

function parseBody(contentType: string | undefined, body: string): unknown {
  try {
    if (contentType?.startsWith('application/json')) return JSON.parse(body);
    if (contentType?.startsWith('application/x-ndjson')) {
      return body
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l));
    }
  } catch {
    // Left as text: a test asserting the shape will show it.
  }
  return body;
}

/** A real HTTP(S) webhook receiver on 127.0.0.1 that verifies and records every request. */
export async function startReceiver(opts: StartReceiverOptions = {}): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const waiters: Array<() => void> = [];
  let connections = 0;
  const verifier = opts.secret ? new Webhook(opts.secret) : undefined;

  const handler: Parameters<typeof createHttpServer>[1] = (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const record: ReceivedRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body,
        verified: false,
        parsed: parseBody(req.headers['content-type'], body),
      };
      if (verifier) {
        try {
          verifier.verify(body, headerRecord(req.headers), { jsonParse: false });
          record.verified = true;
        } catch (err) {
          record.verifyError = (err as Error).message;
        }
      }
      requests.push(record);
      for (const w of waiters.splice(0)) w();
      const answer = (await opts.respond?.(record, requests.length)) ?? {};
      if (answer.hang) return;
      const send = () => {
        res.writeHead(answer.status ?? 204, answer.headers);
        res.end(answer.body);
      };
      if (!answer.delayMs) return send();
      const t = setTimeout(() => {
        timers.delete(t);
        send();
      }, answer.delayMs);
      timers.add(t);
    });
  };

  let server: Server;
  if (opts.tls) {
    const { key, cert, ca, requestCert = false } = opts.tls;
    server = createHttpsServer(
      { key, cert, ...(ca ? { ca } : {}), requestCert, rejectUnauthorized: requestCert },
      handler,
    );
    server.on('secureConnection', () => connections++);
  } else {
    server = createHttpServer(handler);
    server.on('connection', () => connections++);
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}/hook`,
    port,
    requests,
    connections: () => connections,
    waitForRequests(n, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const deadline = setTimeout(
          () => reject(new Error(`expected ${n} requests, got ${requests.length}`)),
          timeoutMs,
        );
        const check = () => {
          if (requests.length >= n) {
            clearTimeout(deadline);
            resolve();
          } else waiters.push(check);
        };
        check();
      });
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A fresh Standard Webhooks secret (32 random bytes). */
export function newSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/** A batch of `count` small events, as the delivery worker would hand it to a sink. */
export function testBatch(count = 1, overrides: Partial<DeliveryBatch> = {}): DeliveryBatch {
  const events: OutgoingEvent[] = Array.from({ length: count }, (_, i) => {
    const event = { id: `evt-${i + 1}`, action: 'user.login', tenant_id: 't1', seq: i + 1 };
    return {
      seq: i + 1,
      eventId: event.id,
      tenantId: 't1',
      receivedAt: '2026-03-15T08:00:00.000Z',
      timestamp: '2026-03-15T08:00:00.000Z',
      action: event.action,
      event,
      text: JSON.stringify(event),
    };
  });
  return {
    id: `dlv_${randomBytes(6).toString('hex')}`,
    attempt: 1,
    firstSeq: 1,
    lastSeq: count,
    events,
    ...overrides,
  };
}

/** Validates raw options like the config loader (defaults applied) and builds a webhook sink. */
export async function createWebhookSink(
  raw: Record<string, unknown>,
  ctx: Partial<SinkContext> = {},
): Promise<Sink> {
  return webhookSink.create(raw, {
    name: 'test-webhook',
    owner: { source: 'config', tenantId: null },
    format: 'json',
    dataDir: tmpdir(),
    allowedPrivateNetworks: [],
    fileRoot: null,
    now: Date.now,
    log: { info() {}, warn() {} },
    ...ctx,
  });
}
