import type { SelfAudit } from '../audit/self-audit.js';
import type { Principal } from '../auth/api-keys.js';
import { TrailwardenError } from '../errors.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { DeadLetter, SinkConfigRecord, Store } from '../store/store.js';
import type { SinkContext, SinkPlacement } from './sink.js';
import { DELIVERY_ACTOR } from './sink-alerts.js';
import { sinkLeaseName } from './sink-lease.js';
import { checkPlacement, parseApiSink, scopedToTenant } from './sink-policy.js';
import { sinkKey } from './sink-ref.js';
import { hasSecrets, sealSecrets } from './sink-secrets.js';
import {
  type SinkAddress,
  type SinkSetup,
  type SinkTable,
  type SinkView,
  viewOf,
  workerOf,
} from './sink-table.js';
import type { SinkWorker } from './sink-worker.js';
import { replayStoredSink, setStoredSinkPaused } from './stored-sink.js';

/** What a redrive did with one dead letter; `queued`: left for the node that delivers the sink. */
export interface RedriveResult {
  id: number;
  seq: number;
  status: 'delivered' | 'failed' | 'missing' | 'queued';
  reason?: string;
}

/** Letters asked for through other nodes that one pass redrives per sink (the rest wait for the next). */
const REDRIVE_BATCH = 100;

export interface SinkAdminDeps {
  table: SinkTable;
  store: Store;
  audit: SelfAudit;
  /** Seals the secrets of API sinks in the store; `null`: none configured (they cannot be stored). */
  secrets: SecretBox | null;
  /** Where sinks may act (`file_sink_root`, the data folder), for the kinds' placement rules. */
  placement: Omit<SinkPlacement, 'owner'>;
  now: () => number;
  log: SinkContext['log'];
  /** Adds a sink to the table and, when enabled, starts delivering it (the engine's runners). */
  start(setup: SinkSetup): Promise<void>;
}

/**
 * Sink administration, the seam of the admin API: create, change, remove,
 * status, replay, pause and resume, dead letters and their redrive. Every
 * call takes the principal asking (`null`: the process itself) and sees only
 * the sinks it may see (names are scoped per tenant). A tenant's sink always
 * carries `filter.tenants: [<tenant>]` ({@link scopedToTenant}).
 *
 * With several nodes, what is asked through a node that does not deliver the
 * sink (pause, resume, replay, settings, a redrive) is written to the store,
 * where the node holding the sink's lease finds it at its next renewal.
 */
export class SinkAdmin {
  constructor(private readonly deps: SinkAdminDeps) {}

  /** The sink, or 404 when it does not exist or the principal may not see it. */
  entry(address: SinkAddress, principal: Principal | null): SinkView {
    return viewOf(this.deps.table.find(address, principal));
  }

  /**
   * Sinks visible to a principal: a tenant-bound admin sees only its
   * tenant's sinks; `tenantId` narrows an all-tenant admin's list to one
   * scope (`null`: the operator's).
   */
  list(principal: Principal | null, tenantId?: string | null): SinkView[] {
    return this.deps.table.list(principal, tenantId);
  }

  /** The settings as stored: secrets sealed; refused when there are secrets and no key to seal them. */
  private storedForm(raw: Record<string, unknown>, key: string): string {
    const box = this.deps.secrets;
    if (box === null) {
      if (hasSecrets(raw)) {
        throw new TrailwardenError(
          'TW_ERR_SECRETS_KEY_MISSING',
          'this server has no key to encrypt sink secrets, so it cannot store this sink; ' +
            'the operator must set TRAILWARDEN_SECRETS_KEY or secrets.key_file (docs/security.md)',
        );
      }
      return JSON.stringify(raw);
    }
    return JSON.stringify(sealSecrets(raw, key, box));
  }

