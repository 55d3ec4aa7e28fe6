import type { Database, Statement } from 'better-sqlite3';
import { type DeadLetterRow, type SinkStateRow, toDeadLetter, toSinkState } from '../delivery-rows.js';
import type {
  CursorMove,
  DeadLetter,
  DeadLetterInput,
  DeliveryStore,
  LeaseRecord,
  SinkConfigRecord,
  SinkState,
} from '../store.js';
import type { DeliveryWrite, DeliveryWriteValues } from './writer-protocol.js';

/** SQLite's clock in Unix milliseconds, read when the statement runs (the lease clock). */
const NOW_MS = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";

/** Sends one delivery write to the writer thread and resolves with its answer once committed. */
export type DeliveryWriteSender = <K extends DeliveryWrite['op']>(
  write: Extract<DeliveryWrite, { op: K }>,
) => Promise<DeliveryWriteValues[K]>;

/**
 * Delivery state of a `SqliteStore`. Reads run on the store's reading
 * connection; every write is sent to the writer thread
 * ({@link DeliveryStateWriter}) and committed there, so the event loop never
 * sleeps on the SQLite write lock. A commit holding only delivery writes is
 * not fsync'd (`synchronous=NORMAL` for that commit):
 * losing the last cursor moves in a power cut only re-delivers those events,
 * which at-least-once allows. Every cursor move is a compare-and-set, executed
 * in the writer.
 */
export class SqliteDeliveryStore implements DeliveryStore {
  private readonly stmt: Record<string, Statement>;

  constructor(
    private readonly db: Database,
    private readonly write: DeliveryWriteSender,
  ) {
    const s = (sql: string) => db.prepare(sql);
    this.stmt = {
      listConfigs: s('SELECT * FROM sink_configs ORDER BY name'),
      getState: s('SELECT * FROM sink_states WHERE name = ?'),
      listLetters: s('SELECT * FROM dead_letters WHERE sink = ? AND id > ? ORDER BY id LIMIT ?'),
      countLetters: s('SELECT COUNT(*) FROM dead_letters WHERE sink = ?').pluck(),
      redriveRequests: s(
        'SELECT * FROM dead_letters WHERE sink = ? AND redrive_requested_at IS NOT NULL ORDER BY id LIMIT ?',
      ),
      leaseHolder: s(`SELECT holder, expires_at FROM leases WHERE name = ? AND expires_at >= ${NOW_MS}`),
    };
  }

  async listSinkConfigs(): Promise<SinkConfigRecord[]> {
    return (this.stmt.listConfigs!.all() as Array<Record<string, string | null>>).map((r) => ({
      name: r['name']!,
      config: r['config']!,
      tenantId: r['tenant_id'] ?? null,
      createdAt: r['created_at']!,
      updatedAt: r['updated_at']!,
    }));
  }

  async putSinkConfig(rec: SinkConfigRecord): Promise<void> {
    await this.write({ op: 'putConfig', rec });
  }

  deleteSinkConfig(name: string): Promise<boolean> {
    return this.write({ op: 'deleteConfig', name });
  }

  ensureSinkState(name: string, initialCursor: number): Promise<SinkState> {
    return this.write({ op: 'ensureState', name, initialCursor, now: new Date().toISOString() });
  }

  async getSinkState(name: string): Promise<SinkState | undefined> {
    const row = this.stmt.getState!.get(name) as SinkStateRow | undefined;
    return row ? toSinkState(row) : undefined;
  }

  moveSinkCursor(
    name: string,
    expected: number,
    next: number,
    opts: { inflightTo?: number | null; park?: DeadLetterInput[]; epochBump?: boolean } = {},
  ): Promise<CursorMove> {
    return this.write({
      op: 'moveCursor',
      name,
      expected,
      next,
      inflightTo: opts.inflightTo ?? null,
      park: opts.park ?? [],
      epochBump: opts.epochBump ?? false,
      now: new Date().toISOString(),
    });
  }

