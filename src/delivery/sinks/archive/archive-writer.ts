import {
  type DeliveryBatch,
  type DeliveryOutcome,
  disable,
  type HealthcheckResult,
  ok,
  permanent,
  refusedRetry,
  retry,
  type Sink,
} from '../../sink.js';
import { type ArchiveLayout, buildObject, checkpointObject, groupObjects } from './archive-objects.js';
import { type ArchiveObject, type ObjectStore, ObjectStoreError } from './object-store.js';

/** How one object's put ended, for the delivery as a whole. */
type PutVerdict =
  | { kind: 'written' }
  | { kind: 'rejected'; reason: string }
  | { kind: 'stop'; outcome: DeliveryOutcome };

/**
 * An archive sink: writes each delivery as objects of one tenant and one
 * date partition each ({@link groupObjects}), in seq order, through an
 * {@link ObjectStore} (S3, Azure Blob, GCS). Every write is conditional, so
 * a retry after a crash or a timeout finds the object it wrote before
 * (same key, same SHA-256: success) and the bucket holds each event once;
 * an object already at the key with other content is never overwritten:
 * the sink is disabled with the key named. A checkpoint delivery
 * (`send_checkpoints`) writes the signed note beside the objects.
 */
export class ArchiveWriter implements Sink {
  /** Ends a put or healthcheck in progress when the sink closes. */
  private readonly closing = new AbortController();

  constructor(
    private readonly store: ObjectStore,
    private readonly layout: ArchiveLayout,
  ) {}

  async deliver(batch: DeliveryBatch, signal: AbortSignal): Promise<DeliveryOutcome> {
    const aborted = AbortSignal.any([signal, this.closing.signal]);
    if (batch.checkpoint) {
      const { treeSize, note } = batch.checkpoint;
      const verdict = await this.put(checkpointObject(this.layout.template, treeSize, note), aborted);
      if (verdict.kind === 'written') return ok();
      // A note the bucket holds otherwise is reported, never fatal: the next checkpoint is a witness as good.
      if (verdict.kind === 'rejected') return permanent(verdict.reason);
      return verdict.outcome.kind === 'disable' ? permanent(verdict.outcome.reason) : verdict.outcome;
    }
    const rejected: { reason: string; seqs: number[] }[] = [];
    const groups = groupObjects(batch.events, this.layout);
    // One object travels while the next is encoded (gzip runs off the main thread), so memory
    // holds two objects' bytes at most, not the delivery's twice over.
    let building = groups.length > 0 ? buildObject(groups[0]!, this.layout) : undefined;
    for (let i = 0; building !== undefined; i++) {
      const obj = await building;
      const group = groups[i]!;
      building = i + 1 < groups.length ? buildObject(groups[i + 1]!, this.layout) : undefined;
      const verdict = await this.put(obj, aborted);
      if (verdict.kind === 'stop') {
        await building?.catch(() => undefined);
        return verdict.outcome;
      }
      if (verdict.kind === 'rejected')
        rejected.push({ reason: verdict.reason, seqs: group.events.map((e) => e.seq) });
    }
    if (rejected.length === 0) return ok();
    return permanent(
      rejected.map((r) => r.reason).join('; '),
      rejected.flatMap((r) => r.seqs),
    );
  }

  /** Writes one object and says what its outcome means for the delivery. */
  private async put(obj: ArchiveObject, signal: AbortSignal): Promise<PutVerdict> {
    try {
      const result = await this.store.put(obj, signal);
      if (result.status === 'created' || result.sha256 === obj.sha256) return { kind: 'written' };
      return {
        kind: 'stop',
        outcome: disable(
          `${this.store.target}: an object with other content (SHA-256 ${result.sha256 ?? 'unknown'}) is already at ${obj.key}; it is never overwritten. ` +
            'The sink wrote this range before with another format or shape, or something else wrote there: ' +
            'choose a new key_template prefix (or move the old objects away), then resume the sink',
        ),
      };
    } catch (err) {
      if (!(err instanceof ObjectStoreError))
        return {
          kind: 'stop',
          outcome: retry(`${this.store.target}: ${obj.key}: ${(err as Error).message}`),
        };
      const reason = `${this.store.target}: ${err.code}: ${err.message} (${obj.key})`;
      switch (err.kind) {
        case 'transient':
          return { kind: 'stop', outcome: retry(reason) };
        case 'throttled':
          return { kind: 'stop', outcome: retry(reason, err.options.retryAfterMs) };
        case 'refused':
          return { kind: 'stop', outcome: refusedRetry(reason) };
        case 'rejected':
          return { kind: 'rejected', reason };
      }
    }
  }

  healthcheck(): Promise<HealthcheckResult> {
    return this.store.healthcheck(this.closing.signal);
  }

  async close(): Promise<void> {
    this.closing.abort();
    await this.store.close();
  }
}
