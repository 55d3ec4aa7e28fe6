/**
 * The waits of a sink worker's loop. An idle wait (caught up, paused) ends
 * early when new events arrive ({@link wake}) or on an interruption; a
 * back-off (a retry delay, a partial batch waiting for company) only on an
 * interruption ({@link interrupt}: a stop, pause, replay, or a change made
 * through another node), so new events never cut a retry delay short.
 */
export class WorkerWaits {
  /** Ends an idle wait (new events, state changes). */
  private idleWaker: (() => void) | undefined;
  /** Ends any wait, retry back-off included (stop, pause, replay). */
  private interruptWaker: (() => void) | undefined;

  /** Waits `ms`, or until woken as `kind` allows. */
  wait(ms: number, kind: 'idle' | 'backoff'): Promise<void> {
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

  /**
   * Waits for `work` to settle, at most `ms`; an interruption ends the wait
   * as it ends a back-off. `undefined` when `work` did not settle in time or
   * failed: it is left to finish on its own.
   */
  within<T>(work: Promise<T>, ms: number): Promise<T | undefined> {
    return new Promise((resolve) => {
      let settled = false;
      const done = (value: T | undefined) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (this.interruptWaker === interrupted) this.interruptWaker = undefined;
        resolve(value);
      };
      const interrupted = () => done(undefined);
      const timer = setTimeout(interrupted, ms);
      this.interruptWaker = interrupted;
      work.then(done, interrupted);
    });
  }

  /** New events arrived: end an idle wait (never a back-off). */
  wake(): void {
    const w = this.idleWaker;
    this.idleWaker = undefined;
    w?.();
  }

  /** End whatever wait is running. */
  interrupt(): void {
    const w = this.interruptWaker;
    this.interruptWaker = undefined;
    this.wake();
    w?.();
  }
}
