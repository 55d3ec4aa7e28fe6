import type { JsonValue, StoredEvent } from '../event/event.js';
import { ERASURE_ACTION, isExemptAction, PRUNED_ACTION } from '../retention/exempt.js';
import { SeqDigestBuilder, seqDigest } from '../retention/seq-digest.js';
import type { PrunedLeaf, RetentionStore } from '../store/retention-store.js';

/**
 * What verify needs of the store's own records of forgetting: a prune run's
 * state (is it still running?) and an erasure's fixed seqs. `Store.retention`
 * is one; unit tests pass a map.
 */
export type RetentionRecords = Pick<RetentionStore, 'getPruneRun' | 'getErasure'>;

/** The leaves retention pruned, as verify found them. */
export interface PrunedSummary {
  count: number;
  /** Lowest and highest pruned seq (0 when none). */
  firstSeq: number;
  lastSeq: number;
  /** Every seq from `firstSeq` to `lastSeq` was pruned. */
  contiguous: boolean;
  /** Per prune run and tenant, in order of their first seq. */
  runs: Array<{ runId: string; tenantId: string; count: number }>;
}

/** The rows erasures redacted, as verify found them. */
export interface RedactedSummary {
  count: number;
  /** Per erasure, in order of their first seq. */
  erasures: Array<{ erasureId: string; count: number }>;
}

/**
 * A prune run or erasure that changed rows but has not logged its record yet
 * (the server stopped half-way; it resumes at its next start). Not a failure.
 */
export interface InProgress {
  kind: 'prune_run' | 'erasure';
  id: string;
  tenantId: string;
  /** Rows it changed so far. */
  count: number;
  message: string;
}

/** A finding of the ledger; `verifyLog` turns it into its failure. */
export interface LedgerFailure {
  seq: number;
  problem: 'deleted' | 'edited' | 'malformed';
  message: string;
}

export interface LedgerSettled {
  pruned: PrunedSummary;
  redacted: RedactedSummary;
  inProgress: InProgress[];
}

/** The redaction marker an erasure leaves on a stored event (docs/retention.md). */
export interface RedactionMarker {
  erasure_id: string;
  fields: string[];
}

interface PrunedGroup {
  runId: string;
  tenantId: string;
  count: number;
  firstSeq: number;
  lastSeq: number;
  digest: SeqDigestBuilder;
}

interface RedactedGroup {
  erasureId: string;
  /** Tenant of its first row. */
  tenantId: string;
  /** Few (an erasure is one person's events), so kept whole. */
  seqs: number[];
}

/** The metadata of a logged `log.retention.pruned` event that verify relies on. */
export interface LoggedPrune {
  seq: number;
  runId: string;
  tenantId: string;
  throughSeq: number;
  pruned: number;
  seqDigest: string;
}

interface LoggedErasure {
  seq: number;
  erasureId: string;
  tenantId: string;
  seqDigest: string;
}

/**
 * Accounts, during verify's walk over the log, for every leaf whose content
 * is gone (pruned) or changed on purpose (redacted), and for the logged
 * events that record them; after the walk, `settle` checks each pruned
 * group and each erasure against those records. Memory: one entry per
 * (run, tenant) and per erasure, plus the seqs of redacted rows.
 */
export class RetentionLedger {
  readonly #pruned = new Map<string, PrunedGroup>();
  readonly #redacted = new Map<string, RedactedGroup>();
  readonly #prunes = new Map<string, LoggedPrune[]>();
  readonly #erasures = new Map<string, LoggedErasure[]>();
  #prunedCount = 0;
  #firstPruned = 0;
  #lastPruned = 0;

