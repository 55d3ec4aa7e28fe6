/**
 * The SQLite writer thread: the single sequencer of a `SqliteStore`. It owns
 * the write connection and the Merkle frontier, and commits each batch of
 * append requests the store sends it in one transaction (one fsync); a
 * request refused for a conflict writes nothing. Running here, the commit
 * and its fsync overlap HTTP parsing and validation on the main thread.
 *
 * Delivery state (cursors, sink configs, dead letters) is written here too,
 * in the same commits, so the main thread never waits for the write lock.
 *
 * Protocol (`writer-protocol.ts`): the store sends one `commit` at a time and
 * the writer answers each with `committed` or `failed`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import BetterSqlite3, { type Database, type Statement } from 'better-sqlite3';
import { MerkleFrontier } from '../merkle/frontier.js';
import type { NodeSource } from '../merkle/proofs.js';
import { isStoredNode, storedNodes } from '../merkle/stored-nodes.js';
import type { AppendOutcome, CheckpointRecord, PreparedEvent } from '../store.js';
import { indexedValues, sequencedRow } from '../stored-event.js';
import { DeliveryStateWriter } from './sqlite-delivery-store.js';
import { RetentionStateWriter } from './sqlite-retention-store.js';
import { LEAVES_SQL } from './sqlite-tree.js';
import {
  type DeliveryWriteResult,
  isRetentionWrite,
  openWriteConnection,
  type RequestResult,
  type StateWrite,
  serializeError,
  type ToWriter,
  WRITER_CACHE_KIB,
  type WriterData,
  type WriterReply,
} from './writer-protocol.js';

/** Another process appended to the file since we loaded the tree's right edge. */
class StaleFrontier extends Error {}

/** What the checks before a request's inserts decided for one event. */
type Decision = { duplicateOf: number } | { sameAs: number } | 'insert';

class Writer {
  private frontier = new MerkleFrontier();
  /** Tenants known to be in `tenants` (committed), so a tenant costs one write ever. */
  private readonly tenants = new Set<string>();
  private readonly stmt: Record<string, Statement>;
  private readonly nodes: NodeSource;
  private readonly delivery: DeliveryStateWriter;
  private readonly retention: RetentionStateWriter;

  constructor(private readonly db: Database) {
    this.delivery = new DeliveryStateWriter(db);
    this.retention = new RetentionStateWriter(db);
    const s = (sql: string) => db.prepare(sql);
    this.stmt = {
      findExisting: s('SELECT seq, content_hash FROM events WHERE tenant_id = ? AND event_id = ?'),
      insertEvent: s(
        `INSERT INTO events (seq, event_id, tenant_id, ts, action, actor_id, resource_type, resource_id,
           outcome, search, content_hash, leaf_hash, body) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
      ),
      insertNode: s('INSERT INTO tree_nodes (level, idx, hash) VALUES (?,?,?)'),
      insertTenant: s('INSERT OR IGNORE INTO tenants (tenant_id) VALUES (?)'),
      leaves: s(LEAVES_SQL).pluck(),
      node: s('SELECT hash FROM tree_nodes WHERE level = ? AND idx = ?').pluck(),
      // A pruned event's seq is still in the log: the head may be a pruned leaf.
      head: s(
        `SELECT MAX((SELECT COALESCE(MAX(seq), 0) FROM events),
                    (SELECT COALESCE(MAX(seq), 0) FROM pruned_leaves))`,
      ).pluck(),
      addCheckpoint: s(
        'INSERT OR IGNORE INTO checkpoints (tree_size, root_hash, issued_at, note) VALUES (?,?,?,?)',
      ),
      probe: s(
        `INSERT INTO meta (name, value) VALUES ('write_probe', ?)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
      ),
    };
    this.nodes = storedNodes({
      leaves: (from, count) =>
        this.stmt.leaves!.all(from + 1, from + count, from + 1, from + count) as Buffer[],
      inner: (level, index) => this.stmt.node!.get(level, index) as Buffer | undefined,
    });
  }

  async load(): Promise<void> {
    this.frontier = await MerkleFrontier.load(this.stmt.head!.get() as number, this.nodes);
  }

  head(): { head: number; edge: WriterReply['edge'] } {
    return { head: this.frontier.size, edge: this.frontier.edge.map((n) => ({ ...n })) };
  }

  /** Commits every request in one transaction; a stale frontier is reloaded and the commit retried. */
  async commit(
    requests: PreparedEvent[][],
    checkpoints: CheckpointRecord[],
    deliveryWrites: StateWrite[],
    probe: boolean,
  ): Promise<{ results: RequestResult[]; deliveryResults: DeliveryWriteResult[] }> {
    // A commit of delivery state alone is not fsync'd: losing it in a power
    // cut only re-delivers events (at-least-once). Its WAL frames are
    // fsync'd by the next commit that carries events.
    const stateOnly = requests.length === 0 && checkpoints.length === 0;
    if (stateOnly) this.db.pragma('synchronous = NORMAL');
    try {
      for (;;) {
        try {
          return this.commitOnce(requests, checkpoints, deliveryWrites, probe);
        } catch (err) {
          if (!(err instanceof StaleFrontier)) throw err;
          await this.load();
        }
      }
    } finally {
      if (stateOnly) this.db.pragma('synchronous = FULL');
    }
  }

