import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3, { type Database, type Statement } from 'better-sqlite3';
import { TrailwardenError } from '../../errors.js';
import { leafHashOf } from '../../event/canonical.js';
import type { AuditEvent, StoredEvent } from '../../event/event.js';
import { MerkleFrontier } from '../merkle/frontier.js';
import { consistencyProof, inclusionProof, type NodeSource, rootAt } from '../merkle/proofs.js';
import type {
  ApiKeyRecord,
  AppendOutcome,
  CheckpointRecord,
  EventFilter,
  PageRequest,
  PreparedEvent,
  Role,
  Store,
  TreeReader,
} from '../store.js';
import { filterToSql } from './filter-sql.js';
import { migrate, SCHEMA_VERSION } from './schema.js';

interface PendingAppend {
  events: PreparedEvent[];
  resolve: (outcomes: AppendOutcome[]) => void;
  reject: (err: unknown) => void;
}

interface EventRow {
  body: string;
}

/** Another process appended to the file since we loaded the tree's right edge. */
class StaleFrontier extends Error {}

/** Thrown inside a request's savepoint to roll back just that request. */
class ConflictInBatch extends Error {
  constructor(readonly index: number) {
    super('conflict');
  }
}

/**
 * The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`,
 * so every commit is fsync'd before `append` resolves. This process is the
 * single writer and therefore the sequencer: appends queued while a commit is
 * running are committed together (group commit), each request inside its own
 * savepoint so one request's conflict never rolls back another's events.
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  readonly tree: TreeReader;
  private readonly db: Database;
  private frontier!: MerkleFrontier;
  private queue: PendingAppend[] = [];
  private flushScheduled = false;
  private readonly listeners = new Set<(head: number) => void>();
  private readonly stmt: Record<string, Statement>;
  private readonly nodes: NodeSource;
  private closed = false;
  private readOnly = false;

  private constructor(db: Database) {
    this.db = db;
    const s = (sql: string) => db.prepare(sql);
    this.stmt = {
      findExisting: s('SELECT seq, content_hash FROM events WHERE tenant_id = ? AND event_id = ?'),
      insertEvent: s(
        `INSERT INTO events (seq, event_id, tenant_id, ts, action, actor_id, resource_type, resource_id,
           outcome, search, content_hash, leaf_hash, body) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
      ),
      insertNode: s('INSERT INTO tree_nodes (level, idx, hash) VALUES (?,?,?)'),
      leaf: s('SELECT leaf_hash FROM events WHERE seq = ?').pluck(),
      node: s('SELECT hash FROM tree_nodes WHERE level = ? AND idx = ?').pluck(),
      head: s('SELECT COALESCE(MAX(seq), 0) FROM events').pluck(),
      range: s('SELECT body FROM events WHERE seq > ? ORDER BY seq LIMIT ?'),
      byEventIdAll: s('SELECT body FROM events WHERE event_id = ? ORDER BY seq'),
      byEventIdTenant: s('SELECT body FROM events WHERE event_id = ? AND tenant_id = ?'),
      addCheckpoint: s(
        'INSERT OR IGNORE INTO checkpoints (tree_size, root_hash, issued_at, note) VALUES (?,?,?,?)',
      ),
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
   * Opens (creating if needed) the database file and loads the tree's right
   * edge. `readOnly` opens an existing file without writing anything and
   * without trusting its tree nodes: what `verify` needs, which must report a
   * tampered file rather than fail to open it.
   */
  static async open(file: string, opts: { readOnly?: boolean } = {}): Promise<SqliteStore> {
    if (opts.readOnly) return SqliteStore.openReadOnly(file);
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
    const db = new BetterSqlite3(file);
    db.pragma('journal_mode = WAL');
    // FULL: the WAL is fsync'd at every commit, so an acknowledged event survives power loss.
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    db.pragma('cache_size = -65536');
    migrate(db);
    const store = new SqliteStore(db);
    const head = store.stmt.head!.get() as number;
    store.frontier = await MerkleFrontier.load(head, store.nodes);
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
    store.frontier = new MerkleFrontier();
    store.readOnly = true;
    return store;
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
    return new Promise((resolve, reject) => {
      this.queue.push({ events, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        // setImmediate lets every request already parsed in this turn of the
        // event loop join the same commit (one fsync for all of them).
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    const results: Array<{ ok: AppendOutcome[] } | { err: unknown }> = [];
    const before = this.frontier;
    let frontier = before.clone();
    try {
      this.db
        .transaction(() => {
          // Under the write lock: if another process (e.g. `trailwarden keys`
          // recording a key change) appended meanwhile, reload and retry, so
          // seq stays gap-free and the tree stays whole.
          if ((this.stmt.head!.get() as number) !== before.size) throw new StaleFrontier();
          const receivedAt = new Date().toISOString();
          for (const req of batch) {
            const attempt = frontier.clone();
            try {
              const outcomes = this.db.transaction(() =>
                this.appendRequest(req.events, attempt, receivedAt),
              )();
              frontier = attempt;
              results.push({ ok: outcomes });
            } catch (err) {
              results.push({
                err: err instanceof ConflictInBatch ? conflictError(req.events, err.index) : err,
              });
            }
          }
        })
        .immediate();
    } catch (err) {
      this.frontier = before;
      if (err instanceof StaleFrontier) {
        this.queue = [...batch, ...this.queue];
        void this.reloadThenFlush();
        return;
      }
      // The commit itself failed (disk full, I/O error): nothing was stored.
      for (const req of batch) req.reject(err);
      return;
    }
    this.frontier = frontier;
    results.forEach((r, i) => {
      const req = batch[i]!;
      if ('ok' in r) req.resolve(r.ok);
      else req.reject(r.err);
    });
    if (frontier.size !== before.size) for (const l of this.listeners) l(frontier.size);
  }

  private async reloadThenFlush(): Promise<void> {
    this.flushScheduled = true;
    try {
      this.frontier = await MerkleFrontier.load(this.stmt.head!.get() as number, this.nodes);
    } catch (err) {
      const batch = this.queue;
      this.queue = [];
      for (const req of batch) req.reject(err);
    }
    this.flushScheduled = false;
    if (this.queue.length > 0) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private appendRequest(
    events: PreparedEvent[],
    frontier: MerkleFrontier,
    receivedAt: string,
  ): AppendOutcome[] {
    const outcomes: AppendOutcome[] = [];
    events.forEach(({ event, contentHash }, index) => {
      const existing = this.stmt.findExisting!.get(event.tenant_id, event.event_id) as
        | { seq: number; content_hash: string }
        | undefined;
      if (existing) {
        if (existing.content_hash !== contentHash) throw new ConflictInBatch(index);
        outcomes.push({ status: 'duplicate', seq: existing.seq });
        return;
      }
      const seq = frontier.size + 1;
      const stored = toStored(event, seq, receivedAt);
      const leaf = leafHashOf(stored);
      stored.leaf_hash = leaf.toString('base64');
      this.stmt.insertEvent!.run(
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
      );
      for (const n of frontier.append(leaf)) {
        if (n.level > 0) this.stmt.insertNode!.run(n.level, n.index, n.hash);
      }
      outcomes.push({ status: 'created', seq });
    });
    return outcomes;
  }

  async headSeq(): Promise<number> {
    return this.frontier.size;
  }

  async readRange(afterSeq: number, limit: number): Promise<StoredEvent[]> {
    return (this.stmt.range!.all(afterSeq, limit) as EventRow[]).map(parseRow);
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

  async addCheckpoint(cp: CheckpointRecord): Promise<void> {
    this.stmt.addCheckpoint!.run(cp.treeSize, cp.rootHash, cp.issuedAt, cp.note);
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
    if (this.queue.length > 0) this.flush();
    this.listeners.clear();
    this.db.close();
  }
}

function toStored(event: AuditEvent, seq: number, receivedAt: string): StoredEvent {
  // Key order follows EVENT_FIELDS so the served JSON reads naturally; the
  // leaf hash is over JCS, which sorts keys, so order never affects it.
  const { event_id, timestamp, ...rest } = event;
  return { seq, event_id, timestamp, received_at: receivedAt, ...rest, leaf_hash: '' };
}

function searchText(e: AuditEvent): string {
  return [e.actor.name, e.actor.email, e.resource?.name, e.reason]
    .filter((v): v is string => typeof v === 'string')
    .join('\n')
    .toLowerCase();
}

function parseRow(row: EventRow): StoredEvent {
  return JSON.parse(row.body) as StoredEvent;
}

function conflictError(events: PreparedEvent[], index: number): TrailwardenError {
  const id = events[index]?.event.event_id ?? '';
  return new TrailwardenError(
    'TW_ERR_EVENT_CONFLICT',
    `event_id ${id} was already stored with different content; use a new event_id for a new event, or resend the original content unchanged. Nothing from this batch was stored.`,
    { problems: [{ index, path: 'event_id', message: `event_id ${id} already holds a different event` }] },
  );
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
