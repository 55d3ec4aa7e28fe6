import { createHash } from 'node:crypto';
import type { StoredEvent } from '../event/event.js';
import { escapeLineSeparators } from '../event/line-safe-json.js';
import type { CheckpointRecord, DeadLetterInput, RawStoredEvent, SinkState, Store } from '../store/store.js';
import type { FilterFields } from './event-filter.js';
import type { Encoder } from './formats/format.js';
import { nextDelay, type RetryConfig } from './retry-policy.js';
import type { DeliveryBatch, DeliveryOutcome, OutgoingEvent, Sink } from './sink.js';
import type { SinkConfig } from './sink-config.js';

/** How a sink is doing, as /v1/sinks/{name}/status shows it. */
export type SinkHealth = 'healthy' | 'retrying' | 'failing' | 'disabled' | 'paused' | 'stopped';

export interface WorkerDeps {
  store: Store;
  sink: Sink;
  config: SinkConfig;
  filter: (e: FilterFields) => boolean;
  shape: (e: StoredEvent) => Record<string, unknown>;
  encode: Encoder;
  /**
   * The shape is the identity and the format is plain JSON, so an event's
   * text is its stored JSON as it is: no parse, no stringify (the object is
   * parsed only if the sink reads it).
   */
  sendStoredJson: boolean;
  retry: RetryConfig;
  now: () => number;
  /** Moves confirmed for the emit policy: everything up to `upTo` passed, `parked` were not delivered. */
  onProgress(upTo: number, parked: number[]): void;
  /** Persistent failure began (after `failing_after_ms`) or ended. */
  onAlert(kind: 'failing' | 'recovered', detail: { reason: string; sinceMs: number }): void;
  log: { warn(msg: string, extra?: object): void };
}

/** Events read from the log per step when a filter skips most of them. */
const READ_WINDOW = 512;

type Attempted =
  | { kind: 'ok' }
  | { kind: 'park'; reason: string; attempts: number }
  | { kind: 'disable'; reason: string }
  | { kind: 'interrupted' };

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
 * Delivers one sink: reads the log after the sink's cursor, in order, one
 * batch at a time (so memory is bounded however far behind it is), and moves
 * the cursor by compare-and-set only after the sink confirmed. A restart
 * resends exactly the in-flight batch with the same delivery id.
 */
export class SinkWorker {
  health: SinkHealth = 'healthy';
  cursor = 0;
  readonly counters = { delivered: 0, batches: 0, retries: 0, parked: 0, filtered: 0 };
  lastError: { at: string; reason: string } | null = null;
  lastSuccessAt: string | null = null;
  private failingSince: number | null = null;
  /**
   * The last attempt failed for good and nothing was delivered since: every
   * event is parked as it comes (a target the network guard refuses, a
   * receiver refusing every request). The sink is failing now, not after
   * `failing_after_ms`: no retry will change it.
   */
  private refusedSinceSuccess = false;
  private readonly recentParked = new Set<number>();
  private alerted = false;
  private state!: SinkState;
  private stopped = false;
  private pendingReplay: number | undefined;
  /**
   * The stored state differs from ours (a pause, resume or replay issued
   * through another node): `flags` is reloaded between attempts; `position`
   * (the cursor or epoch moved) also abandons the delivery in flight.
   */
  private refreshDue: 'flags' | 'position' | undefined;
  /** Ends an idle wait (new events, state changes). */
  private idleWaker: (() => void) | undefined;
  /** Ends any wait, retry back-off included (stop, pause, replay). */
  private interruptWaker: (() => void) | undefined;
  private abort = new AbortController();
  private running: Promise<void> | undefined;
  /**
   * Tree size of the last checkpoint this worker sent (`send_checkpoints`).
   * Kept in memory: after a restart the latest one is sent again, which a
   * receiver keeping witnesses takes as the duplicate at-least-once allows.
   */
  private checkpointSent = 0;

  constructor(
    readonly name: string,
    private readonly deps: WorkerDeps,
  ) {}

  /** Loads (or creates) the sink's state and starts the delivery loop. */
  async start(): Promise<void> {
    const head = await this.deps.store.headSeq();
    this.state = await this.deps.store.delivery.ensureSinkState(
      this.name,
      this.deps.config.start_from === 'beginning' ? 0 : head,
    );
    this.cursor = this.state.cursor;
    this.updateHealth();
    this.running = this.loop().catch((err) => {
      this.deps.log.warn(`sink ${this.name}: delivery loop stopped`, { err });
      this.health = 'stopped';
    });
  }

