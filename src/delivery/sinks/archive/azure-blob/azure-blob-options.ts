/**
 * The `azure_blob` sink's own options (container, authentication, upload
 * sizes, network), their secret and host-only fields, and the rules on who
 * may use which authentication. No SDK is imported here: the registry and
 * config validation load this module on every server.
 */
import { z } from 'zod';
import type { SinkOptions, SinkPlacement } from '../../../sink.js';
import { httpUrl } from '../../net/http-url.js';

const KIB = 1024;
const MIB = 1024 * KIB;

/** Azure container names: 3–63 characters, lowercase letters, digits and single hyphens, a letter or digit at each end. */
const CONTAINER_NAME = /^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$/;
/** Azure storage account names: 3–24 lowercase letters and digits. */
const ACCOUNT_NAME = /^[a-z0-9]{3,24}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** Longest connection string or SAS token accepted (real ones are a few hundred characters). */
const MAX_SECRET_CHARS = 4096;

const container = z.string({ error: 'expected the container name' }).refine((v) => CONTAINER_NAME.test(v), {
  error:
    'an Azure container name has 3 to 63 characters: lowercase letters, digits and single hyphens, beginning and ending with a letter or digit',
});

/** The `Key=Value;…` pairs of a connection string, keys lowercased (Azure reads them case-insensitively). */
export function connectionStringFields(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const part of text.split(';')) {
    const at = part.indexOf('=');
    if (part.trim() === '' || at <= 0) continue;
    fields.set(part.slice(0, at).trim().toLowerCase(), part.slice(at + 1).trim());
  }
  return fields;
}

// Messages never quote the value: it is a secret.
const connectionString = z
  .string({ error: 'expected the storage account connection string' })
  .min(1, { error: 'the connection string is empty' })
  .max(MAX_SECRET_CHARS, { error: `at most ${MAX_SECRET_CHARS} characters` })
  .superRefine((v, ctx) => {
    const f = connectionStringFields(v);
    if (f.get('usedevelopmentstorage') === 'true') return;
    if (!f.has('blobendpoint') && !f.has('accountname')) {
      ctx.addIssue({
        code: 'custom',
        message:
          'expected a connection string such as DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…;EndpointSuffix=core.windows.net (from the portal: Access keys), or one with BlobEndpoint=…;SharedAccessSignature=…',
      });
    } else if (!f.has('accountkey') && !f.has('sharedaccesssignature')) {
      ctx.addIssue({
        code: 'custom',
        message: 'the connection string holds no AccountKey and no SharedAccessSignature',
      });
    }
  });

const accountUrl = httpUrl({
  expected: 'expected the account URL',
  unparsable: 'expected an http(s) URL such as https://myaccount.blob.core.windows.net',
  rules: (u) =>
    // A SAS pasted into the URL would be stored and shown as plain text.
    u.username || u.password || u.search
      ? 'put the SAS token in sas_token (a secret), not in the URL; the URL has no user, password or query'
      : u.hash
        ? 'an account URL has no #fragment'
        : null,
});

const sasToken = z
  .string({ error: 'expected a SAS token' })
  .max(MAX_SECRET_CHARS, { error: `at most ${MAX_SECRET_CHARS} characters` })
  .refine((v) => /(^|[?&])sig=[^&]+/.test(v) && /(^|[?&])sv=[^&]+/.test(v), {
    error: 'expected a SAS token (sv=…&…&sig=…), as the portal or az storage container generate-sas gives it',
  });

const accountName = z
  .string({ error: 'expected the storage account name' })
  .refine((v) => ACCOUNT_NAME.test(v), {
    error: 'an Azure storage account name has 3 to 24 lowercase letters and digits',
  });

const accountKey = z
  .string({ error: 'expected the account key' })
  .max(256, { error: 'at most 256 characters' })
  .refine((v) => BASE64.test(v) && v.length % 4 === 0, {
    error: 'expected the account key in base64, as the portal shows it under Access keys',
  });

const bytes = (def: number, min: number, max: number) =>
  z
    .number()
    .int()
    .min(min, { error: `at least ${min} bytes` })
    .max(max, { error: `at most ${max} bytes` })
    .default(def);

