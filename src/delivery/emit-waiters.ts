import { TrailwardenError } from '../errors.js';
import type { EventSeq, Store } from '../store/store.js';
import type { EmitPolicy } from './sink-config.js';

interface Progressing {
  cursor: number;
  wasParked(seq: number): boolean;
}

/** Where the emit policy learns how far each sink got. */
export interface EmitSources {
  store: Pick<Store, 'findByEventId' | 'onAppend' | 'delivery'>;
  /** The sink's worker, while this node delivers the sink. */
  localWorker(name: string): Progressing | undefined;
  /** Whether the sink is enabled but delivered by another node (or by none, until one takes it over). */
  deliveredElsewhere(name: string): boolean;
}

interface Waiter {
  seqs: Set<number>;
  maxSeq: number;
  /** Events acknowledged but not yet sequenced: their seqs are looked up after each append. */
  unsequenced: EventSeq[];
  /** `to_all_of` sinks that have not confirmed yet. */
  pendingAll: Set<string>;
  /** `at_least_one_of`: null when not set, else whether one confirmed. */
  anyDone: boolean | null;
  failed: Set<string>;
  finish: (missing: string[] | null) => void;
}

/** How a sink delivered by another node is followed: its stored cursor and new dead letters. */
interface RemoteSink {
  cursor: number;
  /** Highest dead-letter id read; `undefined` until the first read of the list. */
  lastLetterId: number | undefined;
  parked: Set<number>;
}

/** How often the stored state of sinks delivered by other nodes is read while requests wait. */
const REMOTE_POLL_MS = 50;
/** Parked seqs remembered per sink (the emit policy asks about recent events only). */
const PARKED_KEPT = 10_000;
const LETTER_PAGE = 1000;

/**
 * The emit policy of seed 003: POST /v1/events answers only once every sink
 * of `to_all_of` and at least one of `at_least_one_of` confirmed the events
 * (a sink whose filter skips an event confirms it by passing it), or fails
 * with the sinks that did not within `timeout_ms`.
 *
 * A sink this node delivers reports its progress as it moves; a sink another
 * node delivers is followed through the store (its cursor and dead letters,
 * read every {@link REMOTE_POLL_MS} ms while requests wait).
 */
export class EmitWaiters {
  private readonly waiters = new Set<Waiter>();
  private readonly remote = new Map<string, RemoteSink>();
  private pollTimer: NodeJS.Timeout | undefined;
  private polling = false;
  private stopListening: (() => void) | undefined;

  constructor(
    private readonly policy: EmitPolicy | null,
    private readonly sources: EmitSources,
  ) {}

  get active(): boolean {
    return (
      this.policy !== null && (this.policy.to_all_of.length > 0 || this.policy.at_least_one_of.length > 0)
    );
  }

  private get policySinks(): string[] {
    const p = this.policy;
    return p === null ? [] : [...new Set([...p.to_all_of, ...p.at_least_one_of])];
  }

  /** Whether `seq` was parked by the sink, as far as this node can tell; undefined when it cannot. */
  private parkedBy(name: string): ((seq: number) => boolean) | undefined {
    const worker = this.sources.localWorker(name);
    if (worker) return (seq) => worker.wasParked(seq);
    const remote = this.remote.get(name);
    if (remote?.lastLetterId !== undefined && this.sources.deliveredElsewhere(name)) {
      return (seq) => remote.parked.has(seq);
    }
    return undefined;
  }

  private confirmed(name: string, w: Waiter, upTo: number): boolean | 'failed' {
    const parked = this.parkedBy(name);
    if (!parked) return false;
    for (const seq of w.seqs) if (parked(seq)) return 'failed';
    return w.unsequenced.length === 0 && upTo >= w.maxSeq;
  }

  /**
   * Waits until the policy is met for these events; throws TW_ERR_EMIT_TIMEOUT
   * otherwise. An event without a seq yet (acknowledged before it was
   * sequenced) is waited for first.
   */
  async wait(acknowledged: EventSeq[], events: unknown): Promise<void> {
    const policy = this.policy;
    if (!this.active || policy === null || acknowledged.length === 0) return;
    const seqs = acknowledged.flatMap((p) => (p.seq === null ? [] : [p.seq]));
    const missing = await new Promise<string[] | null>((resolve) => {
      const w: Waiter = {
        seqs: new Set(seqs),
        maxSeq: Math.max(0, ...seqs),
        unsequenced: acknowledged.filter((p) => p.seq === null),
        pendingAll: new Set(policy.to_all_of),
        anyDone: policy.at_least_one_of.length > 0 ? false : null,
        failed: new Set(),
        finish: () => {},
      };
      const timer = setTimeout(() => w.finish(this.missing(w)), policy.timeout_ms);
      w.finish = (m) => {
        clearTimeout(timer);
        this.waiters.delete(w);
        if (this.waiters.size === 0) this.idle();
        resolve(m);
      };
      this.waiters.add(w);
      this.busy();
      if (w.unsequenced.length > 0) void this.sequence(w);
      else this.evaluate(w);
    });
    if (missing !== null) {
      throw new TrailwardenError(
        'TW_ERR_EMIT_TIMEOUT',
        `the events are stored, but ${missing.join(', ')} did not confirm them within ${policy.timeout_ms} ms (a sink that parked an event in its dead-letter list counts as not confirming); delivery goes on, and resending the same events is safe (same event_id = duplicate)`,
        { extensions: { sinks: missing, events } },
      );
    }
  }

