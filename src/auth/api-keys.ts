import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { TrailwardenError } from '../errors.js';
import type { ApiKeyRecord, Role, Store } from '../store/store.js';

/** Who is calling: the API key's identity, role and tenant binding. */
export interface Principal {
  keyId: string;
  name: string;
  role: Role;
  /** `null` = the key may act on every tenant. */
  tenantId: string | null;
}

const TOKEN_RE = /^tw_([a-z0-9]{16})_([A-Za-z0-9_-]{43})$/;

function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('base64');
}

/**
 * Creates a key and returns its token (`tw_<key id>_<secret>`), which is shown
 * once: only a SHA-256 of the secret is stored. The secret has 256 bits of
 * entropy, so a fast hash is enough (no password stretching needed).
 */
export async function createApiKey(
  store: Store,
  opts: { role: Role; tenantId: string | null; name: string },
): Promise<{ token: string; record: ApiKeyRecord }> {
  const keyId = randomBytes(10).toString('hex').slice(0, 16);
  const secret = randomBytes(32).toString('base64url');
  const record: ApiKeyRecord = {
    keyId,
    secretHash: hashSecret(secret),
    role: opts.role,
    tenantId: opts.tenantId,
    name: opts.name,
    createdAt: new Date().toISOString(),
    revokedAt: null,
  };
  await store.createKey(record);
  return { token: `tw_${keyId}_${secret}`, record };
}

/**
 * Stores a key from a token chosen by the operator (`TRAILWARDEN_ADMIN_KEY`).
 * Idempotent: the same token twice keeps one key.
 */
export async function importApiKey(
  store: Store,
  token: string,
  opts: { role: Role; tenantId: string | null; name: string },
): Promise<ApiKeyRecord> {
  const m = TOKEN_RE.exec(token);
  if (!m) {
    throw new TrailwardenError(
      'TW_ERR_CONFIG',
      'TRAILWARDEN_ADMIN_KEY must look like tw_<16 lowercase letters or digits>_<43 base64url characters>; generate one with `trailwarden keys generate-token`',
    );
  }
  const [, keyId, secret] = m as unknown as [string, string, string];
  const existing = await store.getKey(keyId);
  if (existing) return sameSecret(existing, secret);
  const record: ApiKeyRecord = {
    keyId,
    secretHash: hashSecret(secret),
    role: opts.role,
    tenantId: opts.tenantId,
    name: opts.name,
    createdAt: new Date().toISOString(),
    revokedAt: null,
  };
  try {
    await store.createKey(record);
  } catch (err) {
    // Nodes of one cluster start together with the same token: another may
    // have stored it between our read and our insert.
    const raced = await store.getKey(keyId);
    if (raced === undefined) throw err;
    return sameSecret(raced, secret);
  }
  return record;
}

function sameSecret(existing: ApiKeyRecord, secret: string): ApiKeyRecord {
  if (existing.secretHash !== hashSecret(secret)) {
    throw new TrailwardenError(
      'TW_ERR_CONFIG',
      `TRAILWARDEN_ADMIN_KEY: key id ${existing.keyId} already exists with another secret`,
    );
  }
  return existing;
}

/** A fresh, well-formed token that is not stored anywhere yet. */
export function generateToken(): string {
  return `tw_${randomBytes(10).toString('hex').slice(0, 16)}_${randomBytes(32).toString('base64url')}`;
}

/** Resolves an `Authorization` header to a principal, or throws 401. */
export async function authenticate(store: Store, header: string | undefined): Promise<Principal> {
  if (header === undefined || header === '') {
    throw new TrailwardenError('TW_ERR_UNAUTHENTICATED', 'send an API key as `Authorization: Bearer <key>`', {
      headers: { 'www-authenticate': 'Bearer realm="trailwarden"' },
    });
  }
  const m = /^Bearer\s+(\S+)$/i.exec(header);
  const token = m?.[1];
  const parts = token === undefined ? null : TOKEN_RE.exec(token);
  const invalid = () =>
    new TrailwardenError(
      'TW_ERR_UNAUTHENTICATED',
      'the API key is unknown, revoked or malformed; check the key',
      {
        headers: { 'www-authenticate': 'Bearer realm="trailwarden", error="invalid_token"' },
      },
    );
  if (!parts) throw invalid();
  const [, keyId, secret] = parts as unknown as [string, string, string];
  const record = await store.getKey(keyId);
  if (!record || record.revokedAt !== null) throw invalid();
  const a = Buffer.from(record.secretHash, 'base64');
  const b = Buffer.from(hashSecret(secret), 'base64');
  if (a.length !== b.length || !timingSafeEqual(a, b)) throw invalid();
  return { keyId: record.keyId, name: record.name, role: record.role, tenantId: record.tenantId };
}

const ROLE_RANK: Record<Role, string[]> = {
  publisher: ['write'],
  auditor: ['read'],
  admin: ['write', 'read', 'admin'],
};

/** Refuses with 403 unless the principal's role grants `need`. */
export function requirePermission(p: Principal, need: 'write' | 'read' | 'admin'): void {
  if (!ROLE_RANK[p.role].includes(need)) {
    throw new TrailwardenError(
      'TW_ERR_FORBIDDEN',
      `this key has the role ${p.role}, which cannot ${need}; use a key with the ${need === 'write' ? 'publisher or admin' : need === 'read' ? 'auditor or admin' : 'admin'} role`,
    );
  }
}
