import type { Principal } from '../auth/api-keys.js';
import { type FieldProblem, TrailwardenError } from '../errors.js';
import type { AuditEvent } from '../event/event.js';
import type { EventLimits } from '../event/limits.js';
import { requestedTenantId, validateEvent } from '../event/validate.js';
import type { AppendOutcome, EventSeq, PreparedEvent, Store } from '../store/store.js';
import { prepareEvent } from '../store/stored-event.js';

export interface IngestOptions {
  limits: EventLimits;
  strictActions: boolean;
  /** Tenant of events sent with an all-tenant key and no `tenant_id`. */
  defaultTenant: string;
}

/** The answer to the producer (the public contract), plus each event's `seq` for the emit policy. */
export interface IngestResult {
  accepted: number;
  events: Array<{ event_id: string; status: AppendOutcome['status'] }>;
  /**
   * Each event's `seq`, one per event (null: acknowledged, not sequenced
   * yet). Not part of the answer: with several nodes an event is
   * acknowledged before it is sequenced.
   */
  acknowledged: EventSeq[];
}

/** A tenant-bound key tried to write into another tenant (audited by the caller). */
export class ForeignTenantWrite extends TrailwardenError {
  constructor(
    readonly requestedTenant: string,
    readonly index: number,
  ) {
    super(
      'TW_ERR_FORBIDDEN',
      `event ${index}: this key is bound to one tenant and cannot write events for tenant ${JSON.stringify(requestedTenant)}; leave tenant_id out or use a key for that tenant`,
      { problems: [{ index, path: 'tenant_id', message: 'tenant not allowed for this key' }] },
    );
  }
}

/**
 * Validates a batch and appends it atomically: either every event is stored
 * (or recognised as a duplicate) or none is, and the error lists every bad
 * event by index.
 */
export class IngestService {
  constructor(
    private readonly store: Store,
    private readonly opts: IngestOptions,
  ) {}

  async ingest(raws: unknown[], principal: Principal, now = new Date()): Promise<IngestResult> {
    const problems: FieldProblem[] = [];
    const prepared: PreparedEvent[] = [];
    const seen = new Map<string, { hash: string; index: number }>();
    raws.forEach((raw, index) => {
      const requested = requestedTenantId(raw);
      if (principal.tenantId !== null && requested !== undefined && requested !== principal.tenantId) {
        throw new ForeignTenantWrite(requested, index);
      }
      const tenantId =
        principal.tenantId ?? (typeof requested === 'string' ? requested : this.opts.defaultTenant);
      const result = validateEvent(raw, {
        limits: this.opts.limits,
        now,
        tenantId,
        strictActions: this.opts.strictActions,
      });
      if (!result.ok) {
        for (const p of result.problems) problems.push({ index, path: p.path, message: p.message });
        return;
      }
      const event: AuditEvent = result.event;
      const ready = prepareEvent(event, result.canonical);
      const contentHash = ready.contentHash;
      const key = `${event.tenant_id}\u0000${event.event_id}`;
      const prior = seen.get(key);
      if (prior !== undefined && prior.hash !== contentHash) {
        problems.push({
          index,
          path: 'event_id',
          message: `event_id ${event.event_id} is also used by event ${prior.index} of this batch with different content`,
        });
        return;
      }
      seen.set(key, { hash: contentHash, index });
      prepared.push(ready);
    });
    if (problems.length > 0) {
      const bad = new Set(problems.map((p) => p.index)).size;
      throw new TrailwardenError(
        'TW_ERR_INVALID_EVENTS',
        `${bad} of ${raws.length} event${raws.length === 1 ? '' : 's'} ${bad === 1 ? 'is' : 'are'} invalid; nothing was stored. Fix the events listed in problems and resend the batch`,
        { problems },
      );
    }
    const outcomes = await this.store.append(prepared);
    return {
      accepted: prepared.length,
      events: outcomes.map((o, i) => ({ event_id: prepared[i]!.event.event_id, status: o.status })),
      acknowledged: outcomes.map((o, i) => {
        const { event } = prepared[i]!;
        return { seq: o.seq, eventId: event.event_id, tenantId: event.tenant_id };
      }),
    };
  }
}
