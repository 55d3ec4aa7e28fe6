import { createHash } from 'node:crypto';
import canonicalizeJson from 'canonicalize';
import type { AuditEvent, StoredEvent } from './event.js';

/**
 * RFC 8785 (JCS) canonical JSON of a value.
 *
 * Same output and the same refusals as the `canonicalize` package, which it
 * falls back to for anything that is not plain JSON data (`toJSON`, symbols,
 * `undefined` in arrays, very deep or circular values). On plain data it is
 * several times faster: it checks strings with the engine's
 * `isWellFormed` instead of a character loop and tracks depth instead of a
 * set of visited objects. Every event is canonicalised twice on ingest
 * (content hash, leaf hash), so this is on the hot path.
 */
export function canonicalJson(value: unknown): string {
  const out = fastCanonical(value, 0);
  if (out !== undefined) return out;
  const slow = canonicalizeJson(value);
  if (slow === undefined) throw new TypeError('value cannot be canonicalised');
  return slow;
}

/** Nesting beyond which the fast path hands over (the slow path also detects cycles). */
const MAX_FAST_DEPTH = 64;

/** Member names repeat across events; their JSON form is cached (up to a bound). */
const quotedKeys = new Map<string, string>();
const MAX_QUOTED_KEYS = 4096;

/** A member name as JSON, or undefined when it is not well-formed UTF-16. */
function quotedKey(key: string): string | undefined {
  const hit = quotedKeys.get(key);
  if (hit !== undefined) return hit;
  if (!key.isWellFormed()) return undefined;
  const quoted = JSON.stringify(key);
  if (quotedKeys.size < MAX_QUOTED_KEYS) quotedKeys.set(key, quoted);
  return quoted;
}

/** JCS of plain JSON data, or undefined when the value needs the general implementation. */
function fastCanonical(value: unknown, depth: number): string | undefined {
  switch (typeof value) {
    case 'string':
      return value.isWellFormed() ? JSON.stringify(value) : undefined;
    case 'number':
      // JCS numbers are ECMAScript's Number-to-String, which JSON.stringify applies.
      return Number.isFinite(value) ? JSON.stringify(value) : undefined;
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (depth >= MAX_FAST_DEPTH) return undefined;
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          const v = fastCanonical(value[i], depth + 1);
          if (v === undefined) return undefined;
          out += i === 0 ? v : `,${v}`;
        }
        return `${out}]`;
      }
      if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return undefined;
      const obj = value as Record<string, unknown>;
      // Array.prototype.sort compares UTF-16 code units, the order JCS prescribes.
      const keys = Object.keys(obj).sort();
      let out = '{';
      for (const key of keys) {
        const member = obj[key];
        // JSON drops members whose value is undefined.
        if (member === undefined) continue;
        const name = quotedKey(key);
        if (name === undefined) return undefined;
        const v = fastCanonical(member, depth + 1);
        if (v === undefined) return undefined;
        out += out.length === 1 ? `${name}:${v}` : `,${name}:${v}`;
      }
      return `${out}}`;
    }
    default:
      return undefined;
  }
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

const LEAF_PREFIX = Buffer.of(0);

/** RFC 6962 leaf hash: SHA-256(0x00 ‖ data). */
export function leafHashOf(event: Omit<StoredEvent, 'leaf_hash'> | StoredEvent): Buffer {
  const { leaf_hash: _ignored, ...rest } = event as StoredEvent;
  return createHash('sha256').update(LEAF_PREFIX).update(canonicalJson(rest), 'utf8').digest();
}

/**
 * Content fingerprint used for idempotency: the producer's event after
 * normalisation (no server fields). Two sends of "the same event" must match.
 */
export function contentHashOf(event: AuditEvent): string {
  return createHash('sha256').update(canonicalJson(event)).digest('base64');
}
