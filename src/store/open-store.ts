import { join } from 'node:path';
import { PostgresStore } from './postgres/postgres-store.js';
import { SqliteStore } from './sqlite/sqlite-store.js';
import type { Store } from './store.js';

/** What opening a store takes: which backend, where, and a PostgreSQL node's place in its cluster. */
export interface StoreSettings {
  /**
   * `sqlite`, or a `postgres://` URL (validated with the config); its
   * `pool_size` parameter is Trailwarden's pool size, not libpq's.
   */
  store: string;
  /** The data folder: the SQLite file lives in it. */
  dataDir: string;
  /** A PostgreSQL node's cluster settings; absent: the defaults (a bench, a test). */
  cluster?: StoreClusterSettings;
}

/** The `cluster` settings a PostgreSQL store needs (docs/configuration.md names their limits). */
export interface StoreClusterSettings {
  /** This node's name as lease holder (`cluster.node_id`, or the generated one). */
  nodeId: string;
  /** `cluster.lease_ms`: how long the sequencer lease lasts without renewal. */
  leaseMs: number;
  /** `cluster.max_pending_events`: events waiting for the sequencer beyond which this node's appends wait. */
  maxPendingEvents: number;
  /** `cluster.pending_wait_ms`: how long such an append waits for room before a 503. */
  pendingWaitMs: number;
}

/** The SQLite file inside the data folder. */
export function sqliteFile(dataDir: string): string {
  return join(dataDir, 'trailwarden.db');
}

/** Opens the store the settings name; `readOnly` never writes or creates anything (verify). */
export async function openStore(settings: StoreSettings, opts: { readOnly?: boolean } = {}): Promise<Store> {
  if (settings.store === 'sqlite') return SqliteStore.open(sqliteFile(settings.dataDir), opts);
  const { connectionString, poolSize } = postgresTarget(settings.store);
  const cluster = settings.cluster;
  return PostgresStore.open(connectionString, {
    ...opts,
    poolSize,
    ...(cluster
      ? {
          nodeId: cluster.nodeId,
          leaseMs: cluster.leaseMs,
          maxPendingBacklog: cluster.maxPendingEvents,
          pendingWaitMs: cluster.pendingWaitMs,
        }
      : {}),
  });
}

/** Splits Trailwarden's own `pool_size` parameter off a validated `postgres://` store URL. */
export function postgresTarget(store: string): { connectionString: string; poolSize: number | undefined } {
  const url = new URL(store);
  const pool = url.searchParams.get('pool_size');
  url.searchParams.delete('pool_size');
  return { connectionString: url.toString(), poolSize: pool === null ? undefined : Number(pool) };
}
