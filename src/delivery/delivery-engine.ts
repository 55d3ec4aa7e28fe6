import type { SelfAudit } from '../audit/self-audit.js';
import type { Principal } from '../auth/api-keys.js';
import { TrailwardenError } from '../errors.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { DeadLetter, SinkConfigRecord, Store } from '../store/store.js';
import { EmitWaiters } from './emit-waiters.js';
import type { SinkContext } from './sink.js';
import { type EmitPolicy, type SinkConfig, sinkConfigSchema } from './sink-config.js';
import { sinkLeaseName } from './sink-lease.js';
import { apiSinkProblems } from './sink-policy.js';
import { describeSink, type SinkRef, sinkKey } from './sink-ref.js';
import { SinkRunner } from './sink-runner.js';
import { hasSecrets, needsSealing, openSecrets, sealSecrets } from './sink-secrets.js';
import type { SinkWorker } from './sink-worker.js';
import { SINKS } from './sinks/registry.js';
import { replayStoredSink, setStoredSinkPaused } from './stored-sink.js';

/** Where a sink's settings live: the config file (read-only through the API) or the store. */
export type SinkSource = 'config' | 'api';

/** What a redrive did with one dead letter; `queued`: left for the node that delivers the sink. */
export interface RedriveResult {
  id: number;
  seq: number;
  status: 'delivered' | 'failed' | 'missing' | 'queued';
  reason?: string;
}

/** Letters asked for through other nodes that one pass redrives per sink (the rest wait for the next). */
const REDRIVE_BATCH = 100;

/** A sink as the engine's callers name it: a name in the operator's scope, or a name and its tenant. */
export type SinkAddress = string | SinkRef;

function refOf(address: SinkAddress): SinkRef {
  return typeof address === 'string' ? { name: address, tenantId: null } : address;
}

interface Entry {
  /** Its key in the store and in leases ({@link sinkKey}). */
  key: string;
  config: SinkConfig;
  /** As given (secrets in clear: what the API shows masked, and stores sealed). */
  raw: Record<string, unknown>;
  source: SinkSource;
  /** The tenant whose admin created it (its name's scope); `null`: the operator's. */
  tenantId: string | null;
  /** `updatedAt` of the stored record (API sinks): a change made through another node shows here. */
  updatedAt: string | null;
  /** The sink's lease and worker on this node; none while the sink is not enabled. */
  runner: SinkRunner | undefined;
}

/** The worker delivering the sink, while this node holds its lease. */
function workerOf(e: Entry | undefined): SinkWorker | undefined {
  return e?.runner?.worker;
}

export interface EngineOptions {
  store: Store;
  audit: SelfAudit;
  dataDir: string;
  /** Seals the secrets of API sinks in the store; `null`: none configured (they cannot be stored). */
  secrets: SecretBox | null;
  /** `allowed_private_networks`: private networks guarded sinks may still reach. */
  allowedPrivateNetworks: readonly string[];
  /** Sinks of the config file, validated. */
  configSinks: Array<{ config: SinkConfig; raw: Record<string, unknown> }>;
  emit: EmitPolicy | null;
  log: SinkContext['log'];
  now?: () => number;
  /** How often to look for sinks that crossed `failing_after_ms`. */
  healthCheckMs?: number;
  /** This node's name in sink leases (`nodeIdOf(config.cluster.node_id)`). */
  nodeId: string;
  /** `cluster.lease_ms`: a sink's lease lasts this long unless renewed (every third of it). */
  leaseMs: number;
  /** `file_sink_root`: the only folder API-created file sinks may write under (absent or `null`: none may). */
  fileRoot?: string | null;
}

/** The system actor of events the engine records (alerts). */
const ENGINE_ACTOR = { type: 'system', id: 'trailwarden.delivery', name: 'delivery engine' };

/** Validates a sink configuration as given (API body, stored JSON, or a config-file entry already substituted). */
export function parseSinkConfig(raw: unknown): SinkConfig {
  const parsed = sinkConfigSchema.safeParse(raw);
  if (parsed.success) return parsed.data as SinkConfig;
  const problems = parsed.error.issues.map((issue) => {
    const path = issue.path
      .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
      .join('')
      .replace(/^\./, '');
    return { path: path || '(sink)', message: `${path || '(sink)'}: ${issue.message}` };
  });
  throw new TrailwardenError(
    'TW_ERR_INVALID_SINK',
    `the sink configuration is invalid: ${problems.map((p) => p.message).join('; ')}`,
    { problems },
  );
}

