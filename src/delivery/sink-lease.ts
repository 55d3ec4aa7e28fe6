import { performance } from 'node:perf_hooks';
import type { DeliveryStore } from '../store/store.js';

/** The name of the lease that lets one node deliver sink `sink`. */
export function sinkLeaseName(sink: string): string {
  return `sink:${sink}`;
}

/** What the owner of a {@link SinkLease} does as this node gains, keeps or loses it. */
export interface LeaseHooks {
  /** This node took the lease: start delivering. A throw gives the lease back. */
  gained(): Promise<void>;
  /** The lease was renewed: a moment to pick up changes other nodes made in the store. */
  renewed(): void;
  /** The lease is lost (another node holds it, or it could not be renewed in time): stop delivering now. */
  lost(): Promise<void>;
}

export interface LeaseOptions {
  store: Pick<DeliveryStore, 'acquireLease' | 'releaseLease'>;
  /** This node's id (`nodeIdOf`). */
  holder: string;
  /** How long a lease lasts unless renewed; it is renewed every third of that. */
  leaseMs: number;
  log: { warn(msg: string, extra?: object): void };
}

type Outcome = 'held' | 'refused' | 'failed' | 'expired';

/**
 * The lease on one sink's delivery: taken when free or expired, renewed every
 * `leaseMs / 3`, and given up when another node holds it or when it could not
 * be renewed within `leaseMs` of the last renewal that was sent (the database
 * may already count it expired then, so delivery stops at once).
 *
 * Only the lease's age is measured here, on this process's monotonic clock,
 * from the moment a successful renewal was *sent*: the database's expiry is
 * later than that, so this node stops before another can take over.
 */
export class SinkLease {
  private held = false;
  /** `performance.now()` from which the lease may have expired unless renewed. */
  private validUntil = 0;
  /** `performance.now()` when the last take or renewal was sent. */
  private lastSentAt = 0;
  private closed = false;
  private releaseOnClose = true;
  private running: Promise<void> | undefined;
  private wakeSleep: (() => void) | undefined;

  constructor(
    readonly sink: string,
    private readonly opts: LeaseOptions,
    private readonly hooks: LeaseHooks,
  ) {}

  /** Whether this node holds the lease (and delivers the sink). */
  get isHeld(): boolean {
    return this.held;
  }

  /**
   * Tries once to take the lease, then keeps trying (or renewing) in the
   * background. Rejects when the first try fails or `gained` throws, so a
   * sink that cannot start is reported to whoever added it.
   */
  async start(): Promise<void> {
    await this.step(true);
    this.running = this.loop();
  }

  /**
   * Stops the loop and delivery. `release: false` leaves the lease in the
   * store to expire, as a node that died would (tests simulate a crash so).
   */
  async close(release = true): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.releaseOnClose = release;
    this.wakeSleep?.();
    await this.running;
    if (!this.held) return;
    this.held = false;
    await this.hooks.lost().catch((err: unknown) => this.warn('could not stop delivering', err));
    if (release) await this.release();
  }

  private async loop(): Promise<void> {
    while (!this.closed) {
      // Every third of the lease from the last try, however long that try took (a slow sink start);
      // earlier if the lease runs out first (renewals keep failing).
      const next = this.lastSentAt + this.opts.leaseMs / 3;
      await this.sleep(Math.max(0, (this.held ? Math.min(next, this.validUntil) : next) - performance.now()));
      if (this.closed) break;
      if (this.held && performance.now() >= this.validUntil)
        await this.lose('it could not be renewed in time');
      await this.step(false).catch((err: unknown) => this.warn('lease step failed', err));
    }
  }

  private async step(first: boolean): Promise<void> {
    const sentAt = performance.now();
    this.lastSentAt = sentAt;
    let failure: unknown;
    const attempt = this.opts.store
      .acquireLease(sinkLeaseName(this.sink), this.opts.holder, this.opts.leaseMs)
      .then(
        (ok): Outcome => (ok ? 'held' : 'refused'),
        (err: unknown): Outcome => {
          failure = err;
          return 'failed';
        },
      );
    let outcome = this.held ? await this.beforeExpiry(attempt) : await attempt;
    if (outcome === 'expired') {
      // The renewal hangs (the database is slow or out of reach): stop before another node may start.
      await this.lose('it could not be renewed in time');
      outcome = await attempt;
    }
    const validUntil = sentAt + this.opts.leaseMs;
    if (outcome === 'held' && performance.now() < validUntil) {
      this.validUntil = validUntil;
      if (this.held) {
        this.hooks.renewed();
      } else if (this.closed) {
        if (this.releaseOnClose) await this.release();
      } else {
        await this.gain(first);
      }
    } else if (outcome === 'refused') {
      await this.lose('another node holds it');
    } else if (outcome === 'failed') {
      if (first) throw failure;
      if (this.held && performance.now() >= this.validUntil) await this.lose('it could not be renewed');
      this.warn('could not renew or take its delivery lease', failure);
    }
  }

  private async gain(first: boolean): Promise<void> {
    this.held = true;
    try {
      await this.hooks.gained();
    } catch (err) {
      this.held = false;
      await this.release();
      if (first) throw err;
      this.warn('could not start delivering', err);
    }
  }

  private async lose(reason: string): Promise<void> {
    if (!this.held) return;
    this.held = false;
    this.opts.log.warn(
      `sink ${this.sink}: lost its delivery lease (${reason}); this node stopped delivering it`,
    );
    await this.hooks.lost().catch((err: unknown) => this.warn('could not stop delivering', err));
  }

  private async release(): Promise<void> {
    await this.opts.store
      .releaseLease(sinkLeaseName(this.sink), this.opts.holder)
      .catch((err: unknown) => this.warn('could not release its delivery lease', err));
  }

  /** The attempt's outcome, or `expired` if the lease may expire before it settles. */
  private async beforeExpiry(attempt: Promise<Outcome>): Promise<Outcome> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<Outcome>((resolve) => {
      timer = setTimeout(() => resolve('expired'), Math.max(0, this.validUntil - performance.now()));
    });
    try {
      return await Promise.race([attempt, expired]);
    } finally {
      clearTimeout(timer);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeSleep = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      // The server and the workers keep the process alive, not the lease loop.
      timer.unref();
      this.wakeSleep = done;
    });
  }

  private warn(what: string, err: unknown): void {
    this.opts.log.warn(`sink ${this.sink}: ${what}`, { err });
  }
}