  /** Checks a waiter against every sink's current position. */
  private evaluate(w: Waiter): void {
    for (const name of this.policySinks) {
      if (!this.waiters.has(w)) return;
      const worker = this.sources.localWorker(name);
      if (worker) this.update(w, name, worker.cursor);
      else {
        const remote = this.remote.get(name);
        if (remote?.lastLetterId !== undefined) this.update(w, name, remote.cursor);
      }
    }
  }

  /**
   * Looks up the seqs of a waiter's unsequenced events, in order, stopping at
   * the first still without one: a request's events are, as a rule,
   * sequenced together, so a waiting request costs one lookup per try.
   * Evaluates the waiter once all are known.
   */
  private async sequence(w: Waiter): Promise<void> {
    while (w.unsequenced.length > 0) {
      const p = w.unsequenced[0]!;
      const found = await this.sources.store.findByEventId(p.eventId, p.tenantId).catch(() => []);
      const seq = found[0]?.seq;
      if (seq === undefined) return;
      // Another lookup (after the next append) may have taken this one meanwhile.
      if (w.unsequenced[0] === p) w.unsequenced.shift();
      w.seqs.add(seq);
      w.maxSeq = Math.max(w.maxSeq, seq);
    }
    this.evaluate(w);
  }

  private missing(w: Waiter): string[] {
    const policy = this.policy!;
    const out = new Set([...w.failed, ...w.pendingAll]);
    if (w.anyDone === false) for (const n of policy.at_least_one_of) out.add(n);
    return [...out].sort();
  }

  private update(w: Waiter, name: string, upTo: number): void {
    const policy = this.policy!;
    const c = this.confirmed(name, w, upTo);
    if (policy.to_all_of.includes(name)) {
      if (c === 'failed') {
        w.failed.add(name);
        w.finish(this.missing(w));
        return;
      }
      if (c) w.pendingAll.delete(name);
    }
    if (policy.at_least_one_of.includes(name) && c === true) w.anyDone = true;
    if (w.pendingAll.size === 0 && w.anyDone !== false) w.finish(null);
  }

  /** A sink moved its cursor to `upTo`, parking `parked` on the way. */
  progress(name: string, upTo: number, _parked: number[]): void {
    for (const w of [...this.waiters]) this.update(w, name, upTo);
  }

  cancelAll(): void {
    for (const w of [...this.waiters]) w.finish(this.missing(w));
  }

  /** Requests wait: follow appends (for unsequenced events) and sinks other nodes deliver. */
  private busy(): void {
    this.stopListening ??= this.sources.store.onAppend(() => {
      for (const w of [...this.waiters]) if (w.unsequenced.length > 0) void this.sequence(w);
    });
    if (this.pollTimer === undefined) {
      this.pollTimer = setInterval(() => void this.pollRemote(), REMOTE_POLL_MS);
      this.pollTimer.unref();
    }
  }

  private idle(): void {
    this.stopListening?.();
    this.stopListening = undefined;
    clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }

  /** Reads the stored cursor and new dead letters of each policy sink another node delivers. */
  private async pollRemote(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      for (const name of this.policySinks) {
        if (!this.sources.deliveredElsewhere(name)) continue;
        const remote = await this.readRemote(name);
        if (remote === undefined) continue;
        for (const w of [...this.waiters]) this.update(w, name, remote.cursor);
      }
      // Unsequenced events are also looked up here, in case an append notification was missed.
      for (const w of [...this.waiters]) if (w.unsequenced.length > 0) await this.sequence(w);
    } catch {
      // The store is unreachable for a moment: the next poll tries again, the timeout still holds.
    } finally {
      this.polling = false;
    }
  }

  private async readRemote(name: string): Promise<RemoteSink | undefined> {
    const delivery = this.sources.store.delivery;
    const state = await delivery.getSinkState(name);
    if (state === undefined) return undefined;
    const remote = this.remote.get(name) ?? { cursor: 0, lastLetterId: undefined, parked: new Set<number>() };
    this.remote.set(name, remote);
    for (;;) {
      const letters = await delivery.listDeadLetters(name, {
        ...(remote.lastLetterId === undefined ? {} : { afterId: remote.lastLetterId }),
        limit: LETTER_PAGE,
      });
      for (const l of letters) {
        remote.parked.add(l.seq);
        if (remote.parked.size > PARKED_KEPT) remote.parked.delete(remote.parked.values().next().value!);
      }
      remote.lastLetterId = letters.at(-1)?.id ?? remote.lastLetterId ?? 0;
      if (letters.length < LETTER_PAGE) break;
    }
    // The cursor is read before the letters: an event parked in between is seen as parked, never as passed.
    remote.cursor = state.cursor;
    return remote;
  }
}