/**
 * Checks settings sent through the admin API by an admin bound to
 * `tenantId` against what the API allows ({@link apiSinkProblems}), then
 * validates them.
 */
function parseApiSink(raw: Record<string, unknown>, tenantId: string | null): SinkConfig {
  const { invalid, forbidden } = apiSinkProblems(raw, tenantId);
  if (forbidden.length > 0) {
    throw new TrailwardenError(
      'TW_ERR_FORBIDDEN',
      `this admin key is bound to tenant ${tenantId}: ${forbidden.map((p) => p.message).join('; ')}`,
      { problems: forbidden },
    );
  }
  if (invalid.length > 0) {
    throw new TrailwardenError(
      'TW_ERR_INVALID_SINK',
      `the sink configuration is invalid: ${invalid.map((p) => p.message).join('; ')}`,
      { problems: invalid },
    );
  }
  return parseSinkConfig(raw);
}

/**
 * Runs every sink as an independent consumer of the log: one worker per
 * sink, woken when events are appended, each with its own cursor. Also the
 * seam for the admin API (create, change, replay, pause, dead letters) and the
 * emit policy.
 *
 * With several nodes on one store, a node runs a sink's worker only while it
 * holds the sink's lease (`sink:<name>`), so one node at a time delivers each
 * sink. What the admin API changes through a node that does not hold it
 * (pause, resume, replay, sink settings, a redrive) is written to the store,
 * where the holder finds it at its next lease renewal.
 */
export class DeliveryEngine {
  /** Every sink, by key ({@link sinkKey}). */
  private readonly sinks = new Map<string, Entry>();
  readonly emit: EmitWaiters;
  private unsubscribe: (() => void) | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  private syncTimer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  /** Changes to the set of sinks (API calls, syncs from the store) run one at a time, in order. */
  private changes: Promise<unknown> = Promise.resolve();
  /** Stored sink records that failed to parse, by key and `updatedAt`, so each is reported once. */
  private readonly unusable = new Map<string, string>();
  private stopping = false;
  /** The pass redriving letters asked for through other nodes, while one runs. */
  private redriving: Promise<void> | undefined;

  constructor(private readonly opts: EngineOptions) {
    this.now = opts.now ?? Date.now;
    this.emit = new EmitWaiters(opts.emit, {
      store: opts.store,
      localWorker: (name) => workerOf(this.sinks.get(name)),
      deliveredElsewhere: (name) => {
        const runner = this.sinks.get(name)?.runner;
        return runner !== undefined && !runner.isHeld;
      },
    });
  }

  /** This node's name in sink leases. */
  get nodeId(): string {
    return this.opts.nodeId;
  }

  get emitPolicy(): EmitPolicy | null {
    return this.opts.emit;
  }

  async start(): Promise<void> {
    // Every config-file sink is checked before any starts: a misplaced one fails the start as a whole.
    for (const { config } of this.opts.configSinks) this.checkPlacement(config, 'config', null);
    for (const { config, raw } of this.opts.configSinks) {
      await this.add(config, raw, 'config', null, null);
    }
    const records = await this.opts.store.delivery.listSinkConfigs();
    await this.sealStoredSecrets(records);
    for (const rec of records) {
      if (this.sinks.has(rec.name)) {
        this.opts.log.warn(
          `sink ${rec.name} is defined in the config file and through the API; the config file wins`,
        );
        continue;
      }
      await this.addStored(rec);
    }
    this.unsubscribe = this.opts.store.onAppend(() => {
      for (const e of this.sinks.values()) workerOf(e)?.wake();
    });
    this.healthTimer = setInterval(() => {
      for (const e of this.sinks.values()) workerOf(e)?.checkHealth();
    }, this.opts.healthCheckMs ?? 1000);
    this.healthTimer.unref();
    // Sinks created, changed or deleted through other nodes' admin API, and redrives asked for there.
    this.syncTimer = setInterval(() => {
      this.serially(() => this.syncStoredSinks()).catch((err: unknown) =>
        this.opts.log.warn('could not read the stored sink settings', { err }),
      );
      // Not behind sink changes: a redrive waits for receivers, which may be slow.
      if (this.redriving === undefined) {
        this.redriving = this.redriveRequested()
          .catch((err: unknown) =>
            this.opts.log.warn('could not redrive the dead letters asked for through other nodes', { err }),
          )
          .finally(() => {
            this.redriving = undefined;
          });
      }
    }, this.opts.leaseMs / 3);
    this.syncTimer.unref();
  }

