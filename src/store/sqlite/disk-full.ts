import { TrailwardenError } from '../../errors.js';
import type { WriteBlock } from '../store.js';

/** How often a write is tried while the disk is full, when no request tries one. */
export const DISK_FULL_PROBE_MS = 1000;

/** Seconds a client refused because the disk is full is asked to wait. */
const DISK_FULL_RETRY_AFTER_S = 5;

/** True for SQLite's answer to a write that found no room on the disk. */
export function isDiskFull(err: unknown): boolean {
  return err instanceof Error && (err as { code?: unknown }).code === 'SQLITE_FULL';
}

/**
 * Episodes of a full disk: the first failed write starts one (its listeners
 * hear of it once, however many writes fail meanwhile), the first write that
 * succeeds ends it. While one lasts, `probe` is called every
 * `DISK_FULL_PROBE_MS` so the store finds out by itself that space came back,
 * even when no request arrives (a load balancer turned away by /readyz).
 */
export class DiskFullEpisodes {
  private block: WriteBlock | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners = new Set<(block: WriteBlock | undefined) => void>();

  /** @param probe tries one small write; its outcome must reach `failed` or `succeeded`. */
  constructor(private readonly probe: () => void) {}

  current(): WriteBlock | undefined {
    return this.block;
  }

  onChange(listener: (block: WriteBlock | undefined) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * A write failed: returns the error to answer with (a 503 with Retry-After
   * when the disk is full, `err` itself otherwise), starting an episode if
   * none is on.
   */
  failed(err: Error): Error {
    if (!isDiskFull(err)) return err;
    if (this.block === undefined) {
      this.block = {
        reason: `the disk holding the SQLite database is full (${err.message}); free space in the data folder — writes resume by themselves`,
        since: new Date().toISOString(),
      };
      this.timer = setInterval(this.probe, DISK_FULL_PROBE_MS);
      // Probing must never keep a process alive that has nothing else to do.
      this.timer.unref();
      this.emit();
    }
    return new TrailwardenError(
      'TW_ERR_NOT_READY',
      'the server cannot store anything now: its disk is full. Nothing of this request was stored; retry after Retry-After seconds (the operator must free space)',
      { headers: { 'retry-after': String(DISK_FULL_RETRY_AFTER_S) }, cause: err },
    );
  }

  /** A write succeeded: an episode on is over. */
  succeeded(): void {
    if (this.block === undefined) return;
    this.block = undefined;
    clearInterval(this.timer);
    this.timer = undefined;
    this.emit();
  }

  /** Stops probing (the store is closing). */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private emit(): void {
    for (const l of this.listeners) l(this.block);
  }
}