  async setSinkFlags(
    name: string,
    flags: { paused?: boolean; disabledReason?: string | null },
  ): Promise<void> {
    await this.write({ op: 'setFlags', name, ...flags, now: new Date().toISOString() });
  }

  async deleteSinkState(name: string): Promise<void> {
    await this.write({ op: 'deleteState', name });
  }

  async listDeadLetters(sink: string, page: { afterId?: number; limit: number }): Promise<DeadLetter[]> {
    return (this.stmt.listLetters!.all(sink, page.afterId ?? 0, page.limit) as DeadLetterRow[]).map(
      toDeadLetter,
    );
  }

  async getDeadLetters(sink: string, ids: number[]): Promise<DeadLetter[]> {
    if (ids.length === 0) return [];
    const rows = this.db
      .prepare(
        `SELECT * FROM dead_letters WHERE sink = ? AND id IN (${ids.map(() => '?').join(',')}) ORDER BY id`,
      )
      .all(sink, ...ids) as DeadLetterRow[];
    return rows.map(toDeadLetter);
  }

  async countDeadLetters(sink: string): Promise<number> {
    return this.stmt.countLetters!.get(sink) as number;
  }

  async removeDeadLetters(sink: string, ids: number[]): Promise<number> {
    if (ids.length === 0) return 0;
    return this.write({ op: 'removeLetters', sink, ids });
  }

  async recordDeadLetterAttempt(sink: string, id: number, reason: string): Promise<void> {
    await this.write({ op: 'letterAttempt', sink, id, reason, now: new Date().toISOString() });
  }

  async requestRedrive(sink: string, ids: number[], at: string): Promise<DeadLetter[]> {
    if (ids.length === 0) return [];
    return (await this.write({ op: 'requestRedrive', sink, ids, at })).map(toDeadLetter);
  }

  async redriveRequests(sink: string, limit: number): Promise<DeadLetter[]> {
    return (this.stmt.redriveRequests!.all(sink, limit) as DeadLetterRow[]).map(toDeadLetter);
  }

  acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    return this.write({ op: 'acquireLease', name, holder, ttlMs });
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    await this.write({ op: 'releaseLease', name, holder });
  }

  async leaseHolder(name: string): Promise<LeaseRecord | undefined> {
    const row = this.stmt.leaseHolder!.get(name) as { holder: string; expires_at: number } | undefined;
    return row && { holder: row.holder, expiresAt: new Date(row.expires_at).toISOString() };
  }
}

/**
 * The writer thread's half: applies delivery writes on the write connection,
 * inside the commit that is open. Each write runs in its own savepoint, so a
 * failing write rolls back only itself.
 */
export class DeliveryStateWriter {
  private readonly stmt: Record<string, Statement>;

  constructor(private readonly db: Database) {
    const s = (sql: string) => db.prepare(sql);
    this.stmt = {
      putConfig: s(
        `INSERT INTO sink_configs (name, config, tenant_id, created_at, updated_at) VALUES (?,?,?,?,?)
         ON CONFLICT (name) DO UPDATE SET config = excluded.config, tenant_id = excluded.tenant_id,
           updated_at = excluded.updated_at`,
      ),
      deleteConfig: s('DELETE FROM sink_configs WHERE name = ?'),
      getState: s('SELECT * FROM sink_states WHERE name = ?'),
      insertState: s('INSERT OR IGNORE INTO sink_states (name, cursor, updated_at) VALUES (?, ?, ?)'),
      move: s(
        `UPDATE sink_states SET cursor = ?, inflight_to = ?, epoch = epoch + ?, updated_at = ?
         WHERE name = ? AND cursor = ?`,
      ),
      setPaused: s('UPDATE sink_states SET paused = ?, updated_at = ? WHERE name = ?'),
      setDisabled: s('UPDATE sink_states SET disabled_reason = ?, updated_at = ? WHERE name = ?'),
      deleteState: s('DELETE FROM sink_states WHERE name = ?'),
      deleteLetters: s('DELETE FROM dead_letters WHERE sink = ?'),
      park: s(
        `INSERT INTO dead_letters (sink, seq, event_id, reason, attempts, parked_at, last_attempt_at)
         VALUES (?,?,?,?,?,?,?)`,
      ),
      letterAttempt: s(
        `UPDATE dead_letters SET attempts = attempts + 1, reason = ?, last_attempt_at = ?, redrive_requested_at = NULL
         WHERE sink = ? AND id = ?`,
      ),
      // Take or renew in one statement: the update happens only for the same holder or after expiry.
      acquireLease: s(
        `INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ${NOW_MS} + ?)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
         WHERE leases.holder = excluded.holder OR leases.expires_at < ${NOW_MS}
         RETURNING holder`,
      ),
      releaseLease: s('DELETE FROM leases WHERE name = ? AND holder = ?'),
    };
  }