  /**
   * Stops every worker and gives the leases up so other nodes take over at
   * once. `release: false` leaves them to expire, as a node that died would.
   */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    this.stopping = true;
    this.unsubscribe?.();
    if (this.healthTimer) clearInterval(this.healthTimer);
    if (this.syncTimer) clearInterval(this.syncTimer);
    this.emit.cancelAll();
    await this.redriving;
    await this.serially(() =>
      Promise.all([...this.sinks.values()].map((e) => e.runner?.close(opts.release ?? true))),
    );
  }

  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.changes.then(fn);
    this.changes = run.catch(() => undefined);
    return run;
  }

  /**
   * Seals stored secrets that are in clear (stored before secrets were
   * encrypted) or sealed with an older key (the operator rotated keys), so
   * the database holds every secret under the current key only.
   */
  private async sealStoredSecrets(records: SinkConfigRecord[]): Promise<void> {
    const box = this.opts.secrets;
    if (box === null) return;
    let sealed = 0;
    for (const rec of records) {
      const stored = JSON.parse(rec.config) as Record<string, unknown>;
      if (!needsSealing(stored, box)) continue;
      try {
        const config = JSON.stringify(sealSecrets(stored, rec.name, box));
        // Same `updatedAt`: the settings did not change, so no node restarts the sink for it.
        await this.opts.store.delivery.putSinkConfig({ ...rec, config });
        rec.config = config;
        sealed += 1;
      } catch (err) {
        this.opts.log.warn(`sink ${rec.name}: could not seal its stored secrets: ${(err as Error).message}`);
      }
    }
    if (sealed > 0) {
      this.opts.log.info(`sealed the stored secrets of ${sealed} sink(s) with key ${box.currentKeyId}`);
    }
  }

  /**
   * Adds a sink kept in the store; one that does not parse, breaks the API's
   * rules (stored before they existed) or does not start is reported and
   * left out.
   */
  private async addStored(rec: SinkConfigRecord): Promise<void> {
    if (this.unusable.get(rec.name) === rec.updatedAt) return;
    try {
      const raw = openSecrets(JSON.parse(rec.config) as Record<string, unknown>, rec.name, this.opts.secrets);
      const config = parseApiSink(raw, rec.tenantId);
      if (sinkKey({ name: config.name, tenantId: rec.tenantId }) !== rec.name) {
        throw new Error(`its stored key ${rec.name} does not match its name ${config.name}`);
      }
      // Also for sinks an earlier version stored: one that breaks today's rules does not start.
      this.checkPlacement(config, 'api', rec.tenantId);
      await this.add(config, raw, 'api', rec.tenantId, rec.updatedAt);
      this.unusable.delete(rec.name);
    } catch (err) {
      this.unusable.set(rec.name, rec.updatedAt);
      this.opts.log.warn(`sink ${rec.name} could not start: ${(err as Error).message}`);
    }
  }

  /** Brings the API sinks in line with the store, where other nodes may have changed them. */
  private async syncStoredSinks(): Promise<void> {
    if (this.stopping) return;
    const records = await this.opts.store.delivery.listSinkConfigs();
    const stored = new Map(records.map((r) => [r.name, r]));
    for (const [key, e] of [...this.sinks]) {
      if (e.source !== 'api') continue;
      const rec = stored.get(key);
      if (rec !== undefined && rec.updatedAt === e.updatedAt) continue;
      // Kept, not released: if the sink is still there, this node delivers it on at once.
      await e.runner?.close(false);
      this.sinks.delete(key);
      if (rec !== undefined) await this.addStored(rec);
    }
    for (const rec of records) if (!this.sinks.has(rec.name)) await this.addStored(rec);
  }

  /**
   * Refuses a sink whose kind finds fault with where it would act (a file
   * sink outside `file_sink_root` or inside the data folder): a 422 through
   * the API, a failed start for the config file.
   */
  private checkPlacement(config: SinkConfig, source: SinkSource, tenantId: string | null): void {
    const problems =
      SINKS[config.type]?.placementProblems?.(config, {
        owner: { source, tenantId },
        fileRoot: this.opts.fileRoot ?? null,
        dataDir: this.opts.dataDir,
      }) ?? [];
    if (problems.length === 0) return;
    const text = problems.map((p) => `${p.path}: ${p.message}`).join('; ');
    throw source === 'config'
      ? new TrailwardenError('TW_ERR_CONFIG', `sink ${config.name} in the config file: ${text}`, { problems })
      : new TrailwardenError('TW_ERR_INVALID_SINK', `the sink configuration is invalid: ${text}`, {
          problems,
        });
  }

  private async add(
    config: SinkConfig,
    raw: Record<string, unknown>,
    source: SinkSource,
    tenantId: string | null,
    updatedAt: string | null,
  ) {
    const key = sinkKey({ name: config.name, tenantId });
    const entry: Entry = { key, config, raw, source, tenantId, updatedAt, runner: undefined };
    this.sinks.set(key, entry);
    if (!config.enabled) return;
    const def = SINKS[config.type];
    if (!def) throw new TrailwardenError('TW_ERR_INVALID_SINK', `unknown sink type ${config.type}`);
    const cap = def.batchCap?.(config);
    if (cap?.max_events !== undefined)
      config.batch.max_events = Math.min(config.batch.max_events, cap.max_events);
    const runner = new SinkRunner(config, def, {
      key,
      owner: { source, tenantId },
      store: this.opts.store,
      nodeId: this.opts.nodeId,
      leaseMs: this.opts.leaseMs,
      dataDir: this.opts.dataDir,
      allowedPrivateNetworks: this.opts.allowedPrivateNetworks,
      fileRoot: this.opts.fileRoot ?? null,
      now: this.now,
      log: this.opts.log,
      onProgress: (upTo, parked) => this.emit.progress(key, upTo, parked),
      onAlert: (kind, detail) => void this.alert(entry, kind, detail),
    });
    await runner.start();
    entry.runner = runner;
  }

  private async alert(
    e: Entry,
    kind: 'failing' | 'recovered',
    detail: { reason: string; sinceMs: number },
  ): Promise<void> {
    const { config, tenantId } = e;
    try {
      await this.opts.audit.record(
        kind === 'failing' ? 'sink.delivery.failing' : 'sink.delivery.recovered',
        null,
        {
          actor: ENGINE_ACTOR,
          outcome: kind === 'failing' ? 'failure' : 'success',
          resource: { type: 'sink', id: config.name, name: config.name },
          ...(kind === 'failing' ? { reason: detail.reason.slice(0, 1000) } : {}),
          metadata: { sink_type: config.type, failing_since: new Date(detail.sinceMs).toISOString() },
          ...(tenantId === null ? {} : { tenantId }),
        },
      );
    } catch (err) {
      this.opts.log.warn(
        `could not record the ${kind} alert of sink ${describeSink({ name: e.config.name, tenantId: e.tenantId })}`,
        {
          err,
        },
      );
    }
  }

  /**
   * Sinks visible to a principal: a tenant-bound admin sees only its
   * tenant's sinks; `tenantId` narrows an all-tenant admin's list to one
   * scope (`null`: the operator's).
   */
  list(
    principal: Principal | null,
    tenantId?: string | null,
  ): Array<{
    name: string;
    source: SinkSource;
    tenantId: string | null;
    raw: Record<string, unknown>;
    config: SinkConfig;
  }> {
    return [...this.sinks.values()]
      .filter(
        (e) =>
          (principal === null || principal.tenantId === null || e.tenantId === principal.tenantId) &&
          (tenantId === undefined || e.tenantId === tenantId),
      )
      .map((e) => ({
        name: e.config.name,
        source: e.source,
        tenantId: e.tenantId,
        raw: e.raw,
        config: e.config,
      }))
      .sort((a, b) =>
        a.tenantId === b.tenantId
          ? a.name.localeCompare(b.name)
          : a.tenantId === null
            ? -1
            : b.tenantId === null
              ? 1
              : a.tenantId.localeCompare(b.tenantId),
      );
  }

  /** The sink, or 404 when it does not exist or the principal may not see it. */
  entry(address: SinkAddress, principal: Principal | null): Entry {
    const ref = refOf(address);
    const e = this.sinks.get(sinkKey(ref));
    if (!e || (principal !== null && principal.tenantId !== null && e.tenantId !== principal.tenantId)) {
      throw new TrailwardenError(
        'TW_ERR_NOT_FOUND',
        `no sink ${JSON.stringify(ref.name)} visible to this key`,
      );
    }
    return e;
  }

  private editable(address: SinkAddress, principal: Principal | null): Entry {
    const e = this.entry(address, principal);
    if (e.source === 'config') {
      throw new TrailwardenError(
        'TW_ERR_SINK_READ_ONLY',
        `sink ${e.config.name} is defined in the config file; change it there and restart`,
      );
    }
    return e;
  }

  /** The settings as stored: secrets sealed; refused when there are secrets and no key to seal them. */
  private storedForm(raw: Record<string, unknown>, key: string): string {
    const box = this.opts.secrets;
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
   * tenant; `null` for an all-tenant admin); `raw` is kept as given.
   */
  create(raw: Record<string, unknown>, tenantId: string | null): Promise<SinkConfig> {
    return this.serially(async () => {
      const config = parseApiSink(raw, tenantId);
      const key = sinkKey({ name: config.name, tenantId });
      if (this.sinks.has(key)) {
        throw new TrailwardenError(
          'TW_ERR_SINK_EXISTS',
          `a sink named ${config.name} exists; choose another name or PATCH it`,
        );
      }
      this.checkPlacement(config, 'api', tenantId);
      const now = new Date(this.now()).toISOString();
      const rec: SinkConfigRecord = {
        name: key,
        config: this.storedForm(raw, key),
        tenantId,
        createdAt: now,
        updatedAt: now,
      };
      await this.opts.store.delivery.putSinkConfig(rec);
      await this.add(config, raw, 'api', tenantId, now);
      return config;
    });
  }

  /** Replaces a sink's settings; its cursor and dead letters stay. Returns the changed top-level fields. */
  update(address: SinkAddress, raw: Record<string, unknown>, principal: Principal | null): Promise<string[]> {
    return this.serially(async () => {
      const e = this.editable(address, principal);
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
      this.checkPlacement(config, 'api', e.tenantId);
      const changed = [...new Set([...Object.keys(raw), ...Object.keys(e.raw)])].filter(
        (k) => JSON.stringify(raw[k]) !== JSON.stringify(e.raw[k]),
      );
      // The lease stays ours (not released), so the new settings start here at once.
      await e.runner?.close(false);
      const now = new Date(this.now()).toISOString();
      const records = await this.opts.store.delivery.listSinkConfigs();
      const createdAt = records.find((r) => r.name === e.key)?.createdAt ?? now;
      await this.opts.store.delivery.putSinkConfig({
        name: e.key,
        config: stored,
        tenantId: e.tenantId,
        createdAt,
        updatedAt: now,
      });
      this.sinks.delete(e.key);
      await this.add(config, next, 'api', e.tenantId, now);
      return changed;
    });
  }

  remove(address: SinkAddress, principal: Principal | null): Promise<void> {
    return this.serially(async () => {
      const e = this.editable(address, principal);
      // Not released: a node that has not yet seen the deletion could take a
      // released lease and write the sink's state again; it expires instead.
      await e.runner?.close(false);
      this.sinks.delete(e.key);
      await this.opts.store.delivery.deleteSinkConfig(e.key);
      await this.opts.store.delivery.deleteSinkState(e.key);
    });
  }

  /** The sink, refused when it is not enabled. */
  private enabled(address: SinkAddress, principal: Principal | null): Entry {
    const e = this.entry(address, principal);
    if (!e.config.enabled)
      throw new TrailwardenError(
        'TW_ERR_SINK_DISABLED',
        `sink ${e.config.name} is not enabled (enabled: false)`,
      );
    return e;
  }

  /**
   * The health of a sink: state, lag in events and seconds, last error,
   * counters, and which node delivers it (`node`, `held_here`). Health and
   * counters are known only to the node that delivers the sink; another node
   * answers `remote` with the stored cursor and flags.
   */
  async status(address: SinkAddress, principal: Principal | null) {
    const e = this.entry(address, principal);
    const key = e.key;
    const w = workerOf(e);
    const delivery = this.opts.store.delivery;
    const stored = w === undefined && e.config.enabled ? await delivery.getSinkState(key) : undefined;
    const lease = e.runner === undefined ? undefined : await delivery.leaseHolder(sinkLeaseName(key));
    const head = await this.opts.store.headSeq();
    const cursor = w?.cursor ?? stored?.cursor ?? (await delivery.getSinkState(key))?.cursor ?? 0;
    const [next] = cursor < head ? await this.opts.store.readRange(cursor, 1) : [];
    const lagSeconds = next ? Math.max(0, (this.now() - Date.parse(next.received_at)) / 1000) : 0;
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
    const e = this.enabled(address, principal);
    const head = await this.opts.store.headSeq();
    const seq = 'seq' in to ? to.seq : await this.firstSeqReceivedAt(Date.parse(to.time), head);
    if (seq < 1 || seq > head + 1) {
      throw new TrailwardenError(
        'TW_ERR_INVALID_PARAMETER',
        `seq must be from 1 to ${head + 1} (the log holds ${head} events)`,
      );
    }
    const w = workerOf(e);
    if (w) w.replay(seq - 1);
    else await replayStoredSink(this.opts.store, e.key, e.config, seq - 1);
    return seq;
  }

  /** Binary search over `received_at`, which never decreases with `seq`. */
  private async firstSeqReceivedAt(ms: number, head: number): Promise<number> {
    let lo = 1;
    let hi = head + 1;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      const [e] = await this.opts.store.readRange(mid - 1, 1);
      if (e && Date.parse(e.received_at) < ms) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Pause or resume; through a node that does not deliver the sink, the holder sees it at its next renewal. */
  async setPaused(address: SinkAddress, paused: boolean, principal: Principal | null): Promise<void> {
    const e = this.enabled(address, principal);
    const w = workerOf(e);
    if (w) {
      await w.setPaused(paused);
      return;
    }
    await setStoredSinkPaused(this.opts.store, e.key, e.config, paused);
  }

  async deadLetters(
    address: SinkAddress,
    page: { afterId?: number; limit: number },
    principal: Principal | null,
  ): Promise<DeadLetter[]> {
    return this.opts.store.delivery.listDeadLetters(this.entry(address, principal).key, page);
  }

  /** Some dead letters of the sink by id (those that exist). */
  async deadLettersById(
    address: SinkAddress,
    ids: number[],
    principal: Principal | null,
  ): Promise<DeadLetter[]> {
    return this.opts.store.delivery.getDeadLetters(this.entry(address, principal).key, ids);
  }

  /**
   * Delivers dead letters again, once each, now; removes those the sink
   * confirms. Through a node that does not deliver the sink the letters are
   * marked for the node that does (`queued`), which redrives them at its
   * next lease renewal.
   */
  async redrive(address: SinkAddress, ids: number[], principal: Principal | null): Promise<RedriveResult[]> {
    const e = this.enabled(address, principal);
    const name = e.key;
    const w = workerOf(e);
    if (w === undefined) {
      // Only the node holding the lease may deliver the sink (a file sink's file is on its disk).
      const marked = await this.opts.store.delivery.requestRedrive(
        name,
        ids,
        new Date(this.now()).toISOString(),
      );
      const seqOf = new Map(marked.map((l) => [l.id, l.seq]));
      return ids.map((id) => {
        const seq = seqOf.get(id);
        return seq === undefined
          ? { id, seq: 0, status: 'missing' as const }
          : { id, seq, status: 'queued' as const };
      });
    }
    const letters = await this.opts.store.delivery.getDeadLetters(name, ids);
    return this.redeliver(name, w, ids, letters);
  }

  /** Redrives what other nodes asked this node for (`redrive` through them), for every sink it delivers. */
  private async redriveRequested(): Promise<void> {
    for (const [name, e] of this.sinks) {
      const w = workerOf(e);
      if (w === undefined || this.stopping) continue;
      const letters = await this.opts.store.delivery.redriveRequests(name, REDRIVE_BATCH);
      if (letters.length === 0) continue;
      const results = await this.redeliver(
        name,
        w,
        letters.map((l) => l.id),
        letters,
      );
      const delivered = results.filter((r) => r.status === 'delivered').length;
      this.opts.log.info(
        `sink ${name}: redrove ${letters.length} dead letter(s) asked for through another node, ${delivered} delivered`,
      );
      // The request was audited where it was made; this is what came of it.
      try {
        const shown = e.config.name;
        await this.opts.audit.record('sink.dead_letters.redriven', null, {
          actor: ENGINE_ACTOR,
          outcome: delivered === letters.length ? 'success' : 'failure',
          resource: { type: 'sink', id: shown, name: shown },
          metadata: { count: letters.length, delivered, queued_through_another_node: true },
          ...(e.tenantId === null ? {} : { tenantId: e.tenantId }),
        });
      } catch (err) {
        this.opts.log.warn(`could not record the redrive of sink ${name}`, { err });
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
        await this.opts.store.delivery.removeDeadLetters(name, [id]);
        results.push({ id, seq: letter.seq, status: 'delivered' });
      } else {
        await this.opts.store.delivery.recordDeadLetterAttempt(name, id, outcome.reason);
        results.push({ id, seq: letter.seq, status: 'failed', reason: outcome.reason });
      }
    }
    return results;
  }
}
