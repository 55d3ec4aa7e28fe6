import { performance } from 'node:perf_hooks';
import type { Pool } from 'pg';
import { MerkleFrontier } from '../merkle/frontier.js';
import type { AppendOutcome, PreparedEvent } from '../store.js';
import { conflictError } from '../stored-event.js';
import type { RequestResult } from './decide-requests.js';
import { prepareMonthlyPartitions } from './partitions.js';
import {
  type BacklogOptions,
  commitPending,
  PendingBacklog,
  takeForPendingBatch,
} from './pending-batches.js';
import { retryingRaces, toStoreError } from './postgres-connection.js';
import {
  commitSequenced,
  type GroupBase,
  MAX_GROUPS_IN_FLIGHT,
  PendingArrived,
  type SequencedGroup,
  type SequencerState,
} from './postgres-writer.js';
import { LeaseLost, type SequencerLease } from './sequencer-lease.js';

interface PendingAppend {
  events: PreparedEvent[];
  resolve: (outcomes: AppendOutcome[]) => void;
  reject: (err: unknown) => void;
}

/** A group of requests the sequencer is committing. */
interface SequencingGroup {
  batch: PendingAppend[];
  /** Where the next group starts, once this one is built. */
  base: Promise<GroupBase>;
  done: Promise<SequencedGroup>;
}

/** How a {@link PostgresCommitQueue} sequences and hands appends over. */
export interface CommitQueueOptions extends BacklogOptions {
  /** This instance's lease holder name; also tags its NOTIFY payloads. */
  holder: string;
  /** Not configurable: {@link PENDING_QUIET_MS}, which tests shorten. */
  pendingQuietMs?: number;
}

/**
 * Sequencing transactions in flight at once: one committing while the next
 * ones are written. Each group's fence waits in PostgreSQL for the group
 * before it (`groupTicket` in group-transaction.ts), so a deeper pipeline
 * costs no round trips between commits, only smaller groups (more
 * PostgreSQL CPU per event). On the bench machine, one node, alternating
 * probe pairs: four gave ~10 % more than three (four pairs, all won), six
 * ~4 % less than four. A group skips the pending rows the
 * groups still in flight before it took (`GroupBase.pendingTaken`); `write`
 * refuses a group whose pending rows were gone anyway.
 */
const PIPELINE_DEPTH = MAX_GROUPS_IN_FLIGHT;
/** While sequencing, how often to look for pending events a lost NOTIFY did not announce. */
const PENDING_POLL_MS = 1000;
/**
 * How long after the last sign of another node handing events over (a
 * NOTIFY, a group that took some, a group that met some) the sequencer's
 * groups stop reading `pending_batches` first and only check it in their
 * write (`drainPending: false`). One node alone never pays that read's
 * round trip; when a follower starts, the groups in flight fail once and are
 * sequenced again after its events.
 */
const PENDING_QUIET_MS = 2000;
/** While sequencing, how often to make sure next months' partitions exist. */
const PARTITION_CHECK_MS = 3_600_000;

/**
 * The PostgreSQL store's commit pipeline, as `sqlite-commit-queue.ts` is
 * the SQLite store's: it queues appends and commits whatever is queued
 * together (group commit), sequenced here while this instance holds the
 * sequencer lease (`postgres-writer.ts`, `commitSequenced`), otherwise
 * handed to the sequencer through `pending_batches` (`commitPending`), and
 * keeps the tree's right edge its last commit left.
 */
export class PostgresCommitQueue {
  private frontier = new MerkleFrontier();
  /**
   * `frontier` is the log's head as of this instance's last commit, and
   * nothing has happened since that could have moved it behind its back
   * (losing the lease, a failed commit): the next group may be built on it
   * without reading the head first.
   */
  private frontierKnown = false;
  /** Wakes a flush loop waiting for more work beside a committing group. */
  private workArrived: (() => void) | undefined;
  private queue: PendingAppend[] = [];
  private inFlight: Promise<void> | undefined;
  /** Pending events may be waiting for the sequencer (a NOTIFY came, or a round hit its limit). */
  private pendingWaiting = true;
  /** When (performance.now()) another node was last seen handing events over; see PENDING_QUIET_MS. */
  private pendingSeenAt = performance.now();
  private readonly state: SequencerState;
  /** Flow control while handing appends over. */
  private readonly backlog: PendingBacklog;
  private readonly pendingQuietMs: number;
  private timers: NodeJS.Timeout[] = [];
  private closed = false;

  /**
   * @param lease this instance's sequencer lease (none: read-only); its
   *   changes must reach {@link leaseChanged}.
   * @param onHead called with the new head after each group this instance sequenced.
   */
  constructor(
    private readonly pool: Pool,
    private readonly lease: SequencerLease | undefined,
    opts: CommitQueueOptions,
    private readonly onHead: (head: number) => void,
  ) {
    this.state = {
      frontier: () => this.frontier,
      knownTenants: new Set(),
      knownMonths: new Set(),
      holder: opts.holder,
    };
    this.backlog = new PendingBacklog(pool, opts, {
      sequencing: () => this.sequencing(),
      closing: () => this.closed,
    });
    this.pendingQuietMs = opts.pendingQuietMs ?? PENDING_QUIET_MS;
  }

