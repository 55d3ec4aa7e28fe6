import { TrailwardenError } from '../errors.js';
import type { Store } from '../store/store.js';
import { compileSinkFilter } from './event-filter.js';
import { createEncoder } from './formats/registry.js';
import { compileShaper } from './shape.js';
import type { Sink, SinkContext, SinkDefinition, SinkOwner } from './sink.js';
import { retryPolicyOf, type SinkConfig } from './sink-config.js';
import { SinkLease } from './sink-lease.js';
import { SinkWorker, type WorkerDeps } from './sink-worker.js';

export interface RunnerDeps {
  /** The sink's key in the store and its lease (`sinkKey`). */
  key: string;
  owner: SinkOwner;
  store: Store;
  /** This node's name in leases. */
  nodeId: string;
  leaseMs: number;
  dataDir: string;
  allowedPrivateNetworks: readonly string[];
  /** `file_sink_root`, or `null`. */
  fileRoot: string | null;
  now: () => number;
  log: SinkContext['log'];
  onProgress: WorkerDeps['onProgress'];
  onAlert: WorkerDeps['onAlert'];
}

/**
 * An enabled sink on this node: its delivery lease and, while this node
 * holds the lease, the open sink and the worker delivering it. The sink is
 * opened when the lease is taken and closed as soon as it is lost, so a node
 * that does not deliver a sink keeps no connection or file of it open.
 */
export class SinkRunner {
  /** The worker, while this node holds the lease. */
  worker: SinkWorker | undefined;
  private sink: Sink | undefined;
  private readonly lease: SinkLease;

  constructor(
    private readonly config: SinkConfig,
    private readonly def: SinkDefinition,
    private readonly deps: RunnerDeps,
  ) {
    this.lease = new SinkLease(
      deps.key,
      { store: deps.store.delivery, holder: deps.nodeId, leaseMs: deps.leaseMs, log: deps.log },
      {
        gained: () => this.startWorker(),
        renewed: () => {
          this.worker
            ?.refresh()
            .catch((err: unknown) => deps.log.warn(`sink ${deps.key}: could not reload its state`, { err }));
        },
        lost: () => this.stopWorker(),
      },
    );
  }

  /** Whether this node holds the sink's lease. */
  get isHeld(): boolean {
    return this.lease.isHeld;
  }

  /** Tries once to take the lease (and start delivering); rejects when the sink cannot start. */
  start(): Promise<void> {
    return this.lease.start();
  }

  /** Stops delivering; `release: false` leaves the lease to expire instead of handing it over. */
  close(release = true): Promise<void> {
    return this.lease.close(release);
  }

  /** This node took the lease: open the sink and deliver from the stored cursor. */
  private async startWorker(): Promise<void> {
    const { config, deps } = this;
    if (this.def.hostOnly && deps.owner.tenantId !== null) {
      // Refused when the sink is created; this guards a record written before that check existed.
      throw new TrailwardenError(
        'TW_ERR_FORBIDDEN',
        `sink ${deps.key}: a ${config.type} sink writes on the server's host and cannot belong to a tenant`,
      );
    }
    const sink = await this.def.create(config, {
      name: config.name,
      owner: deps.owner,
      format: config.format,
      dataDir: deps.dataDir,
      allowedPrivateNetworks: deps.allowedPrivateNetworks,
      fileRoot: deps.fileRoot,
      now: deps.now,
      log: deps.log,
    });
    const worker = new SinkWorker(deps.key, {
      store: deps.store,
      sink,
      config,
      filter: compileSinkFilter(config),
      shape: compileShaper(config.shape, config.shape.hash_key ?? undefined),
      encode: createEncoder(config.format, config.format_options),
      sendStoredJson:
        (config.format === 'json' || config.format === 'jsonl') &&
        config.shape.fields === null &&
        config.shape.redact.length === 0 &&
        config.shape.metadata_for_actions === null,
      retry: retryPolicyOf(config),
      now: deps.now,
      onProgress: deps.onProgress,
      onAlert: deps.onAlert,
      log: deps.log,
    });
    try {
      await worker.start();
    } catch (err) {
      await worker.stop();
      await sink.close().catch(() => undefined);
      throw err;
    }
    this.worker = worker;
    this.sink = sink;
  }

  /** The lease is gone (or the sink closes): stop at once, abandoning the delivery in flight. */
  private async stopWorker(): Promise<void> {
    const { worker, sink } = this;
    this.worker = undefined;
    this.sink = undefined;
    await worker?.stop();
    await sink?.close();
  }
}
