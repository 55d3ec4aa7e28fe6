import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3, { type Database, type Statement } from 'better-sqlite3';
import { TrailwardenError } from '../../errors.js';
import type { StoredEvent } from '../../event/event.js';
import { createPrivateFile } from '../data-dir.js';
import { ALL_TENANTS, filterToSql } from '../filter-sql.js';
import type { RetentionStore } from '../retention-store.js';
import type {
  ApiKeyRecord,
  AppendOutcome,
  CheckpointRecord,
  DeliveryStore,
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
import { migrate, SCHEMA_VERSION, useIncrementalVacuumIfNew } from './schema.js';
import { SqliteCommitQueue } from './sqlite-commit-queue.js';
import { SqliteDeliveryStore } from './sqlite-delivery-store.js';
import { sqliteDialect } from './sqlite-dialect.js';
import { SqliteRetentionStore } from './sqlite-retention-store.js';
import { sqliteTree } from './sqlite-tree.js';
import { WAL_CHECKPOINT_PASS_FRAMES, WAL_CHECKPOINT_POLL_MS } from './wal-checkpoint-protocol.js';
import { WalCheckpointer } from './wal-checkpointer.js';
import {
  openWriteConnection,
  READER_CACHE_KIB,
  type StateWrite,
  type StateWriteValues,
} from './writer-protocol.js';

/**
 * The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`,
 * so every commit is fsync'd before `append` resolves. A writer thread
 * (`sqlite-writer.ts`) is the single writer and therefore the sequencer:
 * appends queued while a commit is running are sent to it together (group
 * commit); the writer finds a request's conflicts before writing any of its
 * events, so one request's conflict never touches another's events.
 * Checkpoints ride along in the same commits; delivery state (sink cursors,
 * configs, dead letters) is written by the writer too, in commits of its own
 * that are not fsync'd, so this thread never waits for the write lock. Reads
 * use this thread's own connection; WAL lets them run beside the writer. A
 * third thread (`wal-checkpointer.ts`) copies the WAL into the database file,
 * so commits rarely wait for that.
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  readonly tree: TreeReader;
  readonly delivery: DeliveryStore;
  readonly retention: RetentionStore;
  private readonly db: Database;
  private readonly writer: SqliteCommitQueue;
  private readonly listeners = new Set<(head: number) => void>();
  private readonly stmt: Record<string, Statement>;
  private checkpointer: WalCheckpointer | undefined;
  private closed = false;
  private readOnly = false;

  private constructor(db: Database) {
    this.db = db;
    this.writer = new SqliteCommitQueue((head) => {
      for (const l of this.listeners) l(head);
    });
    this.delivery = new SqliteDeliveryStore(db, (write) => this.writeState(write));
    this.retention = new SqliteRetentionStore(db, (write) => this.writeState(write));
    const s = (sql: string) => db.prepare(sql);
    this.stmt = {
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
      initMeta: s('INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING'),
    };
    this.tree = sqliteTree(db, { frontier: () => this.writer.frontier, readOnly: () => this.readOnly });
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
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    // The file holds sink settings, secrets among them; SQLite gives its -wal and -shm the same mode.
    createPrivateFile(file);
    const conn = new BetterSqlite3(file);
    useIncrementalVacuumIfNew(conn);
    const db = openWriteConnection(conn, READER_CACHE_KIB);
    // Its rare commits (keys, settings) must never stall the event loop copying the WAL.
    db.pragma('wal_autocheckpoint = 0');
    migrate(db);
    // One server process serves a SQLite file, so sink and pruner leases left
    // in it are a dead predecessor's: a restart must not wait for them to
    // expire (the pruner's lasts a minute, and a run it left is resumed at
    // start). A CLI opening the file beside the server only makes it take
    // them again.
    db.prepare("DELETE FROM leases WHERE name LIKE 'sink:%' OR name = 'retention'").run();
    const store = new SqliteStore(db);
    try {
      await store.writer.start(file);
      store.checkpointer = await WalCheckpointer.start(file, {
        pollMs: WAL_CHECKPOINT_POLL_MS,
        passFrames: WAL_CHECKPOINT_PASS_FRAMES,
      });
    } catch (err) {
      await store.writer.close();
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

  /** Why a write is refused now, if it is. */
  private refusal(): Error | undefined {
    if (this.readOnly) return new Error('the store was opened read-only');
    if (this.closed) return new TrailwardenError('TW_ERR_NOT_READY', 'the store is closed');
    return this.writer.writerError;
  }

  append(events: PreparedEvent[]): Promise<AppendOutcome[]> {
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    return this.writer.append(events);
  }

  /** One process owns the SQLite file, and it always sequences. */
  isSequencer(): boolean {
    return true;
  }

  async headSeq(): Promise<number> {
    return this.writer.frontier.size;
  }

  async readRange(afterSeq: number, limit: number): Promise<StoredEvent[]> {
    return (this.stmt.range!.all(afterSeq, limit) as EventRow[]).map(parseRow);
  }

  async readRangeRaw(afterSeq: number, limit: number): Promise<RawStoredEvent[]> {
    return this.stmt.rangeRaw!.all(afterSeq, limit) as RawStoredEvent[];
  }

  async query(filter: EventFilter, page: PageRequest): Promise<StoredEvent[]> {
    const { where, params } = filterToSql(filter, page, sqliteDialect);
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
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    return this.writer.addCheckpoint(cp);
  }

  /** Delivery and retention state, written by the writer thread with the next commit; resolves once committed. */
  private writeState<K extends StateWrite['op']>(
    write: Extract<StateWrite, { op: K }>,
  ): Promise<StateWriteValues[K]> {
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    return this.writer.writeDeliveryState(write);
  }

  async latestCheckpoint(): Promise<CheckpointRecord | undefined> {
    const row = this.stmt.latestCheckpoint!.get() as CheckpointRow | undefined;
    return row && toCheckpoint(row);
  }

  async checkpointAt(treeSize: number): Promise<CheckpointRecord | undefined> {
    const row = this.stmt.checkpointAt!.get(treeSize) as CheckpointRow | undefined;
    return row && toCheckpoint(row);
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
    ) as CheckpointRow[];
    return rows.map(toCheckpoint);
  }

  async createKey(k: ApiKeyRecord): Promise<void> {
    this.writeHere(() =>
      this.stmt.createKey!.run(k.keyId, k.secretHash, k.role, k.tenantId, k.name, k.createdAt, k.revokedAt),
    );
  }

  async getKey(keyId: string): Promise<ApiKeyRecord | undefined> {
    const row = this.stmt.getKey!.get(keyId) as KeyRow | undefined;
    return row && toKey(row);
  }

  async listKeys(): Promise<ApiKeyRecord[]> {
    return (this.stmt.listKeys!.all() as KeyRow[]).map(toKey);
  }

  async revokeKey(keyId: string, at: string): Promise<boolean> {
    return this.writeHere(() => this.stmt.revokeKey!.run(at, keyId).changes === 1);
  }

  async countKeys(): Promise<number> {
    return this.stmt.countKeys!.get() as number;
  }

  async getMeta(name: string): Promise<string | undefined> {
    return this.stmt.getMeta!.get(name) as string | undefined;
  }

  async initMeta(name: string, value: string): Promise<string> {
    this.writeHere(() => this.stmt.initMeta!.run(name, value));
    return this.stmt.getMeta!.get(name) as string;
  }

  onAppend(listener: (headSeq: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  writeBlock(): WriteBlock | undefined {
    return this.writer.diskFull.current();
  }

  onWriteBlock(listener: (block: WriteBlock | undefined) => void): () => void {
    return this.writer.diskFull.onChange(listener);
  }

  /** A write on this thread's connection (keys, settings); a full disk is answered as the writer's commits are. */
  private writeHere<T>(write: () => T): T {
    let result: T;
    try {
      result = write();
    } catch (err) {
      throw err instanceof Error ? this.writer.diskFull.failed(err) : err;
    }
    this.writer.diskFull.succeeded();
    return result;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.checkpointer?.close();
    // Appends already accepted are committed before the writer stops.
    await this.writer.close();
    this.listeners.clear();
    this.db.close();
  }
}
