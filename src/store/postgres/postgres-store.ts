import { randomUUID } from 'node:crypto';
import type { Pool, QueryResultRow } from 'pg';
import { nodeIdOf } from '../../cluster/node-id.js';
import { TrailwardenError } from '../../errors.js';
import type { StoredEvent } from '../../event/event.js';
import { ALL_TENANTS, filterToSql } from '../filter-sql.js';
import type { RetentionStore } from '../retention-store.js';
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
import { KEYS_CHANNEL, KeyCache } from './key-cache.js';
import { ListenConnection } from './listen-connection.js';
import { PostgresCommitQueue } from './postgres-commit-queue.js';
import { createPool, DEFAULT_POOL_SIZE, toStoreError } from './postgres-connection.js';
import { PostgresDeliveryStore } from './postgres-delivery-store.js';
import { postgresDialect } from './postgres-dialect.js';
import { postgresRetentionStore } from './postgres-retention-store.js';
import { headOn, postgresTree } from './postgres-tree.js';
import { migrate, SCHEMA_VERSION, schemaVersion } from './schema.js';
import { SequencerLease } from './sequencer-lease.js';

/** Options of {@link PostgresStore.open}. */
export interface PostgresStoreOptions {
  /** Connections kept in the pool (default {@link DEFAULT_POOL_SIZE}). */
  poolSize?: number;
  /** Never migrate or write (verify). */
  readOnly?: boolean;
  /** This node's name (`cluster.node_id`), shown as the lease holder. */
  nodeId?: string;
  /** Sequencer lease time (`cluster.lease_ms`, default {@link DEFAULT_LEASE_MS}). */
  leaseMs?: number;
  /** `cluster.max_pending_events`: events waiting for the sequencer beyond which a follower's appends wait (default in pending-batches.ts). */
  maxPendingBacklog?: number;
  /** `cluster.pending_wait_ms`: how long such an append waits for room before a 503 (default in pending-batches.ts). */
  pendingWaitMs?: number;
  /** Not configurable: `PENDING_QUIET_MS` in postgres-commit-queue.ts, which tests shorten. */
  pendingQuietMs?: number;
}

/** Default `cluster.lease_ms`. */
const DEFAULT_LEASE_MS = 10_000;

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
 * transaction (group commit; `postgres-commit-queue.ts`); a request whose
 * event conflicts is dropped alone, before anything is written
 * (`postgres-writer.ts`).
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres';
  readonly tree: TreeReader;
  readonly delivery: PostgresDeliveryStore;
  readonly retention: RetentionStore;
  private readonly writer: PostgresCommitQueue;
  private readonly listeners = new Set<(head: number) => void>();
  /** Highest head announced to listeners, so each hears every head at most once, in order. */
  private announced = 0;
  private listen: ListenConnection | undefined;
  private readonly lease: SequencerLease | undefined;
  private closed = false;
  /** API keys read recently, trusted while revocations are heard on the LISTEN connection. */
  private readonly keys = new KeyCache();

  private constructor(
    private readonly pool: Pool,
    private readonly connectionString: string,
    private readonly readOnly: boolean,
    opts: PostgresStoreOptions,
  ) {
    this.delivery = new PostgresDeliveryStore(pool);
    this.retention = postgresRetentionStore(pool);
    this.tree = postgresTree(
      pool,
      () => this.headSeq(),
      // While this instance holds the lease nobody else moves the head past its last commit.
      () => (this.isSequencer() ? this.writer.committedFrontier() : undefined),
    );
    const holder = `${opts.nodeId ?? nodeIdOf(null)} ${randomUUID().slice(0, 8)}`;
    this.lease = readOnly
      ? undefined
      : new SequencerLease(pool, holder, opts.leaseMs ?? DEFAULT_LEASE_MS, (held) =>
          this.writer.leaseChanged(held),
        );
    this.writer = new PostgresCommitQueue(
      pool,
      this.lease,
      {
        holder,
        maxPendingBacklog: opts.maxPendingBacklog,
        pendingWaitMs: opts.pendingWaitMs,
        pendingQuietMs: opts.pendingQuietMs,
      },
      (head) => this.announce(head),
    );
  }

  /**
   * Connects to `connectionString`, applies pending migrations (under an
   * advisory lock, so nodes starting together are safe), and tries for the
   * sequencer lease. `readOnly` neither migrates nor writes.
   */
  static async open(connectionString: string, opts: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const pool = createPool(connectionString, opts.poolSize ?? DEFAULT_POOL_SIZE);
    const store = new PostgresStore(pool, connectionString, opts.readOnly === true, opts);
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
        store.listen = store.startListening();
        // Listening before trying for the lease, so a holder's release notice is not missed.
        await store.listen.listening;
        await store.lease.start();
        store.writer.startTimers();
      }
    } catch (err) {
      await store.lease?.release().catch(() => undefined);
      await store.listen?.end();
      await pool.end().catch(() => undefined);
      throw toStoreError(err);
    }
    return store;
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
    return this.writer.append(events);
  }

  /** Tells listeners about a head they have not heard yet. */
  private announce(head: number): void {
    if (head <= this.announced) return;
    this.announced = head;
    for (const l of this.listeners) l(head);
  }

  /** Holds the sequencer lease and is not closing. */
  isSequencer(): boolean {
    return this.lease?.held() === true && !this.closed;
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
    if (this.listen === undefined && !this.closed) this.listen = this.startListening();
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

  /** The LISTEN connection, passing what it hears to the commit queue, the lease, the key cache and listeners. */
  private startListening(): ListenConnection {
    return new ListenConnection(this.connectionString, {
      head: (head) => this.announce(head),
      pending: () => this.writer.pendingAnnounced(),
      leaseReleased: () => this.lease?.poke(),
      keyRevoked: (keyId) => this.keys.drop(keyId),
      listening: (heard) => this.keys.setListening(heard),
      // Read the head once, so listeners miss nothing that was announced meanwhile.
      reconnected: () => {
        void headOn(this.pool)
          .then((head) => this.announce(head))
          .catch(() => undefined);
        this.writer.wake();
      },
      closing: () => this.closed,
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Appends and delivery writes already accepted are committed first.
    await this.writer.close();
    await this.delivery.drained();
    // Handing the lease back lets another node sequence at once instead of after it expires.
    await this.lease?.release();
    this.listeners.clear();
    await this.listen?.end();
    await this.pool.end();
  }
}
