import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { SelfAudit } from '../audit/self-audit.js';
import type { Principal } from '../auth/api-keys.js';
import type { ErasureRecord, ErasureSubject, RetentionStore } from '../store/retention-store.js';
import type { Store } from '../store/store.js';
import { ERASURE_ACTION, isExemptAction } from './exempt.js';
import { compileHolds } from './hold-match.js';
import { newRetentionId } from './ids.js';
import { keptRows } from './kept-rows.js';
import { erasedFields, redactStoredJson } from './redact.js';
import { seqDigest } from './seq-digest.js';

export interface ErasureDeps {
  store: Store;
  retention: RetentionStore;
  audit: SelfAudit;
  /** `retention.erasure.metadata_paths`. */
  metadataPaths: readonly string[];
  /** Rows found or redacted per call (`retention.chunk_events`). */
  chunkEvents: number;
  log: { info(msg: string, extra?: object): void; error(msg: string, extra?: object): void };
  now?: () => number;
}

/** What an erasure did, as `POST /v1/erasures` answers it. */
export interface ErasureResult {
  record: ErasureRecord;
  /** Events that matched the subject (redacted and held). */
  matched: number;
  /** The fields an erasure of this kind removes. */
  fields: string[];
}

const HOLDS_READ = 10_000;
/** Who an erasure's record names when it is resumed at start-up (no caller then). */
const RESUMER = { type: 'system', id: 'trailwarden-erasure', name: 'erasure resumed at start-up' } as const;

/**
 * Erasure of a person's data: finds the subject's kept events of one
 * tenant, records the erasure with the seqs it will redact (those a legal
 * hold holds are left and counted), redacts them in chunks (each one
 * transaction), then logs `log.erasure.completed` — never the subject
 * itself, which is the personal data. Recorded before any row changes, so
 * one a crash interrupted is finished at the next start ({@link resumeUnfinished}).
 */
export class ErasureService {
  private readonly now: () => number;
  /** Erasures run one after another: two rewriting one row at once could each drop the other's redaction. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: ErasureDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Runs one erasure to its end; an unknown subject gives zero counts, still recorded and logged. */
  erase(
    request: { tenantId: string; subject: ErasureSubject; reason: string },
    by: Principal,
  ): Promise<ErasureResult> {
    const next = this.queue.then(() => this.eraseNow(request, by));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async eraseNow(
    request: { tenantId: string; subject: ErasureSubject; reason: string },
    by: Principal,
  ): Promise<ErasureResult> {
    const { retention, chunkEvents } = this.deps;
    const held = compileHolds(
      await retention.listHolds({ tenantId: request.tenantId, activeOnly: true, limit: HOLDS_READ }),
    );
    const seqs: number[] = [];
    let heldCount = 0;
    for (let after = 0; ; ) {
      const rows = await retention.findSubject(request.tenantId, request.subject, after, chunkEvents);
      for (const row of rows) {
        if (isExemptAction(row.action)) continue;
        if (held(row)) heldCount++;
        else seqs.push(row.seq);
      }
      const last = rows.at(-1);
      if (rows.length < chunkEvents || last === undefined) break;
      after = last.seq;
    }
    const nowMs = this.now();
    const record: ErasureRecord = {
      id: newRetentionId('erasure', nowMs),
      tenantId: request.tenantId,
      subjectKind: request.subject.kind,
      reason: request.reason,
      requestedAt: new Date(nowMs).toISOString(),
      requestedBy: by.keyId,
      state: 'running',
      seqs,
      held: heldCount,
      redacted: 0,
      finishedAt: null,
      completedSeq: null,
    };
    // Recorded (with its seqs fixed) before any row changes.
    await retention.createErasure(record);
    await this.complete(record, { type: 'api_key', id: by.keyId, name: by.name });
    return { record, matched: record.seqs.length + record.held, fields: this.fieldsOf(record) };
  }

  /** Finishes every erasure a crash left running (at start-up, before the server takes requests). */
  resumeUnfinished(): Promise<number> {
    const next = this.queue.then(() => this.resumeNow());
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async resumeNow(): Promise<number> {
    const unfinished = await this.deps.retention.unfinishedErasures();
    for (const record of unfinished) {
      this.deps.log.info(`erasure ${record.id} was interrupted; finishing it`, { erasure_id: record.id });
      await this.complete(record, RESUMER);
    }
    return unfinished.length;
  }

  private fieldsOf(record: ErasureRecord): string[] {
    return erasedFields(record.subjectKind, this.deps.metadataPaths);
  }

  /** Redacts the record's seqs from where it stands, logs it once and marks it done. */
  private async complete(
    record: ErasureRecord,
    actor: { type: string; id: string; name: string },
  ): Promise<void> {
    const { retention, chunkEvents } = this.deps;
    const fields = this.fieldsOf(record);
    let redacted = 0;
    for (let i = 0; i < record.seqs.length; i += chunkEvents) {
      const chunk = record.seqs.slice(i, i + chunkEvents);
      const changed = [];
      for (const row of await keptRows(this.deps.store, chunk)) {
        const next = redactStoredJson(row.body, record.id, fields);
        // Already carrying this erasure (a resumed run): counted, not written again.
        if (next === undefined) redacted++;
        else changed.push({ seq: row.seq, body: next.body, search: next.search });
      }
      if (changed.length > 0) redacted += await retention.redactEvents(changed);
      record.redacted = redacted;
      await retention.updateErasure(record);
      await yieldToEventLoop();
    }
    record.completedSeq = await this.logCompleted(record, fields, actor);
    record.state = 'done';
    record.finishedAt = new Date(this.now()).toISOString();
    await retention.updateErasure(record);
    this.deps.log.info(`erasure ${record.id} done: ${record.redacted} events redacted, ${record.held} held`, {
      erasure_id: record.id,
      tenant_id: record.tenantId,
      redacted: record.redacted,
      held: record.held,
    });
  }

  /** Appends `log.erasure.completed` once (a resumed erasure finds the one it wrote); its seq, or null while unsequenced. */
  private async logCompleted(
    record: ErasureRecord,
    fields: string[],
    actor: { type: string; id: string; name: string },
  ): Promise<number | null> {
    const eventId = `${record.id}.completed`;
    const [existing] = await this.deps.store.findByEventId(eventId, record.tenantId);
    if (existing !== undefined) return existing.seq;
    const outcome = await this.deps.audit.record(ERASURE_ACTION, null, {
      eventId,
      actor,
      tenantId: record.tenantId,
      outcome: 'success',
      resource: { type: 'erasure', id: record.id },
      metadata: {
        erasure_id: record.id,
        subject_kind: record.subjectKind,
        reason: record.reason,
        matched: record.seqs.length + record.held,
        redacted: record.redacted,
        held: record.held,
        fields,
        seq_digest: seqDigest(record.seqs),
      },
    });
    return outcome.seq;
  }
}
