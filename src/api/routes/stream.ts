import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { TrailwardenError } from '../../errors.js';
import { oneLineJson } from '../../event/line-safe-json.js';
import {
  FILTER_PARAMS,
  foreignTenantRequested,
  intParam,
  matchesFilter,
  parseFilter,
  type RawQuery,
  rejectUnknownParams,
} from '../../query/query-params.js';
import { type AppContext, denyForeignTenant, principalFor } from '../context.js';
import { filterQuerySchema } from '../schemas.js';
import { recordRead } from './events.js';

/** Events read from the log per step; also the most the server holds for one client. */
const STREAM_BATCH = 256;

/**
 * Server-Sent Events of the log, in `seq` order, resumable from any `seq`
 * (`Last-Event-ID` or `?after=`). The stream reads the log rather than
 * buffering pushed events, and waits for the socket to drain before reading
 * more, so a slow client costs at most one batch of memory.
 */
export function streamRoutes(app: FastifyInstance, ctx: AppContext): void {
  app.get(
    '/v1/stream',
    {
      schema: {
        summary: 'Live stream of new events (Server-Sent Events), resumable with Last-Event-ID or after',
        tags: ['events'],
        querystring: filterQuerySchema(['after']),
      },
    },
    async (req, reply) => {
      const principal = await principalFor(ctx, req, 'read');
      const query = req.query as RawQuery;
      rejectUnknownParams(query, [...FILTER_PARAMS, 'after']);
      const foreign = foreignTenantRequested(query, principal);
      if (foreign !== undefined) await denyForeignTenant(ctx, req, principal, foreign, 'read');
      const filter = parseFilter(query, principal);
      const head = await ctx.store.headSeq();
      let cursor = intParam(query, 'after', 0, Number.MAX_SAFE_INTEGER);
      const lastEventId = req.headers['last-event-id'];
      if (cursor === undefined && typeof lastEventId === 'string') {
        if (!/^\d{1,16}$/.test(lastEventId)) {
          throw new TrailwardenError(
            'TW_ERR_INVALID_PARAMETER',
            'Last-Event-ID must be the seq of an event received',
          );
        }
        cursor = Number(lastEventId);
      }
      cursor ??= head;
      await recordRead(ctx, req, 'audit.trail.read', { stream_after: cursor });

      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.write('retry: 2000\n\n');
      let closed = false;
      let wake: (() => void) | undefined;
      const unsubscribe = ctx.store.onAppend(() => wake?.());
      req.raw.on('close', () => {
        closed = true;
        wake?.();
      });
      try {
        while (!closed && ctx.ready()) {
          const batch = await ctx.store.readRange(cursor, STREAM_BATCH);
          if (batch.length > 0) {
            cursor = batch.at(-1)!.seq;
            let chunk = '';
            for (const e of batch) {
              if (matchesFilter(e, filter))
                chunk += `id: ${e.seq}\nevent: audit\ndata: ${oneLineJson(e)}\n\n`;
            }
            if (chunk !== '') await write(res, chunk);
            continue;
          }
          const woke = await new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => resolve(false), ctx.config.stream.heartbeat_ms);
            wake = () => {
              clearTimeout(timer);
              resolve(true);
            };
          });
          wake = undefined;
          if (!woke && !closed) await write(res, ': ping\n\n');
        }
      } catch (err) {
        req.log.warn({ err }, 'stream ended');
      } finally {
        unsubscribe();
        res.end();
      }
    },
  );
}

async function write(res: ServerResponse, chunk: string): Promise<void> {
  if (!res.write(chunk)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
}
