import type { Database, Statement } from 'better-sqlite3';
import { seqDigest } from '../../retention/seq-digest.js';
import {
  actorEmailIs,
  type CandidateRow,
  type ErasureRow,
  erasureValues,
  groupByTenant,
  type HoldRow,
  holdValues,
  type PolicyRow,
  type PrunedLeafRow,
  type PruneRunRow,
  toCandidate,
  toErasure,
  toHold,
  toPolicy,
  toPrunedLeaf,
  toPruneRun,
  toRedactable,
} from '../retention-rows.js';
import type {
  ErasureRecord,
  ErasureSubject,
  LegalHold,
  PruneCandidate,
  PrunedLeaf,
  PruneRun,
  RedactableRow,
  RedactedRow,
  RetentionPolicy,
  RetentionStore,
} from '../retention-store.js';
import type { RetentionWrite, RetentionWriteValues } from './writer-protocol.js';

/** Sends one retention write to the writer thread and resolves with its answer once committed. */
export type RetentionWriteSender = <K extends RetentionWrite['op']>(
  write: Extract<RetentionWrite, { op: K }>,
) => Promise<RetentionWriteValues[K]>;

/** Pages `reclaimSpace` gives back per call: a few milliseconds of the write lock. */
export const RECLAIM_PAGES_PER_CALL = 2_000;

/** `PRAGMA auto_vacuum` of a file that gives pages back on `incremental_vacuum`. */
const INCREMENTAL = 2;

const CANDIDATE_COLUMNS = 'seq, tenant_id, action, actor_id, resource_type, resource_id, ts';

/**
 * Retention state of a `SqliteStore`. Reads run on the store's reading
 * connection; every write goes to the writer thread
 * ({@link RetentionStateWriter}) and is committed there in a savepoint of
 * its own, so a chunk of pruning or redaction is all done or not done.
 */
export class SqliteRetentionStore implements RetentionStore {
  private readonly stmt: Record<string, Statement>;

