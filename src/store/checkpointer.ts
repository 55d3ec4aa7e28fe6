import { signCheckpoint } from '../log/checkpoint.js';
import type { CheckpointRecord, Store } from './store.js';

export interface CheckpointSigner {
  /** Key name in the signed note (also the verifier key's name). */
  name: string;
  privateKey: import('node:crypto').KeyObject;
  publicKeyRaw: Buffer;
}

export interface CheckpointPolicy {
  /** Issue once this many events arrived since the last checkpoint. */
  everyEvents: number;
  /** Issue at least this often while new events arrive. */
  everyMs: number;
  origin: string;
}

export interface CheckpointerHooks {
  /** Issuing in the background failed (it is tried again at the next trigger). */
  onError?: (err: unknown) => void;
  /**
   * Keeps a checkpoint outside the store (the data folder's witness). Called
   * with each new checkpoint before it is stored and served: its events are
   * committed already, so the witness never runs ahead of the log, and no
   * checkpoint is published that the witness has not seen. When it fails the
   * checkpoint is not issued.
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
  private again = false;
  private readonly onError: (err: unknown) => void;

  constructor(
    private readonly store: Store,
    private readonly signer: CheckpointSigner,
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

  /** Signs a checkpoint at the current head unless one exists for it. */
  issue(): Promise<CheckpointRecord | undefined> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.issueOnce().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        void this.issue().catch(this.onError);
      }
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
    await this.hooks.witness?.(cp);
    await this.store.addCheckpoint(cp);
    this.lastSize = size;
    return cp;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.unsubscribe?.();
    await this.running;
  }
}
