import type { JsonValue } from './event.js';
import type { EventLimits } from './limits.js';
import { childPath, type ProblemList, show } from './problems.js';
import { checkString } from './string-rules.js';

/** A JSON object as parsed, before checking. */
export type Obj = Record<string, unknown>;

// Keys that would reach Object.prototype (or a class) if some later code merged them naively.
export const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** True for `{…}` from JSON.parse (or a null-prototype object), false for arrays, class instances and the rest. */
export function isPlainObject(v: unknown): v is Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * Copies the free-form JSON of one event (metadata, change values) while
 * checking it against the depth, array-length and key-count limits and the
 * string rules. One instance per event: the metadata key count spans all of it.
 */
export class JsonLimits {
  private metadataKeys = 0;

  constructor(
    private readonly limits: EventLimits,
    private readonly problems: ProblemList,
  ) {}

  /**
   * Returns a checked copy of `v`, or `undefined` after reporting.
   * `depth` is the nesting level the value would have if it is a container;
   * `countKeys` counts its object keys towards `max_metadata_keys`.
   */
  copy(v: unknown, path: string, depth: number, countKeys: boolean): JsonValue | undefined {
    const { limits, problems } = this;
    if (problems.full) return undefined;
    if (v === null || typeof v === 'boolean') return v;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return problems.report(path, `${v} is not a finite number`);
      return v === 0 ? 0 : v; // -0 has no JSON form of its own
    }
    if (typeof v === 'string') return checkString(v, path, 'text', limits, problems);
    const isArray = Array.isArray(v);
    if (!isArray && !isPlainObject(v)) return problems.report(path, `is not a JSON value (${typeof v})`);
    if (depth > limits.max_metadata_depth) {
      return problems.report(
        path,
        `nests deeper than ${limits.max_metadata_depth} levels (max_metadata_depth)`,
      );
    }
    if (isArray) {
      if (v.length > limits.max_array_length) {
        return problems.report(
          path,
          `has ${v.length} elements; the limit is ${limits.max_array_length} (max_array_length)`,
        );
      }
      return v.map((item, i) => this.copy(item, `${path}[${i}]`, depth + 1, countKeys) ?? null);
    }
    const out: Record<string, JsonValue> = {};
    for (const key of Object.keys(v)) {
      const p = childPath(path, key);
      if (countKeys && ++this.metadataKeys === limits.max_metadata_keys + 1) {
        problems.report(
          'metadata',
          `has more than ${limits.max_metadata_keys} keys in all (max_metadata_keys)`,
        );
      }
      if (problems.full || (countKeys && this.metadataKeys > limits.max_metadata_keys)) break;
      if (FORBIDDEN_KEYS.has(key)) {
        problems.report(p, `the key ${show(key)} is not allowed anywhere in an event`);
        continue;
      }
      if (checkString(key, `${p} (key)`, 'name', limits, problems) === undefined) continue;
      const item = this.copy((v as Obj)[key], p, depth + 1, countKeys);
      if (item !== undefined) out[key] = item;
    }
    return out;
  }
}