  constructor(
    db: Database,
    private readonly write: RetentionWriteSender,
  ) {
    const s = (sql: string) => db.prepare(sql);
    this.stmt = {
      listPolicies: s('SELECT * FROM retention_policies ORDER BY tenant_id'),
      getPolicy: s('SELECT * FROM retention_policies WHERE tenant_id = ?'),
      getHold: s('SELECT * FROM legal_holds WHERE id = ?'),
      listHolds: s(
        `SELECT * FROM legal_holds WHERE (@tenant IS NULL OR tenant_id = @tenant)
           AND (@active = 0 OR lifted_at IS NULL)
         ORDER BY created_at DESC, id DESC LIMIT @limit`,
      ),
      lastKeptAtOrBefore: s(
        "SELECT seq, json_extract(body, '$.received_at') AS received_at FROM events WHERE seq <= ? ORDER BY seq DESC LIMIT 1",
      ),
      maxKept: s('SELECT COALESCE(MAX(seq), 0) FROM events').pluck(),
      candidates: s(
        `SELECT ${CANDIDATE_COLUMNS} FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?`,
      ),
      prunedLeaves: s('SELECT * FROM pruned_leaves WHERE seq > ? AND seq <= ? ORDER BY seq'),
      prunedByRun: s('SELECT tenant_id, seq FROM pruned_leaves WHERE run_id = ? ORDER BY tenant_id, seq'),
      prunedTotals: s('SELECT COUNT(*) AS count, COALESCE(MAX(seq), 0) AS max_seq FROM pruned_leaves'),
      getRun: s('SELECT * FROM prune_runs WHERE id = ?'),
      listRuns: s('SELECT * FROM prune_runs ORDER BY started_at DESC, id DESC LIMIT ?'),
      byActor: s(
        `SELECT ${CANDIDATE_COLUMNS}, body FROM events
         WHERE actor_id = ? AND seq > ? AND tenant_id = ? ORDER BY seq LIMIT ?`,
      ),
      byTypedResource: s(
        `SELECT ${CANDIDATE_COLUMNS}, body FROM events
         WHERE resource_type = ? AND resource_id = ? AND seq > ? AND tenant_id = ? ORDER BY seq LIMIT ?`,
      ),
      // No index serves a resource id of any type: this scans the tenant's
      // rows (through its index on tenant_id), acceptable for erasures,
      // which are rare requests.
      byResource: s(
        `SELECT ${CANDIDATE_COLUMNS}, body FROM events
         WHERE tenant_id = ? AND resource_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
      ),
      // The search text holds the actor's email lowercased: it narrows the
      // rows, and each one found is confirmed on its parsed actor.email.
      bySearch: s(
        `SELECT ${CANDIDATE_COLUMNS}, body FROM events
         WHERE tenant_id = ? AND seq > ? AND instr(search, ?) > 0 ORDER BY seq LIMIT ?`,
      ),
      getErasure: s('SELECT * FROM erasures WHERE id = ?'),
      listErasures: s(
        `SELECT * FROM erasures WHERE (@tenant IS NULL OR tenant_id = @tenant)
         ORDER BY requested_at DESC, id DESC LIMIT @limit`,
      ),
      unfinishedErasures: s("SELECT * FROM erasures WHERE state <> 'done' ORDER BY requested_at, id"),
    };
  }

  async listPolicies(): Promise<RetentionPolicy[]> {
    return (this.stmt.listPolicies!.all() as PolicyRow[]).map(toPolicy);
  }

  async getPolicy(tenantId: string): Promise<RetentionPolicy | undefined> {
    const row = this.stmt.getPolicy!.get(tenantId) as PolicyRow | undefined;
    return row && toPolicy(row);
  }

  async putPolicy(policy: RetentionPolicy): Promise<void> {
    await this.write({ op: 'putPolicy', policy });
  }

  deletePolicy(tenantId: string): Promise<boolean> {
    return this.write({ op: 'deletePolicy', tenantId });
  }

  async createHold(hold: LegalHold): Promise<void> {
    await this.write({ op: 'createHold', hold });
  }

  async getHold(id: string): Promise<LegalHold | undefined> {
    const row = this.stmt.getHold!.get(id) as HoldRow | undefined;
    return row && toHold(row);
  }

  async listHolds(opts: { tenantId?: string; activeOnly?: boolean; limit: number }): Promise<LegalHold[]> {
    const rows = this.stmt.listHolds!.all({
      tenant: opts.tenantId ?? null,
      active: opts.activeOnly ? 1 : 0,
      limit: opts.limit,
    }) as HoldRow[];
    return rows.map(toHold);
  }

  async liftHold(
    id: string,
    lift: { liftedAt: string; liftedBy: string; liftReason: string },
  ): Promise<LegalHold | undefined> {
    const row = await this.write({ op: 'liftHold', id, ...lift });
    return row === null ? undefined : toHold(row);
  }

  /**
   * A binary search over seq: `received_at` (inside the stored JSON here)
   * grows with seq, and the last kept row at or below a seq is one indexed
   * lookup, so gaps left by pruning cost nothing.
   */
  async lastSeqReceivedBefore(instant: string): Promise<number> {
    const lastKept = (seq: number) =>
      this.stmt.lastKeptAtOrBefore!.get(seq) as { seq: number; received_at: string } | undefined;
    // Whether the last kept row at or below `seq` was received before `instant` (true when there is none).
    const before = (seq: number): boolean => {
      const row = lastKept(seq);
      return row === undefined || row.received_at < instant;
    };
    let lo = 0;
    let hi = this.stmt.maxKept!.get() as number;
    while (lo < hi) {
      const mid = Math.floor((lo + hi + 1) / 2);
      if (before(mid)) lo = mid;
      else hi = mid - 1;
    }
    return lo === 0 ? 0 : (lastKept(lo)?.seq ?? 0);
  }

  async pruneCandidates(afterSeq: number, throughSeq: number, limit: number): Promise<PruneCandidate[]> {
    return (this.stmt.candidates!.all(afterSeq, throughSeq, limit) as CandidateRow[]).map(toCandidate);
  }

  pruneEvents(runId: string, seqs: readonly number[]): Promise<number> {
    if (seqs.length === 0) return Promise.resolve(0);
    return this.write({ op: 'pruneEvents', runId, seqs });
  }

  reclaimSpace(): Promise<boolean> {
    return this.write({ op: 'reclaimSpace', pages: RECLAIM_PAGES_PER_CALL });
  }

  async prunedLeaves(afterSeq: number, limit: number): Promise<PrunedLeaf[]> {
    return (this.stmt.prunedLeaves!.all(afterSeq, afterSeq + limit) as PrunedLeafRow[]).map(toPrunedLeaf);
  }

  async prunedByRun(runId: string): Promise<Array<{ tenantId: string; count: number; seqDigest: string }>> {
    return groupByTenant(
      this.stmt.prunedByRun!.iterate(runId) as Iterable<{ tenant_id: string; seq: number }>,
      seqDigest,
    );
  }

  async prunedTotals(): Promise<{ count: number; maxSeq: number }> {
    const row = this.stmt.prunedTotals!.get() as { count: number; max_seq: number };
    return { count: row.count, maxSeq: row.max_seq };
  }

  async createPruneRun(run: PruneRun): Promise<void> {
    await this.write({ op: 'putPruneRun', run, create: true });
  }

  async updatePruneRun(run: PruneRun): Promise<void> {
    await this.write({ op: 'putPruneRun', run, create: false });
  }

  async getPruneRun(id: string): Promise<PruneRun | undefined> {
    const row = this.stmt.getRun!.get(id) as PruneRunRow | undefined;
    return row && toPruneRun(row);
  }

  async listPruneRuns(limit: number): Promise<PruneRun[]> {
    return (this.stmt.listRuns!.all(limit) as PruneRunRow[]).map(toPruneRun);
  }

  async findSubject(
    tenantId: string,
    subject: ErasureSubject,
    afterSeq: number,
    limit: number,
  ): Promise<RedactableRow[]> {
    type Row = CandidateRow & { body: string };
    switch (subject.kind) {
      case 'actor_id':
        return (this.stmt.byActor!.all(subject.value, afterSeq, tenantId, limit) as Row[]).map(toRedactable);
      case 'resource_id': {
        const rows =
          subject.resourceType === undefined
            ? this.stmt.byResource!.all(tenantId, subject.value, afterSeq, limit)
            : this.stmt.byTypedResource!.all(subject.resourceType, subject.value, afterSeq, tenantId, limit);
        return (rows as Row[]).map(toRedactable);
      }
      case 'email': {
        const needle = subject.value.toLowerCase();
        const found: RedactableRow[] = [];
        let after = afterSeq;
        // Rows whose search text holds the email elsewhere (a name, a reason) are skipped, so read on until `limit`.
        for (;;) {
          const rows = this.stmt.bySearch!.all(tenantId, after, needle, limit) as Row[];
          for (const r of rows) {
            if (actorEmailIs(r.body, needle)) found.push(toRedactable(r));
            if (found.length === limit) return found;
          }
          if (rows.length < limit) return found;
          after = Number(rows[rows.length - 1]!.seq);
        }
      }
    }
  }

  async createErasure(erasure: ErasureRecord): Promise<void> {
    await this.write({ op: 'putErasure', erasure, create: true });
  }

  async updateErasure(erasure: ErasureRecord): Promise<void> {
    await this.write({ op: 'putErasure', erasure, create: false });
  }

  async getErasure(id: string): Promise<ErasureRecord | undefined> {
    const row = this.stmt.getErasure!.get(id) as ErasureRow | undefined;
    return row && toErasure(row);
  }

  async listErasures(opts: { tenantId?: string; limit: number }): Promise<ErasureRecord[]> {
    return (
      this.stmt.listErasures!.all({ tenant: opts.tenantId ?? null, limit: opts.limit }) as ErasureRow[]
    ).map(toErasure);
  }

  async unfinishedErasures(): Promise<ErasureRecord[]> {
    return (this.stmt.unfinishedErasures!.all() as ErasureRow[]).map(toErasure);
  }

  redactEvents(rows: readonly RedactedRow[]): Promise<number> {
    if (rows.length === 0) return Promise.resolve(0);
    return this.write({ op: 'redactEvents', rows });
  }
}

/**
 * The writer thread's half: applies retention writes on the write
 * connection, inside the commit that is open, each in a savepoint of its
 * own (a failing write rolls back only itself).
 */
export class RetentionStateWriter {
  private readonly stmt: Record<string, Statement>;

  constructor(private readonly db: Database) {
    const s = (sql: string) => db.prepare(sql);
    this.stmt = {
      putPolicy: s(
        `INSERT INTO retention_policies (tenant_id, days, updated_at, updated_by) VALUES (?,?,?,?)
         ON CONFLICT (tenant_id) DO UPDATE SET days = excluded.days, updated_at = excluded.updated_at,
           updated_by = excluded.updated_by`,
      ),
      deletePolicy: s('DELETE FROM retention_policies WHERE tenant_id = ?'),
      createHold: s(
        `INSERT INTO legal_holds (id, tenant_id, match, reason, created_at, created_by, lifted_at, lifted_by,
           lift_reason) VALUES (?,?,?,?,?,?,?,?,?)`,
      ),
      liftHold: s(
        `UPDATE legal_holds SET lifted_at = ?, lifted_by = ?, lift_reason = ?
         WHERE id = ? AND lifted_at IS NULL RETURNING *`,
      ),
      pruneLeaf: s(
        'INSERT INTO pruned_leaves (seq, tenant_id, leaf_hash, run_id) SELECT seq, tenant_id, leaf_hash, ? FROM events WHERE seq = ?',
      ),
      deleteEvent: s('DELETE FROM events WHERE seq = ?'),
      createRun: s(
        `INSERT INTO prune_runs (id, started_at, finished_at, state, plan, scanned_through, pruned)
         VALUES (?,?,?,?,?,?,?)`,
      ),
      updateRun: s(
        'UPDATE prune_runs SET finished_at = ?, state = ?, scanned_through = ?, pruned = ? WHERE id = ?',
      ),
      createErasure: s(
        `INSERT INTO erasures (id, tenant_id, subject_kind, reason, requested_at, requested_by, state, seqs,
           held, redacted, finished_at, completed_seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`,
      ),
      updateErasure: s(
        'UPDATE erasures SET state = ?, held = ?, redacted = ?, finished_at = ?, completed_seq = ? WHERE id = ?',
      ),
      redact: s('UPDATE events SET body = ?, search = ? WHERE seq = ?'),
      freePages: s('PRAGMA freelist_count').pluck(),
      autoVacuum: s('PRAGMA auto_vacuum').pluck(),
    };
  }

  /** Runs one write in a savepoint of the open transaction. */
  apply(w: RetentionWrite): RetentionWriteValues[keyof RetentionWriteValues] {
    // incremental_vacuum moves pages inside the open transaction; it needs no savepoint of its own.
    if (w.op === 'reclaimSpace') return this.reclaim(w.pages);
    return this.db.transaction(() => this.applyNow(w))();
  }

  private applyNow(w: RetentionWrite): RetentionWriteValues[keyof RetentionWriteValues] {
    switch (w.op) {
      case 'putPolicy': {
        const p = w.policy;
        this.stmt.putPolicy!.run(p.tenantId, p.days, p.updatedAt, p.updatedBy);
        return null;
      }
      case 'deletePolicy':
        return this.stmt.deletePolicy!.run(w.tenantId).changes === 1;
      case 'createHold':
        this.stmt.createHold!.run(...holdValues(w.hold));
        return null;
      case 'liftHold':
        return (
          (this.stmt.liftHold!.get(w.liftedAt, w.liftedBy, w.liftReason, w.id) as HoldRow | undefined) ?? null
        );
      case 'pruneEvents': {
        let moved = 0;
        for (const seq of w.seqs) {
          // A seq already pruned (or never kept) has no events row: nothing is copied or deleted.
          if (this.stmt.pruneLeaf!.run(w.runId, seq).changes === 1) {
            this.stmt.deleteEvent!.run(seq);
            moved++;
          }
        }
        return moved;
      }
      case 'reclaimSpace':
        return this.reclaim(w.pages);
      case 'putPruneRun': {
        const r = w.run;
        if (w.create) {
          this.stmt.createRun!.run(
            r.id,
            r.startedAt,
            r.finishedAt,
            r.state,
            JSON.stringify(r.plan),
            r.scannedThrough,
            r.pruned,
          );
        } else {
          this.stmt.updateRun!.run(r.finishedAt, r.state, r.scannedThrough, r.pruned, r.id);
        }
        return null;
      }
      case 'putErasure': {
        const e = w.erasure;
        if (w.create) this.stmt.createErasure!.run(...erasureValues(e));
        else this.stmt.updateErasure!.run(e.state, e.held, e.redacted, e.finishedAt, e.completedSeq, e.id);
        return null;
      }
      case 'redactEvents': {
        let changed = 0;
        for (const r of w.rows) changed += this.stmt.redact!.run(r.body, r.search, r.seq).changes;
        return changed;
      }
    }
  }

  /**
   * Gives up to `pages` free pages back to the file system; true when none
   * is left. A file made before issue 17 (auto_vacuum NONE) cannot: it
   * reuses its free pages for new events, so there is nothing to do.
   */
  private reclaim(pages: number): boolean {
    if (this.stmt.autoVacuum!.get() !== INCREMENTAL) return true;
    // better-sqlite3 steps the pragma to its end: each step frees one page.
    this.db.pragma(`incremental_vacuum(${Math.max(1, Math.floor(pages))})`);
    return (this.stmt.freePages!.get() as number) === 0;
  }
}
