import type { FastifyInstance, FastifyRequest } from 'fastify';
import { TrailwardenError } from '../../errors.js';
import type { StoredEvent } from '../../event/event.js';
import { ForeignTenantWrite } from '../../ingest/ingest-service.js';
import { parseEventsBody } from '../../ingest/parse-body.js';
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
import { type AppContext, denyForeignTenant, principalFor, requestContext } from '../context.js';
import {
  eventListSchema,
  eventSchema,
  filterQuerySchema,
  ingestResponseSchema,
  problemResponses,
} from '../schemas.js';

const LIST_PARAMS = [...FILTER_PARAMS, 'order', 'limit', 'cursor'] as const;

/** Ingest and query of events, and inclusion proofs. */
export function eventRoutes(app: FastifyInstance, ctx: AppContext): void {
  app.post(
    '/v1/events',
    {
      config: { access: 'write' },
      schema: {
        summary: 'Append events (one object, a JSON array, or NDJSON); atomic per request',
        tags: ['events'],
        response: { 201: ingestResponseSchema, ...problemResponses },
      },
    },
    async (req, reply) => {
      const principal = await principalFor(ctx, req, 'write');
      const raws = parseEventsBody(req.body as Buffer, req.headers['content-type'], {
        max_batch_events: ctx.config.limits.max_batch_events,
        max_body_bytes: ctx.config.limits.max_body_bytes,
      });
      try {
        const { positions, ...answer } = await ctx.ingest.ingest(raws, principal);
        // With an emit policy the answer also waits for the chosen sinks (seed 003).
        await ctx.delivery.emit.wait(positions, answer.events);
        return reply.status(201).send(answer);
      } catch (err) {
        if (err instanceof ForeignTenantWrite) {
          await denyForeignTenant(ctx, req, principal, err.requestedTenant, 'write');
        }
        throw err;
      }
    },
  );

  app.get(
    '/v1/events',
    {
      config: { access: 'read' },
      schema: {
        summary: 'Query events with filters, newest first by default; keyset pagination on seq',
        tags: ['events'],
        querystring: filterQuerySchema(['order', 'limit', 'cursor']),
        response: { 200: eventListSchema, ...problemResponses },
      },
    },
    async (req) => {
      const principal = await principalFor(ctx, req, 'read');
      const query = req.query as RawQuery;
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
      await recordRead(ctx, req, 'audit.trail.read', { count: events.length });
      return { events, next_cursor };
    },
  );

  app.get(
    '/v1/events/:event_id',
    {
      config: { access: 'read' },
      schema: {
        summary: 'One event by event_id',
        tags: ['events'],
        params: { type: 'object', properties: { event_id: { type: 'string' } }, required: ['event_id'] },
        querystring: { type: 'object', properties: { tenant_id: { type: 'string' } } },
        response: { 200: eventSchema, ...problemResponses },
      },
    },
    async (req) => {
      const event = await findOne(ctx, req);
      await recordRead(ctx, req, 'audit.trail.read', { count: 1, event_id: event.event_id });
      return event;
    },
  );

  app.get(
    '/v1/events/:event_id/proof',
    {
      config: { access: 'read' },
      schema: {
        summary:
          'Inclusion proof of an event in the tree of tree_size leaves (default: the latest checkpoint)',
        tags: ['proofs'],
        params: { type: 'object', properties: { event_id: { type: 'string' } }, required: ['event_id'] },
        querystring: {
          type: 'object',
          properties: { tree_size: { type: 'string' }, tenant_id: { type: 'string' } },
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
      const event = await findOne(ctx, req, ['tree_size']);
      const query = req.query as RawQuery;
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
}

export function parseOrder(query: RawQuery, fallback: 'asc' | 'desc'): 'asc' | 'desc' {
  const order = single(query, 'order');
  if (order === undefined) return fallback;
  if (order !== 'asc' && order !== 'desc') {
    throw new TrailwardenError('TW_ERR_INVALID_PARAMETER', 'order must be asc or desc');
  }
  return order;
}

/**
 * Audits a read of the trail unless the operator turned that off. The record
 * joins the next group commit; the answer does not wait for its fsync, so a
 * reader polling under heavy ingest is not slowed by its own audit trail (a
 * crash in that instant could lose the record of the read, never an event).
 */
export async function recordRead(
  ctx: AppContext,
  req: FastifyRequest,
  action: 'audit.trail.read' | 'audit.trail.export',
  metadata: Record<string, string | number>,
): Promise<void> {
  if (!ctx.config.audit_reads) return;
  const principal = await principalFor(ctx, req, 'read');
  void ctx.audit
    .record(action, principal, {
      outcome: 'success',
      metadata: { path: req.url.split('?')[0] ?? '', query: req.url.split('?')[1] ?? '', ...metadata },
      request: requestContext(req),
    })
    .catch((err: unknown) => {
      // While the store refuses writes (a full disk) that episode is logged once, not per read.
      if (ctx.store.writeBlock() === undefined) req.log.error({ err }, `could not record ${action}`);
    });
}

async function findOne(
  ctx: AppContext,
  req: FastifyRequest,
  extraParams: string[] = [],
): Promise<StoredEvent> {
  const principal = await principalFor(ctx, req, 'read');
  const query = req.query as RawQuery;
  rejectUnknownParams(query, ['tenant_id', ...extraParams]);
  const foreign = foreignTenantRequested(query, principal);
  if (foreign !== undefined) await denyForeignTenant(ctx, req, principal, foreign, 'read');
  const eventId = (req.params as { event_id: string }).event_id;
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
