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
