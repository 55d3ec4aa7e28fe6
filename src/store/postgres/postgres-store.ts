import { randomUUID } from 'node:crypto';
import type { Client, Notification, Pool, QueryResultRow } from 'pg';
import { TrailwardenError } from '../../errors.js';
import type { StoredEvent } from '../../event/event.js';
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
} from '../store.js';
import { conflictError } from '../stored-event.js';
import { ALL_TENANTS, filterToSql } from './filter-sql.js';
import {
  createClient,
  createPool,
  DEFAULT_POOL_SIZE,
  inTransaction,
  toStoreError,
} from './postgres-connection.js';
import { PostgresDeliveryStore } from './postgres-delivery-store.js';
import {
  type CheckpointRow,
  type EventRow,
  type KeyRow,
  parseRow,
  toCheckpoint,
  toKey,
} from './postgres-rows.js';
import { headOn, loadFrontier, postgresTree } from './postgres-tree.js';
import { APPEND_CHANNEL, commitAppends, type SequencerState } from './postgres-writer.js';
import { migrate, SCHEMA_VERSION, schemaVersion } from './schema.js';

export { APPEND_CHANNEL };

interface PendingAppend {
  events: PreparedEvent[];
  resolve: (outcomes: AppendOutcome[]) => void;
  reject: (err: unknown) => void;
}

/** Options of {@link PostgresStore.open}. */
export interface PostgresStoreOptions {
  /** Connections kept in the pool (default {@link DEFAULT_POOL_SIZE}). */
  poolSize?: number;
  /** Never migrate or write (verify). */
  readOnly?: boolean;
}

