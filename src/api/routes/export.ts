import { Readable } from 'node:stream';
import { TrailwardenError } from '../../errors.js';
import { oneLineJson } from '../../event/line-safe-json.js';
import { csvHeader, csvRow } from '../../query/csv.js';
import {
  FILTER_PARAMS,
  foreignTenantRequested,
  parseFilter,
  rejectUnknownParams,
  single,
} from '../../query/query-params.js';
import type { EventFilter, Store } from '../../store/store.js';
import { denyForeignTenant } from '../context.js';
import { parseOrder, recordRead } from '../reads.js';
import type { RoutePlugin } from '../route-access.js';
import { filterParams, orderParam, param } from '../schemas.js';

const EXPORT_PAGE = 1000;

/**
 * Streaming export in JSON Lines or CSV (read). Pages are read by `seq` as the
 * response drains (Readable.from pulls the generator), so memory stays at one
 * page whatever the size of the export.
 */
export const exportRoutes: RoutePlugin = async (app, { ctx }) => {
  app.get(
    '/v1/export',
    {
      schema: {
        summary:
          'Download events as JSON Lines or CSV (same filters as GET /v1/events; ascending by default)',
        tags: ['events'],
        querystring: {
          type: 'object',
          properties: {
            ...filterParams,
            format: param('jsonl or csv'),
            order: orderParam,
          },
        },
      },
    },
    async (req, reply) => {
      const principal = req.principal;
      const query = req.query;
      rejectUnknownParams(query, [...FILTER_PARAMS, 'format', 'order']);
      const foreign = foreignTenantRequested(query, principal);
      if (foreign !== undefined) await denyForeignTenant(ctx, req, principal, foreign, 'read');
      const filter = parseFilter(query, principal);
      const order = parseOrder(query, 'asc');
      const format = single(query, 'format') ?? 'jsonl';
      if (format !== 'jsonl' && format !== 'csv') {
        throw new TrailwardenError('TW_ERR_INVALID_PARAMETER', 'format must be jsonl or csv');
      }
      const head = await ctx.store.headSeq();
      recordRead(ctx, req, 'audit.trail.export', { format, up_to_seq: head });
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      return reply
        .header('content-type', format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson')
        .header('content-disposition', `attachment; filename="trailwarden-${stamp}.${format}"`)
        .header('x-trailwarden-head-seq', String(head))
        .send(Readable.from(exportLines(ctx.store, filter, order, head, format)));
    },
  );
};

/** Yields the export's lines, stopping at `head` so the export is a consistent snapshot. */
async function* exportLines(
  store: Store,
  filter: EventFilter,
  order: 'asc' | 'desc',
  head: number,
  format: 'jsonl' | 'csv',
): AsyncGenerator<string> {
  if (format === 'csv') yield csvHeader();
  let after: number | undefined = order === 'desc' ? head + 1 : undefined;
  for (;;) {
    const page = await store.query(filter, {
      order,
      limit: EXPORT_PAGE,
      ...(after === undefined ? {} : { afterSeq: after }),
    });
    let out = '';
    for (const e of page) {
      if (e.seq > head) {
        if (out !== '') yield out;
        return;
      }
      out += format === 'csv' ? csvRow(e) : `${oneLineJson(e)}\n`;
    }
    if (out !== '') yield out;
    if (page.length < EXPORT_PAGE) return;
    after = page.at(-1)!.seq;
  }
}
