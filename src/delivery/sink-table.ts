import type { Principal } from '../auth/api-keys.js';
import { TrailwardenError } from '../errors.js';
import type { SinkConfig } from './sink-config.js';
import { type SinkRef, sinkKey } from './sink-ref.js';
import type { SinkRunner } from './sink-runner.js';
import type { SinkWorker } from './sink-worker.js';

/** Where a sink's settings live: the config file (read-only through the API) or the store. */
export type SinkSource = 'config' | 'api';

/** A sink as the engine's callers name it: a name in the operator's scope, or a name and its tenant. */
export type SinkAddress = string | SinkRef;

function refOf(address: SinkAddress): SinkRef {
  return typeof address === 'string' ? { name: address, tenantId: null } : address;
}

/** What the engine needs to set a sink up: its settings and where they come from. */
export interface SinkSetup {
  config: SinkConfig;
  /** As given (secrets in clear: what the API shows masked, and stores sealed). */
  raw: Record<string, unknown>;
  source: SinkSource;
  /** The tenant whose admin created it (its name's scope); `null`: the operator's. */
  tenantId: string | null;
  /** `updatedAt` of the stored record (API sinks): a change made through another node shows here. */
  updatedAt: string | null;
}

/** A sink this node knows, enabled or not: the engine's and the administration's record of it. */
export interface SinkEntry extends SinkSetup {
  /** Its key in the store and in leases ({@link sinkKey}). */
  key: string;
  /** The sink's lease and worker on this node; none while the sink is not enabled. */
  runner: SinkRunner | undefined;
}

/** A sink as callers outside delivery see it: its settings as given and where they come from. */
export interface SinkView {
  readonly name: string;
  readonly source: SinkSource;
  readonly tenantId: string | null;
  readonly raw: Readonly<Record<string, unknown>>;
  readonly config: Readonly<SinkConfig>;
}

/** The worker delivering the sink, while this node holds its lease. */
export function workerOf(e: SinkEntry | undefined): SinkWorker | undefined {
  return e?.runner?.worker;
}

/** The read-only view of a sink. */
export function viewOf(e: SinkEntry): SinkView {
  return { name: e.config.name, source: e.source, tenantId: e.tenantId, raw: e.raw, config: e.config };
}

/**
 * Every sink this node knows, by key, and the one queue that changes to the
 * set go through (API calls and syncs from the store run one at a time, in
 * order). Looking a sink up for a principal applies the tenant scoping of
 * names: a tenant-bound admin finds only its tenant's sinks.
 */
export class SinkTable {
  private readonly entries = new Map<string, SinkEntry>();
  private changes: Promise<unknown> = Promise.resolve();

  get(key: string): SinkEntry | undefined {
    return this.entries.get(key);
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  set(entry: SinkEntry): void {
    this.entries.set(entry.key, entry);
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  values(): IterableIterator<SinkEntry> {
    return this.entries.values();
  }

  /** Runs `fn` after every change queued before it. */
  serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.changes.then(fn);
    this.changes = run.catch(() => undefined);
    return run;
  }

  /** The sink, or 404 when it does not exist or the principal may not see it. */
  find(address: SinkAddress, principal: Principal | null): SinkEntry {
    const ref = refOf(address);
    const e = this.entries.get(sinkKey(ref));
    if (!e || (principal !== null && principal.tenantId !== null && e.tenantId !== principal.tenantId)) {
      throw new TrailwardenError(
        'TW_ERR_NOT_FOUND',
        `no sink ${JSON.stringify(ref.name)} visible to this key`,
      );
    }
    return e;
  }

  /** The sink, refused when the config file defines it. */
  editable(address: SinkAddress, principal: Principal | null): SinkEntry {
    const e = this.find(address, principal);
    if (e.source === 'config') {
      throw new TrailwardenError(
        'TW_ERR_SINK_READ_ONLY',
        `sink ${e.config.name} is defined in the config file; change it there and restart`,
      );
    }
    return e;
  }

  /** The sink, refused when it is not enabled. */
  enabled(address: SinkAddress, principal: Principal | null): SinkEntry {
    const e = this.find(address, principal);
    if (!e.config.enabled)
      throw new TrailwardenError(
        'TW_ERR_SINK_DISABLED',
        `sink ${e.config.name} is not enabled (enabled: false)`,
      );
    return e;
  }

  /**
   * Sinks visible to a principal: a tenant-bound admin sees only its
   * tenant's sinks; `tenantId` narrows an all-tenant admin's list to one
   * scope (`null`: the operator's). The operator's first, then by tenant and name.
   */
  list(principal: Principal | null, tenantId?: string | null): SinkView[] {
    return [...this.entries.values()]
      .filter(
        (e) =>
          (principal === null || principal.tenantId === null || e.tenantId === principal.tenantId) &&
          (tenantId === undefined || e.tenantId === tenantId),
      )
      .map(viewOf)
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
}
