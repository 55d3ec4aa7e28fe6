import { createHash } from 'node:crypto';
import canonicalizeJson from 'canonicalize';
import type { AuditEvent, StoredEvent } from './event.js';

/** RFC 8785 (JCS) canonical JSON of a value. */
export function canonicalJson(value: unknown): string {
  const out = canonicalizeJson(value);
  if (out === undefined) throw new TypeError('value cannot be canonicalised');
  return out;
}

/**
 * The bytes a leaf hash covers: JCS of the event as the API serves it, minus
 * `leaf_hash` itself (so `seq` and `received_at` are covered, and a reordering
 * changes the hash).
 */
export function leafBytes(event: Omit<StoredEvent, 'leaf_hash'> | StoredEvent): Buffer {
  const { leaf_hash: _ignored, ...rest } = event as StoredEvent;
  return Buffer.from(canonicalJson(rest), 'utf8');
}

/** RFC 6962 leaf hash: SHA-256(0x00 ‖ data). */
export function leafHashOf(event: Omit<StoredEvent, 'leaf_hash'> | StoredEvent): Buffer {
  return createHash('sha256').update(Buffer.of(0)).update(leafBytes(event)).digest();
}

/**
 * Content fingerprint used for idempotency: the producer's event after
 * normalisation (no server fields). Two sends of "the same event" must match.
 */
export function contentHashOf(event: AuditEvent): string {
  return createHash('sha256').update(canonicalJson(event)).digest('base64');
}
