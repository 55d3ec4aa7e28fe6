import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { type Logger, pino } from 'pino';
import { buildApp } from './api/app.js';
import type { AppContext } from './api/context.js';
import { SelfAudit } from './audit/self-audit.js';
import { createApiKey, importApiKey } from './auth/api-keys.js';
import { nodeIdOf } from './cluster/node-id.js';
import type { Config } from './config/schema.js';
import { parseListen } from './config/schema.js';
import { DeliveryEngine } from './delivery/delivery-engine.js';
import { TrailwardenError } from './errors.js';
import type { EventLimits } from './event/limits.js';
import { IngestService } from './ingest/ingest-service.js';
import { checkWitness, writeWitness } from './log/checkpoint-witness.js';
import { Checkpointer } from './log/checkpointer.js';
import { loadOrCreateSigningKey } from './log/signing-key.js';
import { createLogger, flushLogSync } from './process-logger.js';
import { ErasureService } from './retention/erasure-service.js';
import { Pruner } from './retention/pruner.js';
import { loadSecretBox } from './secrets/secret-box.js';
import { tightenDataDir } from './store/data-dir.js';
import { openStore, type StoreSettings, sqliteFile } from './store/open-store.js';
import { DataDirLock, describeHolder } from './store/sqlite/data-dir-lock.js';
import type { Store } from './store/store.js';

/** A running Trailwarden: the HTTP server and what it owns. */
export interface Running {
  app: FastifyInstance;
  store: Store;
  url: string;
  origin: string;
  /** Set only when this start created the first admin key (shown once). */
  createdAdminToken: string | undefined;
  /** Stops the server and closes the store; resolves once the last log lines are written out. */
  close(): Promise<void>;
}

export function eventLimitsFrom(config: Config): EventLimits {
  const l = config.limits;
  return {
    max_event_bytes: l.max_event_bytes,
    max_string_length: l.max_string_length,
    max_text_length: l.max_text_length,
    max_metadata_depth: l.max_metadata_depth,
    max_metadata_keys: l.max_metadata_keys,
    max_array_length: l.max_array_length,
    max_clock_skew_ms: l.max_clock_skew_ms,
    max_event_age_ms: l.max_event_age_ms,
  };
}

/** What the store takes of the configuration: backend, data folder and this node's cluster settings. */
export function storeSettingsFrom(config: Config): StoreSettings {
  return {
    store: config.store,
    dataDir: resolve(config.data_dir),
    cluster: {
      nodeId: nodeIdOf(config.cluster.node_id),
      leaseMs: config.cluster.lease_ms,
      maxPendingEvents: config.cluster.max_pending_events,
      pendingWaitMs: config.cluster.pending_wait_ms,
    },
  };
}

/** The log's origin line: configured, or chosen once and kept in the store. */
async function resolveOrigin(store: Store, config: Config): Promise<string> {
  if (config.checkpoints.origin !== null) return config.checkpoints.origin;
  const kept = await store.getMeta('origin');
  if (kept !== undefined) return kept;
  // Nodes starting together on one database each propose one; the first kept is everyone's.
  return store.initMeta('origin', `trailwarden/${randomBytes(4).toString('hex')}`);
}

/** Everything a server is made of, before it listens. */
export interface Assembled {
  ctx: AppContext;
  checkpointer: Checkpointer;
  createdAdminToken: string | undefined;
  /** Opens the doors: /readyz turns ready. */
  setReady(ready: boolean): void;
  /** Stops the checkpointer (issuing a last checkpoint) and closes the store. */
  close(): Promise<void>;
}

/**
 * Takes the data folder's one-writer lock (SQLite only: PostgreSQL nodes
 * share a database by design), or refuses naming who holds it.
 */
function lockDataDir(config: Config, dataDir: string): DataDirLock | undefined {
  if (config.store !== 'sqlite') return undefined;
  const attempt = DataDirLock.acquire(dataDir, 'trailwarden serve');
  if (attempt.ok) return attempt.lock;
  throw new TrailwardenError(
    'TW_ERR_DATA_DIR_LOCKED',
    `The data folder ${dataDir} is in use by ${describeHolder(attempt.holder)}: only one server may run on it. ` +
      'Stop that one first, or give this one another --data-dir.',
  );
}

