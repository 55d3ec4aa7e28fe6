import type { DeadLetterInput, SinkState } from '../store/store.js';
import { BatchReader, type BatchReaderDeps } from './batch-reader.js';
import { checkpointEvent } from './checkpoint-record.js';
import { nextDelay, type RetryConfig } from './retry-policy.js';
import { type LastHealthcheck, PROBE_INTERVAL_MS, RetryWait } from './retry-wait.js';
import type { DeliveryBatch, DeliveryOutcome, OutgoingEvent, Sink, SinkContext } from './sink.js';
import type { SinkConfig } from './sink-config.js';
import { type FailureDetail, type SinkHealth, SinkHealthTracker } from './sink-health.js';
import { WorkerWaits } from './worker-waits.js';

/** What a worker delivers with: the sink, its settings, and how its events are read and encoded. */
export interface WorkerDeps extends Omit<BatchReaderDeps, 'batch'> {
  sink: Sink;
  config: SinkConfig;
  retry: RetryConfig;
  /** Moves confirmed for the emit policy: everything up to `upTo` passed, `parked` were not delivered. */
  onProgress(upTo: number, parked: number[]): void;
  /** Persistent failure began (after `failing_after_ms`) or ended. */
  onAlert(kind: 'failing' | 'recovered', detail: FailureDetail): void;
  log: SinkContext['log'];
}

type Attempted =
  | { kind: 'ok' }
  | { kind: 'park'; reason: string; attempts: number; seqs?: number[] }
  | { kind: 'disable'; reason: string }
  | { kind: 'interrupted' };

/**
 * Delivers one sink: reads the log after the sink's cursor, in order, one
 * batch at a time (so memory is bounded however far behind it is), and moves
 * the cursor by compare-and-set only after the sink confirmed. A restart
 * resends exactly the in-flight batch with the same delivery id.
 *
 * Past 400 lines as one state machine: the loop, the retries of a delivery,
 * replays and changes made through other nodes all read and move the same
 * cursor, state and abort signal. What needs none of them lives apart:
 * batch-reader.ts (what to send), sink-health.ts (failures and health),
 * worker-waits.ts (waits), retry-wait.ts (retry delays and the probes that
 * end them early), checkpoint-record.ts (checkpoint records).
 */
export class SinkWorker {
  health: SinkHealth = 'healthy';
  cursor = 0;
  readonly counters = { delivered: 0, batches: 0, retries: 0, parked: 0, filtered: 0 };
  private readonly failures: SinkHealthTracker;
  private readonly reader: BatchReader;
  private readonly recentParked = new Set<number>();
  private state!: SinkState;
  private stopped = false;
  private pendingReplay: number | undefined;
  /**
   * The stored state differs from ours (a pause, resume or replay issued
   * through another node): `flags` is reloaded between attempts; `position`
   * (the cursor or epoch moved) also abandons the delivery in flight.
   */
  private refreshDue: 'flags' | 'position' | undefined;
  private readonly waits = new WorkerWaits();
  private readonly retryWait: RetryWait;
  private abort = new AbortController();
  private running: Promise<void> | undefined;
  /**
   * Tree size of the last checkpoint this worker sent (`send_checkpoints`).
   * Kept in memory: after a restart the latest one is sent again, which a
   * receiver keeping witnesses takes as the duplicate at-least-once allows.
   */
  private checkpointSent: number | undefined;

