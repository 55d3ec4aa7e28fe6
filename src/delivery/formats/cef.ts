import { isIP } from 'node:net';
import { z } from 'zod';
import { actionSeverity, findAction, SEVERITY_LEVELS } from '../../event/catalog.js';
import { field } from './fields.js';
import type { OutputFormat } from './format.js';

/**
 * Characters no CEF field can carry safely: C0 controls other than tab, CR
 * and LF (those are handled per field), DEL, C1 controls (U+0085 NEL among
 * them) and the Unicode line and paragraph separators some readers split on.
 */
const UNSAFE = /(?!\t)[\p{Cc}\u2028\u2029]/gu;
const NEEDS_HEADER_ESCAPE = /[\\|\p{Cc}\u2028\u2029]/u;
const NEEDS_VALUE_ESCAPE = /[\\=\p{Cc}\u2028\u2029]/u;

/** What an unsafe character becomes: visible, and never a separator. */
export const CEF_SUBSTITUTE = '\ufffd';

/**
 * A header field (Implementing ArcSight CEF, "Header"): `\` → `\\`, `|` → `\|`.
 * A header cannot carry a line break, so CR and LF become a space.
 */
export function cefHeader(value: string): string {
  if (!NEEDS_HEADER_ESCAPE.test(value)) return value;
  return value
    .replace(/[\\|]/g, (c) => `\\${c}`)
    .replace(/[\r\n]/g, ' ')
    .replace(UNSAFE, CEF_SUBSTITUTE);
}

/**
 * An extension value (Implementing ArcSight CEF, "Extension"): `\` → `\\`,
 * `=` → `\=`, and line breaks as the two characters `\n` / `\r`. With every
 * `=` escaped, a value can never start another `key=`.
 */
export function cefValue(value: string): string {
  // Most values need nothing; one test is far cheaper than four replaces.
  if (!NEEDS_VALUE_ESCAPE.test(value)) return value;
  return value
    .replace(/[\\=]/g, (c) => `\\${c}`)
    .replace(/\n/g, '\\n')
    .replace(/\r/g, '\\r')
    .replace(UNSAFE, CEF_SUBSTITUTE);
}

/** `rt`: milliseconds since the epoch, from an ISO 8601 timestamp only (Date.parse reads "12" as 2012). */
function epochMs(timestamp: string | undefined): string | undefined {
  if (timestamp === undefined || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(timestamp)) return undefined;
  const ms = Date.parse(timestamp);
  return Number.isFinite(ms) ? String(ms) : undefined;
}

/** Resource types whose name is a user account, so it goes to `duser` / `duid`. */
const USER_TYPES = new Set(['user', 'identity', 'account', 'admin', 'administrator', 'service_account']);

/**
 * CEF severity 0–10: the catalog severity through `SEVERITY_LEVELS`, one
 * higher (at most 10) when the attempt failed or was denied.
 */
export function cefSeverity(action: string | undefined, outcome: string | undefined): number {
  const base = SEVERITY_LEVELS[actionSeverity(action ?? '')].cef;
  return outcome === 'failure' || outcome === 'denied' ? Math.min(10, base + 1) : base;
}

/** The labelled custom strings, in order: `csN` carries the value, `csNLabel` its name. */
const CUSTOM_STRINGS: ReadonlyArray<[label: string, path: string[]]> = [
  ['tenant', ['tenant_id']],
  ['resourceType', ['resource', 'type']],
  ['resourceId', ['resource', 'id']],
  ['sessionId', ['session_id']],
  ['requestId', ['request_id']],
  ['resourceName', ['resource', 'name']],
];

const options = {
  vendor: z.string().min(1).max(63).optional(),
  product: z.string().min(1).max(63).optional(),
};

/**
 * ArcSight Common Event Format, version 0: one line per event. Extension keys
 * are fixed here, never taken from the event, so metadata cannot name a key.
 */
export const cef: OutputFormat = {
  name: 'cef',
  description: 'ArcSight Common Event Format (CEF:0), one line per event; for ArcSight and most SIEMs.',
  contentType: 'text/plain',
  options,
  create(raw, ctx) {
    const opts = z.object(options).parse(raw);
    const vendor = cefHeader(opts.vendor ?? ctx.vendor);
    const product = cefHeader(opts.product ?? ctx.product);
    const version = cefHeader(ctx.version);
    return (event) => {
      const action = field(event, 'action');
      const outcome = field(event, 'outcome');
      const entry = action === undefined ? undefined : findAction(action);
      const header = [
        'CEF:0',
        vendor,
        product,
        version,
        cefHeader(action ?? 'unknown'),
        cefHeader(entry?.description ?? action ?? 'unknown'),
        String(cefSeverity(action, outcome)),
      ].join('|');

      const ext: Array<[string, string | undefined]> = [];
      ext.push(['rt', epochMs(field(event, 'timestamp'))]);
      ext.push(['act', action], ['outcome', outcome]);
      ext.push(['suser', field(event, 'actor', 'name') ?? field(event, 'actor', 'id')]);
      ext.push(['suid', field(event, 'actor', 'id')]);
      if (USER_TYPES.has(field(event, 'resource', 'type') ?? '')) {
        ext.push(['duser', field(event, 'resource', 'name')], ['duid', field(event, 'resource', 'id')]);
      }
      const ip = field(event, 'source_ip');
      // CEF `src` is typed as an IP address; a masked or hashed one is left out.
      ext.push(['src', ip !== undefined && isIP(ip) !== 0 ? ip : undefined]);
      const reason = field(event, 'reason');
      ext.push(['reason', reason], ['msg', reason]);
      ext.push(['requestClientApplication', field(event, 'user_agent')]);
      ext.push(['externalId', field(event, 'event_id')]);
      ext.push(['cat', entry?.category]);
      CUSTOM_STRINGS.forEach(([label, path], i) => {
        const v = field(event, ...path);
        if (v !== undefined) ext.push([`cs${i + 1}Label`, label], [`cs${i + 1}`, v]);
      });
      // cn1 is a number field; a redacted seq is not one.
      const seq = field(event, 'seq');
      if (seq !== undefined && /^\d+$/.test(seq)) ext.push(['cn1Label', 'seq'], ['cn1', seq]);

      const extension = ext
        .filter((kv): kv is [string, string] => kv[1] !== undefined)
        .map(([k, v]) => `${k}=${cefValue(v)}`)
        .join(' ');
      return `${header}|${extension}`;
    };
  },
};
