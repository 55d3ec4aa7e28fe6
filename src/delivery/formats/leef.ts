import { isIP } from 'node:net';
import { z } from 'zod';
import { TrailwardenError } from '../../errors.js';
import { actionSeverity, findAction, SEVERITY_LEVELS } from '../../event/catalog.js';
import { field } from './fields.js';
import type { OutputFormat } from './format.js';

/**
 * Delimiters a sink may choose. Not `=` or `|` (LEEF syntax), not `\`, not a
 * letter, digit or space (keys and ordinary values), and not `.` `:` `-` `+`
 * `'` `_` `%`, which the fixed-format values (devTime, devTimeFormat, IP
 * addresses, category names) contain and which must reach QRadar intact.
 */
export const LEEF_DELIMITERS = ['\t', '^', '~', '!', '#', '$', '&', '*', ';', ',', '@', '?'] as const;

/** `^`, `x5E`, `0x5E` → `^`; undefined when it is not one character or hex code. */
export function parseDelimiter(spec: string): string | undefined {
  if ([...spec].length === 1) return spec;
  const hex = /^(?:0x|x)([0-9a-fA-F]{1,4})$/.exec(spec);
  return hex ? String.fromCharCode(Number.parseInt(hex[1]!, 16)) : undefined;
}

/** How the LEEF 2.0 header names the delimiter: the character itself when printable, else `xHH`. */
function delimiterSpec(delimiter: string): string {
  return delimiter === '\t' ? 'x09' : delimiter;
}

/** What a character LEEF cannot carry becomes: visible, and never a separator. */
export const LEEF_SUBSTITUTE = '\ufffd';

/** Line breaks, tabs and the Unicode line separators: a space keeps the text readable. */
const BREAKS = /[\t\n\v\f\r\u0085\u2028\u2029]/g;
/** Other control characters (C0, DEL, C1). */
const CONTROLS = /\p{Cc}/gu;

/**
 * A header field. LEEF defines no escaping; we use CEF's rule (`\` → `\\`,
 * `|` → `\|`) so a value cannot add a header field, and a line break becomes
 * a space.
 */
function leefHeader(value: string): string {
  return value
    .replace(/[\\|]/g, (c) => `\\${c}`)
    .replace(BREAKS, ' ')
    .replace(CONTROLS, LEEF_SUBSTITUTE);
}

/**
 * An attribute value. LEEF has no escaping at all, so what would end the
 * attribute or the line is replaced: line breaks and tabs by a space, the
 * delimiter and other control characters by U+FFFD.
 */
export function leefValue(value: string, delimiter: string): string {
  return value.replace(BREAKS, ' ').replace(CONTROLS, LEEF_SUBSTITUTE).split(delimiter).join(LEEF_SUBSTITUTE);
}

/** The `devTimeFormat` we send (Java SimpleDateFormat, as in IBM's LEEF examples). */
export const LEEF_DEV_TIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSZ";

/**
 * `2026-03-15T08:42:17.003Z` → `2026-03-15T08:42:17.003+0000`: SimpleDateFormat's
 * `Z` reads an RFC 822 offset, not a literal `Z`.
 */
export function leefDevTime(timestamp: string | undefined): string | undefined {
  // Only an ISO 8601 date-time: Date.parse would read a bare "12" as the year 2012.
  if (timestamp === undefined || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(timestamp)) return undefined;
  const ms = Date.parse(timestamp);
  if (!Number.isFinite(ms)) return undefined;
  const iso = new Date(ms).toISOString();
  return /^\d{4}-/.test(iso) ? iso.replace(/Z$/, '+0000') : undefined;
}

/** LEEF `sev` (1–10): the CEF level of the catalog severity, one higher when failed or denied. */
export function leefSeverity(action: string | undefined, outcome: string | undefined): number {
  const base = SEVERITY_LEVELS[actionSeverity(action ?? '')].cef;
  const bumped = outcome === 'failure' || outcome === 'denied' ? base + 1 : base;
  return Math.max(1, Math.min(10, bumped));
}

const options = {
  version: z.enum(['1.0', '2.0']).default('2.0'),
  delimiter: z
    .string()
    .refine(
      (s) => (LEEF_DELIMITERS as readonly string[]).includes(parseDelimiter(s) ?? ''),
      `must be tab ("x09") or one of ${LEEF_DELIMITERS.slice(1).join(' ')}, as the character or its hex code ("x5E")`,
    )
    .optional(),
};

/**
 * IBM QRadar Log Event Extended Format, 1.0 (tab-delimited) or 2.0 (the
 * delimiter named in the header; `^` by default). Keys are fixed here, never
 * taken from the event.
 */
export const leef: OutputFormat = {
  name: 'leef',
  description: 'IBM QRadar Log Event Extended Format (LEEF 2.0 with ^, or 1.0 with tab), one line per event.',
  contentType: 'text/plain',
  options,
  create(raw, ctx) {
    const opts = z.object(options).parse(raw);
    const chosen = opts.delimiter === undefined ? undefined : parseDelimiter(opts.delimiter);
    if (opts.version === '1.0' && chosen !== undefined && chosen !== '\t') {
      throw new TrailwardenError(
        'TW_ERR_INVALID_SINK',
        'LEEF 1.0 always separates attributes with a tab: remove format_options.delimiter or use version "2.0"',
      );
    }
    const delimiter = chosen ?? (opts.version === '1.0' ? '\t' : '^');
    const prefix = [
      `LEEF:${opts.version}`,
      leefHeader(ctx.vendor),
      leefHeader(ctx.product),
      leefHeader(ctx.version),
    ].join('|');
    const suffix = opts.version === '2.0' ? `|${delimiterSpec(delimiter)}|` : '|';

    return (event) => {
      const action = field(event, 'action');
      const outcome = field(event, 'outcome');
      const ip = field(event, 'source_ip');
      const validIp = ip !== undefined && isIP(ip) !== 0 ? ip : undefined;
      const devTime = leefDevTime(field(event, 'timestamp'));
      const attrs: Array<[string, string | undefined]> = [
        ['devTime', devTime],
        ['devTimeFormat', devTime === undefined ? undefined : LEEF_DEV_TIME_FORMAT],
        ['cat', action === undefined ? undefined : findAction(action)?.category],
        ['sev', String(leefSeverity(action, outcome))],
        ['usrName', field(event, 'actor', 'name') ?? field(event, 'actor', 'id')],
        // `src` and `identSrc` are IP addresses for QRadar; a masked or hashed one is left out.
        ['src', validIp],
        ['identSrc', validIp],
        ['action', action],
        ['outcome', outcome],
        ['reason', field(event, 'reason')],
        ['tenant', field(event, 'tenant_id')],
        ['actorId', field(event, 'actor', 'id')],
        ['resourceType', field(event, 'resource', 'type')],
        ['resourceId', field(event, 'resource', 'id')],
        ['resourceName', field(event, 'resource', 'name')],
        ['userAgent', field(event, 'user_agent')],
        ['sessionId', field(event, 'session_id')],
        ['requestId', field(event, 'request_id')],
        ['eventId', field(event, 'event_id')],
        ['seq', field(event, 'seq')],
      ];
      const body = attrs
        .filter((kv): kv is [string, string] => kv[1] !== undefined)
        .map(([k, v]) => `${k}=${leefValue(v, delimiter)}`)
        .join(delimiter);
      return `${prefix}|${leefHeader(action ?? 'unknown')}${suffix}${body}`;
    };
  },
};
