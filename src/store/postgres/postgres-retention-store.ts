// Past 400 lines: one class per backend implements the whole RetentionStore
// contract (as each backend's delivery store does), reads and writes side by side.
import type { Pool, PoolClient, QueryResultRow } from 'pg';
import { seqDigest } from '../../retention/seq-digest.js';
import {
  actorEmailIs,
  type CandidateRow,
  type ErasureRow,
  erasureValues,
  groupByTenant,
  type HoldRow,
  holdValues,
  lastSeqBefore,
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
import { existingMonths, type Month, monthOfIso, partitionName } from './partitions.js';
import { inTransaction, onClient, toStoreError } from './postgres-connection.js';

const CANDIDATE_COLUMNS = 'seq, tenant_id, action, actor_id, resource_type, resource_id, ts';

/**
 * How long pruning waits for the lock that dropping a monthly partition
 * takes on `events` (every append and read needs it too): it never queues
 * behind a long query for it, and deletes the rows instead (as
 * partitions.ts does when it creates one).
 */
const PARTITION_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '2s'";

/**
 * Retention state of a `PostgresStore`. Any node may prune (the service
 * takes a lease so that one does): each write is one transaction, and two
 * nodes pruning one seq at once move it once (the second DELETE finds no
 * row). Pruning deletes rows; when one call's seqs cover every row of a
 * past month's partition, the partition's leaves are copied and the
 * partition dropped instead, which gives its space back at once.
 */
export class PostgresRetentionStore implements RetentionStore {
  constructor(private readonly pool: Pool) {}

  private async rows<R extends QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
    try {
      return (await this.pool.query<R>(sql, params)).rows;
    } catch (err) {
      throw toStoreError(err);
    }
  }

  async listPolicies(): Promise<RetentionPolicy[]> {
    return (await this.rows<PolicyRow>('SELECT * FROM retention_policies ORDER BY tenant_id')).map(toPolicy);
  }

  async getPolicy(tenantId: string): Promise<RetentionPolicy | undefined> {
    const [row] = await this.rows<PolicyRow>('SELECT * FROM retention_policies WHERE tenant_id = $1', [
      tenantId,
    ]);
    return row && toPolicy(row);
  }

  async putPolicy(p: RetentionPolicy): Promise<void> {
    await this.rows(
      `INSERT INTO retention_policies (tenant_id, days, updated_at, updated_by) VALUES ($1, $2, $3, $4)
       ON CONFLICT (tenant_id) DO UPDATE SET days = excluded.days, updated_at = excluded.updated_at,
         updated_by = excluded.updated_by`,
      [p.tenantId, p.days, p.updatedAt, p.updatedBy],
    );
  }

  async deletePolicy(tenantId: string): Promise<boolean> {
    const gone = await this.rows('DELETE FROM retention_policies WHERE tenant_id = $1 RETURNING tenant_id', [
      tenantId,
    ]);
    return gone.length === 1;
  }

  async createHold(hold: LegalHold): Promise<void> {
    await this.rows(
      `INSERT INTO legal_holds (id, tenant_id, match, reason, created_at, created_by, lifted_at, lifted_by,
         lift_reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      holdValues(hold),
    );
  }

  async getHold(id: string): Promise<LegalHold | undefined> {
    const [row] = await this.rows<HoldRow>('SELECT * FROM legal_holds WHERE id = $1', [id]);
    return row && toHold(row);
  }

  async listHolds(opts: { tenantId?: string; activeOnly?: boolean; limit: number }): Promise<LegalHold[]> {
    const rows = await this.rows<HoldRow>(
      `SELECT * FROM legal_holds WHERE ($1::text IS NULL OR tenant_id = $1) AND (NOT $2 OR lifted_at IS NULL)
       ORDER BY created_at DESC, id DESC LIMIT $3`,
      [opts.tenantId ?? null, opts.activeOnly === true, opts.limit],
    );
    return rows.map(toHold);
  }

  async liftHold(
    id: string,
    lift: { liftedAt: string; liftedBy: string; liftReason: string },
  ): Promise<LegalHold | undefined> {
    const [row] = await this.rows<HoldRow>(
      `UPDATE legal_holds SET lifted_at = $1, lifted_by = $2, lift_reason = $3
       WHERE id = $4 AND lifted_at IS NULL RETURNING *`,
      [lift.liftedAt, lift.liftedBy, lift.liftReason, id],
    );
    return row && toHold(row);
  }

  /** A binary search over seq (`lastSeqBefore`): each step one lookup in the partitions' primary keys. */
  async lastSeqReceivedBefore(instant: string): Promise<number> {
    const [max] = await this.rows<{ seq: number | null }>('SELECT MAX(seq) AS seq FROM events');
    return lastSeqBefore(Number(max?.seq ?? 0), async (seq) => {
      const [row] = await this.rows<{ seq: number; before: boolean }>(
        `SELECT seq, received_at < $2::timestamptz AS before FROM events
         WHERE seq <= $1 ORDER BY seq DESC LIMIT 1`,
        [seq, instant],
      );
      return row && { seq: Number(row.seq), before: row.before };
    });
  }

  async pruneCandidates(afterSeq: number, throughSeq: number, limit: number): Promise<PruneCandidate[]> {
    const rows = await this.rows<CandidateRow>(
      `SELECT ${CANDIDATE_COLUMNS} FROM events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3`,
      [afterSeq, throughSeq, limit],
    );
    return rows.map(toCandidate);
  }

  async pruneEvents(runId: string, seqs: readonly number[]): Promise<number> {
    if (seqs.length === 0) return 0;
    return inTransaction(this.pool, async (c) => {
      let moved = 0;
      let rest = [...seqs];
      for (const part of await this.wholePastPartitions(c, rest)) {
        const dropped = await this.dropPartition(c, part.name, runId);
        if (dropped === undefined) continue;
        moved += dropped;
        rest = rest.filter((s) => !part.seqs.has(s));
      }
      if (rest.length === 0) return moved;
      // The event's key goes with it: idempotency on event_id lasts as long as the event is kept.
      const r = await c.query(
        `WITH d AS (
           DELETE FROM events WHERE seq = ANY($2::bigint[]) RETURNING seq, tenant_id, event_id, leaf_hash
         ), k AS (
           DELETE FROM event_keys ek USING d
           WHERE ek.tenant_id = d.tenant_id AND ek.event_id = d.event_id AND ek.seq = d.seq
         )
         INSERT INTO pruned_leaves (seq, tenant_id, leaf_hash, run_id)
         SELECT seq, tenant_id, leaf_hash, $1 FROM d ON CONFLICT (seq) DO NOTHING`,
        [runId, rest],
      );
      return moved + (r.rowCount ?? 0);
    });
  }

  /** The partitions of months before this one every kept row of which is among `seqs`. */
  private async wholePastPartitions(
    c: PoolClient,
    seqs: readonly number[],
  ): Promise<Array<{ name: string; seqs: Set<number> }>> {
    const thisMonth = partitionName(monthOfIso(new Date().toISOString()));
    const byPart = await c.query<{ part: string; seqs: Array<number | string> }>(
      `SELECT tableoid::regclass::text AS part, array_agg(seq) AS seqs FROM events
       WHERE seq = ANY($1::bigint[]) GROUP BY 1`,
      [seqs],
    );
    const whole: Array<{ name: string; seqs: Set<number> }> = [];
    for (const { part, seqs: inPart } of byPart.rows) {
      if (!/^events_y\d{4}m\d{2}$/.test(part) || part >= thisMonth) continue;
      // Counts at most one row past this call's: a month of rows is never counted whole.
      const [count] = (
        await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM (SELECT 1 FROM ${part} LIMIT $1) r`, [
          inPart.length + 1,
        ])
      ).rows;
      if (count?.n === inPart.length) whole.push({ name: part, seqs: new Set(inPart.map(Number)) });
    }
    return whole;
  }

  /**
   * Copies a whole partition's leaves under `runId`, removes its events'
   * keys and drops it, in a savepoint: undefined (nothing done) when its
   * lock is not to be had at once, and the caller deletes its rows instead.
   */
  private async dropPartition(c: PoolClient, part: string, runId: string): Promise<number | undefined> {
    await c.query('SAVEPOINT drop_partition');
    try {
      await c.query(PARTITION_LOCK_TIMEOUT);
      await c.query(`LOCK TABLE events, ${part} IN ACCESS EXCLUSIVE MODE`);
      const r = await c.query(
        `INSERT INTO pruned_leaves (seq, tenant_id, leaf_hash, run_id)
         SELECT seq, tenant_id, leaf_hash, $1 FROM ${part} ON CONFLICT (seq) DO NOTHING`,
        [runId],
      );
      await c.query(
        `DELETE FROM event_keys ek USING ${part} p
         WHERE ek.tenant_id = p.tenant_id AND ek.event_id = p.event_id AND ek.seq = p.seq`,
      );
      await c.query(`DROP TABLE ${part}`);
      await c.query('SET LOCAL lock_timeout = 0');
      await c.query('RELEASE SAVEPOINT drop_partition');
      return r.rowCount ?? 0;
    } catch (err) {
      if ((err as { code?: string }).code !== LOCK_NOT_AVAILABLE) throw err;
      await c.query('ROLLBACK TO SAVEPOINT drop_partition');
      return undefined;
    }
  }

  /** Drops one past month's partition left with no rows per call (its lock taken as for pruning). */
  async reclaimSpace(): Promise<boolean> {
    return onClient(this.pool, async (c) => {
      const thisMonth: Month = monthOfIso(new Date().toISOString());
      const past = [...(await existingMonths(c))].filter((m) => m < thisMonth).sort();
      const empty: string[] = [];
      for (const m of past) {
        const part = partitionName(m);
        const any = await c.query(`SELECT 1 FROM ${part} LIMIT 1`);
        if (any.rowCount === 0) empty.push(part);
      }
      const [first] = empty;
      if (first === undefined) return true;
      try {
        await c.query('BEGIN');
        await c.query(PARTITION_LOCK_TIMEOUT);
        await c.query(`LOCK TABLE events, ${first} IN ACCESS EXCLUSIVE MODE`);
        // Still empty under the lock: nothing can have arrived in a past month, but say so only once checked.
        const still = await c.query(`SELECT 1 FROM ${first} LIMIT 1`);
        if (still.rowCount === 0) await c.query(`DROP TABLE ${first}`);
        await c.query('COMMIT');
      } catch (err) {
        await c.query('ROLLBACK');
        if ((err as { code?: string }).code !== LOCK_NOT_AVAILABLE) throw err;
        return false;
      }
      return empty.length === 1;
    });
  }

  async prunedLeaves(afterSeq: number, limit: number): Promise<PrunedLeaf[]> {
    const rows = await this.rows<PrunedLeafRow>(
      'SELECT * FROM pruned_leaves WHERE seq > $1 AND seq <= $2 ORDER BY seq',
      [afterSeq, afterSeq + limit],
    );
    return rows.map(toPrunedLeaf);
  }

  async prunedByRun(runId: string): Promise<Array<{ tenantId: string; count: number; seqDigest: string }>> {
    const rows = await this.rows<{ tenant_id: string; seq: number }>(
      'SELECT tenant_id, seq FROM pruned_leaves WHERE run_id = $1 ORDER BY tenant_id, seq',
      [runId],
    );
    return groupByTenant(rows, seqDigest);
  }

  async prunedTotals(): Promise<{ count: number; maxSeq: number }> {
    const [row] = await this.rows<{ count: number; max_seq: number }>(
      'SELECT count(*)::bigint AS count, COALESCE(MAX(seq), 0) AS max_seq FROM pruned_leaves',
    );
    return { count: Number(row?.count ?? 0), maxSeq: Number(row?.max_seq ?? 0) };
  }

  async createPruneRun(r: PruneRun): Promise<void> {
    await this.rows(
      `INSERT INTO prune_runs (id, started_at, finished_at, state, plan, scanned_through, pruned)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [r.id, r.startedAt, r.finishedAt, r.state, JSON.stringify(r.plan), r.scannedThrough, r.pruned],
    );
  }

  async updatePruneRun(r: PruneRun): Promise<void> {
    await this.rows(
      'UPDATE prune_runs SET finished_at = $1, state = $2, scanned_through = $3, pruned = $4 WHERE id = $5',
      [r.finishedAt, r.state, r.scannedThrough, r.pruned, r.id],
    );
  }

  async getPruneRun(id: string): Promise<PruneRun | undefined> {
    const [row] = await this.rows<PruneRunRow>('SELECT * FROM prune_runs WHERE id = $1', [id]);
    return row && toPruneRun(row);
  }

  async listPruneRuns(limit: number): Promise<PruneRun[]> {
    const rows = await this.rows<PruneRunRow>(
      'SELECT * FROM prune_runs ORDER BY started_at DESC, id DESC LIMIT $1',
      [limit],
    );
    return rows.map(toPruneRun);
  }

  async findSubject(
    tenantId: string,
    subject: ErasureSubject,
    afterSeq: number,
    limit: number,
  ): Promise<RedactableRow[]> {
    type Row = CandidateRow & { body: string };
    const select = `SELECT ${CANDIDATE_COLUMNS}, body FROM events`;
    switch (subject.kind) {
      case 'actor_id':
        return (
          await this.rows<Row>(
            `${select} WHERE actor_id = $1 AND seq > $2 AND tenant_id = $3 ORDER BY seq LIMIT $4`,
            [subject.value, afterSeq, tenantId, limit],
          )
        ).map(toRedactable);
      case 'resource_id':
        return (
          subject.resourceType === undefined
            ? // No index serves a resource id of any type: this scans the
              // tenant's rows, acceptable for erasures, which are rare requests.
              await this.rows<Row>(
                `${select} WHERE tenant_id = $1 AND resource_id = $2 AND seq > $3 ORDER BY seq LIMIT $4`,
                [tenantId, subject.value, afterSeq, limit],
              )
            : await this.rows<Row>(
                `${select} WHERE resource_type = $1 AND resource_id = $2 AND seq > $3 AND tenant_id = $4
                 ORDER BY seq LIMIT $5`,
                [subject.resourceType, subject.value, afterSeq, tenantId, limit],
              )
        ).map(toRedactable);
      case 'email': {
        // The search text holds the actor's email lowercased: it narrows the
        // rows, and each one found is confirmed on its parsed actor.email.
        const needle = subject.value.toLowerCase();
        const found: RedactableRow[] = [];
        let after = afterSeq;
        for (;;) {
          const rows = await this.rows<Row>(
            `${select} WHERE tenant_id = $1 AND seq > $2 AND strpos(search, $3) > 0 ORDER BY seq LIMIT $4`,
            [tenantId, after, needle, limit],
          );
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

  async createErasure(e: ErasureRecord): Promise<void> {
    await this.rows(
      `INSERT INTO erasures (id, tenant_id, subject_kind, reason, requested_at, requested_by, state, seqs,
         held, redacted, finished_at, completed_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
      erasureValues(e),
    );
  }

  async updateErasure(e: ErasureRecord): Promise<void> {
    await this.rows(
      `UPDATE erasures SET state = $1, held = $2, redacted = $3, finished_at = $4, completed_seq = $5
       WHERE id = $6`,
      [e.state, e.held, e.redacted, e.finishedAt, e.completedSeq, e.id],
    );
  }

  async getErasure(id: string): Promise<ErasureRecord | undefined> {
    const [row] = await this.rows<ErasureRow>('SELECT * FROM erasures WHERE id = $1', [id]);
    return row && toErasure(row);
  }

  async listErasures(opts: { tenantId?: string; limit: number }): Promise<ErasureRecord[]> {
    const rows = await this.rows<ErasureRow>(
      `SELECT * FROM erasures WHERE ($1::text IS NULL OR tenant_id = $1)
       ORDER BY requested_at DESC, id DESC LIMIT $2`,
      [opts.tenantId ?? null, opts.limit],
    );
    return rows.map(toErasure);
  }

  async unfinishedErasures(): Promise<ErasureRecord[]> {
    const rows = await this.rows<ErasureRow>(
      "SELECT * FROM erasures WHERE state <> 'done' ORDER BY requested_at, id",
    );
    return rows.map(toErasure);
  }

  async redactEvents(rows: readonly RedactedRow[]): Promise<number> {
    if (rows.length === 0) return 0;
    const r = await this.rows(
      `UPDATE events e SET body = u.body, search = u.search
       FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(seq, body, search)
       WHERE e.seq = u.seq RETURNING e.seq`,
      [rows.map((x) => x.seq), rows.map((x) => x.body), rows.map((x) => x.search)],
    );
    return r.length;
  }
}

/** SQLSTATE of a lock not granted within `lock_timeout`. */
const LOCK_NOT_AVAILABLE = '55P03';
