import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep, setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { SelfAudit } from '../audit/self-audit.js';
import { TrailwardenError } from '../errors.js';
import type { PrunePlanEntry, PruneRun, RetentionStore } from '../store/retention-store.js';
import type { Store } from '../store/store.js';
import { isExemptAction, PRUNED_ACTION } from './exempt.js';
import { compileHolds } from './hold-match.js';
import { newRetentionId } from './ids.js';
import { entryFor, periodsOf, receivedBeforeFor, scanStart } from './prune-plan.js';

/** The pruner's settings (`retention:` of the config). */
export interface PrunerSettings {
  defaultDays: number | null;
  intervalMs: number;
  chunkEvents: number;
  /**
   * While ingest is busy (the log grew by {@link BUSY_INGEST_PER_SECOND} or
   * more since the last chunk began), the share of the store's writer the
   * pruner takes: after each chunk it rests for the chunk's time
   * × (100 / share − 1), so ingest keeps the rest. 100: never rests.
   */
  busySharePercent: number;
  /** Sinks that must have confirmed an event before it is pruned (operator-scope names). */
  pruneAfterDelivered: readonly string[];
}

export interface PrunerDeps {
  store: Store;
  retention: RetentionStore;
  audit: SelfAudit;
  settings: PrunerSettings;
  /** This node's name in the `retention` lease. */
  nodeId: string;
  leaseMs: number;
  log: {
    info(msg: string, extra?: object): void;
    warn(msg: string, extra?: object): void;
    error(msg: string, extra?: object): void;
  };
  now?: () => number;
  /** Waits between chunks while ingest runs (tests watch it); a timer by default. */
  rest?: (ms: number) => Promise<void>;
}

/** The lease that makes one node of a cluster the pruner. */
export const RETENTION_LEASE = 'retention';
/** Active holds read per chunk at most (a hold list longer than this is a misuse the log names). */
const MAX_HOLDS = 10_000;
/** `reclaimSpace` steps after a run, at most (each a short lock; the next run continues). */
const MAX_RECLAIM_STEPS = 1000;
/** The longest rest between two chunks (a slow chunk is not followed by a pause a stop must wait out). */
const MAX_REST_MS = 2000;
/**
 * Ingest at this rate or more makes the pruner rest between chunks. Below
 * it, appends take about 1 % of the writer (~50 µs each) and resting would
 * only slow the pruner: a trickle such as the audit of reads, or the
 * records of the run itself, must not throttle it.
 */
export const BUSY_INGEST_PER_SECOND = 200;
/** Who the pruner's own records name as actor. */
const PRUNER_ACTOR = { type: 'system', id: 'trailwarden-pruner', name: 'retention pruner' } as const;

/**
 * The background pruner: at every interval it resumes the run a crash left
 * `running`, or plans one (each tenant's cut: events received before now −
 * period, and no further than what every `prune_after_delivered` sink
 * confirmed), records it before touching a row, prunes in chunks (each one
 * transaction) while yielding to the event loop between chunks so ingest
 * interleaves, then logs one `log.retention.pruned` per tenant, marks the
 * run done and gives space back. One node of a cluster prunes at a time
 * (the `retention` lease).
 */
export class Pruner {
  private timer: NodeJS.Timeout | undefined;
  private current: Promise<PruneRun | undefined> | undefined;
  private stopping = false;
  private readonly now: () => number;