/**
 * Takes the data folder's lock, opens the store, loads (or creates) the
 * signing key, checks the store against the checkpoint witness, bootstraps
 * the first admin key and starts the checkpointer. Tests use this with
 * `buildApp` and `inject()`; `start` adds the listening server.
 */
export async function assemble(
  config: Config,
  env: NodeJS.ProcessEnv = process.env,
  logger: Logger = pino({ level: 'silent' }),
): Promise<Assembled> {
  const dataDir = resolve(config.data_dir);
  const lock = lockDataDir(config, dataDir);
  let store: Store;
  try {
    const tightened = tightenDataDir(dataDir);
    if (tightened.length > 0) {
      logger.warn(
        { tightened },
        `restricted the data folder to its owner: ${tightened.map((t) => `${t.path} ${t.was} → ${t.now}`).join(', ')}`,
      );
    }
    store = await openStore(storeSettingsFrom(config));
  } catch (err) {
    lock?.release();
    throw err;
  }
  try {
    const key = await loadOrCreateSigningKey(dataDir, {
      ...(config.checkpoints.key_file === null ? {} : { keyFile: config.checkpoints.key_file }),
      ...(config.checkpoints.key_pem === null ? {} : { keyPem: config.checkpoints.key_pem }),
    });
    // Before anything is written or signed: a store behind a checkpoint this node published must not come back up.
    await checkWitness({
      dataDir,
      tree: store.tree,
      publicKeyRaw: key.publicKeyRaw,
      storeName: config.store === 'sqlite' ? sqliteFile(dataDir) : 'the PostgreSQL database',
    });
    const origin = await resolveOrigin(store, config);
    const keyName = config.checkpoints.key_name ?? origin;

    let createdAdminToken: string | undefined;
    const bootstrap = env['TRAILWARDEN_ADMIN_KEY'];
    if (bootstrap !== undefined && bootstrap !== '') {
      await importApiKey(store, bootstrap, {
        role: 'admin',
        tenantId: null,
        name: 'bootstrap admin (TRAILWARDEN_ADMIN_KEY)',
      });
    } else if ((await store.countKeys()) === 0) {
      createdAdminToken = (await createApiKey(store, { role: 'admin', tenantId: null, name: 'first admin' }))
        .token;
    }

    const checkpointer = new Checkpointer(
      store,
      { name: keyName, privateKey: key.privateKey, publicKeyRaw: key.publicKeyRaw },
      { everyEvents: config.checkpoints.every_events, everyMs: config.checkpoints.every_ms, origin },
      { witness: (cp) => writeWitness(dataDir, cp), onError: checkpointErrorLog(logger) },
    );
    const audit = new SelfAudit(store, config.default_tenant);
    const secrets = await loadSecretBox({
      env,
      keyFile: config.secrets.key_file,
      dataDir,
      generate: store.kind === 'sqlite',
    });
    const delivery = new DeliveryEngine({
      store,
      audit,
      dataDir,
      secrets,
      allowedPrivateNetworks: config.allowed_private_networks,
      configSinks: config.sinks,
      emit: config.emit,
      log: engineLog(logger),
      nodeId: nodeIdOf(config.cluster.node_id),
      leaseMs: config.cluster.lease_ms,
      fileRoot: config.file_sink_root === null ? null : resolve(config.file_sink_root),
    });
    await checkPruneAfterDelivered(store, config);
    const retentionLog = componentLog(logger, 'retention');
    const pruner = new Pruner({
      store,
      retention: store.retention,
      audit,
      settings: {
        defaultDays: config.retention.default_days,
        intervalMs: config.retention.prune_interval_ms,
        chunkEvents: config.retention.chunk_events,
        busySharePercent: config.retention.busy_share_percent,
        pruneAfterDelivered: config.retention.prune_after_delivered,
      },
      nodeId: nodeIdOf(config.cluster.node_id),
      leaseMs: config.cluster.lease_ms,
      log: retentionLog,
    });
    const erasures = new ErasureService({
      store,
      retention: store.retention,
      audit,
      metadataPaths: config.retention.erasure.metadata_paths,
      chunkEvents: config.retention.chunk_events,
      log: retentionLog,
    });
    let ready = false;
    const ctx: AppContext = {
      store,
      config,
      ingest: new IngestService(store, {
        limits: eventLimitsFrom(config),
        strictActions: config.strict_actions,
        defaultTenant: config.default_tenant,
      }),
      audit,
      log: { origin, keyName, publicKeyRaw: key.publicKeyRaw },
      delivery,
      retention: { store: store.retention, pruner, erasures },
      ready: () => ready,
    };
    await checkpointer.start();
    await delivery.start();
    // An erasure a crash interrupted is finished before the server takes requests; a prune run resumes in the background.
    await erasures.resumeUnfinished();
    pruner.start();
    let closing: Promise<void> | undefined;
    return {
      ctx,
      checkpointer,
      createdAdminToken,
      setReady: (r) => {
        ready = r;
      },
      close: () => {
        closing ??= (async () => {
          ready = false;
          try {
            // Between two chunks: a run under way stays recorded as running and resumes at the next start.
            await pruner.stop();
            await delivery.stop();
            // Reads answered just before the stop are recorded without being awaited by their request.
            await audit.settled();
            await checkpointer.stop();
            await checkpointer.issue();
            await checkpointer.witnessed();
            await store.close();
          } finally {
            // Released last: nothing of this process writes to the folder any more.
            lock?.release();
          }
        })();
        return closing;
      },
    };
  } catch (err) {
    try {
      await store.close();
    } finally {
      lock?.release();
    }
    throw err;
  }
}

