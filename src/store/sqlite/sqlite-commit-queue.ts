import type { Worker } from 'node:worker_threads';
import { MerkleFrontier, type TreeNode } from '../merkle/frontier.js';
import type { AppendOutcome, CheckpointRecord, PreparedEvent } from '../store.js';
import { conflictError } from '../stored-event.js';
import { DiskFullEpisodes } from './disk-full.js';
import { startThread } from './start-thread.js';
import {
  type DeliveryWriteResult,
  deserializeError,
  type StateWrite,
  type StateWriteValues,
  type ToWriter,
  type WriterData,
  type WriterReply,
} from './writer-protocol.js';

interface PendingAppend {
  events: PreparedEvent[];
  resolve: (outcomes: AppendOutcome[]) => void;
  reject: (err: unknown) => void;
}

/** A checkpoint waiting to be written with the next commit. */
interface PendingCheckpoint {
  checkpoint: CheckpointRecord;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** A delivery-state write waiting to be sent with the next commit. */
interface PendingDeliveryWrite {
  write: StateWrite;
  resolve: (value: StateWriteValues[keyof StateWriteValues]) => void;
  reject: (err: unknown) => void;
}

/** What one commit carries to the writer thread. */
interface CommitBatch {
  appends: PendingAppend[];
  checkpoints: PendingCheckpoint[];
  deliveryWrites: PendingDeliveryWrite[];
  probe: boolean;
}

/**
 * The main thread's side of the SQLite writer thread (`sqlite-writer.ts`):
 * queues appends, checkpoints and delivery-state writes, sends them as one
 * commit at a time (group commit) and keeps the tree's right edge the writer
 * reports after each commit.
 */
export class SqliteCommitQueue {
  /** The tree's right edge as of the last commit. */
  frontier = new MerkleFrontier();
  /** Set once the writer thread died: every later write fails with it. */
  writerError: Error | undefined;
  private writer: Worker | undefined;
  private queue: PendingAppend[] = [];
  private checkpointQueue: PendingCheckpoint[] = [];
  private deliveryQueue: PendingDeliveryWrite[] = [];
  private stateOnlyInARow = 0;
  private inFlight: CommitBatch | undefined;
  private flushScheduled = false;
  private idleWaiters: Array<() => void> = [];
  private closing = false;
  private probeWanted = false;
  /** Episodes of a full disk: commits fail with a 503 while one lasts, and it ends by itself. */
  readonly diskFull = new DiskFullEpisodes(() => this.probe());

  /** @param onHead called with the new head whenever a commit moved it. */
  constructor(private readonly onHead: (head: number) => void) {}

  /** Starts the writer thread on `file` and waits until it has loaded the tree. */
  async start(file: string): Promise<void> {
    const writer = startThread('sqlite-writer', {
      workerData: { file } satisfies WriterData,
      // The writer keeps little alive between commits; a small young generation bounds its memory.
      resourceLimits: { maxYoungGenerationSizeMb: WRITER_YOUNG_GENERATION_MB },
    });
    const first = await new Promise<WriterReply>((resolve, reject) => {
      const exited = (code: number) => reject(new Error(`the SQLite writer thread exited with ${code}`));
      writer.once('message', (reply: WriterReply) => {
        writer.off('error', reject);
        writer.off('exit', exited);
        resolve(reply);
      });
      writer.once('error', reject);
      writer.once('exit', exited);
    });
    if (first.type !== 'ready') {
      await writer.terminate();
      throw first.type === 'failed' ? deserializeError(first.error) : new Error('unexpected writer reply');
    }
    await this.setHead(first);
    writer.on('message', (reply: WriterReply) => void this.onReply(reply));
    writer.on('error', (err) => this.writerDied(err));
    writer.on('exit', (code) => {
      if (!this.closing) this.writerDied(new Error(`the SQLite writer thread exited with ${code}`));
    });
    // Referenced only while a commit is in flight, so an idle store never keeps the process alive.
    writer.unref();
    this.writer = writer;
  }