  constructor(private readonly deps: PrunerDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Resumes a run left running at once, then runs at every interval. */
  start(): void {
    this.stopping = false;
    this.schedule(0);
  }

  /** Stops between two chunks: a run under way stays `running` and is resumed at the next start. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.current?.catch(() => undefined);
    await this.deps.store.delivery.releaseLease(RETENTION_LEASE, this.deps.nodeId).catch(() => undefined);
  }

  /**
   * Starts a run now (the admin API): resolves with the run once it is
   * recorded, while it prunes on. Refused while a run is under way here
   * or while another node holds the pruner's lease.
   */
  async runNow(): Promise<PruneRun> {
    if (this.current !== undefined) {
      throw new TrailwardenError(
        'TW_ERR_RUN_IN_PROGRESS',
        'a prune run is under way; follow it at GET /v1/retention and start another once it is done',
      );
    }
    let resolve: (run: PruneRun) => void = () => undefined;
    let reject: (err: unknown) => void = () => undefined;
    const recorded = new Promise<PruneRun>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Tracked from the first instant, so the timer's cycle cannot plan a second run meanwhile.
    void this.track(
      (async () => {
        let run: PruneRun | undefined;
        try {
          await this.takeLease(true);
          run = await this.plan(true);
          if (run === undefined) throw new Error('a requested run was not planned');
        } catch (err) {
          reject(err);
          return undefined;
        }
        resolve(run);
        return this.execute(run);
      })(),
    ).catch((err: unknown) =>
      this.deps.log.error('the prune run failed; it is resumed at the next interval', { err }),
    );
    return recorded;
  }

  /** One cycle: resume or plan, then run to the end (tests and the timer). Resolves with the run, if any. */
  async cycle(): Promise<PruneRun | undefined> {
    if (this.current !== undefined) return this.current;
    const work = (async () => {
      if (!(await this.takeLease(false))) return undefined;
      const running = (await this.deps.retention.listPruneRuns(20)).find((r) => r.state === 'running');
      const run = running ?? (await this.plan(false));
      return run === undefined ? undefined : this.execute(run);
    })();
    return this.track(work);
  }

  private track(work: Promise<PruneRun | undefined>): Promise<PruneRun | undefined> {
    const tracked = work.finally(() => {
      if (this.current === tracked) this.current = undefined;
    });
    this.current = tracked;
    return tracked;
  }

  private schedule(delayMs: number): void {
    if (this.stopping) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.cycle()
        .catch((err: unknown) =>
          this.deps.log.error('the prune run failed; it is resumed at the next interval', { err }),
        )
        .finally(() => this.schedule(this.deps.settings.intervalMs));
    }, delayMs);
    this.timer.unref();
  }

  /** Takes or renews the `retention` lease; `required`: refuse (409) rather than answer false. */
  private async takeLease(required: boolean): Promise<boolean> {
    const { store, nodeId, leaseMs } = this.deps;
    // A run outlasts one lease term: each chunk renews it, and a lost lease stops the run.
    const held = await store.delivery.acquireLease(RETENTION_LEASE, nodeId, Math.max(leaseMs, 60_000));
    if (!held && required) {
      const holder = await store.delivery.leaseHolder(RETENTION_LEASE);
      throw new TrailwardenError(
        'TW_ERR_RUN_IN_PROGRESS',
        `another node (${holder?.holder ?? 'unknown'}) runs the pruner now; try again once its run is done`,
      );
    }
    return held;
  }

  /** Each tenant's cut, recorded as a running run; undefined when nothing is due and `always` is false. */
  private async plan(always: boolean): Promise<PruneRun | undefined> {
    const { retention, settings } = this.deps;
    const periods = periodsOf(await retention.listPolicies(), settings.defaultDays);
    if (periods.length === 0 && !always) return undefined;
    const cap = await this.deliveredCap();
    const nowMs = this.now();
    const plan: PrunePlanEntry[] = [];
    for (const { tenantId, days } of periods) {
      const receivedBefore = receivedBeforeFor(nowMs, days);
      const throughSeq = Math.min(await retention.lastSeqReceivedBefore(receivedBefore), cap);
      plan.push({ tenantId, days, receivedBefore, throughSeq });
    }
    const runs = await retention.listPruneRuns(20);
    const lastDone = runs.find((r) => r.state === 'done');
    const holds = await retention.listHolds({ limit: MAX_HOLDS });
    const start = scanStart(lastDone, plan, holds);
    if (!always && !plan.some((e) => e.throughSeq > start)) return undefined;
    const run: PruneRun = {
      id: newRetentionId('run', nowMs),
      startedAt: new Date(nowMs).toISOString(),
      finishedAt: null,
      state: 'running',
      plan,
      scannedThrough: start,
      pruned: 0,
    };
    // Recorded before any row changes: a crash from here on is resumed, not lost.
    await retention.createPruneRun(run);
    this.deps.log.info(`prune run ${run.id} planned`, { run_id: run.id, plan, from_seq: start });
    return run;
  }

  /** The lowest cursor of the `prune_after_delivered` sinks (Infinity without any; 0 when one is missing). */
  private async deliveredCap(): Promise<number> {
    let cap = Number.POSITIVE_INFINITY;
    for (const name of this.deps.settings.pruneAfterDelivered) {
      const state = await this.deps.store.delivery.getSinkState(name);
      if (state === undefined) {
        this.deps.log.warn(
          `retention.prune_after_delivered names sink ${name}, which does not exist (any more): nothing is pruned until it exists or is taken off the list`,
        );
        return 0;
      }
      cap = Math.min(cap, state.cursor);
    }
    return cap;
  }

  /** Prunes a recorded run from where it stands to its end, logs it per tenant and marks it done. */
  private async execute(run: PruneRun): Promise<PruneRun | undefined> {
    const { retention, settings } = this.deps;
    const maxThrough = Math.max(0, ...run.plan.map((e) => e.throughSeq));
    // How fast the log grows: over a window of up to a second, judged as if at least a quarter of a
    // second long, so one event landing in a short chunk does not count as a flood.
    let watch = { since: performance.now(), head: await this.deps.store.headSeq() };
    while (run.scannedThrough < maxThrough) {
      if (this.stopping) return undefined;
      if (!(await this.takeLease(false))) {
        this.deps.log.warn(
          `prune run ${run.id}: the retention lease went to another node, which resumes the run`,
        );
        return undefined;
      }
      const chunkStart = performance.now();
      // Re-read per chunk: a hold placed while the run goes on protects what it matches from then on.
      const held = compileHolds(await retention.listHolds({ activeOnly: true, limit: MAX_HOLDS }));
      const candidates = await retention.pruneCandidates(
        run.scannedThrough,
        maxThrough,
        settings.chunkEvents,
      );
      const seqs: number[] = [];
      for (const c of candidates) {
        const entry = entryFor(run.plan, c.tenantId);
        if (entry === undefined || c.seq > entry.throughSeq || isExemptAction(c.action) || held(c)) continue;
        seqs.push(c.seq);
      }
      const pruned = seqs.length === 0 ? 0 : await retention.pruneEvents(run.id, seqs);
      const last = candidates.at(-1);
      run.scannedThrough =
        candidates.length < settings.chunkEvents || last === undefined ? maxThrough : last.seq;
      run.pruned += pruned;
      await retention.updatePruneRun(run);
      // Between chunks the event loop takes ingest, reads and deliveries. A chunk holds the one
      // writer (SQLite's, or PostgreSQL's row locks and WAL) for its whole transaction: while
      // events are arriving, rest so the pruner takes only its share of it (docs/retention.md).
      const share = settings.busySharePercent;
      const [now, head] = [performance.now(), await this.deps.store.headSeq()];
      const ingestPerSecond = ((head - watch.head) * 1000) / Math.max(250, now - watch.since);
      if (now - watch.since >= 1000) watch = { since: now, head };
      if (share < 100 && ingestPerSecond >= BUSY_INGEST_PER_SECOND) {
        const rest = this.deps.rest ?? ((ms: number) => sleep(ms));
        await rest(Math.min(MAX_REST_MS, (performance.now() - chunkStart) * (100 / share - 1)));
      } else {
        await yieldToEventLoop();
      }
    }
    await this.logRun(run);
    // The count kept per chunk misses a chunk whose rows a crash pruned before its count was
    // recorded (the resumed run finds them pruned already): the run's leaves are the truth.
    run.pruned = (await retention.prunedByRun(run.id)).reduce((n, g) => n + g.count, 0);
    run.state = 'done';
    run.finishedAt = new Date(this.now()).toISOString();
    await retention.updatePruneRun(run);
    this.deps.log.info(`prune run ${run.id} done: ${run.pruned} events pruned`, {
      run_id: run.id,
      pruned: run.pruned,
    });
    await this.reclaim();
    return run;
  }

  /** One `log.retention.pruned` per tenant the run pruned, written once even when the run is resumed. */
  private async logRun(run: PruneRun): Promise<void> {
    const { store, retention, audit } = this.deps;
    for (const group of await retention.prunedByRun(run.id)) {
      if (group.count === 0) continue;
      const eventId = prunedEventId(run.id, group.tenantId);
      if ((await store.findByEventId(eventId, group.tenantId)).length > 0) continue;
      const entry = entryFor(run.plan, group.tenantId);
      await audit.record(PRUNED_ACTION, null, {
        eventId,
        actor: PRUNER_ACTOR,
        tenantId: group.tenantId,
        outcome: 'success',
        resource: { type: 'prune_run', id: run.id },
        metadata: {
          run_id: run.id,
          through_seq: entry?.throughSeq ?? 0,
          received_before: entry?.receivedBefore ?? '',
          days: entry?.days ?? 0,
          pruned: group.count,
          seq_digest: group.seqDigest,
        },
      });
    }
  }

  /** Gives space back in short steps, yielding between them, until done or stopping. */
  private async reclaim(): Promise<void> {
    for (let step = 0; step < MAX_RECLAIM_STEPS && !this.stopping; step++) {
      if (await this.deps.retention.reclaimSpace()) return;
      await yieldToEventLoop();
    }
  }
}

/**
 * The `event_id` of a run's record for one tenant: fixed, so a run resumed
 * after a crash finds the record it already wrote instead of writing two.
 */
export function prunedEventId(runId: string, tenantId: string): string {
  return `${runId}.${createHash('sha256').update(tenantId).digest('hex').slice(0, 16)}`;
}