  /**
   * Creates a sink from the API in the scope of `tenantId` (the admin key's
   * tenant, or the one an all-tenant admin named; `null`: the operator's).
   * `raw` is kept as given, with a tenant's filter set.
   */
  create(given: Record<string, unknown>, tenantId: string | null): Promise<SinkView> {
    const { table } = this.deps;
    return table.serially(async () => {
      const raw = scopedToTenant(given, tenantId, 'refuse');
      const config = parseApiSink(raw, tenantId);
      const key = sinkKey({ name: config.name, tenantId });
      if (table.has(key)) {
        throw new TrailwardenError(
          'TW_ERR_SINK_EXISTS',
          `a sink named ${config.name} exists; choose another name or PATCH it`,
        );
      }
      checkPlacement(config, { source: 'api', tenantId }, this.deps.placement);
      const now = new Date(this.deps.now()).toISOString();
      const rec: SinkConfigRecord = {
        name: key,
        config: this.storedForm(raw, key),
        tenantId,
        createdAt: now,
        updatedAt: now,
      };
      await this.deps.store.delivery.putSinkConfig(rec);
      await this.startOrUndo(key, { config, raw, source: 'api', tenantId, updatedAt: now }, async () => {
        await this.deps.store.delivery.deleteSinkConfig(key);
        await this.deps.store.delivery.deleteSinkState(key);
      });
      return viewOf(table.find({ name: config.name, tenantId }, null));
    });
  }

  /**
   * Replaces a sink's settings (a tenant's keeps its filter); its cursor and
   * dead letters stay. Returns the changed top-level fields.
   */
  update(
    address: SinkAddress,
    given: Record<string, unknown>,
    principal: Principal | null,
  ): Promise<string[]> {
    const { table, store } = this.deps;
    return table.serially(async () => {
      const e = table.editable(address, principal);
      const raw = scopedToTenant(given, e.tenantId, 'overwrite');
      const name = e.config.name;
      if (raw['name'] !== undefined && raw['name'] !== name) {
        throw new TrailwardenError(
          'TW_ERR_INVALID_SINK',
          'a sink cannot be renamed; create a new one and delete this one',
        );
      }
      const next = { ...raw, name };
      const config = parseApiSink(next, e.tenantId);
      const stored = this.storedForm(next, e.key);
      checkPlacement(config, { source: 'api', tenantId: e.tenantId }, this.deps.placement);
      const changed = [...new Set([...Object.keys(raw), ...Object.keys(e.raw)])].filter(
        (k) => JSON.stringify(raw[k]) !== JSON.stringify(e.raw[k]),
      );
      // The lease stays ours (not released), so the new settings start here at once.
      await e.runner?.close(false);
      const now = new Date(this.deps.now()).toISOString();
      const records = await store.delivery.listSinkConfigs();
      const before = records.find((r) => r.name === e.key);
      await store.delivery.putSinkConfig({
        name: e.key,
        config: stored,
        tenantId: e.tenantId,
        createdAt: before?.createdAt ?? now,
        updatedAt: now,
      });
      table.delete(e.key);
      const setup = { config, raw: next, source: 'api' as const, tenantId: e.tenantId, updatedAt: now };
      await this.startOrUndo(e.key, setup, async () => {
        // The sink goes on as it was.
        if (before !== undefined) await store.delivery.putSinkConfig(before);
        await this.deps.start({
          config: e.config,
          raw: e.raw,
          source: 'api',
          tenantId: e.tenantId,
          updatedAt: e.updatedAt,
        });
      });
      return changed;
    });
  }

  /**
   * Starts a sink just stored through the API; when it cannot be opened (a
   * kind checks some settings only with its SDK, e.g. an Azure connection
   * string it cannot read), takes it out again with `undo` and answers 422
   * with the reason: the client's settings are at fault, and no broken sink
   * is left stored.
   */
  private async startOrUndo(key: string, setup: SinkSetup, undo: () => Promise<void>): Promise<void> {
    try {
      await this.deps.start(setup);
    } catch (err) {
      await this.deps.table.get(key)?.runner?.close(false);
      this.deps.table.delete(key);
      await undo();
      if (err instanceof TrailwardenError && err.code === 'TW_ERR_CONFIG')
        throw new TrailwardenError('TW_ERR_INVALID_SINK', err.message);
      throw err;
    }
  }

