/**
 * The canonical audit event (ARCHITECTURE.md, after seed 001). `AuditEvent` is
 * what a producer's event becomes after validation and normalisation;
 * `StoredEvent` adds what the server sets when the sequencer appends it.
 */
export const OUTCOMES = ['success', 'failure', 'denied'] as const;
export type Outcome = (typeof OUTCOMES)[number];

export interface Actor {
  type: string;
  id: string;
  name?: string;
  email?: string;
}

export interface Resource {
  type: string;
  id: string;
  name?: string;
}

export interface Change {
  field: string;
  old?: unknown;
  new?: unknown;
}

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A validated, normalised event, as it will be stored (without server fields). */
export interface AuditEvent {
  event_id: string;
  /** UTC ISO 8601 with milliseconds, e.g. `2026-03-15T08:42:17.003Z`. */
  timestamp: string;
  tenant_id: string;
  actor: Actor;
  action: string;
  resource?: Resource;
  outcome: Outcome;
  reason?: string;
  source_ip?: string;
  user_agent?: string;
  session_id?: string;
  request_id?: string;
  changes?: Change[];
  metadata?: { [key: string]: JsonValue };
}

/** An event as the log holds it and the API serves it. */
export interface StoredEvent extends AuditEvent {
  /** Position in the log, from 1, without gaps. Leaf index is `seq - 1`. */
  seq: number;
  /** When the server accepted it (UTC ISO 8601, milliseconds). */
  received_at: string;
  /**
   * Set when an erasure removed the event's personal fields (listed here):
   * its leaf hash then covers the content as it was and cannot be recomputed.
   */
  redaction?: Redaction;
  /** Base64 SHA-256 leaf hash of the event without this field (RFC 6962 leaf). */
  leaf_hash: string;
}

/** What an erasure did to a stored event (docs/retention.md). */
export interface Redaction {
  /** The erasure's id (`era_…`). */
  erasure_id: string;
  /** Dot paths of the fields removed, e.g. `actor.email`, `metadata.phone`. */
  fields: string[];
}

/** The top-level fields of an event, in the order the API and exports present them. */
export const EVENT_FIELDS = [
  'seq',
  'event_id',
  'timestamp',
  'received_at',
  'tenant_id',
  'actor',
  'action',
  'resource',
  'outcome',
  'reason',
  'source_ip',
  'user_agent',
  'session_id',
  'request_id',
  'changes',
  'metadata',
  'redaction',
  'leaf_hash',
] as const;
