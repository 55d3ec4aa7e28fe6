import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Client, Notification, Pool, QueryResultRow } from 'pg';
import { nodeIdOf } from '../../cluster/node-id.js';
import { TrailwardenError } from '../../errors.js';
import type { StoredEvent } from '../../event/event.js';
import { ALL_TENANTS, filterToSql } from '../filter-sql.js';
import { MerkleFrontier } from '../merkle/frontier.js';
import type {
  ApiKeyRecord,
  AppendOutcome,
  CheckpointRecord,
  EventFilter,
  PageRequest,
  PreparedEvent,
  RawStoredEvent,
  Store,
  TreeReader,
  WriteBlock,
} from '../store.js';
import {
  type CheckpointRow,
  type EventRow,
  type KeyRow,
  parseRow,
  toCheckpoint,
  toKey,
} from '../store-rows.js';
import { conflictError } from '../stored-event.js';
import { KEYS_CHANNEL, KeyCache } from './key-cache.js';
import { ensureMonthlyPartitions, existingMonths, monthsBetween } from './partitions.js';
import {
  createClient,
  createPool,
  DEFAULT_POOL_SIZE,
  inTransaction,
  isRetryable,
  toStoreError,
} from './postgres-connection.js';
import { PostgresDeliveryStore } from './postgres-delivery-store.js';
import { postgresDialect } from './postgres-dialect.js';
import { headOn, postgresTree } from './postgres-tree.js';
import {
  APPEND_CHANNEL,
  commitPending,
  commitSequenced,
  type GroupBase,
  MAX_GROUPS_IN_FLIGHT,
  PENDING_CHANNEL,
  PendingArrived,
  type RequestResult,
  type SequencedGroup,
  type SequencerState,
} from './postgres-writer.js';
import { migrate, SCHEMA_VERSION, schemaVersion } from './schema.js';
import { LEASE_CHANNEL, LeaseLost, SequencerLease } from './sequencer-lease.js';

export { APPEND_CHANNEL };

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

/** Options of {@link PostgresStore.open}. */
export interface PostgresStoreOptions {
  /** Connections kept in the pool (default {@link DEFAULT_POOL_SIZE}). */
  poolSize?: number;
  /** Never migrate or write (verify). */
  readOnly?: boolean;
  /** This node's name (`cluster.node_id`), shown as the lease holder. */
  nodeId?: string;
  /** Sequencer lease time (`cluster.lease_ms`, default 10 s). */
  leaseMs?: number;
  /** `cluster.max_pending_events`: events waiting for the sequencer beyond which a follower's appends wait (default {@link MAX_PENDING_BACKLOG}). */
  maxPendingBacklog?: number;
  /** `cluster.pending_wait_ms`: how long such an append waits for room before a 503 (default {@link PENDING_WAIT_MS}). */
  pendingWaitMs?: number;
  /** Not configurable: {@link PENDING_QUIET_MS}, which tests shorten. */
  pendingQuietMs?: number;
}

/**
 * Events acknowledged by other nodes and not yet sequenced beyond which a
 * node waits before acknowledging more: about half a second of the
 * sequencer's work on a small machine, so acknowledged events stay visible
 * everywhere within the latency budget even when followers outpace it.
 */
const MAX_PENDING_BACKLOG = 5000;
/** A follower's append waits this long for room (the default lease time: a takeover), then gets a 503. */
const PENDING_WAIT_MS = 10_000;
/** How often a waiting follower reads the backlog again. */
const BACKLOG_REFRESH_MS = 100;

/** Default `cluster.lease_ms`. */
const DEFAULT_LEASE_MS = 10_000;
/** Attempts of one group commit that lost a race another node caused (serialization, a key taken). */
const RETRIES = 5;
/**
 * Sequencing transactions in flight at once: one committing while the next
 * ones are written. Each group's fence waits in PostgreSQL for the group
 * before it (`groupTicket` in postgres-writer.ts), so a deeper pipeline
 * costs no round trips between commits, only smaller groups (more
 * PostgreSQL CPU per event). On the bench machine, one node, alternating
 * probe pairs: four gave ~10 % more than three (four pairs, all won), six
 * ~4 % less than four. A group skips the pending rows the
 * groups still in flight before it took (`GroupBase.pendingTaken`); `write`
 * refuses a group whose pending rows were gone anyway.
 */
