import { TrailwardenError } from '../../errors.js';
import { oneLineJson } from '../../event/line-safe-json.js';
import {
  FILTER_PARAMS,
  foreignTenantRequested,
  intParam,
  matchesFilter,
  parseFilter,
  rejectUnknownParams,
} from '../../query/query-params.js';
import { denyForeignTenant } from '../context.js';
import { recordRead } from '../reads.js';
import type { RoutePlugin } from '../route-access.js';
import { filterParams, param } from '../schemas.js';

/** Events read from the log per step. */
const STREAM_BATCH = 256;

/** What wakes a stream waiting for its client or for new events. */
type Wake = 'drain' | 'append' | 'close' | 'timeout';

/** Output handed to the socket at a time, so a client catching up holds about this much at most. */
const WRITE_BYTES = 16 * 1024;

/**
 * Server-Sent Events of the log (read), in `seq` order, resumable from any `seq`
 * (`Last-Event-ID` or `?after=`). The stream reads the log rather than
 * buffering pushed events. While a client catches up on events already in
 * the log, its own reading paces the reads (the server waits for the socket
 * to drain), so it costs about one batch of memory however slow it is. Once
 * it has caught up it is live: new events are written as they arrive, and a
 * client that does not take them fast enough — more than
 * `stream.max_buffered_bytes` of output waiting for it — is disconnected; it
 * resumes with `Last-Event-ID`.
 */
export const streamRoutes: RoutePlugin = async (app, { ctx }) => {
  app.get(
    '/v1/stream',
    {
      schema: {
        summary: 'Live stream of new events (Server-Sent Events), resumable with Last-Event-ID or after',
        tags: ['events'],
        querystring: {
          type: 'object',
          properties: { ...filterParams, after: param('Start after this seq (like Last-Event-ID)') },
        },
      },
    },
    async (req, reply) => {
      const principal = req.principal;
      const query = req.query;
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
      recordRead(ctx, req, 'audit.trail.read', { stream_after: cursor });

      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.write('retry: 2000\n\n');
      const maxBuffered = ctx.config.stream.max_buffered_bytes;
      const heartbeatMs = ctx.config.stream.heartbeat_ms;
      let live = cursor >= head;
      let closed = false;
      let appended = false;
      let wake: ((why: Wake) => void) | undefined;
      const unsubscribe = ctx.store.onAppend(() => {
        appended = true;
        wake?.('append');
      });
      const drained = () => wake?.('drain');
      res.on('drain', drained);
      req.raw.on('close', () => {
        closed = true;
        wake?.('close');
      });
      /** The next drain, append or close, or `timeout` after a heartbeat interval. */
      const nextWake = () =>
        new Promise<Wake>((resolve) => {
          const timer = setTimeout(() => resolve('timeout'), heartbeatMs);
          wake = (why) => {
            clearTimeout(timer);
            resolve(why);
          };
        }).finally(() => {
          wake = undefined;
        });
      /** Writes `chunk`; false when a live client has left more unread than it may (it is dropped). */
      const send = async (chunk: string): Promise<boolean> => {
        res.write(chunk);
        if (live && res.writableLength > maxBuffered) {
          req.log.info(
            { unread_bytes: res.writableLength, seq: cursor },
            'stream client too slow: more than stream.max_buffered_bytes unread; disconnected (it can resume with Last-Event-ID)',
          );
          res.destroy();
          return false;
        }
        // Let the socket take what it was given. While catching up only the
        // client's reading moves the stream on. Live, a new event or a silent
        // heartbeat interval does too: what a stalled client leaves unread
        // then grows until the limit drops it.
        while (res.writableNeedDrain && !closed) {
          const why = await nextWake();
          if (live && (why === 'append' || why === 'timeout')) break;
        }
        return true;
      };
      try {
        stream: while (!closed && ctx.ready()) {
          appended = false;
          const batch = await ctx.store.readRange(cursor, STREAM_BATCH);
          // A short batch reached the head: from now on the client gets events as they arrive.
          if (batch.length < STREAM_BATCH) live = true;
          let chunk = '';
          for (const e of batch) {
            cursor = e.seq;
            if (!matchesFilter(e, filter)) continue;
            chunk += `id: ${e.seq}\nevent: audit\ndata: ${oneLineJson(e)}\n\n`;
            if (chunk.length >= WRITE_BYTES) {
              if (!(await send(chunk))) break stream;
              chunk = '';
            }
          }
          if (chunk !== '' && !(await send(chunk))) break;
          if (batch.length === STREAM_BATCH || appended) continue;
          if ((await nextWake()) === 'timeout' && !(await send(': ping\n\n'))) break;
        }
      } catch (err) {
        req.log.warn({ err }, 'stream ended');
      } finally {
        unsubscribe();
        res.off('drain', drained);
        if (!res.destroyed) res.end();
      }
    },
  );
};