  /** Queues `events` for the next commit; resolves once it is fsync'd. */
  append(events: PreparedEvent[]): Promise<AppendOutcome[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ events, resolve, reject });
      this.scheduleFlush();
    });
  }

  /** Queues a checkpoint for the next commit of appends. */
  addCheckpoint(checkpoint: CheckpointRecord): Promise<void> {
    return new Promise((resolve, reject) => {
      this.checkpointQueue.push({ checkpoint, resolve, reject });
      this.scheduleFlush();
    });
  }

  /** Queues a delivery- or retention-state write; resolves with the value its op declares once committed. */
  writeDeliveryState<K extends StateWrite['op']>(
    write: Extract<StateWrite, { op: K }>,
  ): Promise<StateWriteValues[K]> {
    return new Promise((resolve, reject) => {
      this.deliveryQueue.push({
        write,
        // The writer answers each write with the value its op declares.
        resolve: resolve as (v: StateWriteValues[keyof StateWriteValues]) => void,
        reject,
      });
      // A cursor move is on a sink's critical path and costs no fsync of its
      // own: when the writer is idle it goes out now instead of waiting a turn.
      if (this.inFlight === undefined) this.flush();
    });
  }

  /** Commits everything already queued, then stops the writer thread. */
  async close(): Promise<void> {
    this.closing = true;
    this.diskFull.stop();
    await this.drained();
    const writer = this.writer;
    if (writer !== undefined && this.writerError === undefined) {
      writer.ref();
      const exited = new Promise((resolve) => writer.once('exit', resolve));
      writer.postMessage({ type: 'close' } satisfies ToWriter);
      await exited;
    }
  }

  private async setHead(reply: WriterReply): Promise<void> {
    const byKey = new Map(reply.edge.map((n: TreeNode) => [`${n.level}/${n.index}`, Buffer.from(n.hash)]));
    this.frontier = await MerkleFrontier.load(reply.head, {
      node: async (level, index) => {
        const hash = byKey.get(`${level}/${index}`);
        if (hash === undefined) throw new Error(`the writer sent no node (${level}, ${index})`);
        return hash;
      },
    });
  }

  private scheduleFlush(): void {
    if (this.inFlight === undefined && !this.flushScheduled) {
      this.flushScheduled = true;
      // setImmediate lets every request already parsed in this turn of the
      // event loop join the same commit (one fsync for all of them).
      setImmediate(() => this.flush());
    }
  }

  /** Sends everything queued to the writer as one commit; one commit is in flight at a time. */
  private flush(): void {
    this.flushScheduled = false;
    if (this.inFlight !== undefined || this.writer === undefined || !this.hasQueued()) return;
    // Delivery-state writes go out alone, ahead of queued appends: such a
    // commit needs no fsync, so a sink's cursor move never waits for one.
    // Appends wait for at most MAX_STATE_ONLY_IN_A_ROW of them.
    const stateOnly =
      this.deliveryQueue.length > 0 &&
      (this.queue.length === 0 || this.stateOnlyInARow < MAX_STATE_ONLY_IN_A_ROW);
    const batch: CommitBatch = {
      appends: stateOnly ? [] : this.queue,
      checkpoints: stateOnly ? [] : this.checkpointQueue,
      deliveryWrites: this.deliveryQueue,
      probe: this.probeWanted,
    };
    this.probeWanted = false;
    if (!stateOnly) {
      this.queue = [];
      this.checkpointQueue = [];
    }
    this.deliveryQueue = [];
    this.stateOnlyInARow = stateOnly ? this.stateOnlyInARow + 1 : 0;
    this.inFlight = batch;
    this.writer.ref();
    const msg: ToWriter = {
      type: 'commit',
      requests: batch.appends.map((r) => r.events),
      checkpoints: batch.checkpoints.map((c) => c.checkpoint),
      deliveryWrites: batch.deliveryWrites.map((d) => d.write),
      probe: batch.probe,
    };
    this.writer.postMessage(msg);
  }

  private hasQueued(): boolean {
    return (
      this.queue.length > 0 ||
      this.checkpointQueue.length > 0 ||
      this.deliveryQueue.length > 0 ||
      this.probeWanted
    );
  }

  /** While the disk is full: one small write, unless a commit is on its way anyway (it tells as much). */
  private probe(): void {
    if (this.closing || this.inFlight !== undefined || this.hasQueued()) return;
    this.probeWanted = true;
    this.flush();
  }

  private async onReply(reply: WriterReply): Promise<void> {
    const batch = this.inFlight ?? { appends: [], checkpoints: [], deliveryWrites: [], probe: false };
    const before = this.frontier.size;
    try {
      await this.setHead(reply);
    } catch (err) {
      this.writerDied(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.inFlight = undefined;
    if (reply.type === 'committed') {
      this.diskFull.succeeded();
      reply.results.forEach((r, i) => {
        const req = batch.appends[i]!;
        if ('ok' in r) req.resolve(r.ok);
        else req.reject(conflictError(req.events, r.conflict));
      });
      for (const c of batch.checkpoints) c.resolve();
      reply.deliveryResults.forEach((r: DeliveryWriteResult, i) => {
        const w = batch.deliveryWrites[i]!;
        if ('value' in r) w.resolve(r.value);
        else w.reject(deserializeError(r.error));
      });
    } else if (reply.type === 'failed') {
      // The commit itself failed (disk full, I/O error): nothing was stored.
      const err = this.diskFull.failed(deserializeError(reply.error));
      for (const req of [...batch.appends, ...batch.checkpoints, ...batch.deliveryWrites]) req.reject(err);
    }
    if (this.frontier.size !== before) this.onHead(this.frontier.size);
    // Whatever arrived during this commit goes out as the next one at once.
    if (this.hasQueued()) this.flush();
    else this.becameIdle();
  }

  private writerDied(err: Error): void {
    this.writerError ??= err;
    const pending = [
      ...(this.inFlight?.appends ?? []),
      ...(this.inFlight?.checkpoints ?? []),
      ...(this.inFlight?.deliveryWrites ?? []),
      ...this.queue,
      ...this.checkpointQueue,
      ...this.deliveryQueue,
    ];
    this.inFlight = undefined;
    this.queue = [];
    this.checkpointQueue = [];
    this.deliveryQueue = [];
    for (const req of pending) req.reject(this.writerError);
    this.becameIdle();
  }

  private becameIdle(): void {
    this.writer?.unref();
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves once nothing is queued or in flight. */
  private drained(): Promise<void> {
    if (this.inFlight === undefined && !this.hasQueued()) return Promise.resolve();
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      if (this.inFlight === undefined) this.flush();
    });
  }
}

/** Commits of delivery state alone that may go ahead of waiting appends. */
const MAX_STATE_ONLY_IN_A_ROW = 4;

/** Young-generation heap of the writer thread (V8's default would be several times larger). */
const WRITER_YOUNG_GENERATION_MB = 8;
