import { randomUUID } from 'node:crypto';
import type { Client, Notification, Pool, PoolClient, QueryResultRow } from 'pg';
import { TrailwardenError } from '../../errors.js';
import { leafHashOf } from '../../event/canonical.js';
import type { StoredEvent } from '../../event/event.js';
import { MerkleFrontier } from '../merkle/frontier.js';
import { consistencyProof, inclusionProof, type NodeSource, rootAt } from '../merkle/proofs.js';
import type {
  ApiKeyRecord,
  AppendOutcome,
  CheckpointRecord,
  EventFilter,
  PageRequest,
  PreparedEvent,
  RawStoredEvent,
  Role,
  Store,
  TreeReader,
} from '../store.js';
import { conflictError, searchText, toStored } from '../stored-event.js';
import { ALL_TENANTS, filterToSql } from './filter-sql.js';
import {
  createClient,
  createPool,
  DEFAULT_POOL_SIZE,
  inTransaction,
  toStoreError,
} from './postgres-connection.js';
import { PostgresDeliveryStore } from './postgres-delivery-store.js';
import { migrate, SCHEMA_VERSION, schemaVersion } from './schema.js';

/** Transaction advisory lock that serialises sequencing across every process on the database ("tw-seq"). */
const SEQUENCER_LOCK = 0x74772d736571;

/** NOTIFY channel on which every append announces the new head. */
export const APPEND_CHANNEL = 'trailwarden_append';

interface PendingAppend {
  events: PreparedEvent[];
  resolve: (outcomes: AppendOutcome[]) => void;
  reject: (err: unknown) => void;
}

/** Thrown inside a request's savepoint to roll back just that request. */
class ConflictInBatch extends Error {
  constructor(readonly index: number) {
    super('conflict');
  }
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
  private readonly nodes: NodeSource;
  private closed = false;

