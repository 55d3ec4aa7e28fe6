import type { ApiKeyRecord } from '../store.js';

/** NOTIFY channel on which a revocation tells every instance to forget the key. */
export const KEYS_CHANNEL = 'trailwarden_keys';

/**
 * How long a key read from the database is trusted without reading it
 * again: the bound on how late a revocation made outside Trailwarden (by
 * hand in SQL, or by a node of an older version, neither of which notifies)
 * takes effect. Revocations through any node take effect everywhere at once.
 */
export const KEY_CACHE_MS = 10_000;

/** More distinct keys than this and the oldest entries are dropped (a bound on memory, not a tuning knob). */
const MAX_KEYS = 10_000;

/**
 * The API keys a node of a PostgreSQL store has read recently. Every request
 * authenticates, and a round trip per request to read a key that almost
 * never changes is a round trip every request waits for.
 *
 * Only found keys are kept (a key created elsewhere is seen at once), and
 * only while the instance is listening for revocations (`KEYS_CHANNEL`):
 * while it is not — no LISTEN connection yet, or it was lost — nothing is
 * served from here and what was kept is dropped, since a revocation may
 * have been missed.
 */
export class KeyCache {
  private readonly keys = new Map<string, { record: ApiKeyRecord; readAt: number }>();
  private listening = false;
  /** When listening began: a read that started before may have missed a revocation. */
  private listeningSince = Number.POSITIVE_INFINITY;
  /** When the last revocation was heard: a read that started before may hold the key as it was. */
  private droppedAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** When a read that may be kept starts (pass it to {@link put}). */
  readStarts(): number {
    return this.now();
  }

  /** The key as read within {@link KEY_CACHE_MS}, if revocations are being heard. */
  get(keyId: string): ApiKeyRecord | undefined {
    const hit = this.keys.get(keyId);
    if (hit === undefined || !this.listening) return undefined;
    if (this.now() - hit.readAt >= KEY_CACHE_MS) {
      this.keys.delete(keyId);
      return undefined;
    }
    return hit.record;
  }

  /** Keeps a key read by a read that started at `readStartedAt`, unless a revocation may have crossed it. */
  put(record: ApiKeyRecord, readStartedAt: number): void {
    if (!this.listening || readStartedAt <= this.listeningSince || readStartedAt <= this.droppedAt) return;
    if (this.keys.size >= MAX_KEYS) this.keys.delete(this.keys.keys().next().value as string);
    this.keys.set(record.keyId, { record, readAt: readStartedAt });
  }

  /** A revocation was announced (or made here). */
  drop(keyId: string): void {
    this.keys.delete(keyId);
    this.droppedAt = this.now();
  }

  /** The LISTEN connection listens (true) or was lost (false). */
  setListening(listening: boolean): void {
    this.listening = listening;
    this.keys.clear();
    this.listeningSince = listening ? this.now() : Number.POSITIVE_INFINITY;
  }
}
