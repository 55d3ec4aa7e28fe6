import { createHash } from 'node:crypto';
import type { StoredEvent } from '../event/event.js';
import { escapeLineSeparators } from '../event/line-safe-json.js';
import type { RawStoredEvent, Store } from '../store/store.js';
import type { FilterFields } from './event-filter.js';
import type { Encoder } from './formats/format.js';
import type { BatchLimits, DeliveryBatch, OutgoingEvent } from './sink.js';

/** Events read from the log per step when a filter skips most of them. */
const READ_WINDOW = 512;

/** How a sink's events are chosen and turned into what it sends. */
export interface BatchReaderDeps {
  store: Store;
  filter: (e: FilterFields) => boolean;
  shape: (e: StoredEvent) => Record<string, unknown>;
  encode: Encoder;
  /**
   * The shape is the identity and the format is plain JSON, so an event's
   * text is its stored JSON as it is: no parse, no stringify (the object is
   * parsed only if the sink reads it).
   */
  sendStoredJson: boolean;
  batch: BatchLimits;
  now: () => number;
}

/**
 * An event whose text is the stored JSON, byte-identical to what the `json`
 * format makes of it (the Unicode line separators escaped likewise: the
 * stored text keeps them raw, as JCS does); the object is parsed on first
 * read (syslog's structured data reads it, a webhook or file sink never does).
 */
class StoredJsonEvent implements OutgoingEvent {
  readonly seq: number;
  readonly eventId: string;
  readonly tenantId: string;
  readonly action: string;
  readonly text: string;
  readonly header: NonNullable<OutgoingEvent['header']>;
  #event: Record<string, unknown> | undefined;

  constructor(row: RawStoredEvent) {
    this.seq = row.seq;
    this.eventId = row.event_id;
    this.tenantId = row.tenant_id;
    this.action = row.action;
    this.text = escapeLineSeparators(row.body);
    this.header = {
      timestamp: row.timestamp,
      outcome: row.outcome,
      actorId: row.actor_id,
      resourceId: row.resource_id,
    };
  }

  get event(): Record<string, unknown> {
    this.#event ??= JSON.parse(this.text) as Record<string, unknown>;
    return this.#event;
  }
}

/**
 * Reads one sink's next delivery from the log: the events after its cursor
 * that pass its filter, shaped and encoded, packed up to its batch limits,
 * one window of the log at a time (so memory is bounded however far behind
 * the sink is). Deliveries are named by their range and the cursor's epoch,
 * so the same range gets the same id on every retry and after a restart.
 */
export class BatchReader {
  constructor(
    private readonly name: string,
    private readonly deps: BatchReaderDeps,
  ) {}

  /** The id of the delivery of `first..last` in cursor epoch `epoch` (`webhook-id`). */
  deliveryId(epoch: number, first: number, last: number): string {
    const h = createHash('sha256').update(`${this.name}/${epoch}/${first}/${last}`).digest('base64url');
    return `msg_${h.slice(0, 26)}`;
  }

  /** A stored event as the sink sends it. */
  outgoing(row: RawStoredEvent): OutgoingEvent {
    if (this.deps.sendStoredJson) return new StoredJsonEvent(row);
    const e = JSON.parse(row.body) as StoredEvent;
    const event = this.deps.shape(e);
    return {
      seq: e.seq,
      eventId: e.event_id,
      tenantId: e.tenant_id,
      action: e.action,
      event,
      text: this.deps.encode(event),
    };
  }

  /** The delivery that was in flight (`cursor + 1 .. inflightTo`), rebuilt exactly as it was first sent. */
  async inflight(cursor: number, inflightTo: number, epoch: number): Promise<DeliveryBatch> {
    const events = await this.deps.store.readRangeRaw(cursor, inflightTo - cursor);
    const out = events.filter(this.deps.filter).map((e) => this.outgoing(e));
    return {
      id: this.deliveryId(epoch, cursor + 1, inflightTo),
      attempt: 1,
      firstSeq: cursor + 1,
      lastSeq: inflightTo,
      events: out,
    };
  }

  /**
   * The events after `cursor` packed up to the batch limits (with none when
   * the filter passed none of a window: the cursor then moves past it);
   * `undefined` when caught up or when `waitForMore` says to give up. A
   * partial batch of events younger than `max_wait_ms` first waits for
   * company through `waitForMore`, which answers whether to go on.
   */
  async next(
    cursor: number,
    epoch: number,
    waitForMore: (ms: number) => Promise<boolean>,
  ): Promise<DeliveryBatch | undefined> {
    const { max_events, max_bytes, max_wait_ms } = this.deps.batch;
    const first = cursor + 1;
    let window = await this.deps.store.readRangeRaw(cursor, Math.max(READ_WINDOW, max_events));
    if (window.length === 0) return undefined;
    const matching = window.filter(this.deps.filter).length;
    if (matching > 0 && matching < max_events && max_wait_ms > 0) {
      const age = this.deps.now() - Date.parse(receivedAtOf(window[0]!));
      if (age < max_wait_ms) {
        if (!(await waitForMore(max_wait_ms - age))) return undefined;
        window = await this.deps.store.readRangeRaw(cursor, Math.max(READ_WINDOW, max_events));
      }
    }
    const events: OutgoingEvent[] = [];
    let bytes = 0;
    let last = cursor;
    for (const e of window) {
      if (this.deps.filter(e)) {
        const out = this.outgoing(e);
        const size = Buffer.byteLength(out.text) + 1;
        if (events.length > 0 && (events.length >= max_events || bytes + size > max_bytes)) break;
        events.push(out);
        bytes += size;
      }
      last = e.seq;
    }
    return { id: this.deliveryId(epoch, first, last), attempt: 1, firstSeq: first, lastSeq: last, events };
  }
}

/** When the event was received: one parse per partial batch, not per event. */
function receivedAtOf(row: RawStoredEvent): string {
  return (JSON.parse(row.body) as StoredEvent).received_at;
}