  private constructor(
    private readonly pool: Pool,
    private readonly connectionString: string,
    private readonly readOnly: boolean,
  ) {
    this.delivery = new PostgresDeliveryStore(pool);
    this.nodes = { node: (level, index) => this.node(this.pool, level, index) };
    this.tree = {
      size: () => this.headSeq(),
      rootAt: async (treeSize) => {
        await this.checkTreeSize(treeSize);
        return rootAt(this.nodes, treeSize);
      },
      inclusionProof: async (leafIndex, treeSize) => {
        await this.checkTreeSize(treeSize);
        return inclusionProof(this.nodes, leafIndex, treeSize);
      },
      consistencyProof: async (from, to) => {
        await this.checkTreeSize(to);
        return consistencyProof(this.nodes, from, to);
      },
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
          store.frontier = await store.loadFrontier(client);
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

  private async node(db: Pool | PoolClient, level: number, index: number): Promise<Buffer> {
    const r =
      level === 0
        ? await db.query<{ hash: Buffer }>('SELECT leaf_hash AS hash FROM events WHERE seq = $1', [index + 1])
        : await db.query<{ hash: Buffer }>('SELECT hash FROM tree_nodes WHERE level = $1 AND idx = $2', [
            level,
            index,
          ]);
    const hash = r.rows[0]?.hash;
    if (hash === undefined) throw new Error(`merkle node (${level}, ${index}) is missing from the store`);
    return hash;
  }

  private async loadFrontier(client: PoolClient): Promise<MerkleFrontier> {
    // One client runs one query at a time: the frontier's reads go one after another.
    let tail: Promise<unknown> = Promise.resolve();
    const node = (level: number, index: number): Promise<Buffer> => {
      const read = tail.then(() => this.node(client, level, index));
      tail = read.catch(() => undefined);
      return read;
    };
    return MerkleFrontier.load(await this.headOn(client), { node });
  }

  private async headOn(db: Pool | PoolClient): Promise<number> {
    const r = await db.query<{ head: number }>('SELECT COALESCE(MAX(seq), 0)::bigint AS head FROM events');
    return r.rows[0]?.head ?? 0;
  }

  private async checkTreeSize(treeSize: number): Promise<void> {
    const size = await this.headSeq();
    if (!Number.isSafeInteger(treeSize) || treeSize < 0 || treeSize > size) {
      throw new TrailwardenError(
        'TW_ERR_TREE_SIZE',
        `tree size ${treeSize} is out of range: the log holds ${size} events`,
      );
    }
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
        const { results, frontier } = await inTransaction(this.pool, (c) => this.commit(c, batch));
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

  private async commit(
    c: PoolClient,
    batch: PendingAppend[],
  ): Promise<{ results: Array<AppendOutcome[] | number>; frontier: MerkleFrontier }> {
    await c.query('SELECT pg_advisory_xact_lock($1)', [SEQUENCER_LOCK]);
    // Under the lock: another instance may have appended since our last commit.
    let frontier = this.frontier.clone();
    if ((await this.headOn(c)) !== frontier.size) frontier = await this.loadFrontier(c);
    const before = frontier.size;
    const newTenants = [...new Set(batch.flatMap((r) => r.events.map((e) => e.event.tenant_id)))].filter(
      (t) => !this.tenants.has(t),
    );
    if (newTenants.length > 0) {
      // Outside the savepoints: a tenant row without events is harmless.
      await c.query('INSERT INTO tenants (tenant_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING', [
        newTenants,
      ]);
    }
    const receivedAt = new Date().toISOString();
    const results: Array<AppendOutcome[] | number> = [];
    for (const [i, req] of batch.entries()) {
      const attempt = frontier.clone();
      await c.query(`SAVEPOINT r${i}`);
      try {
        results.push(await this.appendRequest(c, req.events, attempt, receivedAt));
        await c.query(`RELEASE SAVEPOINT r${i}`);
        frontier = attempt;
      } catch (err) {
        if (!(err instanceof ConflictInBatch)) throw err;
        await c.query(`ROLLBACK TO SAVEPOINT r${i}`);
        results.push(err.index);
      }
    }
    if (frontier.size !== before) {
      await c.query('SELECT pg_notify($1, $2)', [APPEND_CHANNEL, `${this.instanceId} ${frontier.size}`]);
    }
    for (const t of newTenants) this.tenants.add(t);
    return { results, frontier };
  }

  private async appendRequest(
    c: PoolClient,
    events: PreparedEvent[],
    frontier: MerkleFrontier,
    receivedAt: string,
  ): Promise<AppendOutcome[]> {
    const found = await c.query<{ tenant_id: string; event_id: string; seq: number; content_hash: string }>(
      `SELECT e.tenant_id, e.event_id, e.seq, e.content_hash
       FROM unnest($1::text[], $2::text[]) AS k(tenant_id, event_id)
       JOIN events e ON e.tenant_id = k.tenant_id AND e.event_id = k.event_id`,
      [events.map((e) => e.event.tenant_id), events.map((e) => e.event.event_id)],
    );
    const existing = new Map(
      found.rows.map((r) => [key(r.tenant_id, r.event_id), { seq: r.seq, contentHash: r.content_hash }]),
    );
    const outcomes: AppendOutcome[] = [];
    const rows: unknown[][] = Array.from({ length: 13 }, () => []);
    const nodes: { level: number[]; idx: number[]; hash: Buffer[] } = { level: [], idx: [], hash: [] };
    events.forEach(({ event, contentHash }, index) => {
      const k = key(event.tenant_id, event.event_id);
      const prior = existing.get(k);
      if (prior) {
        if (prior.contentHash !== contentHash) throw new ConflictInBatch(index);
        outcomes.push({ status: 'duplicate', seq: prior.seq });
        return;
      }
      const seq = frontier.size + 1;
      const stored = toStored(event, seq, receivedAt);
      const leaf = leafHashOf(stored);
      stored.leaf_hash = leaf.toString('base64');
      const values = [
        seq,
        event.event_id,
        event.tenant_id,
        event.timestamp,
        event.action,
        event.actor.id,
        event.resource?.type ?? null,
        event.resource?.id ?? null,
        event.outcome,
        searchText(event),
        contentHash,
        leaf,
        JSON.stringify(stored),
      ];
      for (const [col, v] of values.entries()) rows[col]!.push(v);
      for (const n of frontier.append(leaf)) {
        if (n.level === 0) continue;
        nodes.level.push(n.level);
        nodes.idx.push(n.index);
        nodes.hash.push(n.hash);
      }
      // A repeat later in the same request is a duplicate of this one.
      existing.set(k, { seq, contentHash });
      outcomes.push({ status: 'created', seq });
    });
    if (rows[0]!.length > 0) {
      await c.query(
        `INSERT INTO events (seq, event_id, tenant_id, ts, action, actor_id, resource_type, resource_id,
           outcome, search, content_hash, leaf_hash, body)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
           $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bytea[], $13::text[])`,
        rows,
      );
    }
    if (nodes.level.length > 0) {
      await c.query(
        'INSERT INTO tree_nodes (level, idx, hash) SELECT * FROM unnest($1::int[], $2::bigint[], $3::bytea[])',
        [nodes.level, nodes.idx, nodes.hash],
      );
    }
    return outcomes;
  }

  /** Tells listeners about a head they have not heard yet. */
  private announce(head: number): void {
    if (head <= this.announced) return;
    this.announced = head;
    for (const l of this.listeners) l(head);
  }

  async headSeq(): Promise<number> {
    try {
      return await this.headOn(this.pool);
    } catch (err) {
      throw toStoreError(err);
    }
  }

  async readRange(afterSeq: number, limit: number): Promise<StoredEvent[]> {
    const rows = await this.rows<{ body: string }>(
      'SELECT body FROM events WHERE seq > $1 ORDER BY seq LIMIT $2',
      [afterSeq, limit],
    );
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
    return (await this.rows<{ body: string }>(sql, [...params, page.limit])).map(parseRow);
  }

  async findByEventId(eventId: string, tenantId: string | null): Promise<StoredEvent[]> {
    const rows =
      tenantId === null
        ? await this.rows<{ body: string }>(
            `SELECT body FROM events WHERE ${ALL_TENANTS} AND event_id = $1 ORDER BY seq`,
            [eventId],
          )
        : await this.rows<{ body: string }>(
            'SELECT body FROM events WHERE event_id = $1 AND tenant_id = $2',
            [eventId, tenantId],
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

function key(tenantId: string, eventId: string): string {
  return `${tenantId}\u0000${eventId}`;
}

function parseRow(row: { body: string }): StoredEvent {
  return JSON.parse(row.body) as StoredEvent;
}

// toStored and searchText match sqlite-writer.ts exactly: the stored JSON
// and the search column must not depend on the backend.
interface CheckpointRow {
  tree_size: number;
  root_hash: string;
  issued_at: string;
  note: string;
}

function toCheckpoint(r: CheckpointRow): CheckpointRecord {
  return { treeSize: r.tree_size, rootHash: r.root_hash, issuedAt: r.issued_at, note: r.note };
}

interface KeyRow {
  key_id: string;
  secret_hash: string;
  role: Role;
  tenant_id: string | null;
  name: string;
  created_at: string;
  revoked_at: string | null;
}

function toKey(r: KeyRow): ApiKeyRecord {
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
