/**
 * The store backends a whole application runs on in tests, as settings for
 * `testApp`: SQLite in its data folder, and PostgreSQL in a fresh database of
 * a throwaway cluster (one per test file, started on first use). A suite
 * loops over `APP_BACKENDS` to run the same tests on both, as the store
 * conformance suite does for the store alone. TW_STORE narrows it to one.
 */
import { randomBytes } from 'node:crypto';
import { after } from 'node:test';
import { type PostgresCluster, postgresBinDir, startPostgres } from './postgres.js';

export interface AppBackend {
  name: 'sqlite' | 'postgres';
  /** Why the backend cannot run here, if it cannot. */
  skip: string | undefined;
  /** `testApp` settings and environment for a fresh log on this backend. */
  fresh(): Promise<{ settings: Record<string, unknown>; env: NodeJS.ProcessEnv }>;
}

let cluster: Promise<PostgresCluster> | undefined;

/** Stops this file's PostgreSQL cluster, if a test started it; call once at the top level of a suite file. */
export function stopAppBackendsAfter(): void {
  after(async () => {
    if (cluster) await (await cluster).stop();
  });
}

const all: AppBackend[] = [
  { name: 'sqlite', skip: undefined, fresh: async () => ({ settings: {}, env: {} }) },
  {
    name: 'postgres',
    skip:
      postgresBinDir() === undefined
        ? 'PostgreSQL binaries not found (install postgresql-15 or set TW_PG_BIN)'
        : undefined,
    async fresh() {
      cluster ??= startPostgres();
      const url = await (await cluster).createDatabase();
      // With PostgreSQL the operator gives the key that seals sink secrets (no data-folder key).
      return {
        settings: { store: `${url}?pool_size=4`, cluster: { lease_ms: 3000 } },
        env: { TRAILWARDEN_SECRETS_KEY: randomBytes(32).toString('base64') },
      };
    },
  },
];

/** The backends to run on: both, or the one TW_STORE names. */
export const APP_BACKENDS: readonly AppBackend[] = all.filter(
  (b) => !process.env['TW_STORE'] || b.name === process.env['TW_STORE'],
);