  /** Starts the sequencer's timers: pending events a lost NOTIFY did not announce, and next months' partitions. */
  startTimers(): void {
    this.timers.push(
      setInterval(() => this.wake(), PENDING_POLL_MS),
      setInterval(() => void this.preparePartitions().catch(() => undefined), PARTITION_CHECK_MS),
    );
    for (const t of this.timers) t.unref();
  }

  /** The tree as this instance's last commit left it, when nothing can have moved the head since. */
  committedFrontier(): MerkleFrontier | undefined {
    return this.frontierKnown ? this.frontier : undefined;
  }

  /** Queues `events` for the next commit; resolves once committed (sequenced, or handed over). */
  append(events: PreparedEvent[]): Promise<AppendOutcome[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ events, resolve, reject });
      this.kick();
    });
  }

  /** On gaining the lease: the tree's right edge as the database holds it, and partitions ahead. */
  leaseChanged(held: boolean): void {
    this.frontierKnown = false;
    if (!held) return;
    this.pendingWaiting = true;
    this.pendingSeenAt = performance.now();
    void (async () => {
      await this.preparePartitions();
      this.kick();
    })().catch(() => this.kick());
  }

  /** Another node announced events it handed over (NOTIFY). */
  pendingAnnounced(): void {
    this.pendingSeenAt = performance.now();
    this.wake();
  }

  /** While sequencing: look for pending events now. */
  wake(): void {
    if (!this.active()) return;
    this.pendingWaiting = true;
    this.kick();
  }

  /** Stops the timers and commits every append already accepted. */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    await this.inFlight;
  }

  /** Holds the lease (also while closing, so the last queued appends are still sequenced here). */
  private sequencing(): boolean {
    return this.lease?.held() === true;
  }

  /** Holds the lease and is not closing. */
  private active(): boolean {
    return this.sequencing() && !this.closed;
  }

  /** Creates this month's and the next months' partitions if missing (sequencer only). */
  private async preparePartitions(): Promise<void> {
    if (!this.active()) return;
    await prepareMonthlyPartitions(this.pool, this.state.knownMonths);
  }

  private kick(): void {
    if (this.inFlight === undefined && !this.closed) this.inFlight = this.flushLoop();
    this.workArrived?.();
  }

  /** Resolves with false once `kick` is called (new work for a running flush loop). */
  private moreWork(): Promise<false> {
    return new Promise((resolve) => {
      this.workArrived = () => {
        this.workArrived = undefined;
        resolve(false);
      };
    });
  }

  /**
   * Commits whatever is queued until the queue is empty: sequenced here
   * while this instance holds the lease (taking the pending events first),
   * otherwise handed to the sequencer through `pending_batches`.
   *
   * The sequencer pipelines: while one group commits, the next is built on
   * the tree that group will leave and written on another connection, so
   * Node and PostgreSQL work at the same time instead of taking turns. The
   * fence at the end of each transaction (`log_head`) makes a group wait
   * for the one before and fail if that one failed; groups are settled in
   * order, and one that failed is sequenced again on its own.
   */
  private async flushLoop(): Promise<void> {
    // Lets every request issued in this turn of the event loop join the first commit.
    await new Promise((resolve) => setImmediate(resolve));
    const inFlight: SequencingGroup[] = [];
    for (;;) {
      const work = this.queue.length > 0 || (this.pendingWaiting && this.sequencing() && !this.closed);
      if (work && this.sequencing() && inFlight.length < PIPELINE_DEPTH) {
        inFlight.push(this.launch(inFlight.at(-1)));
        continue;
      }
      if (inFlight.length > 0) {
        // A request arriving while the group commits starts the next group at once.
        if (this.sequencing() && inFlight.length < PIPELINE_DEPTH) {
          const settled = inFlight[0]!.done.then(
            () => true,
            () => true,
          );
          if (!(await Promise.race([settled, this.moreWork()]))) continue;
        }
        await this.settleOldest(inFlight);
        continue;
      }
      if (!work) break;
      await this.handOver();
    }
    this.inFlight = undefined;
  }

  /**
   * Not the sequencer: hands the oldest queued requests over through
   * `pending_batches` once there is room there (or refuses everything
   * queued when none came in time).
   */
  private async handOver(): Promise<void> {
    let room: boolean;
    try {
      room = await this.backlog.room();
    } catch (err) {
      // Everything queued waited as long: refuse it all at once.
      this.fail(this.queue.splice(0), err);
      return;
    }
    // Became the sequencer while waiting: sequence them instead.
    if (!room) return;
    const batch = takeForPendingBatch(this.queue);
    if (batch.length === 0) return;
    const requests = batch.map((r) => r.events);
    try {
      this.settle(batch, await retryingRaces(() => commitPending(this.pool, requests)));
    } catch (err) {
      this.fail(batch, err);
    }
  }

  /** Starts sequencing the queued requests on top of `before` (the group still committing, if any). */
  private launch(before: SequencingGroup | undefined): SequencingGroup {
    const batch = this.queue;
    this.queue = [];
    const drainPending = this.pendingWaiting || performance.now() - this.pendingSeenAt < this.pendingQuietMs;
    this.pendingWaiting = false;
    let built!: (base: GroupBase) => void;
    let notBuilt!: (err: unknown) => void;
    const base = new Promise<GroupBase>((resolve, reject) => {
      built = resolve;
      notBuilt = reject;
    });
    // Only ever awaited by the next group, which may not exist.
    base.catch(() => undefined);
    // With nothing in flight, build on this instance's frontier only if its last commit is known to be the head.
    const after =
      before?.base ??
      (this.frontierKnown ? Promise.resolve({ frontier: this.frontier, pendingTaken: [] }) : undefined);
    const done = commitSequenced(
      this.pool,
      batch.map((r) => r.events),
      this.state,
      {
        ...(after ? { after } : {}),
        // An event another node acknowledged goes before this node's later ones: read, or checked in the write.
        drainPending,
        onBuilt: built,
      },
    );
    done.catch(notBuilt);
    return { batch, base, done };
  }

  /**
   * Settles the oldest group in flight. When it failed, so will every group
   * built on it (their fence finds the log shorter than they expect): all of
   * them are waited for, then each one that failed is sequenced again on
   * its own, in order.
   */
  private async settleOldest(inFlight: SequencingGroup[]): Promise<void> {
    const group = inFlight.shift()!;
    try {
      this.applied(group.batch, await group.done);
      return;
    } catch (err) {
      const later = inFlight.splice(0);
      const outcomes = await Promise.allSettled(later.map((g) => g.done));
      await this.sequenceAlone(group, err);
      for (const [i, g] of later.entries()) {
        const o = outcomes[i]!;
        if (o.status === 'fulfilled') this.applied(g.batch, o.value);
        else await this.sequenceAlone(g, o.reason);
      }
    }
  }

  private applied(batch: PendingAppend[], done: SequencedGroup): void {
    for (const m of done.months) this.state.knownMonths.add(m);
    for (const t of done.tenants) this.state.knownTenants.add(t);
    this.frontierKnown = true;
    if (done.frontier.size > this.frontier.size) this.frontier = done.frontier;
    if (done.more) this.pendingWaiting = true;
    if (done.tookPending) this.pendingSeenAt = performance.now();
    this.settle(batch, done.results);
    this.onHead(done.frontier.size);
  }

  /**
   * A group that failed in the pipeline, sequenced again from what the
   * database holds (stored keys read first), with the usual retries; handed
   * to the sequencer through `pending_batches` if the lease is gone.
   */
  private async sequenceAlone(group: SequencingGroup, failure: unknown): Promise<void> {
    // What it took, or met, is still pending: it goes first, in this group or the next.
    this.pendingWaiting = true;
    if (failure instanceof PendingArrived) this.pendingSeenAt = performance.now();
    const requests = group.batch.map((r) => r.events);
    this.frontierKnown = false;
    if (failure instanceof LeaseLost) {
      this.lease?.lost();
    } else if (this.sequencing()) {
      // Whatever failed a pipelined group (a guess that did not hold, a tree
      // node written by a previous holder, a race) is ruled out by starting
      // again from what the database holds; a real fault fails again.
      try {
        const done = await retryingRaces(() =>
          commitSequenced(this.pool, requests, this.state, { drainPending: true }),
        );
        this.applied(group.batch, done);
        return;
      } catch (err) {
        if (!(err instanceof LeaseLost)) {
          this.fail(group.batch, err);
          return;
        }
        this.lease?.lost();
      }
    }
    if (group.batch.length === 0) return;
    // Another instance sequences now: these requests go to it like any other node's.
    try {
      this.settle(group.batch, await retryingRaces(() => commitPending(this.pool, requests)));
    } catch (err) {
      this.fail(group.batch, err);
    }
  }

  private settle(batch: PendingAppend[], results: RequestResult[]): void {
    results.forEach((r, i) => {
      const req = batch[i]!;
      if (typeof r === 'number') req.reject(conflictError(req.events, r));
      else req.resolve(r);
    });
  }

  private fail(batch: PendingAppend[], err: unknown): void {
    // Nothing of this group was stored (or the outcome is unknown: the next
    // commit compares heads and reloads the frontier; a resend is a duplicate).
    const reported = toStoreError(err);
    for (const req of batch) req.reject(reported);
  }
}
