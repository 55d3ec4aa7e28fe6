import { createHash } from 'node:crypto';
import type { StoredEvent } from '../event/event.js';
import { escapeLineSeparators } from '../event/line-safe-json.js';
import type { RawStoredEvent, Store } from '../store/store.js';
import type { FilterFields } from './event-filter.js';
import type { Encoder } from './formats/format.js';
import type { BatchLimits, DeliveryBatch, OutgoingEvent } from './sink.js';

/** Events read from the log per step when a filter skips most of them. */
const READ_WINDOW = 512;

/**
 * How often a partial batch waiting longer than this looks for new events
 * (reading only those), so it leaves as soon as it is full rather than at
 * the end of its wait (an archive object waits up to `max_wait_ms`, minutes
 * by default). A shorter wait is waited out at once, as before.
 */
export const PARTIAL_BATCH_POLL_MS = 1000;

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
  readonly receivedAt: string;
  readonly timestamp: string;
  #event: Record<string, unknown> | undefined;

  constructor(row: RawStoredEvent) {
    this.seq = row.seq;
    this.eventId = row.event_id;
    this.tenantId = row.tenant_id;
    this.action = row.action;
    this.text = escapeLineSeparators(row.body);
    this.receivedAt = receivedAtOf(row);
    this.timestamp = row.timestamp;
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
  /** The batch {@link prefetch} is reading and packing, for the next call of {@link next}. */
  private ahead:
    | { after: number; epoch: number; rows: number; packed: Promise<DeliveryBatch | undefined> }
    | undefined;
  /** The last window {@link next} read was full: more of the log waits, worth reading ahead. */
  private behind = false;

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
      receivedAt: e.received_at,
      timestamp: e.timestamp,
      event,
      text: this.deps.encode(event),
    };
  }

  /** The delivery that was in flight (`cursor + 1 .. inflightTo`), rebuilt exactly as it was first sent. */
  async inflight(cursor: number, inflightTo: number, epoch: number): Promise<DeliveryBatch> {
    // Events pruned since leave gaps: the next rows may reach past the delivery's end.
    const events = await this.deps.store.readRangeRaw(cursor, inflightTo - cursor);
    const out = events.filter((e) => e.seq <= inflightTo && this.deps.filter(e)).map((e) => this.outgoing(e));
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
   * company through `waitForMore`, which answers whether to go on: until
   * `max_wait_ms` after its oldest event, or as soon as it holds
   * `max_events` or `max_bytes` (looked for every
   * {@link PARTIAL_BATCH_POLL_MS}, reading only the rows that came since).
   * The rows held never exceed one window (`max(512, max_events)`).
   */
  async next(
    cursor: number,
    epoch: number,
    waitForMore: (ms: number) => Promise<boolean>,
  ): Promise<DeliveryBatch | undefined> {
    const { max_events, max_wait_ms } = this.deps.batch;
    const windowRows = Math.max(READ_WINDOW, max_events);
    const first = cursor + 1;
    this.behind = false;
    const packed = await this.takeAhead(cursor, epoch, windowRows);
    if (packed !== undefined) {
      this.behind = true;
      return packed;
    }
    const window = await this.deps.store.readRangeRaw(cursor, windowRows);
    if (window.length === 0) return this.pastPrunedTail(cursor, epoch);
    const fill = new BatchFill(this.deps.batch);
    for (const row of window) if (this.deps.filter(row)) fill.add(row);
    if (fill.matching > 0 && !fill.full && window.length < windowRows && max_wait_ms > 0) {
      const deadline = Date.parse(receivedAtOf(window[0]!)) + max_wait_ms;
      for (let left = deadline - this.deps.now(); left > 0; left = deadline - this.deps.now()) {
        const long = max_wait_ms > PARTIAL_BATCH_POLL_MS;
        if (!(await waitForMore(long ? Math.min(left, PARTIAL_BATCH_POLL_MS) : left))) return undefined;
        const room = windowRows - window.length;
        if (room > 0) {
          const added = await this.deps.store.readRangeRaw(window.at(-1)!.seq, room);
          for (const row of added) {
            window.push(row);
            if (this.deps.filter(row)) fill.add(row);
          }
        }
        if (!long || fill.full || window.length >= windowRows) break;
      }
    }
    this.behind = window.length >= windowRows;
    return this.pack(cursor, epoch, first, window);
  }

  /**
   * Starts reading and packing the batch after `after` while the delivery
   * that ends there travels (after the current turn of the event loop, so
   * the delivery's first request is on its way first), so the next batch is
   * ready when the peer confirms: reading, encoding and sending overlap
   * instead of taking turns. {@link next} takes it only for a cursor at
   * `after` in the same epoch and only from a full window, whose rows can
   * no longer change (the log is append-only) and whose batch therefore is
   * exactly what {@link next} would pack; anything else is read again.
   * Holds one batch at most. Only when the last window was full: a sink
   * that keeps up reads once per batch, as before.
   */
  prefetch(after: number, epoch: number): void {
    if (!this.behind) return;
    const rows = Math.max(READ_WINDOW, this.deps.batch.max_events);
    this.ahead = {
      after,
      epoch,
      rows,
      packed: new Promise((resolve) =>
        setImmediate(() => {
          this.deps.store.readRangeRaw(after, rows).then(
            (window) => {
              // Packed in a later turn, so a confirmation that came meanwhile is handled first.
              if (window.length !== rows) resolve(undefined);
              else setImmediate(() => resolve(this.packSafely(after, epoch, window)));
            },
            () => resolve(undefined),
          );
        }),
      ),
    };
  }

  /**
   * No kept event after `cursor`: caught up, unless the seqs up to the head
   * were all pruned (the log's tail past retention), which an empty batch
   * to the head passes so the cursor does not stay behind them. The head is
   * read first and the log read again, so an event appended meanwhile is
   * never passed over.
   */
  private async pastPrunedTail(cursor: number, epoch: number): Promise<DeliveryBatch | undefined> {
    const head = await this.deps.store.headSeq();
    if (head <= cursor || (await this.deps.store.readRangeRaw(cursor, 1)).length > 0) return undefined;
    return {
      id: this.deliveryId(epoch, cursor + 1, head),
      attempt: 1,
      firstSeq: cursor + 1,
      lastSeq: head,
      events: [],
    };
  }

  /** The prefetched batch for `cursor` in `epoch`, if its window was read full. */
  private async takeAhead(cursor: number, epoch: number, rows: number): Promise<DeliveryBatch | undefined> {
    const ahead = this.ahead;
    this.ahead = undefined;
    if (ahead === undefined || ahead.after !== cursor || ahead.epoch !== epoch || ahead.rows !== rows)
      return undefined;
    return ahead.packed;
  }

  /** {@link pack}, or `undefined` when encoding throws (then {@link next} packs again and meets the error itself). */
  private packSafely(cursor: number, epoch: number, window: RawStoredEvent[]): DeliveryBatch | undefined {
    try {
      return this.pack(cursor, epoch, cursor + 1, window);
    } catch {
      return undefined;
    }
  }

  /** The batch `window` makes: its matching events, encoded, up to the limits. */
  private pack(cursor: number, epoch: number, first: number, window: RawStoredEvent[]): DeliveryBatch {
    const { max_events, max_bytes } = this.deps.batch;
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

/**
 * How full a waiting partial batch is. Its size in bytes is counted on the
 * stored JSON (what a JSON sink without shaping sends; near enough for
 * other formats to end the wait): the events are encoded once, when packed.
 */
class BatchFill {
  matching = 0;
  private bytes = 0;

  constructor(private readonly limits: BatchLimits) {}

  add(row: RawStoredEvent): void {
    this.matching += 1;
    this.bytes += Buffer.byteLength(row.body) + 1;
  }

  get full(): boolean {
    return this.matching >= this.limits.max_events || this.bytes >= this.limits.max_bytes;
  }
}

/**
 * An event's `received_at`, read from its stored JSON without parsing it
 * when the JSON starts as the store writes it (toStored in
 * store/stored-event.ts: `seq`, `event_id`, `timestamp`, `received_at`,
 * then the rest). The start is rebuilt from the row's own columns and must
 * match exactly, so a `received_at` key nested further on (in `metadata`,
 * say) is never the one read; any other JSON is parsed.
 */
export function receivedAtOf(row: RawStoredEvent): string {
  const start = `{"seq":${row.seq},"event_id":${JSON.stringify(row.event_id)},"timestamp":${JSON.stringify(row.timestamp)},"received_at":"`;
  if (row.body.startsWith(start)) {
    const end = row.body.indexOf('"', start.length);
    const value = row.body.slice(start.length, end);
    if (end > start.length && !value.includes('\\')) return value;
  }
  return (JSON.parse(row.body) as StoredEvent).received_at;
}
