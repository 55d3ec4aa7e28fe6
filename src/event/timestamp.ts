/** Example shown in every timestamp error message. */
export const TIMESTAMP_EXAMPLE = '2026-03-15T08:42:17.003Z';

function quoted(text: string): string {
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text);
}

/**
 * Parses an ISO 8601 / RFC 3339 date-time with a timezone (`Z`, `±hh:mm`, or
 * the Java-style `±hhmm`) into UTC `YYYY-MM-DDTHH:mm:ss.sssZ`. Digits past
 * milliseconds are truncated. Shared with the query layer's `from`/`to`.
 */
export function parseTimestamp(
  text: string,
): { ok: true; iso: string; ms: number } | { ok: false; reason: string } {
  // Most producers send the normal form already: a string the engine prints back unchanged is valid as it is.
  if (text.length === 24 && text.charCodeAt(23) === 0x5a /* Z */) {
    const ms = Date.parse(text);
    if (!Number.isNaN(ms) && new Date(ms).toISOString() === text) return { ok: true, iso: text, ms };
  }
  const m =
    /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|([+-])(\d{2}):?(\d{2}))$/.exec(text);
  const bad = `${quoted(text)} is not an ISO 8601 date-time with a timezone, e.g. ${TIMESTAMP_EXAMPLE}`;
  if (!m) return { ok: false, reason: bad };
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const frac = Number((m[7] ?? '').padEnd(3, '0').slice(0, 3));
  const offH = Number(m[10] ?? 0);
  const offM = Number(m[11] ?? 0);
  if (mo < 1 || mo > 12) return { ok: false, reason: `${bad} (month ${mo} is out of range)` };
  const days = new Date(Date.UTC(2000, mo, 0)).getUTCDate() - (mo === 2 && !isLeap(y) ? 1 : 0);
  if (d < 1 || d > days)
    return { ok: false, reason: `${quoted(text)} is not a real date: ${y}-${m[2]} has ${days} days` };
  if (h > 23 || mi > 59 || s > 59) return { ok: false, reason: `${quoted(text)} is not a real time of day` };
  if (offH > 23 || offM > 59)
    return { ok: false, reason: `${quoted(text)} has an impossible timezone offset` };
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d); // not Date.UTC: it maps years 0–99 to 1900–1999
  date.setUTCHours(h, mi, s, frac);
  const ms = date.getTime() - (m[9] === '-' ? -1 : 1) * (offH * 60 + offM) * 60_000;
  const iso = new Date(ms).toISOString();
  if (iso.length !== 24)
    return { ok: false, reason: `${quoted(text)} is outside the years 0000–9999 in UTC` };
  return { ok: true, iso, ms };
}

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}
