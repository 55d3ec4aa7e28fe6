import { userInfo } from 'node:os';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { SelfAudit } from '../audit/self-audit.js';
import { createApiKey, generateToken } from '../auth/api-keys.js';
import { TrailwardenError } from '../errors.js';
import { storeSettingsFrom } from '../runtime.js';
import { openStore } from '../store/open-store.js';
import { DataDirLock, describeHolder } from '../store/sqlite/data-dir-lock.js';
import { type ApiKeyRecord, ROLES, type Role, type Store } from '../store/store.js';
import { ApiClient, ApiError, addClientOptions, clientOptionsFrom } from './http-client.js';
import { type ConfigFlags, configFromFlags } from './serve.js';

/** Where a `keys` command acts: a data folder (`--data-dir`, `--config`) or a running server (`--url`, `--key`). */
export interface KeysFlags extends ConfigFlags {
  url?: string;
  key?: string;
}

/** A key as the commands print it: the record without its secret hash. */
type ListedKey = Omit<ApiKeyRecord, 'secretHash'>;

type Target = { kind: 'server'; client: ApiClient } | { kind: 'folder' };

/**
 * Flags decide; without any, TRAILWARDEN_URL or TRAILWARDEN_KEY in the
 * environment (as the other client commands read them) mean the server.
 */
function targetOf(flags: KeysFlags, env: NodeJS.ProcessEnv): Target {
  const server = flags.url !== undefined || flags.key !== undefined;
  const folder = flags.dataDir !== undefined || flags.config !== undefined;
  if (server && folder) {
    throw new Error(
      '--url/--key manage keys through a running server, --data-dir/--config in a data folder: pass one or the other',
    );
  }
  if (server || (!folder && (env.TRAILWARDEN_URL || env.TRAILWARDEN_KEY))) {
    return { kind: 'server', client: new ApiClient(clientOptionsFrom(flags, env)) };
  }
  return { kind: 'folder' };
}

/**
 * Runs `fn` on the data folder's store, holding the folder's one-writer lock
 * (SQLite): while a server runs there, its store is the only writer, and it
 * is told of nothing another process appends. So the command refuses then,
 * and says how to go through the server instead.
 */
