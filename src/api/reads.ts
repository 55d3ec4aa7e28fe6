/** What the reads of the trail (query, stream, export) share: the `order` parameter and their audit record. */
import type { FastifyRequest } from 'fastify';
import { TrailwardenError } from '../errors.js';
import { type RawQuery, single } from '../query/query-params.js';
import { type AppContext, requestContext } from './context.js';

/** `order`: asc or desc by seq, `fallback` when absent. */
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
export function recordRead(
  ctx: AppContext,
  req: FastifyRequest,
  action: 'audit.trail.read' | 'audit.trail.export',
  metadata: Record<string, string | number>,
): void {
  if (!ctx.config.audit_reads) return;
  void ctx.audit
    .record(action, req.principal, {
      outcome: 'success',
      metadata: { path: req.url.split('?')[0] ?? '', query: req.url.split('?')[1] ?? '', ...metadata },
      request: requestContext(req),
    })
    .catch((err: unknown) => {
      // While the store refuses writes (a full disk) that episode is logged once, not per read.
      if (ctx.store.writeBlock() === undefined) req.log.error({ err }, `could not record ${action}`);
    });
}