  /** Runs one write in a savepoint of the open transaction. */
  apply(w: DeliveryWrite): DeliveryWriteValues[keyof DeliveryWriteValues] {
    return this.db.transaction(() => this.applyNow(w))();
  }

  private applyNow(w: DeliveryWrite): DeliveryWriteValues[keyof DeliveryWriteValues] {
    switch (w.op) {
      case 'putConfig': {
        const r = w.rec;
        this.stmt.putConfig!.run(r.name, r.config, r.tenantId, r.createdAt, r.updatedAt);
        return null;
      }
      case 'deleteConfig':
        return this.stmt.deleteConfig!.run(w.name).changes === 1;
      case 'ensureState':
        this.stmt.insertState!.run(w.name, w.initialCursor, w.now);
        return toSinkState(this.stmt.getState!.get(w.name) as SinkStateRow);
      case 'moveCursor':
        return this.move(w);
      case 'setFlags':
        if (w.paused !== undefined) this.stmt.setPaused!.run(w.paused ? 1 : 0, w.now, w.name);
        if (w.disabledReason !== undefined) this.stmt.setDisabled!.run(w.disabledReason, w.now, w.name);
        return null;
      case 'deleteState':
        this.stmt.deleteState!.run(w.name);
        this.stmt.deleteLetters!.run(w.name);
        return null;
      case 'removeLetters':
        return this.db
          .prepare(`DELETE FROM dead_letters WHERE sink = ? AND id IN (${w.ids.map(() => '?').join(',')})`)
          .run(w.sink, ...w.ids).changes;
      case 'letterAttempt':
        this.stmt.letterAttempt!.run(w.reason, w.now, w.sink, w.id);
        return null;
      case 'requestRedrive':
        return (
          this.db
            .prepare(
              `UPDATE dead_letters SET redrive_requested_at = ?
               WHERE sink = ? AND id IN (${w.ids.map(() => '?').join(',')}) RETURNING *`,
            )
            .all(w.at, w.sink, ...w.ids) as DeadLetterRow[]
        ).sort((a, b) => a.id - b.id);
      case 'acquireLease':
        return this.stmt.acquireLease!.get(w.name, w.holder, Math.round(w.ttlMs)) !== undefined;
      case 'releaseLease':
        this.stmt.releaseLease!.run(w.name, w.holder);
        return null;
    }
  }

  /** The compare-and-set: moves only from `expected`; parks in the same savepoint or not at all. */
  private move(w: Extract<DeliveryWrite, { op: 'moveCursor' }>): CursorMove {
    const changed = this.stmt.move!.run(w.next, w.inflightTo, w.epochBump ? 1 : 0, w.now, w.name, w.expected);
    if (changed.changes !== 1) {
      const row = this.stmt.getState!.get(w.name) as SinkStateRow | undefined;
      return { ok: false, actual: row?.cursor };
    }
    for (const p of w.park) this.stmt.park!.run(w.name, p.seq, p.eventId, p.reason, p.attempts, w.now, w.now);
    return { ok: true, state: toSinkState(this.stmt.getState!.get(w.name) as SinkStateRow) };
  }
}
