import { hash } from 'node:crypto';
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
 * An event's JCS, and where in it the members the server adds on sequencing
 * (`received_at`, `seq`) belong. Ingest canonicalises every event for its
 * content hash; the leaf hash covers the same members plus those two, so
 * the writer splices them in ({@link leafCanonical}) instead of
 * canonicalising the event a second time.
 */
export interface CanonicalEvent {
  text: string;
  /** Offset in `text` of the first top-level member that sorts after `received_at` (or of the closing brace). */
  receivedAtOffset: number;
  /** Same for `seq`. */
  seqOffset: number;
}

/** The canonical form of a producer's event (no server fields). */
export function canonicalEvent(event: AuditEvent): CanonicalEvent {
  const obj = event as unknown as Record<string, unknown>;
  // JCS is compositional: the object is its sorted members, so a member the fast path cannot take goes to the general one alone.
  const keys = Object.keys(obj).sort();
  let out = '{';
  let receivedAtOffset = -1;
  let seqOffset = -1;
  for (const key of keys) {
    const member = obj[key];
    if (member === undefined) continue;
    const name = quotedKey(key) ?? canonicalJson(key);
    const v = fastCanonical(member, 1) ?? canonicalJson(member);
    if (out.length > 1) out += ',';
    if (receivedAtOffset < 0 && key > 'received_at') receivedAtOffset = out.length;
    if (seqOffset < 0 && key > 'seq') seqOffset = out.length;
    out += `${name}:${v}`;
  }
  if (receivedAtOffset < 0) receivedAtOffset = out.length;
  if (seqOffset < 0) seqOffset = out.length;
  return { text: `${out}}`, receivedAtOffset, seqOffset };
}

/**
 * JCS of the event as sequenced — `canonicalJson` of the stored event
 * without `leaf_hash` — from the event's canonical form, by inserting the two
 * server members where they sort.
 */
export function leafCanonical(c: CanonicalEvent, seq: number, receivedAt: string): string {
  const r = `"received_at":${JSON.stringify(receivedAt)}`;
  const q = `"seq":${seq}`;
  const { text, receivedAtOffset: a, seqOffset: b } = c;
  const end = text.length - 1;
  // Each goes before the member at its offset (a <= b, as "received_at" < "seq"); an offset at the closing brace means last.
  if (b < end) return `${text.slice(0, a)}${r},${text.slice(a, b)}${q},${text.slice(b)}`;
  if (a < end) return `${text.slice(0, a)}${r},${text.slice(a, end)},${q}}`;
  return `${text.slice(0, end)}${end === 1 ? '' : ','}${r},${q}}`;
}

/** SHA-256 of `0x00 ‖ leafCanonical(...)`, the RFC 6962 leaf hash of a sequenced event. */
export function leafHashOfCanonical(c: CanonicalEvent, seq: number, receivedAt: string): Buffer {
  return hash('sha256', `\u0000${leafCanonical(c, seq, receivedAt)}`, 'buffer');
}

/** The content hash ({@link contentHashOf}) from the event's canonical form. */
export function contentHashOfCanonical(c: CanonicalEvent): string {
  return hash('sha256', c.text, 'base64');
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
  const { leaf_hash: _ignored, ...rest } = event as StoredEvent;
  return hash('sha256', `\u0000${canonicalJson(rest)}`, 'buffer');
}

/**
 * Content fingerprint used for idempotency: the producer's event after
 * normalisation (no server fields). Two sends of "the same event" must match.
 */
export function contentHashOf(event: AuditEvent): string {
  return contentHashOfCanonical(canonicalEvent(event));
}
