/**
 * What the store keeps for retention, legal holds and erasure (issue 17,
 * docs/retention.md). Pruning removes an event's row and keeps its leaf in
 * `pruned_leaves` (seq, tenant, leaf hash, the run that pruned it), so the
 * Merkle tree, every checkpoint and every proof stay whole; an erasure
 * rewrites an event's stored JSON without its personal fields and marks it
 * with the erasure's id (the leaf hash stays). Both backends implement it
 * and pass `test/store/retention-conformance.test.ts`.
 */
export interface RetentionStore {
  // ── retention periods ────────────────────────────────────────────────
  /** Per-tenant retention periods set through the admin API (the config's default is not stored). */
  listPolicies(): Promise<RetentionPolicy[]>;
  getPolicy(tenantId: string): Promise<RetentionPolicy | undefined>;
  /** Creates or replaces the tenant's period. */
  putPolicy(policy: RetentionPolicy): Promise<void>;
  /** Removes the tenant's period (the default applies again); false when there was none. */
  deletePolicy(tenantId: string): Promise<boolean>;

  // ── legal holds ──────────────────────────────────────────────────────
  createHold(hold: LegalHold): Promise<void>;
  getHold(id: string): Promise<LegalHold | undefined>;
  /** Holds, newest first; only one tenant's when `tenantId` is set; only unlifted ones when `activeOnly`. */
  listHolds(opts: { tenantId?: string; activeOnly?: boolean; limit: number }): Promise<LegalHold[]>;
  /** Lifts an active hold; the hold as it is now, or undefined when there is none or it was lifted already. */
  liftHold(
    id: string,
    lift: { liftedAt: string; liftedBy: string; liftReason: string },
  ): Promise<LegalHold | undefined>;

  // ── pruning ──────────────────────────────────────────────────────────
  /**
   * The highest `seq` whose `received_at` is before `instant` (UTC ISO 8601),
   * 0 when none. `received_at` grows with `seq`, so every event up to it was
   * received before `instant`. Looks only at kept events.
   */
  lastSeqReceivedBefore(instant: string): Promise<number>;
  /**
   * Kept events with `seq` in (`afterSeq`, `throughSeq`], ascending, at most
   * `limit`: the columns the pruner decides on (tenant, retention, holds).
   */
  pruneCandidates(afterSeq: number, throughSeq: number, limit: number): Promise<PruneCandidate[]>;
  /**
   * In one transaction: moves each of `seqs` that is still kept into
   * `pruned_leaves` under `runId` (seq, tenant_id, leaf_hash) and deletes
   * its row. Returns how many were moved (seqs already pruned or absent are
   * skipped). A crash leaves each call all done or not done.
   */
  pruneEvents(runId: string, seqs: readonly number[]): Promise<number>;
  /**
   * Gives space back after pruning, a small step per call so no lock is
   * held long (SQLite: `PRAGMA incremental_vacuum(pages)`; PostgreSQL: drops
   * monthly partitions left with no rows). True when nothing is left to do.
   */
  reclaimSpace(): Promise<boolean>;
  /** Pruned leaves with `seq` in (`afterSeq`, `afterSeq + limit`], ascending (verify, proofs). */
  prunedLeaves(afterSeq: number, limit: number): Promise<PrunedLeaf[]>;
  /** How many leaves a run pruned, per tenant, and the SHA-256 of their seqs (`seqDigest` in src/retention/seq-digest.ts). */
  prunedByRun(runId: string): Promise<Array<{ tenantId: string; count: number; seqDigest: string }>>;
  /** Total pruned leaves and the highest pruned seq (0 when none). */
  prunedTotals(): Promise<{ count: number; maxSeq: number }>;

  createPruneRun(run: PruneRun): Promise<void>;
  /** Replaces a run's progress fields (`state`, `scannedThrough`, `pruned`, `finishedAt`). */
  updatePruneRun(run: PruneRun): Promise<void>;
  getPruneRun(id: string): Promise<PruneRun | undefined>;
  /** Runs, newest first. */
  listPruneRuns(limit: number): Promise<PruneRun[]>;

