import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Config } from '../config/schema.js';
import { TrailwardenError } from '../errors.js';
import { parseJsonDocument } from '../ingest/parse-body.js';
import { limitBodies } from './body-budget.js';
import { ClientErrorAnswers } from './client-errors.js';
import type { AppContext } from './context.js';
import { makeErrorHandler, noRouteProblem } from './problem.js';
import { RouteGate } from './route-access.js';
import { checkpointRoutes } from './routes/checkpoints.js';
import { deadLetterRoutes } from './routes/dead-letters.js';
import { erasureAdminRoutes, erasureReadRoutes } from './routes/erasures.js';
import { eventRoutes } from './routes/events.js';
import { exportRoutes } from './routes/export.js';
import { ingestRoutes } from './routes/ingest.js';
import { keyRoutes } from './routes/keys.js';
import { legalHoldAdminRoutes, legalHoldReadRoutes } from './routes/legal-holds.js';
import { metaRoutes } from './routes/meta.js';
import { retentionAdminRoutes, retentionReadRoutes } from './routes/retention.js';
import { sinkRoutes } from './routes/sinks.js';
import { streamRoutes } from './routes/stream.js';

/**
 * The longest path parameter any route takes: an `event_id` (1–128
 * characters, as ingest accepts it). Sink names, key ids and dead-letter ids
 * are shorter; their routes check their own patterns.
 */
const MAX_PATH_PARAM_LENGTH = 128;

/**
 * After an early answer (401, 413…), the body still on its way is read and
 * discarded up to this many times `limits.max_body_bytes`, so a client that
 * sends a whole body before reading can read the answer; past that the
 * connection is closed.
 */
const DISCARD_BODY_FACTOR = 4;

/** Fastify's and Node's connection timeouts, from `limits` (docs/configuration.md says what each bounds). */
function timeoutOptions(l: Config['limits']) {
  return {
    // No byte either way for this long while a request is open: the connection is closed.
    connectionTimeout: l.idle_timeout_ms,
    keepAliveTimeout: l.keep_alive_timeout_ms,
    requestTimeout: l.request_timeout_ms,
    http: {
      headersTimeout: l.headers_timeout_ms,
      requestTimeout: l.request_timeout_ms,
      // Node notices an expired header or request timeout on this beat (30 s by
      // default): a quarter of the shortest keeps the cut within 25 % of it.
      connectionsCheckingInterval: Math.min(1000, Math.ceil(l.headers_timeout_ms / 4)),
    },
  };
}

/**
 * Builds the HTTP application (routes, error handling, OpenAPI) without
 * listening, so tests can call `inject()` and `serve` can listen.
 */
export async function buildApp(ctx: AppContext, logger?: FastifyBaseLogger): Promise<FastifyInstance> {
  const limits = ctx.config.limits;
  const errorHandler = makeErrorHandler({
    maxBodyBytes: limits.max_body_bytes,
    maxParamLength: MAX_PATH_PARAM_LENGTH,
    maxDiscardBytes: DISCARD_BODY_FACTOR * limits.max_body_bytes,
    storeWriteBlock: () => ctx.store.writeBlock(),
  });
  const clientErrors = new ClientErrorAnswers(limits);
  const app = Fastify({
    ...(logger ? { loggerInstance: logger } : { logger: false }),
    bodyLimit: limits.max_body_bytes,
    ...timeoutOptions(limits),
    routerOptions: { maxParamLength: MAX_PATH_PARAM_LENGTH },
    // Errors raised before a request reaches a route (a bad URL, a parameter
    // longer than any id) and on the connection itself are problem+json too.
    frameworkErrors: (err, req, reply) => errorHandler(err, req, reply),
    clientErrorHandler: clientErrors.handle,
    // Query values stay strings and unknown parameters stay visible: routes
    // parse and refuse them with precise messages.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    requestIdHeader: 'x-request-id',
    genReqId: () => `req_${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`,
    // Requests that arrive while closing are refused by the hook below, as problem+json.
    return503OnClosing: false,
    forceCloseConnections: true,
  }).withTypeProvider<TypeBoxTypeProvider>();

  // These and each route group's gate run on the headers alone, before any
  // body is read: unknown routes, callers without a valid key and bodies
  // that do not fit are answered at once.
  clientErrors.track(app);
  app.addHook('onRequest', (req, _reply, done) => {
    if (req.is404) return done(noRouteProblem(app, req));
    // Health routes answer for themselves (/readyz says why it is not ready).
    if (!ctx.ready() && req.routeOptions.config.access !== 'public') {
      return done(
        new TrailwardenError(
          'TW_ERR_NOT_READY',
          'the server is starting or shutting down; nothing was stored — retry after Retry-After seconds',
          { headers: { 'retry-after': '1' } },
        ),
      );
    }
    done();
  });
  const gate = new RouteGate(ctx.store, limitBodies(limits));
  gate.install(app);

  // Admin bodies are JSON, with the same refusals as events: duplicate keys
  // (a sink's `url` named twice) would otherwise keep the last one silently.
  // Another content type reaches the route as bytes, which its body check
  // refuses. The ingest routes take every body as bytes (routes/ingest.ts).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => {
    let value: unknown;
    try {
      value = parseJsonDocument(body.toString('utf8'), 'the request body');
    } catch (err) {
      return done(err instanceof Error ? err : new Error(String(err)), undefined);
    }
    done(null, value);
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

  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) => errorHandler(noRouteProblem(app, req), req, reply));
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

  // Who may call what: each group is an encapsulated plugin whose gate
  // authenticates for its access before the body is read.
  const groups = [
    gate.group('write', ingestRoutes),
    gate.group('read', eventRoutes),
    gate.group('read', checkpointRoutes),
    gate.group('read', streamRoutes),
    gate.group('read', exportRoutes),
    gate.group('admin', keyRoutes),
    gate.group('admin', sinkRoutes),
    gate.group('admin', deadLetterRoutes),
    gate.group('read', retentionReadRoutes),
    gate.group('admin', retentionAdminRoutes),
    gate.group('read', legalHoldReadRoutes),
    gate.group('admin', legalHoldAdminRoutes),
    gate.group('read', erasureReadRoutes),
    gate.group('admin', erasureAdminRoutes),
    gate.group('public', metaRoutes),
  ];
  for (const group of groups) await app.register(group, { ctx });
  await app.ready();
  return app;
}