  constructor(
    readonly name: string,
    private readonly deps: WorkerDeps,
  ) {
    this.failures = new SinkHealthTracker(deps.now, deps.config.failing_after_ms);
    this.reader = new BatchReader(name, { ...deps, batch: deps.config.batch });
    this.retryWait = new RetryWait({
      sink: deps.sink,
      waits: this.waits,
      now: deps.now,
      probeIntervalMs: PROBE_INTERVAL_MS,
      interrupted: () => this.abandoned() || this.state.paused || this.refreshDue !== undefined,
    });
  }

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
    this.waits.wake();
  }

  private interrupt(): void {
    this.waits.interrupt();
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
    const due = this.failures.alertDue();
    if (due === undefined) return;
    this.updateHealth();
    this.deps.onAlert('failing', due);
  }

  /** The last failed attempt: when, and the reason its outcome gave. */
  get lastError(): { at: string; reason: string } | null {
    return this.failures.lastError;
  }

  get lastSuccessAt(): string | null {
    return this.failures.lastSuccessAt;
  }

  /** When the next attempt of the delivery in flight is due, while a retry delay runs. */
  get nextAttemptAt(): string | null {
    const at = this.retryWait.nextAttemptAt;
    return at === null ? null : new Date(at).toISOString();
  }

  /** The last healthcheck (run while waiting out a long retry delay), since the worker started. */
  get lastHealthcheck(): LastHealthcheck | null {
    return this.retryWait.lastHealthcheck;
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
    this.health = this.failures.healthWith({
      stopped: this.stopped,
      disabled: Boolean(this.state?.disabledReason),
      paused: Boolean(this.state?.paused),
    });
  }

  /** Starts the failure clock afresh (a resume), recording the recovery of an alerted failure. */
  private resetFailure(): void {
    const recovered = this.failures.reset();
    if (recovered) this.deps.onAlert('recovered', recovered);
  }

  /** Waits `ms` ({@link WorkerWaits}), unless a stop, replay or change is already pending. */
  private sleep(ms: number, kind: 'idle' | 'backoff' = 'idle'): Promise<void> {
    // A stop (or replay, or a change through another node) that came while the loop was busy must not be slept through.
    if (this.stopped || this.pendingReplay !== undefined || this.refreshDue !== undefined)
      return Promise.resolve();
    return this.waits.wait(ms, kind);
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
          this.deps.config.send_checkpoints && this.cursor > (this.checkpointSent ?? 0) ? 1000 : 30_000,
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
      this.reader.prefetch(batch.lastSeq, this.state.epoch);
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
    return this.reader.deliveryId(this.state.epoch, first, last);
  }

  /**
   * The next delivery: the in-flight one after a restart, else events after
   * the cursor packed up to the batch limits. `undefined` when caught up.
   */
  private nextBatch(): Promise<DeliveryBatch | undefined> {
    const { cursor, state } = this;
    if (state.inflightTo !== null && state.inflightTo > cursor) {
      return this.reader.inflight(cursor, state.inflightTo, state.epoch);
    }
    return this.reader.next(cursor, state.epoch, async (ms) => {
      await this.sleep(ms, 'backoff');
      // A change to apply (a pause here or through another node) ends the wait: a partial batch
      // looks again every second, and a sleep cut short at once would make that a busy loop.
      return !this.abandoned() && this.refreshDue === undefined && !this.state.paused;
    });
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
    const only = result.seqs === undefined ? undefined : new Set(result.seqs);
    if (only) {
      const parked = batch.events.filter((e) => only.has(e.seq)).map((e) => this.letter(e, result));
      this.counters.delivered += batch.events.length - parked.length;
      this.counters.batches += 1;
      await this.advance(batch.lastSeq, parked);
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
   * Sends each signed checkpoint as a record of its own once the cursor has
   * passed every event it covers, so it follows them in order: the oldest
   * not yet sent first, between batches, so a sink catching up on a backlog
   * (an archive) gets every checkpoint signed meanwhile, not only the latest.
   * After a start, checkpoints the cursor had passed were sent before: only
   * the newest, when the cursor has passed it, goes again (a receiver keeps
   * it once). True when it tried (sent, skipped after a refusal, or
   * interrupted).
   */
  private async sendCheckpoint(): Promise<boolean> {
    if (this.checkpointSent === undefined) {
      const latest = await this.deps.store.latestCheckpoint();
      this.checkpointSent =
        latest === undefined ? 0 : latest.treeSize <= this.cursor ? latest.treeSize - 1 : this.cursor;
    }
    if (this.cursor <= this.checkpointSent) return false;
    const [cp] = await this.deps.store.listCheckpoints({
      fromSize: this.checkpointSent + 1,
      toSize: this.cursor,
      limit: 1,
    });
    if (cp === undefined) {
      // None was signed between: the next one to send will be over the cursor.
      return false;
    }
    const batch: DeliveryBatch = {
      id: this.deliveryId(0, cp.treeSize),
      attempt: 1,
      firstSeq: cp.treeSize,
      lastSeq: cp.treeSize,
      events: [checkpointEvent(cp, this.tenantOfRecords(), this.deps.encode)],
      checkpoint: { treeSize: cp.treeSize, note: cp.note },
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
    // The next kept event: another one when retention pruned the letter's (a gap in seq).
    const [event] = await this.deps.store.readRangeRaw(letter.seq - 1, 1);
    if (event?.seq !== letter.seq) {
      return {
        kind: 'permanent',
        reason: `event ${letter.seq} was pruned by retention; it can no longer be sent`,
      };
    }
    const out = this.reader.outgoing(event);
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
        const recovered = this.failures.succeeded();
        if (recovered) this.deps.onAlert('recovered', recovered);
        this.updateHealth();
        return { kind: 'ok' };
      }
      this.failures.failed(
        outcome.kind === 'retry' && outcome.refused ? 'refused' : outcome.kind,
        outcome.reason,
      );
      if (outcome.kind === 'disable') return { kind: 'disable', reason: outcome.reason };
      if (outcome.kind === 'permanent') {
        this.checkHealth();
        this.updateHealth();
        return {
          kind: 'park',
          reason: outcome.reason,
          attempts: attempt,
          ...(outcome.seqs ? { seqs: outcome.seqs } : {}),
        };
      }
      this.counters.retries += 1;
      this.checkHealth();
      this.updateHealth();
      // A refusal waits for the operator, however long: the schedule's last delay, again and again.
      const delay =
        nextDelay(this.deps.retry, attempt) ??
        (outcome.kind === 'retry' && outcome.refused ? this.lastDelay(attempt) : undefined);
      if (delay === undefined) {
        return {
          kind: 'park',
          reason: `gave up after ${attempt} attempts: ${outcome.reason}`,
          attempts: attempt,
        };
      }
      const end = await this.retryWait.wait(outcome.afterMs ?? delay, outcome.afterMs !== undefined);
      if (this.state.paused || this.refreshDue !== undefined) return { kind: 'interrupted' };
      if (end === 'peer_back') {
        this.deps.log.info(`sink ${this.name}: the peer answers again; retrying now`, {
          healthcheck: this.retryWait.lastHealthcheck?.detail,
        });
      }
    }
  }

  /** The schedule's last delay, for a refusal that outlasts the schedule. */
  private lastDelay(attempt: number): number | undefined {
    for (let n = Math.min(attempt, 100); n >= 1; n--) {
      const d = nextDelay(this.deps.retry, n);
      if (d !== undefined) return d;
    }
    return undefined;
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
