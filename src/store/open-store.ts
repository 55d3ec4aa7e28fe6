import { join } from 'node:path';
import { nodeIdOf } from '../cluster/node-id.js';
import type { Config } from '../config/schema.js';
import { PostgresStore } from './postgres/postgres-store.js';
import { SqliteStore } from './sqlite/sqlite-store.js';
import type { Store } from './store.js';

/** The SQLite file inside the data folder. */
export function sqliteFile(dataDir: string): string {
  return join(dataDir, 'trailwarden.db');
}

/** Opens the store the configuration names; `readOnly` never writes or creates anything (verify). */
export async function openStore(
  config: Pick<Config, 'store'> & { cluster?: Config['cluster'] },
  dataDir: string,
  opts: { readOnly?: boolean } = {},
): Promise<Store> {
  if (config.store === 'sqlite') return SqliteStore.open(sqliteFile(dataDir), opts);
  const { connectionString, poolSize } = postgresTarget(config.store);
  return PostgresStore.open(connectionString, {
    ...opts,
    poolSize,
    nodeId: nodeIdOf(config.cluster?.node_id ?? null),
    ...(config.cluster
      ? {
          leaseMs: config.cluster.lease_ms,
          maxPendingBacklog: config.cluster.max_pending_events,
          pendingWaitMs: config.cluster.pending_wait_ms,
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
