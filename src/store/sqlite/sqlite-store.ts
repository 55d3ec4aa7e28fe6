import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import BetterSqlite3, { type Database, type Statement } from 'better-sqlite3';
import { TrailwardenError } from '../../errors.js';
import type { StoredEvent } from '../../event/event.js';
import { MerkleFrontier, type TreeNode } from '../merkle/frontier.js';
import { consistencyProof, inclusionProof, type NodeSource, rootAt } from '../merkle/proofs.js';
import type {
  ApiKeyRecord,
  AppendOutcome,
  CheckpointRecord,
  DeliveryStore,
  EventFilter,
  PageRequest,
  PreparedEvent,
  RawStoredEvent,
  Role,
  Store,
  TreeReader,
} from '../store.js';
import { conflictError } from '../stored-event.js';
import { ALL_TENANTS, filterToSql } from './filter-sql.js';
import { migrate, SCHEMA_VERSION } from './schema.js';
import { SqliteDeliveryStore } from './sqlite-delivery-store.js';
import {
  type DeliveryWrite,
  type DeliveryWriteResult,
  type DeliveryWriteValues,
  deserializeError,
  openWriteConnection,
  READER_CACHE_KIB,
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
  write: DeliveryWrite;
  resolve: (value: DeliveryWriteValues[keyof DeliveryWriteValues]) => void;
  reject: (err: unknown) => void;
}

interface EventRow {
  body: string;
}

/** What one commit carries to the writer thread. */
interface CommitBatch {
  appends: PendingAppend[];
  checkpoints: PendingCheckpoint[];
  deliveryWrites: PendingDeliveryWrite[];
}

