import { userInfo } from 'node:os';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { SelfAudit } from '../audit/self-audit.js';
import { createApiKey, generateToken } from '../auth/api-keys.js';
import { openStore } from '../store/open-store.js';
import { ROLES, type Role, type Store } from '../store/store.js';
import { type ConfigFlags, configFromFlags } from './serve.js';

async function withStore<T>(
  flags: ConfigFlags,
  fn: (store: Store, audit: SelfAudit) => Promise<T>,
): Promise<T> {
  const config = await configFromFlags(flags);
  const store = await openStore(config, resolve(config.data_dir));
  try {
    return await fn(store, new SelfAudit(store, config.default_tenant));
  } finally {
    await store.close();
  }
}

/** The local operator, as the actor of key changes made through the CLI. */
function cliActor() {
  let name = 'unknown';
  try {
    name = userInfo().username;
  } catch {
    // No passwd entry (some containers): keep "unknown".
  }
  return { type: 'cli', id: `cli:${name}`, name };
}

export interface KeyCreateFlags extends ConfigFlags {
  role: string;
  tenant?: string;
  name?: string;
}

export async function keysCreate(
  flags: KeyCreateFlags,
  out: NodeJS.WritableStream = process.stdout,
): Promise<number> {
  if (!(ROLES as readonly string[]).includes(flags.role)) {
    throw new Error(`--role must be one of ${ROLES.join(', ')}`);
  }
  if (flags.tenant !== undefined && !/^[A-Za-z0-9._-]{1,128}$/.test(flags.tenant)) {
    throw new Error('--tenant must be 1-128 characters of A-Z a-z 0-9 . _ -');
  }
  const tenantId = flags.tenant ?? null;
  const name = flags.name ?? `${flags.role} key`;
  const { token, record } = await withStore(flags, async (store, audit) => {
    const created = await createApiKey(store, { role: flags.role as Role, tenantId, name });
    await audit.record('key.created', null, {
      outcome: 'success',
      actor: cliActor(),
      resource: { type: 'api_key', id: created.record.keyId, name },
      metadata: { role: created.record.role, tenant_id: tenantId },
      ...(tenantId === null ? {} : { tenantId }),
    });
    return created;
  });
  out.write(
    `Created ${record.role} key ${record.keyId} (${tenantId === null ? 'all tenants' : `tenant ${tenantId}`}).\n` +
      `Token (shown once, store it now):\n${token}\n`,
  );
  return 0;
}

export async function keysList(
  flags: ConfigFlags & { json?: boolean },
  out: NodeJS.WritableStream = process.stdout,
) {
  const keys = await withStore(flags, (store) => store.listKeys());
  if (flags.json) {
    out.write(
      `${JSON.stringify(
        keys.map(({ secretHash: _s, ...k }) => k),
        null,
        2,
      )}\n`,
    );
    return 0;
  }
  out.write('KEY ID            ROLE       TENANT        CREATED                   STATUS   NAME\n');
  for (const k of keys) {
    out.write(
      `${k.keyId.padEnd(18)}${k.role.padEnd(11)}${(k.tenantId ?? '*').padEnd(14)}${k.createdAt.padEnd(26)}${(k.revokedAt ? 'revoked' : 'active').padEnd(9)}${k.name}\n`,
    );
  }
  return 0;
}

export async function keysRevoke(
  keyId: string,
  flags: ConfigFlags,
  out: NodeJS.WritableStream = process.stdout,
) {
  const revoked = await withStore(flags, async (store, audit) => {
    const key = await store.getKey(keyId);
    const ok = await store.revokeKey(keyId, new Date().toISOString());
    if (ok && key) {
      await audit.record('key.revoked', null, {
        outcome: 'success',
        actor: cliActor(),
        resource: { type: 'api_key', id: key.keyId, name: key.name },
        ...(key.tenantId === null ? {} : { tenantId: key.tenantId }),
      });
    }
    return ok;
  });
  if (!revoked) {
    process.stderr.write(`no active key ${keyId}; see \`trailwarden keys list\`\n`);
    return 1;
  }
  out.write(`Revoked key ${keyId}.\n`);
  return 0;
}

function storeOptions(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'YAML config file')
    .option('-d, --data-dir <dir>', 'data folder; default ./data');
}

export function registerKeysCommand(program: Command): void {
  const keys = program
    .command('keys')
    .description('Manage API keys in the local data folder (works while the server runs).');
  storeOptions(
    keys
      .command('create')
      .description('Create an API key and print its token once.')
      .requiredOption('-r, --role <role>', `one of ${ROLES.join(', ')}`)
      .option('-t, --tenant <tenant>', 'bind the key to one tenant (default: all tenants)')
      .option('-n, --name <name>', 'a label for the key'),
  ).action(async (flags: KeyCreateFlags) => {
    process.exitCode = await keysCreate(flags);
  });
  storeOptions(
    keys.command('list').description('List keys (never their secrets).').option('--json', 'JSON output'),
  ).action(async (flags: ConfigFlags & { json?: boolean }) => {
    process.exitCode = await keysList(flags);
  });
  storeOptions(keys.command('revoke <key-id>').description('Revoke a key; it stops working at once.')).action(
    async (keyId: string, flags: ConfigFlags) => {
      process.exitCode = await keysRevoke(keyId, flags);
    },
  );
  keys
    .command('generate-token')
    .description('Print a fresh token to use as TRAILWARDEN_ADMIN_KEY (stores nothing).')
    .action(() => {
      process.stdout.write(`${generateToken()}\n`);
    });
}
