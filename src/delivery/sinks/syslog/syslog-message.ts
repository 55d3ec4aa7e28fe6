import { actionSeverity } from '../../../event/catalog.js';
import { SEVERITY_LEVELS } from '../../../event/catalog-entry.js';
import type { OutgoingEvent } from '../../sink.js';

/** Which syslog message layout to write. */
export type SyslogRfc = '5424' | '3164';
/** How messages are delimited on a stream (RFC 6587); UDP sends one message per datagram. */
export type SyslogFraming = 'octet-counting' | 'newline';

/** Everything the message builder needs besides the event. */
export interface SyslogMessageOptions {
  rfc: SyslogRfc;
  /** 0–23; 13 is "log audit". */
  facility: number;
  hostname: string;
  appName: string;
  /** Private Enterprise Number in the SD-ID `trailwarden@<PEN>`. */
  enterpriseId: number;
  /** Replace CR and LF in the message with spaces (newline framing). */
  singleLine: boolean;
  /** Milliseconds since the epoch, for events whose timestamp was projected out (RFC 3164 needs one). */
  now: () => number;
}

/** RFC 5424 §6.4: MSG starting with this is UTF-8. */
export const BOM = '\uFEFF';
/** Appended to a MSG cut to fit a datagram. */
export const TRUNCATION_MARKER = '…[truncated]';

const HOSTNAME_MAX = 255;
const APP_NAME_MAX = 48;
const MSGID_MAX = 32;
/** RFC 3164 §4.1.3: the TAG is at most 32 characters. */
const TAG_MAX = 32;
/** Critical (2) is the most severe level an audit event gets; see the severity rule in docs/sinks/syslog.md. */
const MOST_SEVERE = 2;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** RFC 5424 §6.2.3 TIMESTAMP: RFC 3339 with at most 6 fractional digits. */
const RFC5424_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Syslog severity of an event: the action's catalog severity, one step more
 * severe when the outcome is `failure` or `denied`, never beyond critical (2).
 */
export function syslogSeverity(action: string, outcome: unknown): number {
  const base = SEVERITY_LEVELS[actionSeverity(action)].syslog;
  const failed = outcome === 'failure' || outcome === 'denied';
  // Never made less severe: a level already above critical stays as it is.
  return failed ? Math.min(base, Math.max(MOST_SEVERE, base - 1)) : base;
}

/** PRI value (RFC 5424 §6.2.1): facility * 8 + severity. */
export function priority(facility: number, severity: number): number {
  return facility * 8 + severity;
}

const PRINTABLE = /^[\x21-\x7e]+$/;

/** Printable US-ASCII without spaces (33–126), others replaced with `_`, cut to `max`; `-` when empty. */
export function printableAscii(value: string, max: number): string {
  if (value.length > 0 && value.length <= max && PRINTABLE.test(value)) return value;
  const clean = value.replace(/[^\x21-\x7e]/g, '_').slice(0, max);
  return clean.length > 0 ? clean : '-';
}

