import type { FastifyRequest } from 'fastify';
import { TrailwardenError } from '../../errors.js';
import type { StoredEvent } from '../../event/event.js';
import { decodeCursor, encodeCursor } from '../../query/cursor.js';
import {
  FILTER_PARAMS,
  foreignTenantRequested,
  intParam,
  parseFilter,
  type RawQuery,
  rejectUnknownParams,
  single,
} from '../../query/query-params.js';
import { type AppContext, denyForeignTenant } from '../context.js';
import { parseOrder, recordRead } from '../reads.js';
import type { RoutePlugin } from '../route-access.js';
import {
  eventListSchema,
  eventSchema,
  filterParams,
  orderParam,
  param,
  problemResponses,
} from '../schemas.js';

const LIST_PARAMS = [...FILTER_PARAMS, 'order', 'limit', 'cursor'] as const;

const eventIdParam = {
  type: 'object',
  properties: { event_id: { type: 'string' } },
  required: ['event_id'],
} as const;

const tenantParam = param('The tenant of the event, when its event_id exists in several (all-tenant keys)');

/** Query of events and inclusion proofs (read). */
export const eventRoutes: RoutePlugin = async (app, { ctx }) => {
  app.get(
    '/v1/events',
    {
      schema: {
        summary: 'Query events with filters, newest first by default; keyset pagination on seq',
        tags: ['events'],
        querystring: {
          type: 'object',
          properties: {
            ...filterParams,
            order: orderParam,
            limit: param('Page size, 1 to limits.max_page_size (default 100)'),
            cursor: param('next_cursor of the previous page'),
          },
        },
        response: { 200: eventListSchema, ...problemResponses },
      },
    },
    async (req) => {
      const principal = req.principal;
      const query = req.query;
      rejectUnknownParams(query, LIST_PARAMS);
      const foreign = foreignTenantRequested(query, principal);
      if (foreign !== undefined) await denyForeignTenant(ctx, req, principal, foreign, 'read');
      const filter = parseFilter(query, principal);
      const order = parseOrder(query, 'desc');
      const limit = intParam(query, 'limit', 1, ctx.config.limits.max_page_size) ?? 100;
      const cursor = single(query, 'cursor');
      const afterSeq = cursor === undefined ? undefined : decodeCursor(cursor, filter, order);
      const page = { order, limit, ...(afterSeq === undefined ? {} : { afterSeq }) };
      const events = await ctx.store.query(filter, page);
      const last = events.at(-1);
      const next_cursor = events.length === limit && last ? encodeCursor(filter, order, last.seq) : null;
      recordRead(ctx, req, 'audit.trail.read', { count: events.length });
      return { events, next_cursor };
    },
  );

  app.get(
    '/v1/events/:event_id',
    {
      schema: {
        summary: 'One event by event_id',
        tags: ['events'],
        params: eventIdParam,
        querystring: { type: 'object', properties: { tenant_id: tenantParam } },
        response: { 200: eventSchema, ...problemResponses },
      },
    },
    async (req) => {
      const event = await findOne(ctx, req, req.params.event_id, req.query);
      recordRead(ctx, req, 'audit.trail.read', { count: 1, event_id: event.event_id });
      return event;
    },
  );

  app.get(
    '/v1/events/:event_id/proof',
    {
      schema: {
        summary:
          'Inclusion proof of an event in the tree of tree_size leaves (default: the latest checkpoint)',
        tags: ['proofs'],
        params: eventIdParam,
        querystring: {
          type: 'object',
          properties: {
            tree_size: param('Size of the tree to prove against (default: that of the latest checkpoint)'),
            tenant_id: tenantParam,
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              event_id: { type: 'string' },
              leaf_index: { type: 'integer' },
              leaf_hash: { type: 'string' },
              tree_size: { type: 'integer' },
              hashes: { type: 'array', items: { type: 'string' } },
              root_hash: { type: 'string' },
              checkpoint: { type: ['string', 'null'] },
            },
          },
          ...problemResponses,
        },
      },
    },
    async (req) => {
      const query = req.query;
      const event = await findOne(ctx, req, req.params.event_id, query, ['tree_size']);
      const head = await ctx.store.tree.size();
      let treeSize = intParam(query, 'tree_size', 1, Number.MAX_SAFE_INTEGER);
      if (treeSize === undefined) {
        treeSize = (await ctx.store.latestCheckpoint())?.treeSize ?? head;
        if (treeSize < event.seq) treeSize = head;
      }
      if (treeSize > head) {
        throw new TrailwardenError(
          'TW_ERR_TREE_SIZE',
          `tree_size ${treeSize} is larger than the log (${head} events)`,
        );
      }
      if (treeSize < event.seq) {
        throw new TrailwardenError(
          'TW_ERR_TREE_SIZE',
          `event ${event.event_id} is leaf ${event.seq - 1}, not in a tree of ${treeSize} leaves; use tree_size ≥ ${event.seq}`,
        );
      }
      const [hashes, root, cp] = await Promise.all([
        ctx.store.tree.inclusionProof(event.seq - 1, treeSize),
        ctx.store.tree.rootAt(treeSize),
        ctx.store.checkpointAt(treeSize),
      ]);
      return {
        event_id: event.event_id,
        leaf_index: event.seq - 1,
        leaf_hash: event.leaf_hash,
        tree_size: treeSize,
        hashes: hashes.map((h) => h.toString('base64')),
        root_hash: root.toString('base64'),
        checkpoint: cp?.note ?? null,
      };
    },
  );
};

/** The one event `eventId` names among those the caller may read; 404 or, across tenants, 409 otherwise. */
async function findOne(
  ctx: AppContext,
  req: FastifyRequest,
  eventId: string,
  query: RawQuery,
  extraParams: string[] = [],
): Promise<StoredEvent> {
  const principal = req.principal;
  rejectUnknownParams(query, ['tenant_id', ...extraParams]);
  const foreign = foreignTenantRequested(query, principal);
  if (foreign !== undefined) await denyForeignTenant(ctx, req, principal, foreign, 'read');
  const tenant = principal.tenantId ?? single(query, 'tenant_id') ?? null;
  const found = await ctx.store.findByEventId(eventId, tenant);
  if (found.length === 0) {
    throw new TrailwardenError('TW_ERR_NOT_FOUND', `no event ${JSON.stringify(eventId)} visible to this key`);
  }
  if (found.length > 1) {
    throw new TrailwardenError(
      'TW_ERR_AMBIGUOUS_EVENT_ID',
      `event_id ${JSON.stringify(eventId)} exists in ${found.length} tenants; add ?tenant_id=… to pick one`,
    );
  }
  return found[0]!;
}
