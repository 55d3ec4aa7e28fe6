import type { DeadLetter, SinkState } from './store.js';

/** A `sink_states` row as both backends return it (SQLite has no boolean type: `paused` is 0 or 1 there). */
export interface SinkStateRow {
  name: string;
  cursor: number;
  inflight_to: number | null;
  epoch: number;
  paused: boolean | number;
  disabled_reason: string | null;
  updated_at: string;
}

/** A `dead_letters` row. */
export interface DeadLetterRow {
  id: number;
  sink: string;
  seq: number;
  event_id: string;
  reason: string;
  attempts: number;
  parked_at: string;
  last_attempt_at: string;
  redrive_requested_at: string | null;
}

export const toSinkState = (r: SinkStateRow): SinkState => ({
  name: r.name,
  cursor: r.cursor,
  inflightTo: r.inflight_to,
  epoch: r.epoch,
  paused: r.paused === true || r.paused === 1,
  disabledReason: r.disabled_reason,
  updatedAt: r.updated_at,
});

export const toDeadLetter = (r: DeadLetterRow): DeadLetter => ({
  id: r.id,
  sink: r.sink,
  seq: r.seq,
  eventId: r.event_id,
  reason: r.reason,
  attempts: r.attempts,
  parkedAt: r.parked_at,
  lastAttemptAt: r.last_attempt_at,
  redriveRequestedAt: r.redrive_requested_at,
});