  /** Deletes a sink with its cursor and dead letters. */
  remove(address: SinkAddress, principal: Principal | null): Promise<void> {
    const { table, store } = this.deps;
    return table.serially(async () => {
      const e = table.editable(address, principal);
      // Not released: a node that has not yet seen the deletion could take a
      // released lease and write the sink's state again; it expires instead.
      await e.runner?.close(false);
      table.delete(e.key);
      await store.delivery.deleteSinkConfig(e.key);
      await store.delivery.deleteSinkState(e.key);
    });
  }

  /**
   * The health of a sink: state, lag in events and seconds, last error, when
   * the next attempt is due while a retry delay runs, the last healthcheck,
   * counters, and which node delivers it (`node`, `held_here`). Health,
   * retries, healthchecks and counters are known only to the node that
   * delivers the sink; another node answers `remote` with the stored cursor
   * and flags.
   */
  async status(address: SinkAddress, principal: Principal | null) {
    const { store, now } = this.deps;
    const e = this.deps.table.find(address, principal);
    const key = e.key;
    const w = workerOf(e);
    const delivery = store.delivery;
    const stored = w === undefined && e.config.enabled ? await delivery.getSinkState(key) : undefined;
    const lease = e.runner === undefined ? undefined : await delivery.leaseHolder(sinkLeaseName(key));
    const head = await store.headSeq();
    const cursor = w?.cursor ?? stored?.cursor ?? (await delivery.getSinkState(key))?.cursor ?? 0;
    const [next] = cursor < head ? await store.readRange(cursor, 1) : [];
    const lagSeconds = next ? Math.max(0, (now() - Date.parse(next.received_at)) / 1000) : 0;
    const disabledReason = w
      ? w.disabledReason
      : e.config.enabled
        ? (stored?.disabledReason ?? null)
        : 'enabled: false';
    const paused = w?.paused ?? stored?.paused ?? false;
    return {
      name: e.config.name,
      tenant_id: e.tenantId,
      type: e.config.type,
      source: e.source,
      state: w ? w.health : disabledReason !== null ? 'disabled' : paused ? 'paused' : 'remote',
      cursor,
      head_seq: head,
      lag_events: head - cursor,
      lag_seconds: Math.round(lagSeconds * 1000) / 1000,
      in_flight_to: w?.inflightTo ?? stored?.inflightTo ?? null,
      paused,
      disabled_reason: disabledReason,
      last_error: w?.lastError ?? null,
      last_success_at: w?.lastSuccessAt ?? null,
      next_attempt_at: w?.nextAttemptAt ?? null,
      last_healthcheck: w?.lastHealthcheck ?? null,
      counters: w ? { ...w.counters } : null,
      dead_letters: await delivery.countDeadLetters(key),
      node: lease?.holder ?? null,
      held_here: e.runner?.isHeld ?? false,
    };
  }

  /** Moves a sink's cursor to just before `seq`, or to the first event received at or after `time`. */
  async replay(
    address: SinkAddress,
    to: { seq: number } | { time: string },
    principal: Principal | null,
  ): Promise<number> {
    const { store } = this.deps;
    const e = this.deps.table.enabled(address, principal);
    const head = await store.headSeq();
    const seq = 'seq' in to ? to.seq : await this.firstSeqReceivedAt(Date.parse(to.time), head);
    if (seq < 1 || seq > head + 1) {
      throw new TrailwardenError(
        'TW_ERR_INVALID_PARAMETER',
        `seq must be from 1 to ${head + 1} (the log holds ${head} events)`,
      );
    }
    const w = workerOf(e);
    if (w) w.replay(seq - 1);
    else await replayStoredSink(store, e.key, e.config, seq - 1);
    return seq;
  }

