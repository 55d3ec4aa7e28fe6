import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { SqliteStore } from './sqlite/sqlite-store.js';
import type { Store } from './store.js';

/** The SQLite file inside the data folder. */
export function sqliteFile(dataDir: string): string {
  return join(dataDir, 'trailwarden.db');
}

/** Opens the store the configuration names; `readOnly` never writes or creates anything (verify). */
export async function openStore(
  config: Pick<Config, 'store'>,
  dataDir: string,
  opts: { readOnly?: boolean } = {},
): Promise<Store> {
  switch (config.store) {
    case 'sqlite':
      return SqliteStore.open(sqliteFile(dataDir), opts);
  }
}
