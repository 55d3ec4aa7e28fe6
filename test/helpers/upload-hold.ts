/**
 * An HTTP relay on 127.0.0.1 in front of an object store (s3rver, Azurite)
 * that a test can make hold one upload in the middle, so the client can be
 * killed while that object's PUT is in flight:
 *
 * - `mid-body`: the store gets the request's head and half its body, then
 *   nothing more; the client gets no answer. The store's half of the
 *   exchange stays open until `release()`, so a restarted client can write
 *   the same key while the cut-off upload still hangs at the store.
 * - `answer`: the store gets the whole request and answers (the object is
 *   written), but the answer is kept from the client, which never learns
 *   that its upload succeeded.
 *
 * Every other request passes through unchanged (a new connection to the
 * store for each); the relay records each one with the store's status.
 * A plain TCP relay (tcp-gate.ts) cannot do this: it does not know where a
 * request, or its body, begins.
 */
import {
  type ClientRequest,
  createServer,
  type IncomingMessage,
  request,
  type Server,
  type ServerResponse,
} from 'node:http';

export type HoldMode = 'mid-body' | 'answer';

/** A request the relay passed on, as the store answered it. */
export interface RelayedRequest {
  method: string;
  /** The request's path without its query, percent-decoded (e.g. `/bucket/trailwarden/tenant=acme/…`). */
  path: string;
  /** The store's status, once it answered; undefined while it has not. */
  status?: number;
  /** True for the upload the relay held. */
  held: boolean;
}

export interface UploadHold {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  port: number;
  requests: RelayedRequest[];
  /** Holds the next request of method PUT whose decoded path `matches`, in `mode`. */
  arm(mode: HoldMode, matches: (path: string) => boolean): void;
  /** Resolves with the held request once the relay holds one (the part it was to pass has been sent). */
  waitForHold(timeoutMs?: number): Promise<RelayedRequest>;
  /** Ends the held exchange on both sides, if it is still open; the next arm() may hold another. */
  release(): void;
  close(): Promise<void>;
}

/** Headers that belong to one connection, not to the request. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'expect', 'proxy-connection', 'upgrade']);

/** Starts a relay to `127.0.0.1:targetPort`. */
export async function startUploadHold(targetPort: number): Promise<UploadHold> {
  const requests: RelayedRequest[] = [];
  let armed: { mode: HoldMode; matches: (path: string) => boolean } | undefined;
  let heldCut: (() => void) | undefined;
  let onHeld: ((r: RelayedRequest) => void) | undefined;
  let heldRequest: RelayedRequest | undefined;

  const relay = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://relay');
    const record: RelayedRequest = {
      method: req.method ?? '',
      path: decodeURIComponent(url.pathname),
      held: false,
    };
    requests.push(record);
    const hold = armed && record.method === 'PUT' && armed.matches(record.path) ? armed.mode : undefined;
    if (hold) {
      armed = undefined;
      record.held = true;
    }
    const headers = Object.fromEntries(
      Object.entries(req.headers).filter(([name, value]) => !HOP_BY_HOP.has(name) && value !== undefined),
    );
    const upstream: ClientRequest = request({
      host: '127.0.0.1',
      port: targetPort,
      method: req.method,
      path: req.url,
      headers,
      agent: false,
    });
    const cut = () => {
      upstream.destroy();
      req.destroy();
      res.destroy();
    };
    const held = () => {
      heldRequest = record;
      heldCut = cut;
      onHeld?.(record);
    };
    upstream.on('error', () => res.destroy());
    // A client that goes away takes its exchange with it, unless the relay holds it (release() ends that one).
    req.on('error', () => {
      if (!record.held) upstream.destroy();
    });
    upstream.on('response', (answer) => {
      record.status = answer.statusCode;
      if (hold === 'answer') {
        answer.resume();
        held();
        return;
      }
      res.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
      answer.pipe(res);
    });
    if (hold === 'mid-body') {
      // Half the body, then nothing: the store waits for the rest, the client for an answer.
      const limit = Math.max(1, Math.floor(Number(req.headers['content-length'] ?? 2) / 2));
      let passed = 0;
      const onData = (chunk: Buffer) => {
        const part = chunk.subarray(0, limit - passed);
        passed += part.length;
        upstream.write(part);
        if (passed >= limit) {
          req.off('data', onData);
          req.pause();
          held();
        }
      };
      req.on('data', onData);
      return;
    }
    req.pipe(upstream);
    res.on('close', () => {
      if (!record.held) upstream.destroy();
    });
  };

  const server: Server = createServer(relay);
  // Keep-alive connections of a killed client must not keep close() waiting.
  server.keepAliveTimeout = 1000;
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });
  const release = () => {
    heldCut?.();
    heldCut = undefined;
    heldRequest = undefined;
  };
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    arm(mode, matches) {
      armed = { mode, matches };
    },
    waitForHold(timeoutMs = 30_000) {
      if (heldRequest) return Promise.resolve(heldRequest);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no upload was held in time')), timeoutMs);
        onHeld = (r) => {
          clearTimeout(timer);
          onHeld = undefined;
          resolve(r);
        };
      });
    },
    release,
    async close() {
      armed = undefined;
      release();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
