import type { StoredEvent } from '../../event/event.js';
import type { ApiKeyRecord, CheckpointRecord, Role } from '../store.js';

/** A row read for its stored JSON alone. */
export interface EventRow {
  body: string;
}

/** A row of `checkpoints`. */
interface CheckpointRow {
  tree_size: number;
  root_hash: string;
  issued_at: string;
  note: string;
}

/** A row of `api_keys`. */
interface KeyRow {
  key_id: string;
  secret_hash: string;
  role: Role;
  tenant_id: string | null;
  name: string;
  created_at: string;
  revoked_at: string | null;
}

/** The stored event a row's JSON body holds. */
export function parseRow(row: EventRow): StoredEvent {
  return JSON.parse(row.body) as StoredEvent;
}

/** The checkpoint a `checkpoints` row holds; undefined when no row was found. */
export function toCheckpoint(row: unknown): CheckpointRecord | undefined {
  if (row === undefined) return undefined;
  const r = row as CheckpointRow;
  return { treeSize: r.tree_size, rootHash: r.root_hash, issuedAt: r.issued_at, note: r.note };
}

/** The API key an `api_keys` row holds; undefined when no row was found. */
export function toKey(row: unknown): ApiKeyRecord | undefined {
  if (row === undefined) return undefined;
  const r = row as KeyRow;
  return {
    keyId: r.key_id,
    secretHash: r.secret_hash,
    role: r.role,
    tenantId: r.tenant_id,
    name: r.name,
    createdAt: r.created_at,
    revokedAt: r.revoked_at,
  };
}
