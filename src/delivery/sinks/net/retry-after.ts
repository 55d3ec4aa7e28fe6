/** Retry-After values beyond this are clamped: a receiver cannot park a sink for days. */
const MAX_RETRY_AFTER_MS = 3_600_000;

/**
 * Milliseconds to wait from a Retry-After value (RFC 9110 §10.2.3: seconds
 * or an HTTP-date), clamped to an hour; `undefined` when absent or unreadable.
 */
export function retryAfterMs(value: string | string[] | undefined, now: number): number | undefined {
  const v = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!v) return undefined;
  const wait = /^\d+$/.test(v) ? Number(v) * 1000 : Date.parse(v) - now;
  if (Number.isNaN(wait)) return undefined;
  return Math.min(Math.max(wait, 0), MAX_RETRY_AFTER_MS);
}
