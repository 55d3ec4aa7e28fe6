import { ForeignTenantWrite } from '../../ingest/ingest-service.js';
import { parseEventsBody } from '../../ingest/parse-body.js';
import { denyForeignTenant } from '../context.js';
import type { RoutePlugin } from '../route-access.js';
import { ingestResponseSchema, problemResponses } from '../schemas.js';

/**
 * Ingest: POST /v1/events (write). The body reaches the route as raw bytes
 * whatever its content type, in this group only: parseEventsBody knows
 * about NDJSON, invalid UTF-8, duplicate keys and batch limits, and answers
 * an unsupported content type itself.
 */
export const ingestRoutes: RoutePlugin = async (app, { ctx }) => {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  // Bytes, as the parser above hands over every body in this group.
  app.post<{ Body: Buffer }>(
    '/v1/events',
    {
      config: {
        unsupportedMediaType:
          'send events as application/json (an object or an array) or application/x-ndjson (one object per line)',
      },
      schema: {
        summary: 'Append events (one object, a JSON array, or NDJSON); atomic per request',
        tags: ['events'],
        response: { 201: ingestResponseSchema, ...problemResponses },
      },
    },
    async (req, reply) => {
      const principal = req.principal;
      const raws = parseEventsBody(req.body, req.headers['content-type'], {
        max_batch_events: ctx.config.limits.max_batch_events,
        max_body_bytes: ctx.config.limits.max_body_bytes,
      });
      try {
        const { acknowledged, ...answer } = await ctx.ingest.ingest(raws, principal);
        // With an emit policy the answer also waits for the chosen sinks (seed 003).
        await ctx.delivery.emit.wait(acknowledged, answer.events);
        return reply.status(201).send(answer);
      } catch (err) {
        if (err instanceof ForeignTenantWrite) {
          await denyForeignTenant(ctx, req, principal, err.requestedTenant, 'write');
        }
        throw err;
      }
    },
  );
};