  /** New events arrived: stop an idle wait (never a retry back-off). */
  wake(): void {
    const w = this.idleWaker;
    this.idleWaker = undefined;
    w?.();
  }

  private interrupt(): void {
    const w = this.interruptWaker;
    this.interruptWaker = undefined;
    this.wake();
    w?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.interrupt();
    await this.running;
    this.updateHealth();
  }

  /** Pause or resume; a pause takes effect after the attempt in progress. */
  async setPaused(paused: boolean): Promise<void> {
    await this.deps.store.delivery.setSinkFlags(this.name, {
      paused,
      ...(paused ? {} : { disabledReason: null }),
    });
    this.state = { ...this.state, paused, ...(paused ? {} : { disabledReason: null }) };
    if (!paused) this.resetFailure();
    this.updateHealth();
    this.interrupt();
  }

  /** Moves the cursor back (or forward) to `seq`; applied between deliveries. */
  replay(seq: number): void {
    this.pendingReplay = seq;
    this.abort.abort();
    this.interrupt();
  }

  /**
   * Looks for changes other nodes made to the stored state (pause, resume,
   * replay): called at each lease renewal. A difference makes the loop
   * reload the state; a difference seen while our own move was landing only
   * costs one needless reload.
   */
  async refresh(): Promise<void> {
    if (this.stopped || this.refreshDue === 'position') return;
    const st = await this.deps.store.delivery.getSinkState(this.name);
    if (st === undefined || this.stopped) return;
    if (st.epoch !== this.state.epoch || st.cursor !== this.cursor) {
      this.refreshDue = 'position';
      this.abort.abort();
      this.interrupt();
    } else if (st.paused !== this.state.paused || st.disabledReason !== this.state.disabledReason) {
      this.refreshDue ??= 'flags';
      this.interrupt();
    }
  }

  /** Called periodically: raises the failing alert once a failure has lasted long enough. */
  checkHealth(): void {
    if (this.failingSince === null || this.alerted) return;
    if (this.deps.now() - this.failingSince >= this.deps.config.failing_after_ms) {
      this.alerted = true;
      this.updateHealth();
      this.deps.onAlert('failing', {
        reason: this.lastError?.reason ?? 'unknown',
        sinceMs: this.failingSince,
      });
    }
  }

  get paused(): boolean {
    return this.state?.paused ?? false;
  }

  get disabledReason(): string | null {
    return this.state?.disabledReason ?? null;
  }

  get inflightTo(): number | null {
    return this.state?.inflightTo ?? null;
  }

  private updateHealth(): void {
    if (this.stopped) this.health = 'stopped';
    else if (this.state?.disabledReason) this.health = 'disabled';
    else if (this.state?.paused) this.health = 'paused';
    else if (this.alerted || this.refusedSinceSuccess) this.health = 'failing';
    else if (this.failingSince !== null) this.health = 'retrying';
    else this.health = 'healthy';
  }

  private resetFailure(): void {
    if (this.alerted) {
      this.deps.onAlert('recovered', {
        reason: this.lastError?.reason ?? '',
        sinceMs: this.failingSince ?? 0,
      });
    }
    this.alerted = false;
    this.failingSince = null;
    this.refusedSinceSuccess = false;
  }

