import { performance } from 'node:perf_hooks';
import type { Pool } from 'pg';
import { acquireLease, leaseRemainingMs, releaseLease } from './leases.js';

/** The lease row whose holder is the one store instance that assigns `seq`. */
export const SEQUENCER_LEASE = 'sequencer';
/** NOTIFY channel on which a holder that lets go of the lease tells the others to take it now. */
export const LEASE_CHANNEL = 'trailwarden_lease';

/**
 * The sequencer lease of one store instance. Renewed every third of the
 * lease time while held; while another instance holds it, the next attempt
 * is timed for the moment it expires, so a dead holder is replaced within
 * the lease time. `held()` is this instance's own, conservative view (it
 * stops believing a little before the database would): the real fence is
 * the check at the end of each sequencing transaction
 * (`trailwarden_advance_head`, schema.ts).
 */
export class SequencerLease {
  private validUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private ticking: Promise<void> | undefined;

  constructor(
    private readonly pool: Pool,
    /** Unique per store instance: two instances in one process must not share a lease. */
    readonly holder: string,
    private readonly leaseMs: number,
    private readonly onChange: (held: boolean) => void,
  ) {}

  /** Makes the first attempt (awaited, so a lone node sequences from the start) and keeps trying. */
  async start(): Promise<void> {
    await this.tick();
  }

  held(): boolean {
    return performance.now() < this.validUntil;
  }

  /** Another instance let go of the lease: try for it now rather than when it would have expired. */
  poke(): void {
    if (!this.held()) this.schedule(0);
  }

  /** Forget the lease at once (a sequencing transaction found it gone). */
  lost(): void {
    if (this.validUntil === 0) return;
    this.validUntil = 0;
    this.onChange(false);
    this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), ms);
    this.timer.unref();
  }

  private tick(): Promise<void> {
    this.ticking ??= this.attempt().finally(() => {
      this.ticking = undefined;
    });
    return this.ticking;
  }

  private async attempt(): Promise<void> {
    if (this.stopped) return;
    const wasHeld = this.held();
    const started = performance.now();
    let next = this.leaseMs / 3;
    try {
      if (await acquireLease(this.pool, SEQUENCER_LEASE, this.holder, this.leaseMs)) {
        // Counted from before the request: the database's expiry is later than this.
        this.validUntil = started + this.leaseMs * 0.9;
      } else {
        this.validUntil = 0;
        next = Math.min(next, (await leaseRemainingMs(this.pool, SEQUENCER_LEASE)) + 20);
      }
    } catch {
      // Unreachable database: keep what is still valid; try again soon.
      next = Math.min(next, 500);
    }
    if (this.stopped) return;
    const nowHeld = this.held();
    if (nowHeld !== wasHeld) this.onChange(nowHeld);
    // While held, wake up before the local view runs out even if a renewal failed.
    this.schedule(nowHeld ? Math.min(next, Math.max(10, this.validUntil - performance.now() - 50)) : next);
  }

  /** Gives the lease up so another instance takes over at once. */
  async release(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ticking;
    const was = this.held();
    this.validUntil = 0;
    if (!was) return;
    await releaseLease(this.pool, SEQUENCER_LEASE, this.holder, LEASE_CHANNEL).catch(() => undefined);
  }
}

/** Thrown inside a sequencing transaction that finds the lease held by someone else or expired. */
export class LeaseLost extends Error {
  constructor() {
    super('the sequencer lease is no longer held by this instance');
  }
}
