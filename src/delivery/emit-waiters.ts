import { TrailwardenError } from '../errors.js';
import type { EmitPolicy } from './sink-config.js';

interface Progressing {
  cursor: number;
  wasParked(seq: number): boolean;
}

interface Waiter {
  seqs: Set<number>;
  maxSeq: number;
  /** `to_all_of` sinks that have not confirmed yet. */
  pendingAll: Set<string>;
  /** `at_least_one_of`: null when not set, else whether one confirmed. */
  anyDone: boolean | null;
  failed: Set<string>;
  finish: (missing: string[] | null) => void;
}

/**
 * The emit policy of seed 003: POST /v1/events answers only once every sink
 * of `to_all_of` and at least one of `at_least_one_of` confirmed the events
 * (a sink whose filter skips an event confirms it by passing it), or fails
 * with the sinks that did not within `timeout_ms`.
 */
export class EmitWaiters {
  private readonly waiters = new Set<Waiter>();

  constructor(
    private readonly policy: EmitPolicy | null,
    private readonly workerOf: (name: string) => Progressing | undefined,
  ) {}

  get active(): boolean {
    return (
      this.policy !== null && (this.policy.to_all_of.length > 0 || this.policy.at_least_one_of.length > 0)
    );
  }

  private confirmed(name: string, w: Waiter, upTo: number): boolean | 'failed' {
    const worker = this.workerOf(name);
    if (!worker) return false;
    for (const seq of w.seqs) if (worker.wasParked(seq)) return 'failed';
    return upTo >= w.maxSeq;
  }

  /** Waits until the policy is met for these seqs; throws TW_ERR_EMIT_TIMEOUT otherwise. */
  async wait(seqs: number[], events: unknown): Promise<void> {
    const policy = this.policy;
    if (!this.active || policy === null || seqs.length === 0) return;
    const missing = await new Promise<string[] | null>((resolve) => {
      const w: Waiter = {
        seqs: new Set(seqs),
        maxSeq: Math.max(...seqs),
        pendingAll: new Set(policy.to_all_of),
        anyDone: policy.at_least_one_of.length > 0 ? false : null,
        failed: new Set(),
        finish: () => {},
      };
      const timer = setTimeout(() => w.finish(this.missing(w)), policy.timeout_ms);
      w.finish = (m) => {
        clearTimeout(timer);
        this.waiters.delete(w);
        resolve(m);
      };
      this.waiters.add(w);
      for (const name of new Set([...policy.to_all_of, ...policy.at_least_one_of])) {
        const worker = this.workerOf(name);
        if (worker) this.update(w, name, worker.cursor);
      }
    });
    if (missing !== null) {
      throw new TrailwardenError(
        'TW_ERR_EMIT_TIMEOUT',
        `the events are stored, but ${missing.join(', ')} did not confirm them within ${policy.timeout_ms} ms (a sink that parked an event in its dead-letter list counts as not confirming); delivery goes on, and resending the same events is safe (same event_id = duplicate)`,
        { extensions: { sinks: missing, events } },
      );
    }
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
}
