import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * After an answer given before the request's body was read in full (401,
 * 403, 413, 503…): reads and discards up to `maxBytes` more of it, so the
 * connection stays open until the client has sent its body and can read the
 * answer. Closing at once would leave the client's unsent bytes arriving at
 * a closed socket, and TCP answers those with a reset that can reach the
 * client before it read the answer. A body longer still closes the
 * connection; so does `limits.request_timeout_ms`, which bounds the wait.
 */
export function discardUnreadBody(req: FastifyRequest, reply: FastifyReply, maxBytes: number): void {
  const raw = req.raw;
  if (raw.complete !== false || raw.destroyed) return;
  // Fastify asks to close after a body it stopped reading; the rest is read here instead.
  reply.removeHeader('connection');
  let discarded = 0;
  raw.removeAllListeners('data');
  raw.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > maxBytes) raw.socket.destroy();
  });
  // The client may reset the connection meanwhile: nothing is waiting for this body any more.
  raw.on('error', () => {});
  raw.resume();
}