  private commitOnce(
    requests: PreparedEvent[][],
    checkpoints: CheckpointRecord[],
    deliveryWrites: StateWrite[],
    probe: boolean,
  ): { results: RequestResult[]; deliveryResults: DeliveryWriteResult[] } {
    const before = this.frontier;
    const frontier = before.clone();
    const results: RequestResult[] = [];
    const deliveryResults: DeliveryWriteResult[] = [];
    const newTenants: string[] = [];
    this.db
      .transaction(() => {
        // Under the write lock: if another process (e.g. `trailwarden keys`
        // recording a key change) appended meanwhile, reload and retry, so
        // seq stays gap-free and the tree stays whole.
        if ((this.stmt.head!.get() as number) !== before.size) throw new StaleFrontier();
        if (probe) this.stmt.probe!.run(new Date().toISOString());
        for (const cp of checkpoints)
          this.stmt.addCheckpoint!.run(cp.treeSize, cp.rootHash, cp.issuedAt, cp.note);
        for (const events of requests) {
          for (const { event } of events) {
            if (this.tenants.has(event.tenant_id) || newTenants.includes(event.tenant_id)) continue;
            // Even for a request refused below: a tenant row without events is harmless.
            this.stmt.insertTenant!.run(event.tenant_id);
            newTenants.push(event.tenant_id);
          }
        }
        const receivedAt = new Date().toISOString();
        for (const events of requests) {
          // Every conflict is found before the request writes anything, so a
          // refused request needs no savepoint to roll back (two statements
          // fewer per request, which single-event loads pay per event).
          const decided = this.decide(events);
          results.push(
            typeof decided === 'number'
              ? { conflict: decided }
              : { ok: this.appendRequest(events, decided, frontier, receivedAt) },
          );
        }
        // In the order the main thread issued them, so compare-and-sets see each other.
        for (const w of deliveryWrites) {
          try {
            deliveryResults.push({
              value: isRetentionWrite(w) ? this.retention.apply(w) : this.delivery.apply(w),
            });
          } catch (err) {
            deliveryResults.push({ error: serializeError(err) });
          }
        }
      })
      .immediate();
    this.frontier = frontier;
    for (const t of newTenants) this.tenants.add(t);
    return { results, deliveryResults };
  }

  /**
   * Looks up every event of a request before any is written: the index of
   * the first event whose `event_id` holds other content (stored, or earlier
   * in the same request), or what to do with each event.
   */
  private decide(events: PreparedEvent[]): number | Decision[] {
    const decisions: Decision[] = [];
    const inRequest = new Map<string, number>();
    for (let i = 0; i < events.length; i++) {
      const { event, contentHash } = events[i]!;
      const key = `${event.tenant_id}\u0000${event.event_id}`;
      const earlier = inRequest.get(key);
      if (earlier !== undefined) {
        if (events[earlier]!.contentHash !== contentHash) return i;
        decisions.push({ sameAs: earlier });
        continue;
      }
      const existing = this.stmt.findExisting!.get(event.tenant_id, event.event_id) as
        | { seq: number; content_hash: string }
        | undefined;
      if (existing !== undefined) {
        if (existing.content_hash !== contentHash) return i;
        decisions.push({ duplicateOf: existing.seq });
        continue;
      }
      inRequest.set(key, i);
      decisions.push('insert');
    }
    return decisions;
  }

  private appendRequest(
    events: PreparedEvent[],
    decisions: Decision[],
    frontier: MerkleFrontier,
    receivedAt: string,
  ): AppendOutcome[] {
    const outcomes: AppendOutcome[] = [];
    events.forEach(({ event, contentHash, canonical }, index) => {
      const decision = decisions[index]!;
      if (decision !== 'insert') {
        const seq = 'duplicateOf' in decision ? decision.duplicateOf : outcomes[decision.sameAs]!.seq;
        outcomes.push({ status: 'duplicate', seq });
        return;
      }
      const seq = frontier.size + 1;
      const r = sequencedRow(event, seq, receivedAt, canonical);
      this.stmt.insertEvent!.run(r.seq, ...indexedValues(r), contentHash, r.leaf, r.body);
      for (const n of frontier.append(r.leaf)) {
        if (isStoredNode(n.level)) this.stmt.insertNode!.run(n.level, n.index, n.hash);
      }
      outcomes.push({ status: 'created', seq });
    });
    return outcomes;
  }
}

async function main(): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('sqlite-writer runs only as a worker thread');
  const { file } = workerData as WriterData;
  const reply = (msg: WriterReply) => port.postMessage(msg);
  let db: Database;
  let writer: Writer;
  try {
    db = openWriteConnection(new BetterSqlite3(file), WRITER_CACHE_KIB);
    writer = new Writer(db);
    await writer.load();
  } catch (err) {
    reply({ type: 'failed', error: serializeError(err), ...emptyHead() });
    return;
  }
  reply({ type: 'ready', ...writer.head() });
  port.on('message', (msg: ToWriter) => {
    if (msg.type === 'close') {
      db.close();
      port.close();
      return;
    }
    writer.commit(msg.requests, msg.checkpoints, msg.deliveryWrites, msg.probe).then(
      (r) => reply({ type: 'committed', ...r, ...writer.head() }),
      // The commit itself failed (disk full, I/O error): nothing was stored.
      (err: unknown) => reply({ type: 'failed', error: serializeError(err), ...writer.head() }),
    );
  });
}

function emptyHead(): { head: number; edge: WriterReply['edge'] } {
  return { head: 0, edge: [] };
}

void main();
