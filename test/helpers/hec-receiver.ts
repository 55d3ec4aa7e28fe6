import { createServer as createHttpServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

/*
 * No Splunk can run here, so tests talk to a small HEC emulator: a stand-in
 * for Splunk's documented HTTP Event Collector API (/services/collector/event,
 * /services/collector/ack, /services/collector/health), with its answers and
 * codes ({"text":"Success","code":0,"ackId":N}, 403 "Invalid token" code 4,
 * 400 "Invalid data format" code 6, 503 "Server is busy" code 9).
 */

/** The token the emulator accepts unless told another. */
export const HEC_TOKEN = '11111111-2222-3333-4444-555555555555';

/** One request as the emulator saw it. */
export interface HecRequest {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** How the event endpoint answers: accept, refuse the data (400), be busy (503), or never acknowledge. */
export type HecMode = 'ok' | 'bad-data' | 'busy' | 'ack-never';

export interface StartHecOptions {
  /** Polls of an ack id before it turns true (default 2). */
  acksTrueAfterPolls?: number;
  /** The token it accepts (default {@link HEC_TOKEN}). */
  token?: string;
  /** Serve HTTPS; with `ca`, demand a client certificate signed by it. */
  tls?: { key: string; cert: string; ca?: string };
}

export interface HecReceiver {
  url: string;
  port: number;
  requests: HecRequest[];
  /** Every event envelope accepted, in arrival order. */
  events: unknown[];
  /** Polls seen per ack id. */
  polls: Map<number, number>;
  /** The 4xx answers it gave, as `status text (code n)`: what a well-behaved sink never causes. */
  rejections: string[];
  /** Changes how the event endpoint answers from the next request on. */
  setMode(mode: HecMode): void;
  close(): Promise<void>;
}

/**
 * Splits HEC's batch format, JSON objects one after another (whitespace
 * between them allowed, no array, no commas), like HEC does.
 */
export function parseConcatenated(body: string): unknown[] {
  const out: unknown[] = [];
  let depth = 0;
  let inString = false;
  let escaped = false;
  let start = -1;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{') {
      if (depth === 0) start = i;
      depth++;
    } else if (c === '}') {
      depth--;
      if (depth === 0) out.push(JSON.parse(body.slice(start, i + 1)));
    } else if (depth === 0 && !/\s/.test(c ?? '')) throw new Error(`unexpected ${c} between events at ${i}`);
  }
  if (depth !== 0 || inString) throw new Error('truncated event');
  return out;
}

/** Starts the HEC emulator on 127.0.0.1 (a free port). */
export async function startHec(initial: HecMode, opts: StartHecOptions = {}): Promise<HecReceiver> {
  const token = opts.token ?? HEC_TOKEN;
  let mode = initial;
  const requests: HecRequest[] = [];
  const events: unknown[] = [];
  const rejections: string[] = [];
  const polls = new Map<number, number>();
  let nextAckId = 0;
  const handler: Parameters<typeof createHttpServer>[1] = (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const path = req.url ?? '';
      requests.push({ path, headers: req.headers, body });
      const answer = (status: number, json: { text: string; code: number } | object) => {
        if (status >= 400 && status < 500 && 'text' in json)
          rejections.push(`${status} ${json.text} (code ${json.code})`);
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(json));
      };
      if (req.method === 'GET' && path === '/services/collector/health')
        return answer(200, { text: 'HEC is healthy', code: 17 });
      if (req.headers.authorization !== `Splunk ${token}`)
        return answer(403, { text: 'Invalid token', code: 4 });
      const channel = req.headers['x-splunk-request-channel'];
      if (typeof channel !== 'string' || !/^[0-9a-f-]{36}$/.test(channel))
        return answer(400, { text: 'Data channel is missing', code: 10 });
      if (path === '/services/collector/event') {
        if (mode === 'busy') return answer(503, { text: 'Server is busy', code: 9 });
        if (mode === 'bad-data') return answer(400, { text: 'Invalid data format', code: 6 });
        let parsed: unknown[];
        try {
          parsed = parseConcatenated(body);
        } catch {
          return answer(400, { text: 'Invalid data format', code: 6 });
        }
        events.push(...parsed);
        return answer(200, { text: 'Success', code: 0, ackId: nextAckId++ });
      }
      if (path === '/services/collector/ack') {
        const ids = (JSON.parse(body) as { acks: number[] }).acks;
        const acks: Record<string, boolean> = {};
        for (const id of ids) {
          const n = (polls.get(id) ?? 0) + 1;
          polls.set(id, n);
          acks[String(id)] = mode !== 'ack-never' && n >= (opts.acksTrueAfterPolls ?? 2);
        }
        return answer(200, { acks });
      }
      answer(404, { text: 'The requested URL was not found on this server.', code: 404 });
    });
  };
  let server: Server;
  if (opts.tls) {
    const { key, cert, ca } = opts.tls;
    server = createHttpsServer(
      { key, cert, ...(ca ? { ca, requestCert: true, rejectUnauthorized: true } : {}) },
      handler,
    );
  } else server = createHttpServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    requests,
    events,
    polls,
    rejections,
    setMode: (m) => {
      mode = m;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