  /** A pruned leaf, in ascending seq. */
  addPruned(leaf: PrunedLeaf): void {
    const key = `${leaf.runId}\u0000${leaf.tenantId}`;
    let group = this.#pruned.get(key);
    if (!group) {
      group = {
        runId: leaf.runId,
        tenantId: leaf.tenantId,
        count: 0,
        firstSeq: leaf.seq,
        lastSeq: leaf.seq,
        digest: new SeqDigestBuilder(),
      };
      this.#pruned.set(key, group);
    }
    group.count += 1;
    group.lastSeq = leaf.seq;
    group.digest.add(leaf.seq);
    this.#prunedCount += 1;
    if (this.#firstPruned === 0) this.#firstPruned = leaf.seq;
    this.#lastPruned = leaf.seq;
  }

  /** A kept row carrying a redaction marker (its leaf hash cannot be recomputed). */
  addRedacted(event: StoredEvent, marker: RedactionMarker): LedgerFailure | undefined {
    // Records of forgetting are never erased: one carrying a redaction marker was edited.
    if (isExemptAction(event.action)) {
      return {
        seq: event.seq,
        problem: 'edited',
        message:
          `event seq ${event.seq} (${event.action}) carries a redaction marker, but records of retention, ` +
          'legal holds and erasures are never redacted: its content was changed after it was stored',
      };
    }
    let group = this.#redacted.get(marker.erasure_id);
    if (!group) {
      group = { erasureId: marker.erasure_id, tenantId: event.tenant_id, seqs: [] };
      this.#redacted.set(marker.erasure_id, group);
    }
    group.seqs.push(event.seq);
    return undefined;
  }

  /** A kept, unredacted event whose leaf hash verified: notes it when it records a prune run or erasure. */
  noteVerified(event: StoredEvent): void {
    const prune = loggedPrune(event);
    if (prune) push(this.#prunes, `${prune.runId}\u0000${prune.tenantId}`, prune);
    const erasure = loggedErasure(event);
    if (erasure) push(this.#erasures, erasure.erasureId, erasure);
  }

  /**
   * Checks every pruned group and every erasure against the logged records
   * (and, when given, the store's records); the finding with the lowest seq,
   * or the summary.
   */
  async settle(records: RetentionRecords | undefined): Promise<LedgerFailure | LedgerSettled> {
    const failures: LedgerFailure[] = [];
    const inProgress: InProgress[] = [];
    for (const group of this.#pruned.values()) {
      const found = await this.#checkPruned(group, records);
      if (found && 'problem' in found) failures.push(found);
      else if (found) inProgress.push(found);
    }
    for (const group of this.#redacted.values()) {
      const found = await this.#checkRedacted(group, records);
      if (found && 'problem' in found) failures.push(found);
      else if (found) inProgress.push(found);
    }
    const first = failures.sort((a, b) => a.seq - b.seq)[0];
    if (first) return first;
    const groups = [...this.#pruned.values()];
    const redacted = [...this.#redacted.values()];
    return {
      pruned: {
        count: this.#prunedCount,
        firstSeq: this.#firstPruned,
        lastSeq: this.#lastPruned,
        contiguous: this.#prunedCount > 0 && this.#lastPruned - this.#firstPruned + 1 === this.#prunedCount,
        runs: groups.map((g) => ({ runId: g.runId, tenantId: g.tenantId, count: g.count })),
      },
      redacted: {
        count: redacted.reduce((n, g) => n + g.seqs.length, 0),
        erasures: redacted.map((g) => ({ erasureId: g.erasureId, count: g.seqs.length })),
      },
      inProgress,
    };
  }

  async #checkPruned(
    group: PrunedGroup,
    records: RetentionRecords | undefined,
  ): Promise<LedgerFailure | InProgress | undefined> {
    const { runId, tenantId, count, firstSeq, lastSeq } = group;
    const digest = group.digest.digest();
    const logged = this.#prunes.get(`${runId}\u0000${tenantId}`) ?? [];
    const of = `tenant ${tenantId}`;
    if (logged.some((p) => p.pruned === count && p.seqDigest === digest && lastSeq <= p.throughSeq)) {
      return undefined;
    }
    const record = logged[0];
    if (record === undefined) {
      const run = await records?.getPruneRun(runId);
      if (run?.state === 'running') {
        return {
          kind: 'prune_run',
          id: runId,
          tenantId,
          count,
          message:
            `prune run ${runId} is in progress: ${count} event(s) of ${of} are pruned and not yet logged ` +
            '(the server stopped during the run); start the server so it completes the run, then verify again',
        };
      }
      return {
        seq: firstSeq,
        problem: 'deleted',
        message:
          `${count} event(s) of ${of} (seq ${firstSeq}..${lastSeq}) were removed without a logged prune run: ` +
          `they are stored as pruned by run ${runId}, but no ${PRUNED_ACTION} event records it for that tenant` +
          (run === undefined && records !== undefined ? ', and the store has no such run' : ''),
      };
    }
    if (count > record.pruned) {
      return {
        seq: firstSeq,
        problem: 'deleted',
        message:
          `${count} pruned leaves of ${of} are stored under run ${runId}, but its ${PRUNED_ACTION} event ` +
          `(seq ${record.seq}) logged ${record.pruned}: events were removed and passed off as pruned`,
      };
    }
    if (lastSeq > record.throughSeq) {
      return {
        seq: firstSeq,
        problem: 'deleted',
        message:
          `pruned leaves of ${of} under run ${runId} reach seq ${lastSeq}, past the seq ${record.throughSeq} ` +
          `its ${PRUNED_ACTION} event (seq ${record.seq}) logged: events were removed beyond what it pruned`,
      };
    }
    return {
      seq: firstSeq,
      problem: 'edited',
      message:
        `the pruned leaves of ${of} under run ${runId} (${count}, seq ${firstSeq}..${lastSeq}) are not the ones ` +
        `its ${PRUNED_ACTION} event (seq ${record.seq}) logged (${record.pruned}, another seq_digest): ` +
        'pruned leaves were changed or moved',
    };
  }

  async #checkRedacted(
    group: RedactedGroup,
    records: RetentionRecords | undefined,
  ): Promise<LedgerFailure | InProgress | undefined> {
    const { erasureId, seqs } = group;
    const firstSeq = seqs[0] ?? 0;
    const logged = this.#erasures.get(erasureId) ?? [];
    const edited = (seq: number, why: string): LedgerFailure => ({
      seq,
      problem: 'edited',
      message: `event seq ${seq} carries the redaction marker of erasure ${erasureId}, but ${why}: its content was changed after it was stored`,
    });
    if (records === undefined) {
      // Without the store's records (an export, an archive) the rows must be exactly those the erasure logged.
      const digest = seqDigest(seqs);
      if (logged.some((e) => e.seqDigest === digest && e.tenantId === group.tenantId)) return undefined;
      return edited(
        firstSeq,
        logged.length === 0
          ? `no ${ERASURE_ACTION} event records that erasure`
          : `the rows carrying it are not the ${ERASURE_ACTION} event's (seq ${logged[0]?.seq}) ` +
              '(rows of an erasure later pruned can be checked only against the store: verify the data folder)',
      );
    }
    const erasure = await records.getErasure(erasureId);
    if (erasure === undefined) return edited(firstSeq, 'the store has no such erasure');
    const fixed = new Set(erasure.seqs);
    const stray = seqs.find((s) => !fixed.has(s));
    if (stray !== undefined) return edited(stray, 'it is not among the events that erasure redacts');
    if (group.tenantId !== erasure.tenantId) {
      return edited(firstSeq, `that erasure is of tenant ${erasure.tenantId}, not ${group.tenantId}`);
    }
    const digest = seqDigest(erasure.seqs);
    if (logged.some((e) => e.seqDigest === digest && e.tenantId === erasure.tenantId)) return undefined;
    if (logged.length === 0 && erasure.state === 'running') {
      return {
        kind: 'erasure',
        id: erasureId,
        tenantId: erasure.tenantId,
        count: seqs.length,
        message:
          `erasure ${erasureId} is in progress: ${seqs.length} event(s) are redacted and not yet logged ` +
          '(the server stopped during it); start the server so it completes the erasure, then verify again',
      };
    }
    return edited(
      firstSeq,
      logged.length === 0
        ? `no ${ERASURE_ACTION} event records that erasure`
        : `the store's record of that erasure lists other events than its ${ERASURE_ACTION} event (seq ${logged[0]?.seq}) logged`,
    );
  }
}

/** The redaction marker of a stored event: undefined when it has none, null when it has a malformed one. */
export function redactionOf(event: StoredEvent): RedactionMarker | null | undefined {
  if (!('redaction' in event) || event.redaction === undefined) return undefined;
  const marker: unknown = event.redaction;
  if (typeof marker !== 'object' || marker === null) return null;
  const id = 'erasure_id' in marker ? marker.erasure_id : undefined;
  const fields = 'fields' in marker ? marker.fields : undefined;
  if (typeof id !== 'string' || id === '') return null;
  if (!Array.isArray(fields) || !fields.every((f): f is string => typeof f === 'string')) return null;
  return { erasure_id: id, fields };
}

/** The record of a logged prune run, when `event` is one whose metadata reads. */
export function loggedPrune(event: StoredEvent): LoggedPrune | undefined {
  if (event.action !== PRUNED_ACTION) return undefined;
  const m = event.metadata ?? {};
  const runId = str(m.run_id);
  const throughSeq = int(m.through_seq);
  const pruned = int(m.pruned);
  const digest = str(m.seq_digest);
  if (runId === undefined || throughSeq === undefined || pruned === undefined || digest === undefined) {
    return undefined;
  }
  return { seq: event.seq, runId, tenantId: event.tenant_id, throughSeq, pruned, seqDigest: digest };
}

function loggedErasure(event: StoredEvent): LoggedErasure | undefined {
  if (event.action !== ERASURE_ACTION) return undefined;
  const m = event.metadata ?? {};
  const erasureId = str(m.erasure_id);
  const digest = str(m.seq_digest);
  if (erasureId === undefined || digest === undefined) return undefined;
  return { seq: event.seq, erasureId, tenantId: event.tenant_id, seqDigest: digest };
}

function str(v: JsonValue | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function int(v: JsonValue | undefined): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : undefined;
}

function push<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
