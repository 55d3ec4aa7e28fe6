import type { SelfAudit } from '../audit/self-audit.js';
import type { SinkContext } from './sink.js';
import { describeSink } from './sink-ref.js';
import type { SinkView } from './sink-table.js';

/** The system actor of the events delivery records itself (alerts, redrives asked for through other nodes). */
export const DELIVERY_ACTOR = { type: 'system', id: 'trailwarden.delivery', name: 'delivery engine' };

/**
 * Records in the log that a sink has been failing for `failing_after_ms`
 * (`sink.delivery.failing`, with the last reason) or delivers again
 * (`sink.delivery.recovered`), under the sink's tenant. A failure to record
 * is logged, never thrown: the worker that raised the alert goes on.
 */
export async function recordSinkAlert(
  audit: SelfAudit,
  sink: SinkView,
  kind: 'failing' | 'recovered',
  detail: { reason: string; sinceMs: number },
  log: SinkContext['log'],
): Promise<void> {
  const { config, tenantId } = sink;
  try {
    await audit.record(kind === 'failing' ? 'sink.delivery.failing' : 'sink.delivery.recovered', null, {
      actor: DELIVERY_ACTOR,
      outcome: kind === 'failing' ? 'failure' : 'success',
      resource: { type: 'sink', id: config.name, name: config.name },
      ...(kind === 'failing' ? { reason: detail.reason.slice(0, 1000) } : {}),
      metadata: { sink_type: config.type, failing_since: new Date(detail.sinceMs).toISOString() },
      ...(tenantId === null ? {} : { tenantId }),
    });
  } catch (err) {
    log.warn(`could not record the ${kind} alert of sink ${describeSink({ name: config.name, tenantId })}`, {
      err,
    });
  }
}
