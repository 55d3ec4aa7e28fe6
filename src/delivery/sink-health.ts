/** How a sink is doing, as /v1/sinks/{name}/status shows it. */
export type SinkHealth = 'healthy' | 'retrying' | 'failing' | 'disabled' | 'paused' | 'stopped';

/** When a failure began and what the last attempt said: what an alert reports. */
export interface FailureDetail {
  reason: string;
  sinceMs: number;
}

/** What the health depends on besides the deliveries' outcomes: the worker's own state. */
export interface WorkerFlags {
  stopped: boolean;
  disabled: boolean;
  paused: boolean;
}

/**
 * A sink's delivery failures over time and the health they make: `retrying`
 * while attempts fail, `failing` once that has lasted `failing_after_ms`
 * (the alert is raised once) — or at once when the last attempt was refused
 * for good and nothing was delivered since, since no retry will change that,
 * and with the alert at once when the peer refused the sink's settings (a
 * `refused` retry: only the operator can mend them).
 * The next success, or a resume, ends the failure (and a raised alert is
 * answered by a recovery).
 */
export class SinkHealthTracker {
  lastError: { at: string; reason: string } | null = null;
  lastSuccessAt: string | null = null;
  private failingSince: number | null = null;
  /**
   * The last attempt failed for good and nothing was delivered since: every
   * event is parked as it comes (a target the network guard refuses, a
   * receiver refusing every request).
   */
  private refusedSinceSuccess = false;
  private alerted = false;
  /** An attempt since the last success was a `refused` retry: the alert is due at once. */
  private settingsRefused = false;

  constructor(
    private readonly now: () => number,
    private readonly failingAfterMs: number,
  ) {}

  /** The sink's health given the worker's flags, which come first. */
  healthWith(flags: WorkerFlags): SinkHealth {
    if (flags.stopped) return 'stopped';
    if (flags.disabled) return 'disabled';
    if (flags.paused) return 'paused';
    if (this.alerted || this.refusedSinceSuccess) return 'failing';
    if (this.failingSince !== null) return 'retrying';
    return 'healthy';
  }

  /** An attempt was confirmed. Returns the failure it ends when an alert was raised for it. */
  succeeded(): FailureDetail | undefined {
    this.lastSuccessAt = new Date(this.now()).toISOString();
    return this.reset();
  }

  /**
   * An attempt failed: `retry` (it will be tried again), `refused` (it will
   * be tried again, but the peer refused the sink's settings: failing at
   * once, alert included, as no retry alone will mend it), `permanent` (its
   * events are parked) or `disable` (the sink stops; no failure clock).
   */
  failed(kind: 'retry' | 'refused' | 'permanent' | 'disable', reason: string): void {
    this.lastError = { at: new Date(this.now()).toISOString(), reason };
    if (kind === 'disable') return;
    if (kind === 'permanent' || kind === 'refused') this.refusedSinceSuccess = true;
    if (kind === 'refused') this.settingsRefused = true;
    this.failingSince ??= this.now();
  }

  /**
   * Whether the failure has now lasted `failing_after_ms`, or the peer
   * refused the sink's settings, and is not alerted yet: then it is marked
   * alerted and its detail returned, once.
   */
  alertDue(): FailureDetail | undefined {
    if (this.failingSince === null || this.alerted) return undefined;
    if (!this.settingsRefused && this.now() - this.failingSince < this.failingAfterMs) return undefined;
    this.alerted = true;
    return { reason: this.lastError?.reason ?? 'unknown', sinceMs: this.failingSince };
  }

  /** Starts afresh (a success, a resume). Returns the failure it ends when an alert was raised for it. */
  reset(): FailureDetail | undefined {
    const recovered = this.alerted
      ? { reason: this.lastError?.reason ?? '', sinceMs: this.failingSince ?? 0 }
      : undefined;
    this.alerted = false;
    this.failingSince = null;
    this.refusedSinceSuccess = false;
    this.settingsRefused = false;
    return recovered;
  }
}
