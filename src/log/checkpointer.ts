import type { CheckpointRecord, Store } from '../store/store.js';
import { type NoteSigner, signCheckpoint } from './checkpoint.js';

/** When checkpoints are issued, and the log's origin line they carry. */
export interface CheckpointPolicy {
  /** Issue once this many events arrived since the last checkpoint. */
  everyEvents: number;
  /** Issue at least this often while new events arrive. */
  everyMs: number;
  origin: string;
}

/** What the checkpointer reports to its owner, and where it keeps a copy of each checkpoint. */
export interface CheckpointerHooks {
  /** Issuing in the background failed (it is tried again at the next trigger). */
  onError?: (err: unknown) => void;
  /**
   * Keeps a checkpoint outside the store (the data folder's witness). Called
   * once each new checkpoint is committed, in the background and in order
   * (when several wait, only the latest is kept), so a slow disk never delays
   * the next checkpoint; a failure goes to `onError` and the next checkpoint
   * tries again.
   */
  witness?: (cp: CheckpointRecord) => Promise<void>;
}

/**
 * Issues signed checkpoints (C2SP tlog-checkpoint) over the log every N events
 * or T milliseconds, whichever comes first, and keeps them all. Runs beside the
 * sequencer: only the node that sequences signs.
 */
export class Checkpointer {
  private lastSize = 0;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private running: Promise<CheckpointRecord | undefined> | undefined;
  /** The issue queued behind the running one, shared by every call made meanwhile. */
  private next: Promise<CheckpointRecord | undefined> | undefined;
  private readonly onError: (err: unknown) => void;
  /** The witness writes, one after another. */
  private witnessing: Promise<void> = Promise.resolve();
  /** The checkpoint the next witness write will keep, while one is queued. */
  private witnessPending: CheckpointRecord | undefined;

  constructor(
    private readonly store: Store,
    private readonly signer: NoteSigner,
    private readonly policy: CheckpointPolicy,
    private readonly hooks: CheckpointerHooks = {},
  ) {
    this.onError = hooks.onError ?? (() => {});
  }

  async start(): Promise<void> {
    this.lastSize = (await this.store.latestCheckpoint())?.treeSize ?? 0;
    this.unsubscribe = this.store.onAppend((head) => {
      if (head - this.lastSize >= this.policy.everyEvents) void this.issue().catch(this.onError);
    });
    this.timer = setInterval(() => void this.issue().catch(this.onError), this.policy.everyMs);
    this.timer.unref();
    await this.issue();
  }

  /**
   * Signs a checkpoint at the current head unless one exists for it. Called
   * while one is being issued, it resolves once the next one, started after
   * that, is done (the head may have moved meanwhile); calls that arrive
   * meanwhile share that next one.
   */
  issue(): Promise<CheckpointRecord | undefined> {
    if (this.running) {
      this.next ??= this.running
        .catch(() => undefined)
        .then(() => {
          this.next = undefined;
          return this.issue();
        });
      return this.next;
    }
    this.running = this.issueOnce().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async issueOnce(): Promise<CheckpointRecord | undefined> {
    // With several nodes only the sequencer signs; every node serves what it signed.
    if (!this.store.isSequencer()) return undefined;
    const size = await this.store.tree.size();
    if (size === 0 || size <= this.lastSize) return undefined;
    const root = await this.store.tree.rootAt(size);
    const note = signCheckpoint({ origin: this.policy.origin, treeSize: size, rootHash: root }, this.signer);
    const cp: CheckpointRecord = {
      treeSize: size,
      rootHash: root.toString('base64'),
      issuedAt: new Date().toISOString(),
      note,
    };
    await this.store.addCheckpoint(cp);
    this.lastSize = size;
    this.keepWitness(cp);
    return cp;
  }

  private keepWitness(cp: CheckpointRecord): void {
    const write = this.hooks.witness;
    if (write === undefined) return;
    const queued = this.witnessPending !== undefined;
    this.witnessPending = cp;
    if (queued) return;
    this.witnessing = this.witnessing.then(async () => {
      const latest = this.witnessPending;
      this.witnessPending = undefined;
      if (latest !== undefined) await write(latest).catch(this.onError);
    });
  }

  /** Resolves once every checkpoint issued so far is kept by the witness (or its write failed). */
  witnessed(): Promise<void> {
    return this.witnessing;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.unsubscribe?.();
    await this.running;
    await this.next;
  }
}
