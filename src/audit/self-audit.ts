import type { Principal } from '../auth/api-keys.js';
import type { AuditEvent, JsonValue, Outcome } from '../event/event.js';
import { newEventId } from '../event/event-id.js';
import type { AppendOutcome, Store } from '../store/store.js';
import { prepareEvent } from '../store/stored-event.js';

/** What the server knows about the request it audits. */
export interface RequestContext {
  sourceIp?: string;
  userAgent?: string;
  requestId?: string;
}

/**
 * Records the service's own events (trail reads and exports, refused access,
 * key changes) in the log itself, so every reader and sink sees them. These
 * are appended directly, never through the HTTP read path, so recording a
 * read is not itself a read (no recursion).
 */
export class SelfAudit {
  /** Records not committed yet (some are not awaited by their request), so a clean stop can wait for them. */
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(
    private readonly store: Store,
    private readonly defaultTenant: string,
  ) {}

  async record(
    action: string,
    principal: Principal | null,
    detail: {
      outcome: Outcome;
      /** Who acted, when it is not an API key (e.g. the local CLI). */
      actor?: AuditEvent['actor'];
      tenantId?: string;
      reason?: string;
      resource?: AuditEvent['resource'];
      metadata?: { [key: string]: JsonValue };
      request?: RequestContext;
      /**
       * A fixed `event_id` for a record that must be written once even if
       * the work it records is resumed after a crash: look it up with
       * `findByEventId` before recording again.
       */
      eventId?: string;
    },
  ): Promise<AppendOutcome> {
    const event: AuditEvent = {
      event_id: detail.eventId ?? newEventId(),
      timestamp: new Date().toISOString(),
      tenant_id: detail.tenantId ?? principal?.tenantId ?? this.defaultTenant,
      actor: detail.actor
        ? detail.actor
        : principal
          ? { type: 'api_key', id: principal.keyId, name: principal.name }
          : { type: 'anonymous', id: 'anonymous' },
      action,
      outcome: detail.outcome,
    };
    if (detail.resource) event.resource = detail.resource;
    if (detail.reason) event.reason = detail.reason;
    const req = detail.request;
    if (req?.sourceIp) event.source_ip = req.sourceIp;
    if (req?.userAgent) event.user_agent = req.userAgent.slice(0, 1024);
    if (req?.requestId) event.request_id = req.requestId;
    if (detail.metadata) event.metadata = detail.metadata;
    const append = this.store.append([prepareEvent(event)]);
    this.inFlight.add(append);
    try {
      const [outcome] = await append;
      if (outcome === undefined) throw new Error('the store answered no outcome for an appended event');
      return outcome;
    } finally {
      this.inFlight.delete(append);
    }
  }

  /**
   * Resolves once every record started so far is committed (or failed): a
   * clean stop waits for this before its last checkpoint, so the audit of
   * the last reads is signed too.
   */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }
}
