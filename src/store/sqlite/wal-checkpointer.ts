import type { Worker } from 'node:worker_threads';
import { startThread } from './start-thread.js';
import type {
  CheckpointerData,
  CheckpointPass,
  FromCheckpointer,
  ToCheckpointer,
} from './wal-checkpoint-protocol.js';

/**
 * The store's side of the WAL checkpointing thread (`wal-checkpoint-thread.ts`),
 * which copies the WAL into the database file off the writer thread so that
 * commits do not stall on it. Losing the thread costs speed, never data or
 * bounds: the writer's autocheckpoint still checkpoints and rewinds the WAL.
 */
export class WalCheckpointer {
  private readonly passListeners = new Set<(pass: CheckpointPass) => void>();

  private constructor(private readonly thread: Worker) {
    thread.on('message', (msg: FromCheckpointer) => {
      if (msg.type === 'pass') for (const l of this.passListeners) l(msg);
    });
    // An idle store must not keep the process alive for this thread.
    thread.unref();
  }

  /** Starts the thread on `file` (an existing database in WAL mode) and waits until it is ready. */
  static async start(
    file: string,
    opts: Pick<CheckpointerData, 'pollMs' | 'passFrames'>,
  ): Promise<WalCheckpointer> {
    const thread = startThread('wal-checkpoint-thread', {
      workerData: { file, ...opts } satisfies CheckpointerData,
      // It holds no data of its own; a small heap keeps its memory small.
      resourceLimits: { maxYoungGenerationSizeMb: 2 },
    });
    const first = await new Promise<FromCheckpointer>((resolve, reject) => {
      thread.once('message', resolve);
      thread.once('error', reject);
    });
    if (first.type !== 'ready') {
      await thread.terminate();
      throw new Error(
        `the WAL checkpointing thread did not start: ${first.type === 'failed' ? first.message : first.type}`,
      );
    }
    thread.removeAllListeners('error');
    // Losing the thread is not fatal (see the class comment); errors must not crash the process.
    thread.on('error', () => {});
    return new WalCheckpointer(thread);
  }

  /** Called after each PASSIVE checkpoint with what it found (tests and diagnostics). */
  onPass(listener: (pass: CheckpointPass) => void): () => void {
    this.passListeners.add(listener);
    return () => this.passListeners.delete(listener);
  }

  /** Stops the thread; a pass in progress finishes first. */
  async close(): Promise<void> {
    if (this.thread.threadId === -1) return;
    const exited = new Promise((resolve) => this.thread.once('exit', resolve));
    // Unreferenced while running; the process must wait for it to close its connection.
    this.thread.ref();
    this.thread.postMessage({ type: 'close' } satisfies ToCheckpointer);
    await exited;
  }
}
