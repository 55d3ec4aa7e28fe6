import { performance } from 'node:perf_hooks';
import type { HealthcheckResult, Sink } from './sink.js';
import type { WorkerWaits } from './worker-waits.js';

/**
 * How often a sink waiting out a retry delay probes its peer with
 * {@link Sink.healthcheck}. A delay shorter than two intervals is waited out
 * without probes: a probe could gain at most one interval there.
 */
export const PROBE_INTERVAL_MS = 5_000;

/** The last healthcheck, as `GET /v1/sinks/{name}/status` shows it. */
export interface LastHealthcheck {
  /** When its result came (ISO 8601). */
  at: string;
  ok: boolean;
  detail: string;
}

/** How a retry wait ended: the delay ran out, the peer answers again, or the worker was interrupted. */
export type RetryWaitEnd = 'due' | 'peer_back' | 'interrupted';

export interface RetryWaitDeps {
  sink: Pick<Sink, 'healthcheck'>;
  waits: WorkerWaits;
  /** The clock of the times the status shows; the delay itself runs on the monotonic clock. */
  now: () => number;
  /** {@link PROBE_INTERVAL_MS}; tests shorten it. */
  probeIntervalMs: number;
  /** Whether the wait must end now: a stop, pause, replay or change made through another node. */
  interrupted(): boolean;
}

/**
 * The waits between the attempts of one delivery, spent probing the peer
 * when they are long, so a peer that comes back is delivered to at once
 * instead of after the rest of a five-minute (or five-hour) delay.
 *
 * The early retry is the attempt the schedule had planned, only sooner: the
 * schedule goes on from it, so a peer that fails again after answering the
 * probe still gets the same number of attempts before its events are parked.
 * A probe never sends an event and never counts as an attempt.
 */
export class RetryWait {
  /** When the attempt waited for is due (ms since the epoch); `null` while none is waited for. */
  nextAttemptAt: number | null = null;
  /** The last healthcheck since the worker started; `null` before the first. */
  lastHealthcheck: LastHealthcheck | null = null;

  constructor(private readonly deps: RetryWaitDeps) {}

  /**
   * Waits `delayMs` before the next attempt. A delay the peer asked for
   * (`peerAsked`: Retry-After) is waited in full, without probes: the peer
   * said when to come back. A delay of two probe intervals or more starts
   * with a probe, which tells whether the probe sees what made the attempt
   * fail, then probes every interval while more than one interval is left;
   * once a probe succeeds after one had failed, the wait ends (`peer_back`).
   * A peer the probes always reach (one that accepts connections and answers
   * 503) is waited for in full: its probe cannot tell when it recovers.
   */
  async wait(delayMs: number, peerAsked: boolean): Promise<RetryWaitEnd> {
    const { waits, now, probeIntervalMs } = this.deps;
    const interrupted = () => this.deps.interrupted();
    if (interrupted()) return 'interrupted';
    // Measured on the monotonic clock: a step of the wall clock neither shortens nor stretches the delay.
    const dueAt = performance.now() + delayMs;
    this.nextAttemptAt = now() + delayMs;
    try {
      if (peerAsked || delayMs < 2 * probeIntervalMs) {
        await waits.wait(delayMs, 'backoff');
        return interrupted() ? 'interrupted' : 'due';
      }
      let seenDown = false;
      for (;;) {
        const result = await this.probe(dueAt);
        if (interrupted()) return 'interrupted';
        if (result === undefined) return 'due';
        if (result.ok && seenDown) return 'peer_back';
        if (!result.ok) seenDown = true;
        const left = dueAt - performance.now();
        await waits.wait(Math.max(0, Math.min(left, probeIntervalMs)), 'backoff');
        if (interrupted()) return 'interrupted';
        if (left <= probeIntervalMs) return 'due';
      }
    } finally {
      this.nextAttemptAt = null;
    }
  }

  /** One healthcheck, given up on when the attempt comes due first (`dueAt`, monotonic); `undefined` then. */
  private async probe(dueAt: number): Promise<HealthcheckResult | undefined> {
    const { sink, waits, now } = this.deps;
    const check = Promise.resolve()
      .then(() => sink.healthcheck())
      .then(
        (r): HealthcheckResult => ({ ok: r.ok, detail: r.detail }),
        (err: unknown): HealthcheckResult => ({
          ok: false,
          detail: `healthcheck failed: ${err instanceof Error ? err.message : String(err)}`,
        }),
      );
    const result = await waits.within(check, Math.max(0, dueAt - performance.now()));
    if (result !== undefined) this.lastHealthcheck = { at: new Date(now()).toISOString(), ...result };
    return result;
  }
}
