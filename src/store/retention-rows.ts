/**
 * Rows of the retention tables (`retention_policies`, `legal_holds`,
 * `prune_runs`, `erasures`, `pruned_leaves`) as both backends read them, and
 * the records they hold. Both declare JSON columns as text and timestamps as
 * ISO text, so one reading serves both.
 */
import type {
  ErasureRecord,
  HoldMatch,
  LegalHold,
  PruneCandidate,
  PrunedLeaf,
  PrunePlanEntry,
  PruneRun,
  RedactableRow,
  RetentionPolicy,
} from './retention-store.js';

/** Integers may come back as numbers (SQLite) or, for BIGINT, as strings (PostgreSQL). */
type Int = number | string;

export interface PolicyRow {
  tenant_id: string;
  days: Int;
  updated_at: string;
  updated_by: string;
}

export interface HoldRow {
  id: string;
  tenant_id: string;
  match: string;
  reason: string;
  created_at: string;
  created_by: string;
  lifted_at: string | null;
  lifted_by: string | null;
  lift_reason: string | null;
}

export interface PruneRunRow {
  id: string;
  started_at: string;
  finished_at: string | null;
  state: string;
  plan: string;
  scanned_through: Int;
  pruned: Int;
}

export interface ErasureRow {
  id: string;
  tenant_id: string;
  subject_kind: string;
  reason: string;
  requested_at: string;
  requested_by: string;
  state: string;
  seqs: string;
  held: Int;
  redacted: Int;
  finished_at: string | null;
  completed_seq: Int | null;
}

export interface PrunedLeafRow {
  seq: Int;
  tenant_id: string;
  leaf_hash: Buffer;
  run_id: string;
}

/** The columns the pruner and erasure read of an `events` row (`body` only for erasure). */
export interface CandidateRow {
  seq: Int;
  tenant_id: string;
  action: string;
  actor_id: string;
  resource_type: string | null;
  resource_id: string | null;
  ts: string;
  body?: string;
}

export const toPolicy = (r: PolicyRow): RetentionPolicy => ({
  tenantId: r.tenant_id,
  days: Number(r.days),
  updatedAt: r.updated_at,
  updatedBy: r.updated_by,
});

export const toHold = (r: HoldRow): LegalHold => ({
  id: r.id,
  tenantId: r.tenant_id,
  match: JSON.parse(r.match) as HoldMatch,
  reason: r.reason,
  createdAt: r.created_at,
  createdBy: r.created_by,
  liftedAt: r.lifted_at,
  liftedBy: r.lifted_by,
  liftReason: r.lift_reason,
});

/** A hold's columns, `id` to `lift_reason`, in table order. */
export function holdValues(h: LegalHold): Array<string | null> {
  return [
    h.id,
    h.tenantId,
    JSON.stringify(h.match),
    h.reason,
    h.createdAt,
    h.createdBy,
    h.liftedAt,
    h.liftedBy,
    h.liftReason,
  ];
}

export const toPruneRun = (r: PruneRunRow): PruneRun => ({
  id: r.id,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  state: r.state === 'done' ? 'done' : 'running',
  plan: JSON.parse(r.plan) as PrunePlanEntry[],
  scannedThrough: Number(r.scanned_through),
  pruned: Number(r.pruned),
});

export const toErasure = (r: ErasureRow): ErasureRecord => ({
  id: r.id,
  tenantId: r.tenant_id,
  subjectKind: r.subject_kind as ErasureRecord['subjectKind'],
  reason: r.reason,
  requestedAt: r.requested_at,
  requestedBy: r.requested_by,
  state: r.state === 'done' ? 'done' : 'running',
  seqs: JSON.parse(r.seqs) as number[],
  held: Number(r.held),
  redacted: Number(r.redacted),
  finishedAt: r.finished_at,
  completedSeq: r.completed_seq === null ? null : Number(r.completed_seq),
});

/** An erasure's columns, `id` to `completed_seq`, in table order. */
export function erasureValues(e: ErasureRecord): Array<string | number | null> {
  return [
    e.id,
    e.tenantId,
    e.subjectKind,
    e.reason,
    e.requestedAt,
    e.requestedBy,
    e.state,
    JSON.stringify(e.seqs),
    e.held,
    e.redacted,
    e.finishedAt,
    e.completedSeq,
  ];
}

export const toPrunedLeaf = (r: PrunedLeafRow): PrunedLeaf => ({
  seq: Number(r.seq),
  tenantId: r.tenant_id,
  leafHash: Buffer.from(r.leaf_hash),
  runId: r.run_id,
});

export const toCandidate = (r: CandidateRow): PruneCandidate => ({
  seq: Number(r.seq),
  tenantId: r.tenant_id,
  action: r.action,
  actorId: r.actor_id,
  resourceType: r.resource_type,
  resourceId: r.resource_id,
  ts: r.ts,
});

export const toRedactable = (r: CandidateRow & { body: string }): RedactableRow => ({
  ...toCandidate(r),
  body: r.body,
});

/**
 * Whether a stored event's actor email is `email`, case-insensitively: the
 * check after a search-text match narrowed the rows (which also matches the
 * email inside a name or reason).
 */
export function actorEmailIs(body: string, email: string): boolean {
  const actor = (JSON.parse(body) as { actor?: { email?: unknown } }).actor;
  return typeof actor?.email === 'string' && actor.email.toLowerCase() === email.toLowerCase();
}

/** How many pruned leaves per tenant a run stored, from its (tenant, seq) rows in tenant, seq order. */
export function groupByTenant(
  rows: Iterable<{ tenant_id: string; seq: Int }>,
  digest: (seqs: number[]) => string,
): Array<{ tenantId: string; count: number; seqDigest: string }> {
  const byTenant = new Map<string, number[]>();
  for (const r of rows) {
    const seqs = byTenant.get(r.tenant_id);
    if (seqs === undefined) byTenant.set(r.tenant_id, [Number(r.seq)]);
    else seqs.push(Number(r.seq));
  }
  return [...byTenant].map(([tenantId, seqs]) => ({
    tenantId,
    count: seqs.length,
    seqDigest: digest(seqs),
  }));
}
