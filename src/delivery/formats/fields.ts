/** A shaped event: any field may be missing, projected away or redacted. */
export type Obj = Record<string, unknown>;

/**
 * A field of the shaped event as text, or undefined when it is missing,
 * empty or not a scalar (a sink may have projected, dropped or masked it).
 */
export function field(event: Obj, ...path: string[]): string | undefined {
  let cur: unknown = event;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur) || !Object.hasOwn(cur, k))
      return undefined;
    cur = (cur as Obj)[k];
  }
  if (typeof cur === 'string') return cur === '' ? undefined : cur;
  if (typeof cur === 'number' && Number.isFinite(cur)) return String(cur);
  return undefined;
}

/** The value as an object, or undefined. */
export const obj = (v: unknown): Obj | undefined =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : undefined;

/** The value as a string, or undefined. */
export const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** Drops undefined members and empty objects, so absent fields stay absent. */
export function compact(o: Obj): Obj | undefined {
  const out: Obj = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return Object.keys(out).length > 0 ? out : undefined;
}
