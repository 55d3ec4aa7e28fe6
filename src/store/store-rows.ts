/**
 * Rows of the log's tables as both backends read them, and the records they
 * hold (`delivery-rows.ts` has the delivery tables'). The backends declare
 * these columns alike, so one reading serves both.
 */
import type { StoredEvent } from '../event/event.js';
import type { ApiKeyRecord, CheckpointRecord, Role } from './store.js';

/** A row read for its stored JSON alone. */
export interface EventRow {
  body: string;
}

/** A row of `checkpoints`. */
export interface CheckpointRow {
  tree_size: number;
  root_hash: string;
  issued_at: string;
  note: string;
}

/** A row of `api_keys`. */
export interface KeyRow {
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

/** The checkpoint a `checkpoints` row holds. */
export function toCheckpoint(r: CheckpointRow): CheckpointRecord {
  return { treeSize: r.tree_size, rootHash: r.root_hash, issuedAt: r.issued_at, note: r.note };
}

/** The API key an `api_keys` row holds. */
export function toKey(r: KeyRow): ApiKeyRecord {
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