  // ── erasure ──────────────────────────────────────────────────────────
  /**
   * Kept events of `tenantId` whose subject matches (actor id, resource id,
   * or actor email, case-insensitively), ascending seq, after `afterSeq`, at
   * most `limit`, unparsed.
   */
  findSubject(
    tenantId: string,
    subject: ErasureSubject,
    afterSeq: number,
    limit: number,
  ): Promise<RedactableRow[]>;
  createErasure(erasure: ErasureRecord): Promise<void>;
  /** Replaces an erasure's progress fields (`state`, `redacted`, `held`, `finishedAt`, `completedSeq`). */
  updateErasure(erasure: ErasureRecord): Promise<void>;
  getErasure(id: string): Promise<ErasureRecord | undefined>;
  /** Erasures, newest first, one tenant's when `tenantId` is set. */
  listErasures(opts: { tenantId?: string; limit: number }): Promise<ErasureRecord[]>;
  /** Erasures not yet completed (to resume after a crash). */
  unfinishedErasures(): Promise<ErasureRecord[]>;
  /**
   * In one transaction: replaces each row's stored JSON with `body` (which
   * carries `redaction.erasure_id`) and its search text with `search`, only
   * where the row is still kept. Returns how many rows changed.
   */
  redactEvents(rows: readonly RedactedRow[]): Promise<number>;
}

/** A tenant's retention period, set through the admin API. */
export interface RetentionPolicy {
  tenantId: string;
  /** Events received more than this many days ago lose their content. */
  days: number;
  updatedAt: string;
  /** Who set it (API key id, or `config`/`cli`). */
  updatedBy: string;
}

/**
 * A legal hold: while unlifted, no event it matches is pruned or erased.
 * Without any narrowing field it holds the whole tenant.
 */
export interface LegalHold {
  id: string;
  tenantId: string;
  /** Narrows the hold to events matching all of these (as the query filters of the same names). */
  match: HoldMatch;
  reason: string;
  createdAt: string;
  createdBy: string;
  liftedAt: string | null;
  liftedBy: string | null;
  liftReason: string | null;
}

/** Which events of its tenant a hold keeps; every field set must match. */
export interface HoldMatch {
  /** Exact action, or a prefix when it ends in `.*` (`user.*`). */
  action?: string;
  actorId?: string;
  resourceType?: string;
  resourceId?: string;
  /** Inclusive lower bound on the event's `timestamp`. */
  from?: string;
  /** Exclusive upper bound on the event's `timestamp`. */
  to?: string;
}

/** What the pruner decides on for one kept event. */
export interface PruneCandidate {
  seq: number;
  tenantId: string;
  action: string;
  actorId: string;
  resourceType: string | null;
  resourceId: string | null;
  /** The event's `timestamp`. */
  ts: string;
}

/** The hash-only leaf an event leaves when its content is pruned. */
export interface PrunedLeaf {
  seq: number;
  tenantId: string;
  leafHash: Buffer;
  runId: string;
}

/** One run of the pruner (recorded before it prunes, so a crash resumes it). */
export interface PruneRun {
  id: string;
  startedAt: string;
  finishedAt: string | null;
  state: 'running' | 'done';
  /** Every tenant's cut: its events up to `throughSeq` (received before `receivedBefore`) are pruned unless held. */
  plan: PrunePlanEntry[];
  /** The seq the run has scanned up to (its progress). */
  scannedThrough: number;
  /** Events pruned so far. */
  pruned: number;
}

export interface PrunePlanEntry {
  tenantId: string;
  /** The retention period applied, in days. */
  days: number;
  /** Events received before this instant are past retention. */
  receivedBefore: string;
  /** The last seq the run prunes for this tenant (≤ every confirmed sink of `prune_after_delivered`). */
  throughSeq: number;
}

/** Who an erasure is about. */
export interface ErasureSubject {
  kind: 'actor_id' | 'resource_id' | 'email';
  value: string;
  /** With `resource_id`: only resources of this type. */
  resourceType?: string;
}

/** A recorded erasure request and how far it went. The subject itself is not kept. */
export interface ErasureRecord {
  id: string;
  tenantId: string;
  subjectKind: ErasureSubject['kind'];
  reason: string;
  requestedAt: string;
  requestedBy: string;
  state: 'running' | 'done';
  /** The seqs it redacts, ascending, fixed when it starts (events arriving later are not touched). */
  seqs: number[];
  /** Events matched but kept as they are because a legal hold holds them. */
  held: number;
  /** Events redacted so far. */
  redacted: number;
  finishedAt: string | null;
  /** The seq of its `log.erasure.completed` event, once logged. */
  completedSeq: number | null;
}

/** A kept event found for an erasure, unparsed. */
export interface RedactableRow {
  seq: number;
  tenantId: string;
  action: string;
  actorId: string;
  resourceType: string | null;
  resourceId: string | null;
  ts: string;
  /** The stored JSON. */
  body: string;
}

/** An event's new stored JSON and search text after an erasure. */
export interface RedactedRow {
  seq: number;
  body: string;
  search: string;
}