async function withWritableStore<T>(
  flags: ConfigFlags,
  command: string,
  fn: (store: Store, audit: SelfAudit) => Promise<T>,
): Promise<T> {
  const config = await configFromFlags(flags);
  const dataDir = resolve(config.data_dir);
  let lock: DataDirLock | undefined;
  if (config.store === 'sqlite') {
    const attempt = DataDirLock.acquire(dataDir, `trailwarden keys ${command}`);
    if (!attempt.ok) {
      throw new TrailwardenError(
        'TW_ERR_DATA_DIR_LOCKED',
        `The data folder ${dataDir} is in use by ${describeHolder(attempt.holder)}: while a server runs, only it ` +
          `writes there. Run this through that server instead: trailwarden keys ${command} … --url <its URL> ` +
          '--key <an admin key> (or set TRAILWARDEN_URL and TRAILWARDEN_KEY).',
      );
    }
    lock = attempt.lock;
  }
  try {
    const store = await openStore(storeSettingsFrom(config));
    try {
      return await fn(store, new SelfAudit(store, config.default_tenant));
    } finally {
      await store.close();
    }
  } finally {
    lock?.release();
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

export interface KeyCreateFlags extends KeysFlags {
  role: string;
  tenant?: string;
  name?: string;
}

interface ServedKey {
  key_id: string;
  name: string;
  role: Role;
  tenant_id: string | null;
  created_at: string;
  revoked_at: string | null;
}

function listedFromServer(k: ServedKey): ListedKey {
  return {
    keyId: k.key_id,
    role: k.role,
    tenantId: k.tenant_id,
    name: k.name,
    createdAt: k.created_at,
    revokedAt: k.revoked_at,
  };
}

/** `keys create`: in the data folder, or through a running server's `POST /v1/keys`. */
export async function keysCreate(
  flags: KeyCreateFlags,
  out: NodeJS.WritableStream = process.stdout,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  if (!(ROLES as readonly string[]).includes(flags.role)) {
    throw new Error(`--role must be one of ${ROLES.join(', ')}`);
  }
  if (flags.tenant !== undefined && !/^[A-Za-z0-9._-]{1,128}$/.test(flags.tenant)) {
    throw new Error('--tenant must be 1-128 characters of A-Z a-z 0-9 . _ -');
  }
  const role = flags.role as Role;
  const tenantId = flags.tenant ?? null;
  const name = flags.name ?? `${flags.role} key`;
  const target = targetOf(flags, env);
  let created: { keyId: string; token: string };
  if (target.kind === 'server') {
    const res = await target.client.json<ServedKey & { token: string }>('POST', '/v1/keys', {
      body: JSON.stringify({ role, name, tenant_id: tenantId }),
      contentType: 'application/json',
    });
    created = { keyId: res.key_id, token: res.token };
  } else {
    created = await withWritableStore(flags, 'create', async (store, audit) => {
      const { token, record } = await createApiKey(store, { role, tenantId, name });
      await audit.record('key.created', null, {
        outcome: 'success',
        actor: cliActor(),
        resource: { type: 'api_key', id: record.keyId, name },
        metadata: { role: record.role, tenant_id: tenantId },
        ...(tenantId === null ? {} : { tenantId }),
      });
      return { keyId: record.keyId, token };
    });
  }
  out.write(
    `Created ${role} key ${created.keyId} (${tenantId === null ? 'all tenants' : `tenant ${tenantId}`}).\n` +
      `Token (shown once, store it now):\n${created.token}\n`,
  );
  return 0;
}

/** `keys list`: reads the data folder without writing (so it works beside a server), or asks the server. */
export async function keysList(
  flags: KeysFlags & { json?: boolean },
  out: NodeJS.WritableStream = process.stdout,
  env: NodeJS.ProcessEnv = process.env,
) {
  const target = targetOf(flags, env);
  let keys: ListedKey[];
  if (target.kind === 'server') {
    keys = (await target.client.json<{ keys: ServedKey[] }>('GET', '/v1/keys')).keys.map(listedFromServer);
  } else {
    const config = await configFromFlags(flags);
    const store = await openStore(storeSettingsFrom(config), { readOnly: true });
    try {
      keys = (await store.listKeys()).map(({ secretHash: _s, ...k }) => k);
    } finally {
      await store.close();
    }
  }
  if (flags.json) {
    out.write(`${JSON.stringify(keys, null, 2)}\n`);
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

/** `keys revoke`: in the data folder, or through a running server's `DELETE /v1/keys/{key_id}`. */
export async function keysRevoke(
  keyId: string,
  flags: KeysFlags,
  out: NodeJS.WritableStream = process.stdout,
  env: NodeJS.ProcessEnv = process.env,
) {
  const target = targetOf(flags, env);
  let revoked: boolean;
  if (target.kind === 'server') {
    try {
      await target.client.request('DELETE', `/v1/keys/${encodeURIComponent(keyId)}`);
      revoked = true;
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 404) throw err;
      revoked = false;
    }
  } else {
    revoked = await withWritableStore(flags, 'revoke', async (store, audit) => {
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
  }
  if (!revoked) {
    process.stderr.write(`no active key ${keyId}; see \`trailwarden keys list\`\n`);
    return 1;
  }
  out.write(`Revoked key ${keyId}.\n`);
  return 0;
}

function targetOptions(cmd: Command): Command {
  return addClientOptions(
    cmd
      .option('-c, --config <file>', 'YAML config file (data folder mode)')
      .option('-d, --data-dir <dir>', 'data folder; default ./data'),
  );
}

export function registerKeysCommand(program: Command): void {
  const keys = program
    .command('keys')
    .description(
      'Manage API keys: through a running server (--url and an admin --key, or TRAILWARDEN_URL/TRAILWARDEN_KEY), ' +
        'or in a data folder no server is running on (--data-dir).',
    )
    .addHelpText(
      'after',
      '\nA server locks its data folder: while it runs, `keys create` and `keys revoke` there refuse and name\n' +
        '--url; `keys list --data-dir` only reads, so it works beside it.',
    );
  targetOptions(
    keys
      .command('create')
      .description('Create an API key and print its token once.')
      .requiredOption('-r, --role <role>', `one of ${ROLES.join(', ')}`)
      .option('-t, --tenant <tenant>', 'bind the key to one tenant (default: all tenants)')
      .option('-n, --name <name>', 'a label for the key'),
  ).action(async (flags: KeyCreateFlags) => {
    process.exitCode = await keysCreate(flags);
  });
  targetOptions(
    keys.command('list').description('List keys (never their secrets).').option('--json', 'JSON output'),
  ).action(async (flags: KeysFlags & { json?: boolean }) => {
    process.exitCode = await keysList(flags);
  });
  targetOptions(
    keys.command('revoke <key-id>').description('Revoke a key; it stops working at once.'),
  ).action(async (keyId: string, flags: KeysFlags) => {
    process.exitCode = await keysRevoke(keyId, flags);
  });
  keys
    .command('generate-token')
    .description('Print a fresh token to use as TRAILWARDEN_ADMIN_KEY (stores nothing).')
    .action(() => {
      process.stdout.write(`${generateToken()}\n`);
    });
}
