import { ACTION_CATALOG } from '../../event/catalog.js';
import type { RoutePlugin } from '../route-access.js';

/** Catalog, health, readiness and the generated OpenAPI document (public). */
export const metaRoutes: RoutePlugin = async (app, { ctx }) => {
  app.get(
    '/v1/actions',
    { schema: { summary: 'The built-in action catalog', tags: ['catalog'] } },
    async () => ({ strict_actions: ctx.config.strict_actions, actions: ACTION_CATALOG }),
  );

  app.get(
    '/healthz',
    { schema: { summary: 'Liveness: the process answers', tags: ['health'] } },
    async () => ({
      status: 'ok',
    }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        summary: 'Readiness: the store answers and takes writes, and the server is not shutting down',
        tags: ['health'],
      },
    },
    async (_req, reply) => {
      if (!ctx.ready()) return reply.status(503).send({ status: 'shutting_down' });
      const block = ctx.store.writeBlock();
      if (block !== undefined) {
        // Not ready while the store refuses writes (a full disk): a load balancer sends producers elsewhere.
        return reply.status(503).send({ status: 'writes_failing', reason: block.reason, since: block.since });
      }
      const head = await ctx.store.headSeq();
      return { status: 'ready', store: ctx.store.kind, head_seq: head, sequencer: ctx.store.isSequencer() };
    },
  );

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
};