/**
 * The networked backend: one PostgreSQL database shared by any number of
 * store instances (processes, nodes). Appends queued while a commit is
 * running go out together in one transaction (group commit), each request in
 * its own savepoint so one request's conflict never rolls back another's
 * events. Sequencing is serialised across instances by a transaction
 * advisory lock: under it the writer compares the database's head with its
 * in-memory Merkle frontier and reloads the frontier when another instance
 * appended meanwhile, so `seq` stays gap-free and the tree whole.
 *
 * TODO(issue 5, part 2): the sequencer lease (one node sequences; others
 * hand it their acknowledged-but-unsequenced events) replaces the lock.
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres';
  readonly tree: TreeReader;
  readonly delivery: PostgresDeliveryStore;
  private frontier = new MerkleFrontier();
  private queue: PendingAppend[] = [];
  private inFlight: Promise<void> | undefined;
  private readonly listeners = new Set<(head: number) => void>();
  /** Highest head announced to listeners, so each hears every head at most once, in order. */
  private announced = 0;
  /** Tenants known to be in `tenants`, so a tenant costs one write per instance. */
  private readonly tenants = new Set<string>();
  private readonly instanceId = randomUUID();
  private listenClient: Client | undefined;
  private readonly sequencer: SequencerState;
  private closed = false;

  private constructor(
    private readonly pool: Pool,
    private readonly connectionString: string,
    private readonly readOnly: boolean,
  ) {
    this.delivery = new PostgresDeliveryStore(pool);
    this.tree = postgresTree(pool, () => this.headSeq());
    this.sequencer = {
      frontier: () => this.frontier,
      knownTenants: this.tenants,
      instanceId: this.instanceId,
    };
  }

  /**
   * Connects to `connectionString`, applies pending migrations (under an
   * advisory lock, so nodes starting together are safe) and loads the tree's
   * right edge. `readOnly` neither migrates nor writes.
   */
  static async open(connectionString: string, opts: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const pool = createPool(connectionString, opts.poolSize ?? DEFAULT_POOL_SIZE);
    const store = new PostgresStore(pool, connectionString, opts.readOnly === true);
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
          store.frontier = await loadFrontier(client);
          store.announced = store.frontier.size;
        }
      } finally {
        client.release();
      }
    } catch (err) {
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
    return new Promise((resolve, reject) => {
      this.queue.push({ events, resolve, reject });
      if (this.inFlight === undefined) this.inFlight = this.flushLoop();
    });
  }

  /** Commits whatever is queued, one group commit at a time, until the queue is empty. */
  private async flushLoop(): Promise<void> {
    // Lets every request issued in this turn of the event loop join the first commit.
    await new Promise((resolve) => setImmediate(resolve));
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      try {
        const { results, frontier } = await inTransaction(this.pool, (c) =>
          commitAppends(
            c,
            batch.map((r) => r.events),
            this.sequencer,
          ),
        );
        if (frontier.size > this.frontier.size) this.frontier = frontier;
        results.forEach((r, i) => {
          const req = batch[i]!;
          if (typeof r === 'number') req.reject(conflictError(req.events, r));
          else req.resolve(r);
        });
        this.announce(frontier.size);
      } catch (err) {
        // Nothing of this group was stored (or the outcome is unknown: the
        // next commit compares heads and reloads the frontier).
        for (const req of batch) req.reject(err);
      }
    }
    this.inFlight = undefined;
  }

  /** Tells listeners about a head they have not heard yet. */
  private announce(head: number): void {
    if (head <= this.announced) return;
    this.announced = head;
    for (const l of this.listeners) l(head);
  }

  isSequencer(): boolean {
    return !this.readOnly && !this.closed;
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
    const { where, params } = filterToSql(filter, page);
    const sql = `SELECT body FROM events WHERE ${where} ORDER BY seq ${page.order === 'asc' ? 'ASC' : 'DESC'} LIMIT $${params.length + 1}`;
    return (await this.rows<EventRow>(sql, [...params, page.limit])).map(parseRow);
  }

  async findByEventId(eventId: string, tenantId: string | null): Promise<StoredEvent[]> {
    const rows =
      tenantId === null
        ? await this.rows<EventRow>(
            `SELECT body FROM events WHERE ${ALL_TENANTS} AND event_id = $1 ORDER BY seq`,
            [eventId],
          )
        : await this.rows<EventRow>('SELECT body FROM events WHERE event_id = $1 AND tenant_id = $2', [
            eventId,
            tenantId,
          ]);
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
    const [row] = await this.rows<KeyRow>('SELECT * FROM api_keys WHERE key_id = $1', [keyId]);
    return row && toKey(row);
  }

  async listKeys(): Promise<ApiKeyRecord[]> {
    return (await this.rows<KeyRow>('SELECT * FROM api_keys ORDER BY created_at, key_id')).map(toKey);
  }

  async revokeKey(keyId: string, at: string): Promise<boolean> {
    try {
      const r = await this.pool.query(
        'UPDATE api_keys SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL',
        [at, keyId],
      );
      return r.rowCount === 1;
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

  async setMeta(name: string, value: string): Promise<void> {
    await this.rows(
      'INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value',
      [name, value],
    );
  }

  /**
   * Listeners hear this instance's commits at once, and other instances'
   * appends through LISTEN/NOTIFY (started with the first listener).
   */
  onAppend(listener: (headSeq: number) => void): () => void {
    this.listeners.add(listener);
    if (this.listenClient === undefined && !this.closed) this.listenClient = this.startListening();
    return () => this.listeners.delete(listener);
  }

  private startListening(): Client {
    const client = createClient(this.connectionString);
    client.on('notification', (msg: Notification) => {
      const [from, head] = (msg.payload ?? '').split(' ');
      if (from !== this.instanceId && head !== undefined) this.announce(Number(head));
    });
    // A lost LISTEN connection only delays other instances' appends until this instance's next commit.
    client.on('error', () => undefined);
    client
      .connect()
      .then(() => client.query(`LISTEN ${APPEND_CHANNEL}`))
      .catch(() => undefined);
    return client;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Appends and delivery writes already accepted are committed first.
    await this.inFlight;
    await this.delivery.drained();
    this.listeners.clear();
    await this.listenClient?.end().catch(() => undefined);
    await this.pool.end();
  }
}