  /** Waits `ms`; an idle wait also ends when new events arrive, a back-off only when interrupted. */
  private sleep(ms: number, kind: 'idle' | 'backoff' = 'idle'): Promise<void> {
    // A stop (or replay, or a change through another node) that came while the loop was busy must not be slept through.
    if (this.stopped || this.pendingReplay !== undefined || this.refreshDue !== undefined)
      return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.idleWaker = undefined;
        this.interruptWaker = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.interruptWaker = done;
      if (kind === 'idle') this.idleWaker = done;
    });
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      if (this.refreshDue !== undefined) {
        await this.applyRefresh();
        continue;
      }
      if (this.pendingReplay !== undefined) {
        await this.applyReplay(this.pendingReplay);
        continue;
      }
      if (this.state.paused || this.state.disabledReason) {
        await this.sleep(60_000);
        continue;
      }
      if (this.deps.config.send_checkpoints && (await this.sendCheckpoint())) continue;
      const batch = await this.nextBatch();
      if (batch === undefined) {
        // New checkpoints do not wake the worker; one over what was sent comes within a second.
        await this.sleep(
          this.deps.config.send_checkpoints && this.cursor > this.checkpointSent ? 1000 : 30_000,
        );
        continue;
      }
      if (batch.events.length === 0) {
        this.counters.filtered += batch.lastSeq - batch.firstSeq + 1;
        await this.advance(batch.lastSeq, []);
        continue;
      }
      if (this.state.inflightTo !== batch.lastSeq) {
        const moved = await this.deps.store.delivery.moveSinkCursor(this.name, this.cursor, this.cursor, {
          inflightTo: batch.lastSeq,
        });
        if (!moved.ok) {
          await this.reload();
          continue;
        }
        this.state = moved.state;
      }
      await this.deliverBatch(batch);
    }
  }

  private async applyReplay(seq: number): Promise<void> {
    this.pendingReplay = undefined;
    this.abort = new AbortController();
    const moved = await this.deps.store.delivery.moveSinkCursor(this.name, this.cursor, seq, {
      inflightTo: null,
      epochBump: true,
    });
    if (moved.ok) {
      this.state = moved.state;
      this.cursor = seq;
    } else {
      await this.reload();
      this.pendingReplay = seq;
    }
  }

  private async applyRefresh(): Promise<void> {
    const wasStopped = this.state.paused || this.state.disabledReason !== null;
    this.refreshDue = undefined;
    if (this.abort.signal.aborted && this.pendingReplay === undefined) this.abort = new AbortController();
    await this.reload();
    // A resume through another node starts retrying afresh, as a local one does.
    if (wasStopped && !this.state.paused && this.state.disabledReason === null) this.resetFailure();
    this.updateHealth();
  }

  private async reload(): Promise<void> {
    const st = await this.deps.store.delivery.getSinkState(this.name);
    if (!st) throw new Error(`sink ${this.name} has no state (deleted?)`);
    this.state = st;
    this.cursor = st.cursor;
  }

  private deliveryId(first: number, last: number): string {
    const h = createHash('sha256')
      .update(`${this.name}/${this.state.epoch}/${first}/${last}`)
      .digest('base64url');
    return `msg_${h.slice(0, 26)}`;
  }

  private encode(row: RawStoredEvent): OutgoingEvent {
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

  /**
   * The next delivery: the in-flight one after a restart, else events after
   * the cursor packed up to the batch limits. `undefined` when caught up.
   */
  private async nextBatch(): Promise<DeliveryBatch | undefined> {
    const { max_events, max_bytes, max_wait_ms } = this.deps.config.batch;
    const first = this.cursor + 1;
    if (this.state.inflightTo !== null && this.state.inflightTo > this.cursor) {
      const events = await this.deps.store.readRangeRaw(this.cursor, this.state.inflightTo - this.cursor);
      const out = events.filter(this.deps.filter).map((e) => this.encode(e));
      return {
        id: this.deliveryId(first, this.state.inflightTo),
        attempt: 1,
        firstSeq: first,
        lastSeq: this.state.inflightTo,
        events: out,
      };
    }
    let window = await this.deps.store.readRangeRaw(this.cursor, Math.max(READ_WINDOW, max_events));
    if (window.length === 0) return undefined;
    // A partial batch of young events waits up to max_wait_ms for company.
    const matching = window.filter(this.deps.filter).length;
    if (matching > 0 && matching < max_events && max_wait_ms > 0) {
      const age = this.deps.now() - Date.parse(receivedAtOf(window[0]!));
      if (age < max_wait_ms) {
        await this.sleep(max_wait_ms - age, 'backoff');
        if (this.abandoned()) return undefined;
        window = await this.deps.store.readRangeRaw(this.cursor, Math.max(READ_WINDOW, max_events));
      }
    }
    const events: OutgoingEvent[] = [];
    let bytes = 0;
    let last = this.cursor;
    for (const e of window) {
      if (this.deps.filter(e)) {
        const out = this.encode(e);
        const size = Buffer.byteLength(out.text) + 1;
        if (events.length > 0 && (events.length >= max_events || bytes + size > max_bytes)) break;
        events.push(out);
        bytes += size;
      }
      last = e.seq;
    }
    return { id: this.deliveryId(first, last), attempt: 1, firstSeq: first, lastSeq: last, events };
  }

  private async deliverBatch(batch: DeliveryBatch): Promise<void> {
    const result = await this.attempt(batch);
    if (result.kind === 'interrupted') return;
    if (result.kind === 'disable') {
      await this.disable(result.reason);
      return;
    }
    if (result.kind === 'ok') {
      this.counters.delivered += batch.events.length;
      this.counters.batches += 1;
      await this.advance(batch.lastSeq, []);
      return;
    }
    if (batch.events.length === 1) {
      await this.advance(batch.lastSeq, [this.letter(batch.events[0]!, result)]);
      return;
    }
    // One bad event must not sink its neighbours: send them one by one and
    // park only those that fail on their own.
    const parked: DeadLetterInput[] = [];
    let passed = batch.firstSeq - 1;
    for (const e of batch.events) {
      const single: DeliveryBatch = {
        id: this.deliveryId(e.seq, e.seq),
        attempt: 1,
        firstSeq: e.seq,
        lastSeq: e.seq,
        events: [e],
      };
      const r = await this.attempt(single);
      if (r.kind === 'interrupted' || r.kind === 'disable') {
        if (passed >= batch.firstSeq) await this.advance(passed, parked);
        if (r.kind === 'disable') await this.disable(r.reason);
        return;
      }
      if (r.kind === 'park') parked.push(this.letter(e, r));
      else this.counters.delivered += 1;
      passed = e.seq;
    }
    await this.advance(batch.lastSeq, parked);
  }

  /**
   * Sends the latest signed checkpoint as a record of its own once the
   * cursor has passed every event it covers, so it follows them in order.
   * True when it tried (sent, skipped after a refusal, or interrupted).
   */
  private async sendCheckpoint(): Promise<boolean> {
    const cp = await this.deps.store.latestCheckpoint();
    if (cp === undefined || cp.treeSize > this.cursor || cp.treeSize <= this.checkpointSent) return false;
    const record = checkpointRecord(cp, this.tenantOfRecords());
    const batch: DeliveryBatch = {
      id: this.deliveryId(0, cp.treeSize),
      attempt: 1,
      firstSeq: cp.treeSize,
      lastSeq: cp.treeSize,
      events: [
        {
          seq: cp.treeSize,
          eventId: String(record['event_id']),
          tenantId: String(record['tenant_id'] ?? ''),
          action: CHECKPOINT_ACTION,
          event: record,
          text: this.deps.encode(record),
        },
      ],
    };
    const result = await this.attempt(batch);
    if (result.kind === 'interrupted') return true;
    if (result.kind === 'disable') {
      await this.disable(result.reason);
      return true;
    }
    if (result.kind === 'park') {
      // Not a log event: nothing to park. The next checkpoint is a witness as good.
      this.deps.log.warn(
        `sink ${this.name}: the receiver refused checkpoint ${cp.treeSize}: ${result.reason}`,
      );
    }
    this.checkpointSent = cp.treeSize;
    return true;
  }

  /** The tenant named on checkpoint records: the one the sink's filter carries, when it is one. */
  private tenantOfRecords(): string | undefined {
    const tenants = this.deps.config.filter.tenants;
    return tenants?.length === 1 ? tenants[0] : undefined;
  }

  /** One more try of a parked event, outside the cursor (an operator's redrive). */
  async redeliver(letter: { id: number; seq: number; attempts: number }): Promise<DeliveryOutcome> {
    const [event] = await this.deps.store.readRangeRaw(letter.seq - 1, 1);
    if (!event) return { kind: 'permanent', reason: `event ${letter.seq} is not in the log` };
    const out = this.encode(event);
    const id = this.deliveryId(letter.seq, letter.seq);
    try {
      return await this.deps.sink.deliver(
        {
          id: `${id}_r${letter.attempts}`,
          attempt: letter.attempts + 1,
          firstSeq: letter.seq,
          lastSeq: letter.seq,
          events: [out],
        },
        new AbortController().signal,
      );
    } catch (err) {
      return { kind: 'retry', reason: `sink error: ${(err as Error).message}` };
    }
  }

  /** Whether `seq` was parked recently (the emit policy asks right after ingest). */
  wasParked(seq: number): boolean {
    return this.recentParked.has(seq);
  }

  private letter(e: OutgoingEvent, r: { reason: string; attempts: number }): DeadLetterInput {
    return { seq: e.seq, eventId: e.eventId, reason: r.reason, attempts: r.attempts };
  }

  /** Tries one delivery until it succeeds, fails for good, or the schedule runs out. */
  private async attempt(batch: DeliveryBatch): Promise<Attempted> {
    for (let attempt = 1; ; attempt++) {
      if (this.abandoned()) return { kind: 'interrupted' };
      let outcome: DeliveryOutcome;
      try {
        outcome = await this.deps.sink.deliver({ ...batch, attempt }, this.abort.signal);
      } catch (err) {
        outcome = { kind: 'retry', reason: `sink error: ${(err as Error).message}` };
      }
      if (this.abandoned()) return { kind: 'interrupted' };
      if (outcome.kind === 'ok') {
        this.lastSuccessAt = new Date(this.deps.now()).toISOString();
        this.resetFailure();
        this.updateHealth();
        return { kind: 'ok' };
      }
      this.lastError = { at: new Date(this.deps.now()).toISOString(), reason: outcome.reason };
      if (outcome.kind === 'disable') return { kind: 'disable', reason: outcome.reason };
      if (outcome.kind === 'permanent') {
        this.refusedSinceSuccess = true;
        this.failingSince ??= this.deps.now();
        this.checkHealth();
        this.updateHealth();
        return { kind: 'park', reason: outcome.reason, attempts: attempt };
      }
      this.counters.retries += 1;
      this.failingSince ??= this.deps.now();
      this.checkHealth();
      this.updateHealth();
      const delay = nextDelay(this.deps.retry, attempt);
      if (delay === undefined) {
        return {
          kind: 'park',
          reason: `gave up after ${attempt} attempts: ${outcome.reason}`,
          attempts: attempt,
        };
      }
      await this.sleep(outcome.afterMs ?? delay, 'backoff');
      if (this.state.paused || this.refreshDue !== undefined) return { kind: 'interrupted' };
    }
  }

  /** The delivery in flight no longer counts: stopping, replaying, or the cursor moved elsewhere. */
  private abandoned(): boolean {
    return this.stopped || this.pendingReplay !== undefined || this.refreshDue === 'position';
  }

  private async advance(to: number, parked: DeadLetterInput[]): Promise<void> {
    const moved = await this.deps.store.delivery.moveSinkCursor(this.name, this.cursor, to, {
      inflightTo: null,
      park: parked,
    });
    if (!moved.ok) {
      await this.reload();
      return;
    }
    this.state = moved.state;
    this.cursor = to;
    this.counters.parked += parked.length;
    for (const p of parked) {
      this.recentParked.add(p.seq);
      if (this.recentParked.size > 10_000) this.recentParked.delete(this.recentParked.values().next().value!);
    }
    this.deps.onProgress(
      to,
      parked.map((p) => p.seq),
    );
  }

  private async disable(reason: string): Promise<void> {
    await this.deps.store.delivery.setSinkFlags(this.name, { disabledReason: reason });
    this.state = { ...this.state, disabledReason: reason };
    this.updateHealth();
  }
}

