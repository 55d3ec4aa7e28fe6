import type { Database, Statement } from 'better-sqlite3';
import type {
  CursorMove,
  DeadLetter,
  DeadLetterInput,
  DeliveryStore,
  SinkConfigRecord,
  SinkState,
} from '../store.js';

interface StateRow {
  name: string;
  cursor: number;
  inflight_to: number | null;
  epoch: number;
  paused: number;
  disabled_reason: string | null;
  updated_at: string;
}

interface DeadLetterRow {
  id: number;
  sink: string;
  seq: number;
  event_id: string;
  reason: string;
  attempts: number;
  parked_at: string;
  last_attempt_at: string;
}

const toState = (r: StateRow): SinkState => ({
  name: r.name,
  cursor: r.cursor,
  inflightTo: r.inflight_to,
  epoch: r.epoch,
  paused: r.paused === 1,
  disabledReason: r.disabled_reason,
  updatedAt: r.updated_at,
});

const toDeadLetter = (r: DeadLetterRow): DeadLetter => ({
  id: r.id,
  sink: r.sink,
  seq: r.seq,
  eventId: r.event_id,
  reason: r.reason,
  attempts: r.attempts,
  parkedAt: r.parked_at,
  lastAttemptAt: r.last_attempt_at,
});

/**
 * Delivery state on its own connection with `synchronous=NORMAL`: a cursor
 * move is not fsync'd, because losing the last few moves in a power cut only
 * means re-delivering those events, which at-least-once allows; events
 * themselves stay on the FULL connection. Every move is a compare-and-set.
 */
export class SqliteDeliveryStore implements DeliveryStore {
  private readonly stmt: Record<string, Statement>;

  constructor(private readonly db: Database) {
    const s = (sql: string) => db.prepare(sql);
    this.stmt = {
      listConfigs: s('SELECT * FROM sink_configs ORDER BY name'),
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
      listLetters: s('SELECT * FROM dead_letters WHERE sink = ? AND id > ? ORDER BY id LIMIT ?'),
      countLetters: s('SELECT COUNT(*) FROM dead_letters WHERE sink = ?').pluck(),
      letterAttempt: s(
        'UPDATE dead_letters SET attempts = attempts + 1, reason = ?, last_attempt_at = ? WHERE sink = ? AND id = ?',
      ),
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
    this.stmt.putConfig!.run(rec.name, rec.config, rec.tenantId, rec.createdAt, rec.updatedAt);
  }

  async deleteSinkConfig(name: string): Promise<boolean> {
    return this.stmt.deleteConfig!.run(name).changes === 1;
  }

  async ensureSinkState(name: string, initialCursor: number): Promise<SinkState> {
    this.stmt.insertState!.run(name, initialCursor, new Date().toISOString());
    return toState(this.stmt.getState!.get(name) as StateRow);
  }

  async getSinkState(name: string): Promise<SinkState | undefined> {
    const row = this.stmt.getState!.get(name) as StateRow | undefined;
    return row ? toState(row) : undefined;
  }

  async moveSinkCursor(
    name: string,
    expected: number,
    next: number,
    opts: { inflightTo?: number | null; park?: DeadLetterInput[]; epochBump?: boolean } = {},
  ): Promise<CursorMove> {
    const now = new Date().toISOString();
    const move = this.db.transaction((): CursorMove => {
      const changed = this.stmt.move!.run(
        next,
        opts.inflightTo ?? null,
        opts.epochBump ? 1 : 0,
        now,
        name,
        expected,
      );
      if (changed.changes !== 1) {
        const row = this.stmt.getState!.get(name) as StateRow | undefined;
        return { ok: false, actual: row?.cursor };
      }
      for (const p of opts.park ?? [])
        this.stmt.park!.run(name, p.seq, p.eventId, p.reason, p.attempts, now, now);
      return { ok: true, state: toState(this.stmt.getState!.get(name) as StateRow) };
    });
    return move.immediate();
  }

  async setSinkFlags(
    name: string,
    flags: { paused?: boolean; disabledReason?: string | null },
  ): Promise<void> {
    const now = new Date().toISOString();
    if (flags.paused !== undefined) this.stmt.setPaused!.run(flags.paused ? 1 : 0, now, name);
    if (flags.disabledReason !== undefined) this.stmt.setDisabled!.run(flags.disabledReason, now, name);
  }

  async deleteSinkState(name: string): Promise<void> {
    this.db.transaction(() => {
      this.stmt.deleteState!.run(name);
      this.stmt.deleteLetters!.run(name);
    })();
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
    return this.db
      .prepare(`DELETE FROM dead_letters WHERE sink = ? AND id IN (${ids.map(() => '?').join(',')})`)
      .run(sink, ...ids).changes;
  }

  async recordDeadLetterAttempt(sink: string, id: number, reason: string): Promise<void> {
    this.stmt.letterAttempt!.run(reason, new Date().toISOString(), sink, id);
  }
}
