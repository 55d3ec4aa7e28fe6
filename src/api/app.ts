import swagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { AppContext } from './context.js';
import { makeErrorHandler, notFoundHandler } from './problem.js';
import { checkpointRoutes } from './routes/checkpoints.js';
import { eventRoutes } from './routes/events.js';
import { exportRoutes } from './routes/export.js';
import { keyRoutes } from './routes/keys.js';
import { metaRoutes } from './routes/meta.js';
import { sinkRoutes } from './routes/sinks.js';
import { streamRoutes } from './routes/stream.js';

/**
 * Builds the HTTP application (routes, error handling, OpenAPI) without
 * listening, so tests can call `inject()` and `serve` can listen.
 */
export async function buildApp(ctx: AppContext, logger?: FastifyBaseLogger): Promise<FastifyInstance> {
  const app = Fastify({
    ...(logger ? { loggerInstance: logger } : { logger: false }),
    bodyLimit: ctx.config.limits.max_body_bytes,
    // Query values stay strings and unknown parameters stay visible: routes
    // parse and refuse them with precise messages.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    requestIdHeader: 'x-request-id',
    genReqId: () => `req_${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`,
    return503OnClosing: true,
    forceCloseConnections: true,
  });

  // Event bodies are parsed by parseEventsBody, which knows about NDJSON,
  // invalid UTF-8 and batch limits; Fastify hands over the raw bytes.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    if (req.url.startsWith('/v1/events')) return done(null, body);
    try {
      done(null, JSON.parse((body as Buffer).toString('utf8')));
    } catch {
      const err = new Error('the request body is not valid JSON') as Error & { statusCode: number };
      err.statusCode = 400;
      done(err, undefined);
    }
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Trailwarden API',
        version: '1',
        description:
          'Audit trail: ingest security events, query them, stream them, and check the tamper-evident log. Errors are RFC 9457 problem+json with a stable `code`.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  app.setErrorHandler(
    makeErrorHandler({
      maxBodyBytes: ctx.config.limits.max_body_bytes,
      storeWriteBlock: () => ctx.store.writeBlock(),
    }),
  );
  app.setNotFoundHandler(notFoundHandler);
  const unwatch = ctx.store.onWriteBlock((block) => {
    if (block) {
      app.log.error(
        { since: block.since },
        `the store refuses writes: ${block.reason}; answering 503 and /readyz not ready until a write succeeds`,
      );
    } else {
      app.log.info('the store takes writes again; /readyz is ready');
    }
  });
  app.addHook('onClose', async () => unwatch());

  eventRoutes(app, ctx);
  checkpointRoutes(app, ctx);
  streamRoutes(app, ctx);
  exportRoutes(app, ctx);
  keyRoutes(app, ctx);
  sinkRoutes(app, ctx);
  metaRoutes(app, ctx);
  await app.ready();
  return app;
}