  /** Binary search over `received_at`, which never decreases with `seq`. */
  private async firstSeqReceivedAt(ms: number, head: number): Promise<number> {
    let lo = 1;
    let hi = head + 1;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      const [e] = await this.deps.store.readRange(mid - 1, 1);
      if (e && Date.parse(e.received_at) < ms) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Pause or resume; through a node that does not deliver the sink, the holder sees it at its next renewal. */
  async setPaused(address: SinkAddress, paused: boolean, principal: Principal | null): Promise<void> {
    const e = this.deps.table.enabled(address, principal);
    const w = workerOf(e);
    if (w) {
      await w.setPaused(paused);
      return;
    }
    await setStoredSinkPaused(this.deps.store, e.key, e.config, paused);
  }

  /** A page of the sink's dead letters, oldest first. */
  async deadLetters(
    address: SinkAddress,
    page: { afterId?: number; limit: number },
    principal: Principal | null,
  ): Promise<DeadLetter[]> {
    return this.deps.store.delivery.listDeadLetters(this.deps.table.find(address, principal).key, page);
  }

  /** Some dead letters of the sink by id (those that exist). */
  async deadLettersById(
    address: SinkAddress,
    ids: number[],
    principal: Principal | null,
  ): Promise<DeadLetter[]> {
    return this.deps.store.delivery.getDeadLetters(this.deps.table.find(address, principal).key, ids);
  }

  /**
   * Delivers dead letters again, once each, now; removes those the sink
   * confirms. Through a node that does not deliver the sink the letters are
   * marked for the node that does (`queued`), which redrives them at its
   * next lease renewal ({@link redriveRequested}).
   */
  async redrive(address: SinkAddress, ids: number[], principal: Principal | null): Promise<RedriveResult[]> {
    const { store } = this.deps;
    const e = this.deps.table.enabled(address, principal);
    const name = e.key;
    const w = workerOf(e);
    if (w === undefined) {
      // Only the node holding the lease may deliver the sink (a file sink's file is on its disk).
      const marked = await store.delivery.requestRedrive(name, ids, new Date(this.deps.now()).toISOString());
      const seqOf = new Map(marked.map((l) => [l.id, l.seq]));
      return ids.map((id) => {
        const seq = seqOf.get(id);
        return seq === undefined
          ? { id, seq: 0, status: 'missing' as const }
          : { id, seq, status: 'queued' as const };
      });
    }
    const letters = await store.delivery.getDeadLetters(name, ids);
    return this.redeliver(name, w, ids, letters);
  }

  /**
   * Redrives what other nodes asked this node for (`redrive` through them),
   * for every sink it delivers; the engine calls it at each lease renewal.
   */
  async redriveRequested(stopping: () => boolean): Promise<void> {
    const { store, audit, log } = this.deps;
    for (const e of this.deps.table.values()) {
      const w = workerOf(e);
      if (w === undefined || stopping()) continue;
      const name = e.key;
      const letters = await store.delivery.redriveRequests(name, REDRIVE_BATCH);
      if (letters.length === 0) continue;
      const results = await this.redeliver(
        name,
        w,
        letters.map((l) => l.id),
        letters,
      );
      const delivered = results.filter((r) => r.status === 'delivered').length;
      log.info(
        `sink ${name}: redrove ${letters.length} dead letter(s) asked for through another node, ${delivered} delivered`,
      );
      // The request was audited where it was made; this is what came of it.
      try {
        const shown = e.config.name;
        await audit.record('sink.dead_letters.redriven', null, {
          actor: DELIVERY_ACTOR,
          outcome: delivered === letters.length ? 'success' : 'failure',
          resource: { type: 'sink', id: shown, name: shown },
          metadata: { count: letters.length, delivered, queued_through_another_node: true },
          ...(e.tenantId === null ? {} : { tenantId: e.tenantId }),
        });
      } catch (err) {
        log.warn(`could not record the redrive of sink ${name}`, { err });
      }
    }
  }

  private async redeliver(
    name: string,
    w: SinkWorker,
    ids: number[],
    letters: DeadLetter[],
  ): Promise<RedriveResult[]> {
    const results: RedriveResult[] = [];
    for (const id of ids) {
      const letter = letters.find((l) => l.id === id);
      if (!letter) {
        results.push({ id, seq: 0, status: 'missing' });
        continue;
      }
      const outcome = await w.redeliver(letter);
      if (outcome.kind === 'ok') {
        await this.deps.store.delivery.removeDeadLetters(name, [id]);
        results.push({ id, seq: letter.seq, status: 'delivered' });
      } else {
        await this.deps.store.delivery.recordDeadLetterAttempt(name, id, outcome.reason);
        results.push({ id, seq: letter.seq, status: 'failed', reason: outcome.reason });
      }
    }
    return results;
  }
}
