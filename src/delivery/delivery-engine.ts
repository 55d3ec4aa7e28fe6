import type { SelfAudit } from '../audit/self-audit.js';
import { TrailwardenError } from '../errors.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { SinkConfigRecord, Store } from '../store/store.js';
import { EmitWaiters } from './emit-waiters.js';
import type { SinkContext, SinkPlacement } from './sink.js';
import { SinkAdmin } from './sink-admin.js';
import { recordSinkAlert } from './sink-alerts.js';
import type { EmitPolicy, SinkConfig } from './sink-config.js';
import { checkPlacement, parseApiSink } from './sink-policy.js';
import { sinkKey } from './sink-ref.js';
import { SinkRunner } from './sink-runner.js';
import { needsSealing, openSecrets, sealSecrets } from './sink-secrets.js';
import { type SinkEntry, type SinkSetup, SinkTable, viewOf, workerOf } from './sink-table.js';
import { SINKS } from './sinks/registry.js';

/** What the engine is built with (`runtime.ts` fills it from the config). */
export interface EngineOptions {
  store: Store;
  audit: SelfAudit;
  dataDir: string;
  /** Seals the secrets of API sinks in the store; `null`: none configured (they cannot be stored). */
  secrets: SecretBox | null;
  /** `allowed_private_networks`: private networks guarded sinks may still reach. */
  allowedPrivateNetworks: readonly string[];
  /** Sinks of the config file, validated (their settings are also what the API shows of them). */
  configSinks: readonly SinkConfig[];
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

/**
 * Runs every sink as an independent consumer of the log: one worker per
 * sink, woken when events are appended, each with its own cursor; raises
 * the failing and recovered alerts; serves the emit policy ({@link emit}).
 * The admin API goes through {@link admin} ({@link SinkAdmin}).
 *
 * With several nodes on one store, a node runs a sink's worker only while it
 * holds the sink's lease (`sink:<name>`), so one node at a time delivers each
 * sink. Sinks created, changed or deleted through other nodes, and redrives
 * asked for there, are read from the store at every third of the lease time.
 */
export class DeliveryEngine {
  readonly emit: EmitWaiters;
  /** Sink administration for the admin API: create, change, status, replay, pause, dead letters. */
  readonly admin: SinkAdmin;
  private readonly sinks = new SinkTable();
  private unsubscribe: (() => void) | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  private syncTimer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  /** Stored sink records that failed to parse, by key and `updatedAt`, so each is reported once. */
  private readonly unusable = new Map<string, string>();
  private stopping = false;
  /** Where sinks may act, for the kinds' placement rules. */
  private readonly placement: Omit<SinkPlacement, 'owner'>;
  /** The pass redriving letters asked for through other nodes, while one runs. */
  private redriving: Promise<void> | undefined;

  constructor(private readonly opts: EngineOptions) {
    this.now = opts.now ?? Date.now;
    this.placement = { fileRoot: opts.fileRoot ?? null, dataDir: opts.dataDir };
    this.emit = new EmitWaiters(opts.emit, {
      store: opts.store,
      localWorker: (name) => workerOf(this.sinks.get(name)),
      deliveredElsewhere: (name) => {
        const runner = this.sinks.get(name)?.runner;
        return runner !== undefined && !runner.isHeld;
      },
    });
    this.admin = new SinkAdmin({
      table: this.sinks,
      store: opts.store,
      audit: opts.audit,
      secrets: opts.secrets,
      placement: this.placement,
      now: this.now,
      log: opts.log,
      start: (setup) => this.add(setup),
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
    const owner = { source: 'config', tenantId: null } as const;
    // Every config-file sink is checked before any starts: a misplaced one fails the start as a whole.
    for (const config of this.opts.configSinks) checkPlacement(config, owner, this.placement);
    for (const config of this.opts.configSinks) {
      await this.add({ config, raw: config, source: 'config', tenantId: null, updatedAt: null });
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
      this.sinks
        .serially(() => this.syncStoredSinks())
        .catch((err: unknown) => this.opts.log.warn('could not read the stored sink settings', { err }));
      // Not behind sink changes: a redrive waits for receivers, which may be slow.
      if (this.redriving === undefined) {
        this.redriving = this.admin
          .redriveRequested(() => this.stopping)
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
    await this.sinks.serially(() =>
      Promise.all([...this.sinks.values()].map((e) => e.runner?.close(opts.release ?? true))),
    );
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
      checkPlacement(config, { source: 'api', tenantId: rec.tenantId }, this.placement);
      await this.add({ config, raw, source: 'api', tenantId: rec.tenantId, updatedAt: rec.updatedAt });
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
    for (const e of [...this.sinks.values()]) {
      if (e.source !== 'api') continue;
      const key = e.key;
      const rec = stored.get(key);
      if (rec !== undefined && rec.updatedAt === e.updatedAt) continue;
      // Kept, not released: if the sink is still there, this node delivers it on at once.
      await e.runner?.close(false);
      this.sinks.delete(key);
      if (rec !== undefined) await this.addStored(rec);
    }
    for (const rec of records) if (!this.sinks.has(rec.name)) await this.addStored(rec);
  }

  /** Adds a sink to the table and, when it is enabled, takes its lease to deliver it. */
  private async add(setup: SinkSetup): Promise<void> {
    const { config, source, tenantId } = setup;
    const key = sinkKey({ name: config.name, tenantId });
    const entry: SinkEntry = { ...setup, key, runner: undefined };
    this.sinks.set(entry);
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
      onAlert: (kind, detail) =>
        void recordSinkAlert(this.opts.audit, viewOf(entry), kind, detail, this.opts.log),
    });
    await runner.start();
    entry.runner = runner;
  }
}
