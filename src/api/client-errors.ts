import { type ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { TrailwardenError } from '../errors.js';
import { toProblem } from './problem.js';

/**
 * The problem for an error Node's HTTP parser or its timeouts raise on a
 * connection (`clientError`), before or while a request is read: headers too
 * large, a request not received in time, bytes that are not HTTP.
 */
export function clientErrorProblem(
  code: string,
  limits: { headers_timeout_ms: number; request_timeout_ms: number },
): TrailwardenError {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return new TrailwardenError(
        'TW_ERR_HEADERS_TOO_LARGE',
        'the request line and headers are larger than the server reads (16 KiB); send fewer or shorter headers, or a shorter URL',
      );
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new TrailwardenError(
        'TW_ERR_REQUEST_TIMEOUT',
        `the request was not received in time: headers must arrive within ${limits.headers_timeout_ms} ms and the whole request within ${limits.request_timeout_ms} ms (limits.headers_timeout_ms, limits.request_timeout_ms); send it faster or in smaller batches`,
      );
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return new TrailwardenError(
        'TW_ERR_PAYLOAD_TOO_LARGE',
        'the chunk extensions of the request body are too large; send the body without chunk extensions',
      );
    default:
      return new TrailwardenError(
        'TW_ERR_BAD_REQUEST',
        `the request is not valid HTTP/1.1 (${code}); check the client`,
      );
  }
}

/** A whole HTTP/1.1 response carrying `err` as problem+json, that closes the connection. */
export function rawProblemResponse(err: TrailwardenError): string {
  const body = JSON.stringify(toProblem(err));
  return [
    `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? ''}`,
    'Content-Type: application/problem+json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    '',
    body,
  ].join('\r\n');
}

/**
 * Answers Node's `clientError`s with problem+json, then closes the
 * connection. Nothing is written once a response has started on the
 * connection (e.g. a request that timed out while its body was being
 * discarded after an early answer): that would corrupt the response.
 */
export class ClientErrorAnswers {
  private readonly responses = new WeakMap<Socket, ServerResponse>();

  constructor(private readonly limits: { headers_timeout_ms: number; request_timeout_ms: number }) {}

  /** Fastify's `clientErrorHandler`. */
  readonly handle = (err: Error & { code?: string }, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const started = this.responses.get(socket)?.headersSent ?? false;
    if (socket.writable && !started) {
      socket.write(rawProblemResponse(clientErrorProblem(err.code ?? 'unknown', this.limits)));
    }
    socket.destroy(err);
  };

  /** Remembers each connection's current response, so `handle` can tell whether one has started. */
  track(app: FastifyInstance): void {
    app.addHook('onRequest', (req, reply, done) => {
      this.responses.set(req.raw.socket, reply.raw);
      done();
    });
  }
}