/**
 * The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`,
 * so every commit is fsync'd before `append` resolves. A writer thread
 * (`sqlite-writer.ts`) is the single writer and therefore the sequencer:
 * appends queued while a commit is running are sent to it together (group
 * commit), each request inside its own savepoint so one request's conflict
 * never rolls back another's events. Checkpoints ride along in the same
 * commits; delivery state (sink cursors, configs, dead letters) is written by
 * the writer too, in commits of its own that are not fsync'd, so this thread
 * never waits for the write lock. Reads use this thread's own connection; WAL
 * lets them run beside the writer.
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  readonly tree: TreeReader;
  readonly delivery: DeliveryStore;
  private readonly db: Database;
  private frontier = new MerkleFrontier();
  private writer: Worker | undefined;
  /** Set once the writer thread died: every later append fails with it. */
  private writerError: Error | undefined;
  private queue: PendingAppend[] = [];
  private checkpointQueue: PendingCheckpoint[] = [];
  private deliveryQueue: PendingDeliveryWrite[] = [];
  private stateOnlyInARow = 0;
  private inFlight: CommitBatch | undefined;
  private flushScheduled = false;
  private idleWaiters: Array<() => void> = [];
  private readonly listeners = new Set<(head: number) => void>();
  private readonly stmt: Record<string, Statement>;
  private readonly nodes: NodeSource;
  private closed = false;
  private readOnly = false;

  private constructor(db: Database) {
    this.db = db;
    this.delivery = new SqliteDeliveryStore(db, (write) => this.writeDeliveryState(write));
    const s = (sql: string) => db.prepare(sql);
    this.stmt = {
      leaf: s('SELECT leaf_hash FROM events WHERE seq = ?').pluck(),
      node: s('SELECT hash FROM tree_nodes WHERE level = ? AND idx = ?').pluck(),
      range: s('SELECT body FROM events WHERE seq > ? ORDER BY seq LIMIT ?'),
      rangeRaw: s(
        `SELECT seq, event_id, tenant_id, action, outcome, ts AS timestamp, actor_id, resource_id, body
         FROM events WHERE seq > ? ORDER BY seq LIMIT ?`,
      ),
      byEventIdAll: s(`SELECT body FROM events WHERE ${ALL_TENANTS} AND event_id = ? ORDER BY seq`),
      byEventIdTenant: s('SELECT body FROM events WHERE event_id = ? AND tenant_id = ?'),
      latestCheckpoint: s('SELECT * FROM checkpoints ORDER BY tree_size DESC LIMIT 1'),
      checkpointAt: s('SELECT * FROM checkpoints WHERE tree_size = ?'),
      listCheckpoints: s(
        'SELECT * FROM checkpoints WHERE tree_size >= ? AND tree_size <= ? ORDER BY tree_size LIMIT ?',
      ),
      createKey: s(
        `INSERT INTO api_keys (key_id, secret_hash, role, tenant_id, name, created_at, revoked_at)
         VALUES (?,?,?,?,?,?,?)`,
      ),
      getKey: s('SELECT * FROM api_keys WHERE key_id = ?'),
      listKeys: s('SELECT * FROM api_keys ORDER BY created_at, key_id'),
      revokeKey: s('UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL'),
      countKeys: s('SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL').pluck(),
      getMeta: s('SELECT value FROM meta WHERE name = ?').pluck(),
      setMeta: s(
        'INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value',
      ),
    };
    this.nodes = { node: async (level, index) => this.nodeSync(level, index) };
    this.tree = {
      size: async () => this.frontier.size,
      rootAt: async (treeSize) => {
        this.checkTreeSize(treeSize);
        return treeSize === this.frontier.size ? this.frontier.root() : rootAt(this.nodes, treeSize);
      },
      inclusionProof: async (leafIndex, treeSize) => {
        this.checkTreeSize(treeSize);
        return inclusionProof(this.nodes, leafIndex, treeSize);
      },
      consistencyProof: async (from, to) => {
        this.checkTreeSize(to);
        return consistencyProof(this.nodes, from, to);
      },
    };
  }

  /**
   * Opens (creating if needed) the database file and starts the writer
   * thread, which loads the tree's right edge. `readOnly` opens an existing
   * file without writing anything and without trusting its tree nodes: what
   * `verify` needs, which must report a tampered file rather than fail to
   * open it.
   */
  static async open(file: string, opts: { readOnly?: boolean } = {}): Promise<SqliteStore> {
    if (opts.readOnly) return SqliteStore.openReadOnly(file);
    // The writer thread opens the file again, which an in-memory database cannot share.
    if (file === ':memory:') throw new Error('the SQLite store needs a file; :memory: is not supported');
    mkdirSync(dirname(file), { recursive: true });
    const db = openWriteConnection(new BetterSqlite3(file), READER_CACHE_KIB);
    // Its rare commits (keys, settings) must never stall the event loop copying the WAL.
    db.pragma('wal_autocheckpoint = 0');
    migrate(db);
    const store = new SqliteStore(db);
    try {
      await store.startWriter(file);
    } catch (err) {
      db.close();
      throw err;
    }
    return store;
  }

  private static openReadOnly(file: string): SqliteStore {
    if (!existsSync(file)) {
      throw new TrailwardenError('TW_ERR_CONFIG', `no Trailwarden database at ${file}; check --data-dir`);
    }
    const db = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version !== SCHEMA_VERSION) {
      db.close();
      throw new TrailwardenError(
        'TW_ERR_CONFIG',
        `${file} has schema version ${version}; this trailwarden reads version ${SCHEMA_VERSION}`,
      );
    }
    const store = new SqliteStore(db);
    store.readOnly = true;
    return store;
  }

  /** Starts the writer thread and waits until it has loaded the tree. */
  private async startWriter(file: string): Promise<void> {
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
      if (!this.closed) this.writerDied(new Error(`the SQLite writer thread exited with ${code}`));
    });
    // Referenced only while a commit is in flight, so an idle store never keeps the process alive.
    writer.unref();
    this.writer = writer;
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

  private nodeSync(level: number, index: number): Buffer {
    const hash =
      level === 0
        ? (this.stmt.leaf!.get(index + 1) as Buffer | undefined)
        : (this.stmt.node!.get(level, index) as Buffer | undefined);
    if (hash === undefined) throw new Error(`merkle node (${level}, ${index}) is missing from the store`);
    return hash;
  }

  private checkTreeSize(treeSize: number): void {
    if (this.readOnly) throw new Error('the tree is not loaded in a read-only store');
    if (!Number.isSafeInteger(treeSize) || treeSize < 0 || treeSize > this.frontier.size) {
      throw new TrailwardenError(
        'TW_ERR_TREE_SIZE',
        `tree size ${treeSize} is out of range: the log holds ${this.frontier.size} events`,
      );
    }
  }

  append(events: PreparedEvent[]): Promise<AppendOutcome[]> {
    if (this.readOnly) return Promise.reject(new Error('the store was opened read-only'));
    if (this.closed) return Promise.reject(new TrailwardenError('TW_ERR_NOT_READY', 'the store is closed'));
    if (this.writerError) return Promise.reject(this.writerError);
    return new Promise((resolve, reject) => {
      this.queue.push({ events, resolve, reject });
      this.scheduleFlush();
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
    };
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
    };
    this.writer.postMessage(msg);
  }

  private hasQueued(): boolean {
    return this.queue.length > 0 || this.checkpointQueue.length > 0 || this.deliveryQueue.length > 0;
  }

  private async onReply(reply: WriterReply): Promise<void> {
    const batch = this.inFlight ?? { appends: [], checkpoints: [], deliveryWrites: [] };
    const before = this.frontier.size;
    try {
      await this.setHead(reply);
    } catch (err) {
      this.writerDied(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.inFlight = undefined;
    if (reply.type === 'committed') {
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
      const err = deserializeError(reply.error);
      for (const req of [...batch.appends, ...batch.checkpoints, ...batch.deliveryWrites]) req.reject(err);
    }
    if (this.frontier.size !== before) for (const l of this.listeners) l(this.frontier.size);
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

  /** Resolves once no append is queued or in flight. */
  private drained(): Promise<void> {
    if (this.inFlight === undefined && !this.hasQueued()) return Promise.resolve();
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      if (this.inFlight === undefined) this.flush();
    });
  }

  async headSeq(): Promise<number> {
    return this.frontier.size;
  }

  async readRange(afterSeq: number, limit: number): Promise<StoredEvent[]> {
    return (this.stmt.range!.all(afterSeq, limit) as EventRow[]).map(parseRow);
  }

  async readRangeRaw(afterSeq: number, limit: number): Promise<RawStoredEvent[]> {
    return this.stmt.rangeRaw!.all(afterSeq, limit) as RawStoredEvent[];
  }

  async query(filter: EventFilter, page: PageRequest): Promise<StoredEvent[]> {
    const { where, params } = filterToSql(filter, page);
    const sql = `SELECT body FROM events WHERE ${where} ORDER BY seq ${page.order === 'asc' ? 'ASC' : 'DESC'} LIMIT ?`;
    return (this.db.prepare(sql).all(...params, page.limit) as EventRow[]).map(parseRow);
  }

  async findByEventId(eventId: string, tenantId: string | null): Promise<StoredEvent[]> {
    const rows =
      tenantId === null
        ? (this.stmt.byEventIdAll!.all(eventId) as EventRow[])
        : (this.stmt.byEventIdTenant!.all(eventId, tenantId) as EventRow[]);
    return rows.map(parseRow);
  }

  /** Written by the writer thread with the next commit, so the main thread never waits for the write lock. */
  addCheckpoint(cp: CheckpointRecord): Promise<void> {
    if (this.readOnly) return Promise.reject(new Error('the store was opened read-only'));
    if (this.closed) return Promise.reject(new TrailwardenError('TW_ERR_NOT_READY', 'the store is closed'));
    if (this.writerError) return Promise.reject(this.writerError);
    return new Promise((resolve, reject) => {
      this.checkpointQueue.push({ checkpoint: cp, resolve, reject });
      this.scheduleFlush();
    });
  }

  /** Written by the writer thread with the next commit; resolves once committed. */
  private writeDeliveryState<K extends DeliveryWrite['op']>(
    write: Extract<DeliveryWrite, { op: K }>,
  ): Promise<DeliveryWriteValues[K]> {
    if (this.readOnly) return Promise.reject(new Error('the store was opened read-only'));
    if (this.closed) return Promise.reject(new TrailwardenError('TW_ERR_NOT_READY', 'the store is closed'));
    if (this.writerError) return Promise.reject(this.writerError);
    return new Promise((resolve, reject) => {
      this.deliveryQueue.push({
        write,
        // The writer answers each write with the value its op declares.
        resolve: resolve as (v: DeliveryWriteValues[keyof DeliveryWriteValues]) => void,
        reject,
      });
      // A cursor move is on a sink's critical path and costs no fsync of its
      // own: when the writer is idle it goes out now instead of waiting a turn.
      if (this.inFlight === undefined) this.flush();
    });
  }

  async latestCheckpoint(): Promise<CheckpointRecord | undefined> {
    return toCheckpoint(this.stmt.latestCheckpoint!.get());
  }

  async checkpointAt(treeSize: number): Promise<CheckpointRecord | undefined> {
    return toCheckpoint(this.stmt.checkpointAt!.get(treeSize));
  }

  async listCheckpoints(range: {
    fromSize?: number;
    toSize?: number;
    limit: number;
  }): Promise<CheckpointRecord[]> {
    const rows = this.stmt.listCheckpoints!.all(
      range.fromSize ?? 0,
      range.toSize ?? Number.MAX_SAFE_INTEGER,
      range.limit,
    );
    return rows.map((r) => toCheckpoint(r)!);
  }

  async createKey(k: ApiKeyRecord): Promise<void> {
    this.stmt.createKey!.run(k.keyId, k.secretHash, k.role, k.tenantId, k.name, k.createdAt, k.revokedAt);
  }

  async getKey(keyId: string): Promise<ApiKeyRecord | undefined> {
    return toKey(this.stmt.getKey!.get(keyId));
  }

  async listKeys(): Promise<ApiKeyRecord[]> {
    return this.stmt.listKeys!.all().map((r) => toKey(r)!);
  }

  async revokeKey(keyId: string, at: string): Promise<boolean> {
    return this.stmt.revokeKey!.run(at, keyId).changes === 1;
  }

  async countKeys(): Promise<number> {
    return this.stmt.countKeys!.get() as number;
  }

  async getMeta(name: string): Promise<string | undefined> {
    return this.stmt.getMeta!.get(name) as string | undefined;
  }

  async setMeta(name: string, value: string): Promise<void> {
    this.stmt.setMeta!.run(name, value);
  }

  onAppend(listener: (headSeq: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Appends already accepted are committed before the writer stops.
    await this.drained();
    const writer = this.writer;
    if (writer !== undefined && this.writerError === undefined) {
      writer.ref();
      const exited = new Promise((resolve) => writer.once('exit', resolve));
      writer.postMessage({ type: 'close' } satisfies ToWriter);
      await exited;
    }
    this.listeners.clear();
    this.db.close();
  }
}

function parseRow(row: EventRow): StoredEvent {
  return JSON.parse(row.body) as StoredEvent;
}

/** Commits of delivery state alone that may go ahead of waiting appends. */
const MAX_STATE_ONLY_IN_A_ROW = 4;

/** Young-generation heap of the writer thread (V8's default would be several times larger). */
const WRITER_YOUNG_GENERATION_MB = 8;

/**
 * A worker thread running `name` (a module next to this one). Built, it is
 * plain JS; run from TypeScript sources (tests, `tsx`), a worker does not
 * inherit the parent's loader hooks, so a small bootstrap registers tsx in
 * the worker first.
 */
function startThread(name: string, options: WorkerOptions): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL(`./${name}.js`, import.meta.url), options);
  const url = new URL(`./${name}.ts`, import.meta.url);
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); });`;
  return new Worker(bootstrap, { ...options, eval: true });
}

function toCheckpoint(row: unknown): CheckpointRecord | undefined {
  if (row === undefined) return undefined;
  const r = row as { tree_size: number; root_hash: string; issued_at: string; note: string };
  return { treeSize: r.tree_size, rootHash: r.root_hash, issuedAt: r.issued_at, note: r.note };
}

function toKey(row: unknown): ApiKeyRecord | undefined {
  if (row === undefined) return undefined;
  const r = row as {
    key_id: string;
    secret_hash: string;
    role: Role;
    tenant_id: string | null;
    name: string;
    created_at: string;
    revoked_at: string | null;
  };
  return {
    keyId: r.key_id,
    secretHash: r.secret_hash,
    role: r.role,
    tenantId: r.tenant_id,
    name: r.name,
    createdAt: r.created_at,
    revokedAt: r.revoked_at,
  };
}