/** Escapes a PARAM-VALUE (RFC 5424 §6.3.3): `"`, `\` and `]` get a backslash. */
export function escapeParamValue(value: string): string {
  if (!/["\\\]]/.test(value)) return value;
  return value.replace(/["\\\]]/g, (c) => `\\${c}`);
}

/** SD-NAME: printable ASCII except `=`, space, `]`, `"`; at most 32 characters. */
function sdName(name: string): string {
  return name.replace(/[^\x21-\x7e]|[=\]"]/g, '_').slice(0, 32);
}

/** A field of the shaped event as text, or undefined when absent. */
function field(event: Record<string, unknown>, ...path: string[]): string | undefined {
  let v: unknown = event;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[p];
  }
  if (v === undefined || v === null) return undefined;
  return typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
}

/**
 * The parameters of our SD-ELEMENT. `event_id` and `seq` always; the others
 * from the shaped event, so projection and redaction apply to them too.
 */
export function sdParams(e: OutgoingEvent, full = true): Array<[string, string]> {
  const params: Array<[string, string | undefined]> = [
    ['event_id', e.eventId],
    ['seq', String(e.seq)],
  ];
  if (full) {
    const h = e.header;
    params.push(
      ...((h
        ? [
            ['tenant', e.tenantId],
            ['actor', h.actorId],
            ['resource', h.resourceId ?? undefined],
            ['outcome', h.outcome],
          ]
        : [
            ['tenant', field(e.event, 'tenant_id')],
            ['actor', field(e.event, 'actor', 'id')],
            ['resource', field(e.event, 'resource', 'id')],
            ['outcome', field(e.event, 'outcome')],
          ]) as Array<[string, string | undefined]>),
    );
  }
  return params.filter((p): p is [string, string] => p[1] !== undefined);
}

/** STRUCTURED-DATA: one `[trailwarden@PEN …]` element. */
export function structuredData(enterpriseId: number, params: Array<[string, string]>): string {
  const body = params.map(([k, v]) => ` ${sdName(k)}="${escapeParamValue(v)}"`).join('');
  return `[trailwarden@${enterpriseId}${body}]`;
}

/** RFC 3164 TIMESTAMP `Mmm dd hh:mm:ss` (UTC; the format has no zone). */
export function bsdTimestamp(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

/** The event's timestamp as RFC 5424 TIMESTAMP, `-` (NILVALUE) when absent or not RFC 3339. */
export function rfc5424Timestamp(value: unknown): string {
  if (typeof value !== 'string') return '-';
  if (RFC5424_TIMESTAMP.test(value)) return value;
  // More than 6 fractional digits: keep microseconds.
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6})\d+(Z|[+-]\d{2}:\d{2})$/.exec(value);
  return m ? `${m[1]}${m[2]}` : '-';
}

function singleLine(text: string): string {
  return text.replace(/[\r\n]/g, ' ');
}

/** A message split into what may be cut (MSG) and what may not (everything before it). */
export interface SyslogMessage {
  /** PRI, header and structured data, up to and including the space before MSG. */
  head: string;
  msg: string;
  /** Whether the MSG gets the UTF-8 BOM (RFC 5424, non-ASCII MSG). */
  bom: boolean;
}

/** Builds one message; `fullSd: false` keeps only event_id and seq in the structured data. */
export function buildMessage(e: OutgoingEvent, o: SyslogMessageOptions, fullSd = true): SyslogMessage {
  // An unshaped event brings its header fields from the log's columns: no JSON parse per message.
  const outcome = e.header ? e.header.outcome : e.event['outcome'];
  const timestamp = e.header ? e.header.timestamp : e.event['timestamp'];
  const pri = priority(o.facility, syslogSeverity(e.action, outcome));
  const msg = o.singleLine ? singleLine(e.text) : e.text;
  if (o.rfc === '3164') {
    const ts = Date.parse(String(timestamp));
    const tag = o.appName.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, TAG_MAX) || 'trailwarden';
    const host = printableAscii(o.hostname, HOSTNAME_MAX);
    return {
      head: `<${pri}>${bsdTimestamp(Number.isNaN(ts) ? o.now() : ts)} ${host} ${tag}: `,
      msg,
      bom: false,
    };
  }
  const sd = structuredData(o.enterpriseId, sdParams(e, fullSd));
  const head = [
    `<${pri}>1`,
    rfc5424Timestamp(timestamp),
    printableAscii(o.hostname, HOSTNAME_MAX),
    printableAscii(o.appName, APP_NAME_MAX),
    '-',
    printableAscii(e.action, MSGID_MAX),
    o.singleLine ? singleLine(sd) : sd,
  ].join(' ');
  // A string is non-ASCII exactly when its UTF-8 is longer than its UTF-16 length
  // (every non-ASCII unit takes at least two bytes); no regex over the whole MSG.
  return { head: `${head} `, msg, bom: Buffer.byteLength(msg) !== msg.length };
}

/** One message framed for a stream, as text (the whole batch is then encoded to bytes once). */
export function frameText(m: SyslogMessage, framing: SyslogFraming): string {
  const text = m.head + (m.bom ? BOM : '') + m.msg;
  return framing === 'octet-counting' ? `${Buffer.byteLength(text)} ${text}` : `${text}\n`;
}

/** The message as bytes. */
export function messageBytes(m: SyslogMessage): Buffer {
  return Buffer.from(m.head + (m.bom ? BOM : '') + m.msg, 'utf8');
}

/** Frames one message for a stream (RFC 6587 §3.4.1 octet counting, or §3.4.2 LF). */
export function frame(message: Buffer, framing: SyslogFraming): Buffer {
  return framing === 'octet-counting'
    ? Buffer.concat([Buffer.from(`${message.length} `), message])
    : Buffer.concat([message, Buffer.from('\n')]);
}

/** The longest prefix of `text` whose UTF-8 encoding fits in `maxBytes`, never splitting a character. */
export function utf8Prefix(text: string, maxBytes: number): string {
  if (maxBytes <= 0) return '';
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= maxBytes) return text;
  let end = maxBytes;
  // Step back over continuation bytes (10xxxxxx) to the start of a character.
  while (end > 0 && ((buf[end] ?? 0) & 0xc0) === 0x80) end--;
  return buf.subarray(0, end).toString('utf8');
}

/**
 * One datagram of at most `maxBytes`: the message whole if it fits, else its
 * MSG cut at a UTF-8 boundary and followed by `TRUNCATION_MARKER`. When the
 * header and structured data leave no room, the structured data keeps only
 * event_id and seq; as a last resort the datagram is cut at a character boundary.
 */
export function datagram(e: OutgoingEvent, o: SyslogMessageOptions, maxBytes: number): Buffer {
  const whole = messageBytes(buildMessage(e, o));
  if (whole.length <= maxBytes) return whole;
  const marker = Buffer.byteLength(TRUNCATION_MARKER);
  const bomBytes = o.rfc === '5424' ? Buffer.byteLength(BOM) : 0;
  for (const fullSd of [true, false]) {
    const m = buildMessage(e, o, fullSd);
    const room = maxBytes - Buffer.byteLength(m.head) - bomBytes - marker;
    if (room >= 0) {
      // The marker is not ASCII, so an RFC 5424 MSG that carries it gets the BOM.
      return messageBytes({
        head: m.head,
        msg: utf8Prefix(m.msg, room) + TRUNCATION_MARKER,
        bom: o.rfc === '5424',
      });
    }
  }
  const m = buildMessage(e, o, false);
  return Buffer.from(utf8Prefix(m.head + m.msg, maxBytes), 'utf8');
}
