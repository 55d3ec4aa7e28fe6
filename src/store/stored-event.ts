import { TrailwardenError } from '../errors.js';
import {
  type CanonicalEvent,
  canonicalEvent,
  contentHashOfCanonical,
  leafHashOfCanonical,
} from '../event/canonical.js';
import type { AuditEvent, StoredEvent } from '../event/event.js';
import type { PreparedEvent } from './store.js';

/**
 * The event as the log keeps it, before its leaf hash is known. Key order
 * follows EVENT_FIELDS so the served JSON reads naturally; the leaf hash is
 * over JCS, which sorts keys, so the order never affects it. Every backend
 * builds stored events here, so they cannot drift apart.
 */
export function toStored(event: AuditEvent, seq: number, receivedAt: string): StoredEvent {
  const { event_id, timestamp, ...rest } = event;
  return { seq, event_id, timestamp, received_at: receivedAt, ...rest, leaf_hash: '' };
}

/**
 * An event ready for the log: its canonical form, computed once (validation
 * makes it), gives the content hash now and the leaf hash later.
 */
export function prepareEvent(
  event: AuditEvent,
  canonical: CanonicalEvent = canonicalEvent(event),
): PreparedEvent {
  return { event, contentHash: contentHashOfCanonical(canonical), canonical };
}

/** The lowercased text `q` searches: actor and resource names, actor email, reason. */
export function searchText(e: AuditEvent): string {
  return [e.actor.name, e.actor.email, e.resource?.name, e.reason]
    .filter((v): v is string => typeof v === 'string')
    .join('\n')
    .toLowerCase();
}

/** The 409 for an event_id already holding other content; the whole batch is refused. */
export function conflictError(events: PreparedEvent[], index: number): TrailwardenError {
  const id = events[index]?.event.event_id ?? '';
  return new TrailwardenError(
    'TW_ERR_EVENT_CONFLICT',
    `event_id ${id} was already stored with different content; use a new event_id for a new event, or resend the original content unchanged. Nothing from this batch was stored.`,
    { problems: [{ index, path: 'event_id', message: `event_id ${id} already holds a different event` }] },
  );
}

/** The indexed columns of one sequenced event, its leaf hash and its stored JSON, as every backend writes them. */
export interface SequencedRow {
  seq: number;
  eventId: string;
  tenantId: string;
  ts: string;
  action: string;
  actorId: string;
  resourceType: string | null;
  resourceId: string | null;
  outcome: string;
  search: string;
  leaf: Buffer;
  /** `JSON.stringify` of the stored event, leaf hash included. */
  body: string;
}

/**
 * The indexed columns of a sequenced row, `event_id` to `search`, in the
 * order both backends' `events` tables declare them (between `seq` — and on
 * PostgreSQL `received_at` — and the hashes and body).
 */
export function indexedValues(
  r: SequencedRow,
): [string, string, string, string, string, string | null, string | null, string, string] {
  return [
    r.eventId,
    r.tenantId,
    r.ts,
    r.action,
    r.actorId,
    r.resourceType,
    r.resourceId,
    r.outcome,
    r.search,
  ];
}

/**
 * Sequences `event` at `seq`: the row both backends store, so their columns
 * cannot drift apart. `canonical` is the event's canonical form when ingest
 * made it already.
 */
export function sequencedRow(
  event: AuditEvent,
  seq: number,
  receivedAt: string,
  canonical: CanonicalEvent = canonicalEvent(event),
): SequencedRow {
  const stored = toStored(event, seq, receivedAt);
  const leaf = leafHashOfCanonical(canonical, seq, receivedAt);
  stored.leaf_hash = leaf.toString('base64');
  return {
    seq,
    eventId: event.event_id,
    tenantId: event.tenant_id,
    ts: event.timestamp,
    action: event.action,
    actorId: event.actor.id,
    resourceType: event.resource?.type ?? null,
    resourceId: event.resource?.id ?? null,
    outcome: event.outcome,
    search: searchText(event),
    leaf,
    body: JSON.stringify(stored),
  };
}
