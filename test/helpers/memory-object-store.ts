import type { HealthcheckResult } from '../../src/delivery/sink.js';
import {
  type ArchiveObject,
  type ObjectStore,
  ObjectStoreError,
  type ObjectStoreErrorKind,
  type PutResult,
} from '../../src/delivery/sinks/archive/object-store.js';

/** One object as the memory bucket holds it. */
export interface StoredObject {
  key: string;
  body: Buffer;
  contentType: string;
  contentEncoding: 'gzip' | undefined;
  metadata: Record<string, string>;
}

/** What the next put does instead of writing. */
export type PutFault =
  | { fail: ObjectStoreErrorKind; code: string; retryAfterMs?: number }
  /** Answer `exists` with this SHA-256 (`null`: an object without our metadata). */
  | { exists: string | null }
  /** Write the object, then fail as if the answer was lost (a timeout after the provider took it). */
  | { writeThenFail: true }
  /** Never answer; end only when the put's signal aborts (then fail `transient`). */
  | { hang: true };

/**
 * An ObjectStore in memory, standing in for the providers in the archive
 * writer's tests (the S3, Azure Blob and GCS adapters have their own tests
 * against real peers). It writes conditionally as they do (a key once
 * taken is never overwritten: `exists` with the object's SHA-256), and can
 * be told to fail a put with each ObjectStoreError kind, to answer `exists`
 * with the same or another SHA-256, to lose the answer of a write, or to
 * hang until aborted.
 */
export class MemoryObjectStore implements ObjectStore {
  readonly target = 'memory://test-bucket';
  readonly objects = new Map<string, StoredObject>();
  /** Every put tried, in order (keys), whatever came of it. */
  readonly attempts: string[] = [];
  /** Faults for the next puts, first first; `faultFor` picks by key instead. */
  readonly faults: PutFault[] = [];
  faultFor: ((key: string) => PutFault | undefined) | undefined;
  /** While set, every put and healthcheck fails with it (a bucket missing until the operator creates it). */
  down: { kind: ObjectStoreErrorKind; code: string } | undefined;
  healthchecks = 0;
  closed = false;
  /** Puts running now: a hang shows here until its signal aborts. */
  inFlight = 0;

  async put(obj: ArchiveObject, signal: AbortSignal): Promise<PutResult> {
    this.attempts.push(obj.key);
    if (signal.aborted) throw new ObjectStoreError('transient', 'Aborted', 'the upload was aborted');
    if (this.down) throw new ObjectStoreError(this.down.kind, this.down.code, `${this.down.code} (memory)`);
    const fault = this.faultFor?.(obj.key) ?? this.faults.shift();
    if (fault && 'hang' in fault) {
      this.inFlight += 1;
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      this.inFlight -= 1;
      throw new ObjectStoreError('transient', 'Aborted', 'the upload was aborted');
    }
    if (fault && 'fail' in fault) {
      throw new ObjectStoreError(fault.fail, fault.code, `${fault.code} (memory)`, {
        ...(fault.retryAfterMs === undefined ? {} : { retryAfterMs: fault.retryAfterMs }),
      });
    }
    if (fault && 'exists' in fault) return { status: 'exists', sha256: fault.exists };
    const existing = this.objects.get(obj.key);
    if (existing) return { status: 'exists', sha256: existing.metadata['trailwarden_sha256'] ?? null };
    this.objects.set(obj.key, {
      key: obj.key,
      body: Buffer.from(obj.body),
      contentType: obj.contentType,
      contentEncoding: obj.contentEncoding,
      metadata: { ...obj.metadata },
    });
    if (fault && 'writeThenFail' in fault)
      throw new ObjectStoreError('transient', 'ETIMEDOUT', 'the answer never came');
    return { status: 'created' };
  }

  async healthcheck(): Promise<HealthcheckResult> {
    this.healthchecks += 1;
    return this.down
      ? { ok: false, detail: `${this.target}: ${this.down.code}` }
      : { ok: true, detail: `${this.target} reachable` };
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** The keys held, sorted (as a bucket lists them). */
  keys(): string[] {
    return [...this.objects.keys()].sort();
  }
}