export const azureBlobOptionsShape = {
  container,
  /** Authentication, one of: a connection string; or `account_url` with a SAS, an account key, or neither (DefaultAzureCredential). */
  connection_string: connectionString.optional(),
  account_url: accountUrl.optional(),
  sas_token: sasToken.optional(),
  account_name: accountName.optional(),
  account_key: accountKey.optional(),
  /** Objects up to this size go in one Put Blob request; larger ones as staged blocks and Put Block List. */
  single_put_max_bytes: bytes(32 * MIB, 64 * KIB, 256 * MIB),
  block_size_bytes: bytes(8 * MIB, 64 * KIB, 100 * MIB),
  /** Each request (one Put Blob, one block, one property read) must finish within this. */
  request_timeout_ms: z
    .number()
    .int()
    .min(1_000, { error: 'at least 1000 ms' })
    .max(600_000, { error: 'at most 600000 ms' })
    .default(60_000),
  max_connections: z
    .number()
    .int()
    .min(1, { error: 'at least 1' })
    .max(64, { error: 'at most 64' })
    .default(4),
  allow_private_networks: z.boolean().default(false),
};

/** The Azure Blob options after validation (defaults applied). */
export type AzureBlobOptions = SinkOptions<typeof azureBlobOptionsShape>;

/** Options never returned by the API or logged, encrypted when stored. */
export const azureBlobSecretFields = ['connection_string', 'sas_token', 'account_key'] as const;

/** Options a tenant-bound admin may not set. */
export const azureBlobHostOptions = ['allow_private_networks'] as const;

/** How the sink authenticates, as its options choose it. */
export type AzureBlobAuth =
  | { kind: 'connection_string'; connectionString: string }
  | { kind: 'sas'; accountUrl: string; sasToken: string }
  | { kind: 'account_key'; accountUrl: string; accountName: string; accountKey: string }
  | { kind: 'default_credential'; accountUrl: string };

type Problem = { path: string; message: string };

/** Which authentication the options choose, or what is wrong with their combination. */
export function azureBlobAuth(o: AzureBlobOptions): { auth: AzureBlobAuth } | { problems: Problem[] } {
  const problems: Problem[] = [];
  const set = (k: 'sas_token' | 'account_name' | 'account_key' | 'account_url') => o[k] !== undefined;
  if (o.connection_string !== undefined) {
    for (const k of ['account_url', 'sas_token', 'account_name', 'account_key'] as const) {
      if (set(k))
        problems.push({
          path: k,
          message: 'the connection string already says where and how to connect; leave this out',
        });
    }
    return problems.length > 0
      ? { problems }
      : { auth: { kind: 'connection_string', connectionString: o.connection_string } };
  }
  if (o.account_url === undefined) {
    return {
      problems: [
        {
          path: 'account_url',
          message:
            'set connection_string, or account_url (https://ACCOUNT.blob.core.windows.net) with sas_token, account_name and account_key, or neither (DefaultAzureCredential)',
        },
      ],
    };
  }
  if (o.sas_token !== undefined && (set('account_key') || set('account_name'))) {
    problems.push({
      path: 'sas_token',
      message: 'choose one way to authenticate: sas_token, or account_name with account_key',
    });
  } else if (set('account_key') !== set('account_name')) {
    problems.push({
      path: set('account_key') ? 'account_name' : 'account_key',
      message: 'account_name and account_key go together',
    });
  }
  if (problems.length > 0) return { problems };
  if (o.sas_token !== undefined)
    return { auth: { kind: 'sas', accountUrl: o.account_url, sasToken: o.sas_token.replace(/^\?/, '') } };
  if (o.account_key !== undefined && o.account_name !== undefined) {
    return {
      auth: {
        kind: 'account_key',
        accountUrl: o.account_url,
        accountName: o.account_name,
        accountKey: o.account_key,
      },
    };
  }
  return { auth: { kind: 'default_credential', accountUrl: o.account_url } };
}

/**
 * What is wrong with these options for the sink's owner: an incomplete or
 * ambiguous authentication, and (docs/security.md, the tenant rule) a
 * tenant-bound admin's sink authenticating as the server's host through
 * DefaultAzureCredential (environment, managed identity, Azure CLI login).
 * Where the sink connects is checked when it connects (the network guard),
 * since the operator's `allowed_private_networks` may allow it.
 */
export function azureBlobPlacementProblems(options: AzureBlobOptions, placement: SinkPlacement): Problem[] {
  const chosen = azureBlobAuth(options);
  if ('problems' in chosen) return chosen.problems;
  if (chosen.auth.kind === 'default_credential' && placement.owner.tenantId !== null) {
    return [
      {
        path: 'account_url',
        message:
          "a tenant-bound admin's sink cannot use the server's own Azure identity (DefaultAzureCredential); set sas_token, account_name with account_key, or connection_string",
      },
    ];
  }
  return [];
}
