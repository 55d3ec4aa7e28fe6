import { createHash, createHmac } from 'node:crypto';
import type { StoredEvent } from '../event/event.js';
import { actionMatcher } from './event-filter.js';
import type { SinkConfig } from './sink-config.js';

type Obj = Record<string, unknown>;

/** Fields every shaped event keeps, so a receiver can always deduplicate and order. */
const ALWAYS = ['seq', 'event_id'];

function getPath(o: Obj, path: string[]): unknown {
  let cur: unknown = o;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, k)) return undefined;
    cur = (cur as Obj)[k];
  }
  return cur;
}

function setPath(o: Obj, path: string[], value: unknown): void {
  let cur = o;
  for (const k of path.slice(0, -1)) {
    const next = cur[k];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) {
      const fresh: Obj = {};
      cur[k] = fresh;
      cur = fresh;
    } else {
      cur = next as Obj;
    }
  }
  cur[path.at(-1)!] = value;
}

/** Changes the value at `path` (copying the objects on the way, never the caller's). */
function updatePath(o: Obj, path: string[], fn: (v: unknown) => unknown | undefined): Obj {
  const [head, ...rest] = path;
  if (head === undefined || !Object.hasOwn(o, head)) return o;
  const copy: Obj = { ...o };
  if (rest.length === 0) {
    const v = fn(copy[head]);
    if (v === undefined) delete copy[head];
    else copy[head] = v;
    return copy;
  }
  const child = copy[head];
  if (child === null || typeof child !== 'object' || Array.isArray(child)) return o;
  copy[head] = updatePath(child as Obj, rest, fn);
  return copy;
}

/**
 * Masks a value while keeping what an analyst needs to correlate: the first
 * character and the domain of an email, the first three octets of an IPv4
 * address, the first character of any other string.
 */
export function maskValue(v: unknown): unknown {
  if (typeof v !== 'string') return '***';
  const email = /^([^@])[^@]*(@.+)$/.exec(v);
  if (email) return `${email[1]}***${email[2]}`;
  const ipv4 = /^(\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}$/.exec(v);
  if (ipv4) return `${ipv4[1]}.xxx`;
  return v.length <= 1 ? '***' : `${v[0]}***`;
}

/**
 * Compiles a sink's shaping rules: the seed-000 metadata rule, projection,
 * then redaction (drop, mask, or a keyed SHA-256 so the same value hashes the
 * same within this sink but cannot be looked up in a dictionary without the key).
 */
export function compileShaper(shape: SinkConfig['shape'], hashKey?: string): (e: StoredEvent) => Obj {
  const metadataFor = shape.metadata_for_actions === null ? null : actionMatcher(shape.metadata_for_actions);
  const fields =
    shape.fields === null ? null : [...new Set([...ALWAYS, ...shape.fields])].map((f) => f.split('.'));
  const redactions = shape.redact.map((r) => ({ path: r.path.split('.'), mode: r.mode }));
  const hash = (v: unknown) => {
    const text = typeof v === 'string' ? v : JSON.stringify(v);
    const h = hashKey ? createHmac('sha256', hashKey) : createHash('sha256');
    return `sha256:${h.update(text).digest('hex')}`;
  };
  return (event) => {
    let out: Obj = event as unknown as Obj;
    if (metadataFor !== null && out['metadata'] !== undefined && !metadataFor(event.action)) {
      const { metadata: _dropped, ...rest } = out;
      out = rest;
    }
    if (fields !== null) {
      const projected: Obj = {};
      for (const path of fields) {
        const v = getPath(out, path);
        if (v !== undefined) setPath(projected, path, v);
      }
      out = projected;
    }
    for (const r of redactions) {
      out = updatePath(out, r.path, (v) =>
        r.mode === 'drop' ? undefined : r.mode === 'mask' ? maskValue(v) : hash(v),
      );
    }
    return out;
  };
}