const PIPELINE_DEPTH = MAX_GROUPS_IN_FLIGHT;
/** About the most events one follower commit hands over as one `pending_batches` row (a request is never split). */
const PENDING_BATCH_EVENTS = 1000;
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
 * The networked backend: one PostgreSQL database shared by any number of
 * store instances (processes, nodes). Exactly one instance at a time holds
 * the sequencer lease (a row in `leases` that expires when its holder stops
 * renewing it); it assigns `seq`, extends the Merkle tree and is the one whose
 * checkpointer signs. Appends on it are sequenced in their own commit.
 * Appends on any other instance are committed to `pending_batches` and
 * acknowledged at once; the sequencer, woken by NOTIFY, sequences them in
 * arrival order. Either way idempotency is decided against `event_keys`, so
 * the answer is the same wherever an event arrives.
 *
 * Appends queued while a commit is running go out together in one
 * transaction (group commit); a request whose event conflicts is dropped
 * alone, before anything is written.
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres';
  readonly tree: TreeReader;
  readonly delivery: PostgresDeliveryStore;
  private frontier = new MerkleFrontier();
  /**
   * `frontier` is the log's head as of this instance's last commit, and
   * nothing has happened since that could have moved it behind its back
   * (losing the lease, a failed commit): the next group may be built on it
   * without reading the head first.
   */
  private frontierKnown = false;
  /** Events waiting in `pending_batches` when last counted, and when that was (performance.now()). */
  private backlog = 0;
  private backlogReadAt = Number.NEGATIVE_INFINITY;
  /** Wakes a flush loop waiting for more work beside a committing group. */
  private workArrived: (() => void) | undefined;
  private queue: PendingAppend[] = [];
  private inFlight: Promise<void> | undefined;
  /** Pending events may be waiting for the sequencer (a NOTIFY came, or a round hit its limit). */
  private pendingWaiting = true;
  /** When (performance.now()) another node was last seen handing events over; see PENDING_QUIET_MS. */
  private pendingSeenAt = performance.now();
  private readonly listeners = new Set<(head: number) => void>();
  /** Highest head announced to listeners, so each hears every head at most once, in order. */
  private announced = 0;
  private listenClient: Client | undefined;
  /** Settles once the current LISTEN connection listens (or failed and will be made again). */
  private listening: Promise<void> = Promise.resolve();
  private readonly state: SequencerState;
  private readonly lease: SequencerLease | undefined;
  private timers: NodeJS.Timeout[] = [];
  private closed = false;
  /** API keys read recently, trusted while revocations are heard on the LISTEN connection. */
  private readonly keys = new KeyCache();

  private constructor(
    private readonly pool: Pool,
    private readonly connectionString: string,
    private readonly readOnly: boolean,
    nodeId: string,
    leaseMs: number,
    private readonly maxPendingBacklog: number,
    private readonly pendingWaitMs: number,
    private readonly pendingQuietMs: number,
  ) {
    this.delivery = new PostgresDeliveryStore(pool);
    this.tree = postgresTree(
      pool,
      () => this.headSeq(),
      // While this instance holds the lease nobody else moves the head past its last commit.
      () => (this.frontierKnown && this.isSequencer() ? this.frontier : undefined),
    );
    const holder = `${nodeId} ${randomUUID().slice(0, 8)}`;
    this.state = {
      frontier: () => this.frontier,
      knownTenants: new Set(),
      knownMonths: new Set(),
      holder,
    };
    this.lease = readOnly
      ? undefined
      : new SequencerLease(pool, holder, leaseMs, (held) => this.leaseChanged(held));
  }

  /**
   * Connects to `connectionString`, applies pending migrations (under an
   * advisory lock, so nodes starting together are safe), and tries for the
   * sequencer lease. `readOnly` neither migrates nor writes.
   */
  static async open(connectionString: string, opts: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const pool = createPool(connectionString, opts.poolSize ?? DEFAULT_POOL_SIZE);
    const store = new PostgresStore(
      pool,
      connectionString,
      opts.readOnly === true,
      opts.nodeId ?? nodeIdOf(null),
      opts.leaseMs ?? DEFAULT_LEASE_MS,
      opts.maxPendingBacklog ?? MAX_PENDING_BACKLOG,
      opts.pendingWaitMs ?? PENDING_WAIT_MS,
      opts.pendingQuietMs ?? PENDING_QUIET_MS,
    );
    try {
      const client = await pool.connect().catch((err: unknown) => {
        throw toStoreError(err);
      });
      try {
        if (opts.readOnly) {
          const version = await schemaVersion(client);
          if (version !== SCHEMA_VERSION) {
            throw new TrailwardenError(
              'TW_ERR_CONFIG',
              `the PostgreSQL database has schema version ${version}; this trailwarden reads version ${SCHEMA_VERSION}`,
            );
          }
        } else {
          await migrate(client);
          store.announced = await headOn(client);
        }
      } finally {
        client.release();
      }
      if (store.lease) {
        store.listenClient = store.startListening();
        // Listening before trying for the lease, so a holder's release notice is not missed.
        await store.listening;
        await store.lease.start();
        store.timers.push(
          setInterval(() => store.wakeSequencer(), PENDING_POLL_MS),
          setInterval(() => void store.preparePartitions().catch(() => undefined), PARTITION_CHECK_MS),
        );
        for (const t of store.timers) t.unref();
      }
    } catch (err) {
      await store.lease?.release().catch(() => undefined);
      await store.listenClient?.end().catch(() => undefined);
      await pool.end().catch(() => undefined);
      throw toStoreError(err);
    }
    return store;
  }

  /** On gaining the lease: the tree's right edge as the database holds it, and partitions ahead. */
  private leaseChanged(held: boolean): void {
    this.frontierKnown = false;
    if (!held) return;
    this.pendingWaiting = true;
    this.pendingSeenAt = performance.now();
    void (async () => {
      await this.preparePartitions();
      this.kick();
    })().catch(() => this.kick());
  }

  /** Creates this month's and the next months' partitions if missing (sequencer only). */
  private async preparePartitions(): Promise<void> {
    if (!this.isSequencer()) return;
    await inTransaction(this.pool, async (c) => {
      // Creating a partition briefly locks `events`: never queue behind a long query for it.
      await c.query("SET LOCAL lock_timeout = '2s'");
      const have = await existingMonths(c);
      const want = monthsBetween(new Date(), new Date()).filter((m) => !have.has(m));
      await ensureMonthlyPartitions(c, want);
      for (const m of [...have, ...want]) this.state.knownMonths.add(m);
    });
  }

  private wakeSequencer(): void {
    if (!this.isSequencer()) return;
    this.pendingWaiting = true;
    this.kick();
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

  private async rows<R extends QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
    try {
      return (await this.pool.query<R>(sql, params)).rows;
    } catch (err) {
      throw toStoreError(err);
    }
  }

  private writable(): Error | undefined {
    if (this.readOnly) return new Error('the store was opened read-only');
    if (this.closed) return new TrailwardenError('TW_ERR_NOT_READY', 'the store is closed');
    return undefined;
  }

  append(events: PreparedEvent[]): Promise<AppendOutcome[]> {
    const refused = this.writable();
    if (refused) return Promise.reject(refused);
    return new Promise((resolve, reject) => {
      this.queue.push({ events, resolve, reject });
      this.kick();
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
      // Not the sequencer: hand the queued requests over through pending_batches.
      let refused: unknown;
      try {
        // Became the sequencer while waiting: sequence them instead.
        if (!(await this.roomInPending())) continue;
      } catch (err) {
        refused = err;
      }
      if (refused !== undefined) {
        // Everything queued waited as long: refuse it all at once.
        this.fail(this.queue.splice(0), refused);
        continue;
      }
      const batch = this.takeForPending();
      if (batch.length === 0) continue;
      try {
        this.settle(
          batch,
          await this.retrying(() =>
            commitPending(
              this.pool,
              batch.map((r) => r.events),
            ),
          ),
        );
      } catch (err) {
        this.fail(batch, err);
      }
    }
    this.inFlight = undefined;
  }

  /**
   * The queued requests for one follower commit: whole requests, oldest
   * first, until PENDING_BATCH_EVENTS events (at least one request). The
   * commit becomes one `pending_batches` row, which the sequencer takes
   * whole, so it is kept about the size of a sequencing group.
   */
  private takeForPending(): PendingAppend[] {
    let events = 0;
    let n = 0;
    while (n < this.queue.length && (n === 0 || events < PENDING_BATCH_EVENTS))
      events += this.queue[n++]!.events.length;
    return this.queue.splice(0, n);
  }

  /**
   * Flow control for a node that is not the sequencer: while more than
   * `maxPendingBacklog` events wait in `pending_batches`, appends wait rather
   * than pile up there (the sequencer fell behind, or no node holds the
   * lease), so what a node acknowledges becomes visible within a bounded
   * time. After `pendingWaitMs` without room they are refused with a 503
   * and Retry-After. False when this instance became the sequencer meanwhile.
   */
  private async roomInPending(): Promise<boolean> {
    const started = performance.now();
    for (;;) {
      if (this.sequencing()) return false;
      if (this.closed) return true;
      const now = performance.now();
      if (now - this.backlogReadAt >= BACKLOG_REFRESH_MS) {
        this.backlog = Number(
          (
            await this.rows<{ n: number }>('SELECT COALESCE(sum(size), 0)::bigint AS n FROM pending_batches')
          )[0]?.n ?? 0,
        );
        this.backlogReadAt = performance.now();
      }
      if (this.backlog < this.maxPendingBacklog) return true;
      if (now - started >= this.pendingWaitMs) {
        throw new TrailwardenError(
          'TW_ERR_NOT_READY',
          `${this.backlog} acknowledged events are waiting for the sequencer (more than ${this.maxPendingBacklog}); nothing was stored — retry shortly, and check that a node holds the sequencer lease (GET /readyz)`,
          { headers: { 'retry-after': '1' } },
        );
      }
      await new Promise((r) => setTimeout(r, BACKLOG_REFRESH_MS));
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
    this.announce(done.frontier.size);
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
        const done = await this.retrying(() =>
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
      this.settle(group.batch, await this.retrying(() => commitPending(this.pool, requests)));
    } catch (err) {
      this.fail(group.batch, err);
    }
  }

  /** Runs a transaction again when it lost a race with another node; nothing of a failed attempt was kept. */
  private async retrying<T>(run: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await run();
      } catch (err) {
        if (attempt >= RETRIES || !isRetryable(err)) throw err;
        await new Promise((r) => setTimeout(r, 5 * attempt));
      }
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

  /** Tells listeners about a head they have not heard yet. */
  private announce(head: number): void {
    if (head <= this.announced) return;
    this.announced = head;
    for (const l of this.listeners) l(head);
  }

  isSequencer(): boolean {
    return this.sequencing() && !this.closed;
  }

  /** Holds the lease (also while closing, so the last queued appends are still sequenced here). */
  private sequencing(): boolean {
    return this.lease?.held() === true;
  }

  async headSeq(): Promise<number> {
    try {
      return await headOn(this.pool);
    } catch (err) {
      throw toStoreError(err);
    }
  }

  async readRange(afterSeq: number, limit: number): Promise<StoredEvent[]> {
    const rows = await this.rows<EventRow>('SELECT body FROM events WHERE seq > $1 ORDER BY seq LIMIT $2', [
      afterSeq,
      limit,
    ]);
    return rows.map(parseRow);
  }

  async readRangeRaw(afterSeq: number, limit: number): Promise<RawStoredEvent[]> {
    return this.rows<RawStoredEvent>(
      `SELECT seq, event_id, tenant_id, action, outcome, ts AS timestamp, actor_id, resource_id, body
       FROM events WHERE seq > $1 ORDER BY seq LIMIT $2`,
      [afterSeq, limit],
    );
  }

  async query(filter: EventFilter, page: PageRequest): Promise<StoredEvent[]> {
    const { where, params } = filterToSql(filter, page, postgresDialect);
    const sql = `SELECT body FROM events WHERE ${where} ORDER BY seq ${page.order === 'asc' ? 'ASC' : 'DESC'} LIMIT $${params.length + 1}`;
    return (await this.rows<EventRow>(sql, [...params, page.limit])).map(parseRow);
  }

  /**
   * Through `event_keys`, which knows each event's `seq`; an event still
   * waiting for the sequencer is not found yet. Two lookups by key rather
   * than a join: a join lets the planner choose a scan of every partition of
   * `events` (seen at 1M events: 1.6 s instead of 1 ms).
   */
  async findByEventId(eventId: string, tenantId: string | null): Promise<StoredEvent[]> {
    const keys =
      tenantId === null
        ? await this.rows<{ seq: number }>(
            `SELECT seq FROM event_keys WHERE ${ALL_TENANTS} AND event_id = $1 AND seq IS NOT NULL`,
            [eventId],
          )
        : await this.rows<{ seq: number }>(
            'SELECT seq FROM event_keys WHERE tenant_id = $1 AND event_id = $2 AND seq IS NOT NULL',
            [tenantId, eventId],
          );
    if (keys.length === 0) return [];
    const rows = await this.rows<EventRow>(
      'SELECT body FROM events WHERE seq = ANY($1::bigint[]) ORDER BY seq',
      [keys.map((k) => k.seq)],
    );
    return rows.map(parseRow);
  }

  async addCheckpoint(cp: CheckpointRecord): Promise<void> {
    const refused = this.writable();
    if (refused) throw refused;
    await this.rows(
      `INSERT INTO checkpoints (tree_size, root_hash, issued_at, note) VALUES ($1, $2, $3, $4)
       ON CONFLICT (tree_size) DO NOTHING`,
      [cp.treeSize, cp.rootHash, cp.issuedAt, cp.note],
    );
  }

  async latestCheckpoint(): Promise<CheckpointRecord | undefined> {
    const [row] = await this.rows<CheckpointRow>('SELECT * FROM checkpoints ORDER BY tree_size DESC LIMIT 1');
    return row && toCheckpoint(row);
  }

  async checkpointAt(treeSize: number): Promise<CheckpointRecord | undefined> {
    const [row] = await this.rows<CheckpointRow>('SELECT * FROM checkpoints WHERE tree_size = $1', [
      treeSize,
    ]);
    return row && toCheckpoint(row);
  }

  async listCheckpoints(range: {
    fromSize?: number;
    toSize?: number;
    limit: number;
  }): Promise<CheckpointRecord[]> {
    const rows = await this.rows<CheckpointRow>(
      'SELECT * FROM checkpoints WHERE tree_size >= $1 AND tree_size <= $2 ORDER BY tree_size LIMIT $3',
      [range.fromSize ?? 0, range.toSize ?? Number.MAX_SAFE_INTEGER, range.limit],
    );
    return rows.map(toCheckpoint);
  }

  async createKey(k: ApiKeyRecord): Promise<void> {
    await this.rows(
      `INSERT INTO api_keys (key_id, secret_hash, role, tenant_id, name, created_at, revoked_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [k.keyId, k.secretHash, k.role, k.tenantId, k.name, k.createdAt, k.revokedAt],
    );
  }

  async getKey(keyId: string): Promise<ApiKeyRecord | undefined> {
    const kept = this.keys.get(keyId);
    if (kept !== undefined) return kept;
    const startedAt = this.keys.readStarts();
    const [row] = await this.rows<KeyRow>('SELECT * FROM api_keys WHERE key_id = $1', [keyId]);
    if (row === undefined) return undefined;
    const key = toKey(row);
    this.keys.put(key, startedAt);
    return key;
  }

  async listKeys(): Promise<ApiKeyRecord[]> {
    return (await this.rows<KeyRow>('SELECT * FROM api_keys ORDER BY created_at, key_id')).map(toKey);
  }

  async revokeKey(keyId: string, at: string): Promise<boolean> {
    try {
      // Every instance forgets the key when this commits (KeyCache).
      const r = await this.pool.query<{ revoked: boolean }>(
        `WITH revoked AS (
           UPDATE api_keys SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL RETURNING 1
         )
         SELECT EXISTS (SELECT 1 FROM revoked) AS revoked, pg_notify($3, $2)`,
        [at, keyId, KEYS_CHANNEL],
      );
      this.keys.drop(keyId);
      return r.rows[0]?.revoked === true;
    } catch (err) {
      throw toStoreError(err);
    }
  }

  async countKeys(): Promise<number> {
    const [row] = await this.rows<{ n: number }>(
      'SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL',
    );
    return row?.n ?? 0;
  }

  async getMeta(name: string): Promise<string | undefined> {
    const [row] = await this.rows<{ value: string }>('SELECT value FROM meta WHERE name = $1', [name]);
    return row?.value;
  }

  async initMeta(name: string, value: string): Promise<string> {
    await this.rows('INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [
      name,
      value,
    ]);
    return (await this.getMeta(name)) ?? value;
  }

  /**
   * Listeners hear this instance's commits at once, and other instances'
   * through LISTEN/NOTIFY.
   */
  onAppend(listener: (headSeq: number) => void): () => void {
    this.listeners.add(listener);
    if (this.listenClient === undefined && !this.closed) this.listenClient = this.startListening();
    return () => this.listeners.delete(listener);
  }

  /**
   * PostgreSQL's passing conditions (out of disk, unreachable) are answered
   * per request with a 503 (`toStoreError`); the database reports its own
   * episodes, so this store keeps none.
   */
  writeBlock(): WriteBlock | undefined {
    return undefined;
  }

  onWriteBlock(): () => void {
    return () => {};
  }

  /**
   * One connection for the life of the store, LISTENing for new heads (for
   * listeners) and for pending events (for the sequencer). When the
   * connection is lost (a database restart) it is made again, and the head is
   * read once so listeners miss nothing that was announced meanwhile.
   */
  private startListening(): Client {
    const client = createClient(this.connectionString);
    client.on('notification', (msg: Notification) => {
      if (msg.channel === PENDING_CHANNEL) {
        this.pendingSeenAt = performance.now();
        this.wakeSequencer();
        return;
      }
      if (msg.channel === LEASE_CHANNEL) {
        this.lease?.poke();
        return;
      }
      if (msg.channel === KEYS_CHANNEL) {
        this.keys.drop(msg.payload ?? '');
        return;
      }
      const head = Number((msg.payload ?? '').split(' ')[0]);
      if (Number.isSafeInteger(head)) this.announce(head);
    });
    let lost = false;
    const reconnect = () => {
      if (lost || this.closed) return;
      lost = true;
      // Revocations go unheard until it listens again.
      this.keys.setListening(false);
      client.end().catch(() => undefined);
      const timer = setTimeout(() => {
        if (this.closed) return;
        this.listenClient = this.startListening();
        void headOn(this.pool)
          .then((head) => this.announce(head))
          .catch(() => undefined);
        this.wakeSequencer();
      }, 500);
      timer.unref();
    };
    client.on('error', reconnect);
    client.on('end', reconnect);
    this.listening = client
      .connect()
      .then(() =>
        client.query(
          `LISTEN ${APPEND_CHANNEL}; LISTEN ${PENDING_CHANNEL}; LISTEN ${LEASE_CHANNEL}; LISTEN ${KEYS_CHANNEL}`,
        ),
      )
      .then(
        () => {
          if (!lost) this.keys.setListening(true);
        },
        () => reconnect(),
      );
    return client;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    // Appends and delivery writes already accepted are committed first.
    await this.inFlight;
    await this.delivery.drained();
    // Handing the lease back lets another node sequence at once instead of after it expires.
    await this.lease?.release();
    this.listeners.clear();
    await this.listenClient?.end().catch(() => undefined);
    await this.pool.end();
  }
}
