import http from 'node:http';
import { performance } from 'node:perf_hooks';

/** Where the server listens and the bearer header to send. */
export interface Target {
  host: string;
  port: number;
  auth: string;
}

export interface Reply {
  status: number;
  body: string;
}

/** One request on a keep-alive agent; resolves with the whole response body. */
export function send(
  target: Target,
  agent: http.Agent,
  method: string,
  path: string,
  body?: Buffer,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { authorization: target.auth };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = body.length;
    }
    const req = http.request(
      { host: target.host, port: target.port, method, path, agent, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export function keepAliveAgent(sockets: number): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets });
}

export interface LoadResult {
  ok: number;
  failed: number;
  /** First failure's status and body, to tell a broken run from a slow one. */
  firstFailure: string | undefined;
  elapsedMs: number;
  /** Latency of each successful request after the warm-up, in milliseconds. */
  latencies: number[];
}

/**
 * A closed-loop load: `concurrency` clients each send the next pre-serialised
 * body as soon as their previous request was answered, for `durationMs` after
 * a `warmupMs` that is not counted.
 */
export async function closedLoop(opts: {
  target: Target;
  method: string;
  path: string | (() => string);
  bodies?: readonly Buffer[];
  concurrency: number;
  durationMs: number;
  warmupMs: number;
  okStatus: number;
  stop?: { stopped: boolean };
}): Promise<LoadResult> {
  const agent = keepAliveAgent(opts.concurrency);
  const result: LoadResult = { ok: 0, failed: 0, firstFailure: undefined, elapsedMs: 0, latencies: [] };
  const begin = performance.now();
  const measureFrom = begin + opts.warmupMs;
  const end = measureFrom + opts.durationMs;
  let next = 0;
  const client = async () => {
    for (;;) {
      const t0 = performance.now();
      if (t0 >= end || opts.stop?.stopped) return;
      const body = opts.bodies?.[next++ % opts.bodies.length];
      const path = typeof opts.path === 'string' ? opts.path : opts.path();
      const reply = await send(opts.target, agent, opts.method, path, body);
      const t1 = performance.now();
      if (t0 < measureFrom) continue;
      if (reply.status === opts.okStatus) {
        result.ok += 1;
        result.latencies.push(t1 - t0);
      } else {
        result.failed += 1;
        result.firstFailure ??= `${reply.status} ${reply.body.slice(0, 300)}`;
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, client));
  result.elapsedMs = Math.min(performance.now(), end) - measureFrom;
  agent.destroy();
  return result;
}

/**
 * Listens on GET /v1/stream (Server-Sent Events) and calls `onEvent` with each
 * event's `event_id` and the time it arrived.
 */
export function openStream(
  target: Target,
  path: string,
  onEvent: (eventId: string, at: number) => void,
): Promise<{ close(): void }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: target.host, port: target.port, path, headers: { authorization: target.auth } },
      (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`stream answered ${res.statusCode}`));
          return;
        }
        let buffered = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          const at = performance.now();
          buffered += chunk;
          let cut = buffered.indexOf('\n\n');
          while (cut !== -1) {
            const message = buffered.slice(0, cut);
            buffered = buffered.slice(cut + 2);
            for (const line of message.split('\n')) {
              if (line.startsWith('data: ')) {
                const e = JSON.parse(line.slice(6)) as { event_id: string };
                onEvent(e.event_id, at);
              }
            }
            cut = buffered.indexOf('\n\n');
          }
        });
        resolve({ close: () => req.destroy() });
      },
    );
    req.on('error', (err) => {
      if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(err);
    });
  });
}