/** The action of the records `send_checkpoints` adds (in the catalog, so formats map it). */
export const CHECKPOINT_ACTION = 'log.checkpoint.signed';

/**
 * A signed checkpoint as an event-shaped record, so every format carries it:
 * `metadata` holds the tree size, root hash and the signed note itself, which
 * `trailwarden verify --trusted-checkpoint` takes. Not an event of the log:
 * it has no `seq` or `leaf_hash`.
 */
export function checkpointRecord(cp: CheckpointRecord, tenantId?: string): Record<string, unknown> {
  const origin = cp.note.slice(0, cp.note.indexOf('\n'));
  return {
    event_id: `checkpoint_${cp.treeSize}`,
    timestamp: cp.issuedAt,
    received_at: cp.issuedAt,
    ...(tenantId === undefined ? {} : { tenant_id: tenantId }),
    actor: { type: 'system', id: 'trailwarden', name: 'Trailwarden' },
    action: CHECKPOINT_ACTION,
    resource: { type: 'log', id: origin, name: origin },
    outcome: 'success',
    metadata: { tree_size: cp.treeSize, root_hash: cp.rootHash, note: cp.note },
  };
}

/** When the event was received: one parse per partial batch, not per event. */
function receivedAtOf(row: RawStoredEvent): string {
  return (JSON.parse(row.body) as StoredEvent).received_at;
}