/** Logs a failing checkpoint once per distinct error, not at every retry. */
function checkpointErrorLog(logger: Logger): (err: unknown) => void {
  const log = logger.child({ component: 'checkpointer' });
  let last: string | undefined;
  return (err) => {
    const message = err instanceof Error ? err.message : String(err);
    if (message === last) return;
    last = message;
    log.error({ err }, 'could not issue a checkpoint; trying again at the next one due');
  };
}

/**
 * Refuses a start whose `retention.prune_after_delivered` names a sink that
 * is neither in the config file nor made through the API for all tenants:
 * nothing would ever be pruned, silently.
 */
async function checkPruneAfterDelivered(store: Store, config: Config): Promise<void> {
  const names = config.retention.prune_after_delivered;
  if (names.length === 0) return;
  const known = new Set(config.sinks.map((s) => s.name));
  for (const rec of await store.delivery.listSinkConfigs()) if (rec.tenantId === null) known.add(rec.name);
  const unknown = names.filter((n) => !known.has(n));
  if (unknown.length > 0) {
    throw new TrailwardenError(
      'TW_ERR_CONFIG',
      `retention.prune_after_delivered names ${unknown.map((n) => `sink ${n}`).join(', ')}, which ${unknown.length > 1 ? 'are' : 'is'} neither in sinks nor made through the API by an admin for all tenants; nothing could be pruned. Fix the name, create the sink, or take it off the list`,
    );
  }
}

/** A component's logger as the retention services take it. */
function componentLog(logger: Logger, component: string) {
  const log = logger.child({ component });
  return {
    info: (msg: string, extra?: object) => log.info(extra ?? {}, msg),
    warn: (msg: string, extra?: object) => log.warn(extra ?? {}, msg),
    error: (msg: string, extra?: object) => log.error(extra ?? {}, msg),
  };
}

function engineLog(logger: Logger) {
  const log = logger.child({ component: 'delivery' });
  return {
    info: (msg: string, extra?: object) => log.info(extra ?? {}, msg),
    warn: (msg: string, extra?: object) => log.warn(extra ?? {}, msg),
  };
}

/** `assemble`, then build the HTTP app and listen on `config.listen`. */
export async function start(
  config: Config,
  opts: { env?: NodeJS.ProcessEnv; logger?: Logger } = {},
): Promise<Running> {
  const logger = opts.logger ?? createLogger(config.log_level);
  const parts = await assemble(config, opts.env ?? process.env, logger);
  try {
    const app = await buildApp(parts.ctx, logger);
    const { host, port } = parseListen(config.listen);
    const address = await app.listen({ host, port });
    parts.setReady(true);
    let closing: Promise<void> | undefined;
    return {
      app,
      store: parts.ctx.store,
      url: address,
      origin: parts.ctx.log.origin,
      createdAdminToken: parts.createdAdminToken,
      close: () => {
        closing ??= (async () => {
          try {
            parts.setReady(false);
            await app.close();
            await parts.close();
            logger.info('server stopped');
          } finally {
            // The log is buffered: its last lines are written before close resolves, whatever the process does next.
            flushLogSync(logger);
          }
        })();
        return closing;
      },
    };
  } catch (err) {
    await parts.close();
    flushLogSync(logger);
    throw err;
  }
}
