import type { IncomingHttpHeaders } from 'node:http';
import type { onRequestHookHandler } from 'fastify';
import { TrailwardenError } from '../errors.js';

/** Seconds a client refused for lack of body room is asked to wait. */
const BUSY_RETRY_AFTER_S = 1;

/**
 * The bytes a request says its body has: its Content-Length, or
 * `maxBodyBytes` for a chunked body (it may grow that far before it is cut).
 */
export function declaredBodyBytes(headers: IncomingHttpHeaders, maxBodyBytes: number): number {
  const length = headers['content-length'];
  if (length !== undefined) {
    const n = Number(length);
    // A malformed length is Node's to refuse; count it as the largest body meanwhile.
    return Number.isSafeInteger(n) && n >= 0 ? n : maxBodyBytes;
  }
  return headers['transfer-encoding'] === undefined ? 0 : maxBodyBytes;
}

/**
 * Bounds the request bodies being received at once, by the bytes they
 * declare: each one is buffered whole before it is parsed, so without a bound
 * many slow uploads pin memory in proportion to their number.
 */
export class BodyBudget {
  private reserved = 0;

  constructor(private readonly maxBytes: number) {}

  /** Takes room for `bytes`; false when that would pass the bound. */
  tryReserve(bytes: number): boolean {
    if (this.reserved + bytes > this.maxBytes) return false;
    this.reserved += bytes;
    return true;
  }

  release(bytes: number): void {
    this.reserved -= bytes;
  }

  /** Bytes reserved now (tests and diagnostics). */
  inUse(): number {
    return this.reserved;
  }
}

/**
 * The hook that runs before a body is read (after authentication, so only
 * callers with a key take room; RouteGate registers it in every group of
 * routes, all sharing one budget): a body declared over `max_body_bytes` is
 * refused with 413 at once, and one that does not fit in the budget with 503
 * and Retry-After. The room is given back when the response ends, however it
 * ends.
 */
export function limitBodies(limits: {
  max_body_bytes: number;
  max_inflight_body_bytes: number;
}): onRequestHookHandler {
  const budget = new BodyBudget(limits.max_inflight_body_bytes);
  return (req, reply, done) => {
    const declared = declaredBodyBytes(req.headers, limits.max_body_bytes);
    if (declared === 0) return done();
    if (declared > limits.max_body_bytes) return done(payloadTooLarge(limits.max_body_bytes));
    if (!budget.tryReserve(declared)) {
      return done(
        new TrailwardenError(
          'TW_ERR_BUSY',
          `the server is receiving ${limits.max_inflight_body_bytes} bytes of request bodies at once (limits.max_inflight_body_bytes); nothing was stored — retry after Retry-After seconds`,
          { headers: { 'retry-after': String(BUSY_RETRY_AFTER_S) } },
        ),
      );
    }
    reply.raw.once('close', () => budget.release(declared));
    done();
  };
}

/** The 413 for a body over `max_body_bytes`, declared or found while reading. */
export function payloadTooLarge(maxBodyBytes: number): TrailwardenError {
  return new TrailwardenError(
    'TW_ERR_PAYLOAD_TOO_LARGE',
    `request body is larger than ${maxBodyBytes} bytes (limits.max_body_bytes); split the batch into smaller requests`,
  );
}
