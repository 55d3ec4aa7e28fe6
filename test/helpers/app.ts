import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { stringify } from 'yaml';
import { buildApp } from '../../src/api/app.js';
import { createApiKey } from '../../src/auth/api-keys.js';
import { parseConfig } from '../../src/config/load-config.js';
import { type Assembled, assemble } from '../../src/runtime.js';
import type { Role } from '../../src/store/store.js';

export interface TestApp {
  app: FastifyInstance;
  parts: Assembled;
  dataDir: string;
  admin: string;
  /** Creates a key and returns its bearer header value. */
  key(role: Role, tenantId?: string | null): Promise<string>;
  close(): Promise<void>;
}

/**
 * A full application on a fresh data folder (or `settings.data_dir`, which is
 * then left in place), for `inject()` tests; `env` is the server's environment,
 * `logger` receives its logs (default: none).
 */
export async function testApp(
  settings: Record<string, unknown> = {},
  env: NodeJS.ProcessEnv = {},
  logger?: Logger,
): Promise<TestApp> {
  const fresh = mkdtempSync(join(tmpdir(), 'tw-app-'));
  const config = parseConfig(stringify({ data_dir: fresh, ...settings }), { env: {} });
  const dataDir = config.data_dir;
  const parts = await assemble(config, env, logger);
  const app = await buildApp(parts.ctx, logger);
  parts.setReady(true);
  const admin = `Bearer ${parts.createdAdminToken}`;
  return {
    app,
    parts,
    dataDir,
    admin,
    key: async (role, tenantId = null) =>
      `Bearer ${(await createApiKey(parts.ctx.store, { role, tenantId, name: `${role} test key` })).token}`,
    close: async () => {
      await app.close();
      await parts.close();
      rmSync(fresh, { recursive: true, force: true });
    },
  };
}

/** A valid raw event as a producer would send it. */
export function rawEvent(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    timestamp: new Date().toISOString(),
    actor: { type: 'user', id: 'usr_alice', name: 'alice', email: 'alice@example.com' },
    action: 'user.login',
    resource: { type: 'user', id: 'usr_alice', name: 'alice' },
    outcome: 'success',
    source_ip: '203.0.113.42',
    ...over,
  };
}
