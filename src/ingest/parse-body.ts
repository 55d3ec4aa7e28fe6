import { type FieldProblem, TrailwardenError } from '../errors.js';
import { type DuplicateKey, findDuplicateKey, formatJsonPath } from '../event/duplicate-keys.js';
import { show } from '../event/problems.js';

/** The request-level bounds `parseEventsBody` enforces (from the config's `limits`). */
export interface BodyLimits {
  max_batch_events: number;
  max_body_bytes: number;
}

/** Media types an events body may have; a `charset` parameter must say UTF-8. */
export const EVENT_MEDIA_TYPES = ['application/json', 'application/x-ndjson'] as const;
export type EventMediaType = (typeof EVENT_MEDIA_TYPES)[number];

const ACCEPTED = `${EVENT_MEDIA_TYPES.join(' or ')} (optionally with charset=utf-8)`;

/**
 * Splits a POST /events body into raw events, before validation.
 *
 * `application/json`: one event object or a non-empty array of them.
 * `application/x-ndjson`: one event object per line; blank lines and CRLF
 * line ends are fine. A UTF-8 byte order mark is tolerated (and dropped) in
 * both. Throws `TrailwardenError`: TW_ERR_PAYLOAD_TOO_LARGE (body or batch
 * over the limits), TW_ERR_UNSUPPORTED_MEDIA_TYPE, TW_ERR_INVALID_UTF8,
 * TW_ERR_MALFORMED_JSON (with line and column, or the NDJSON line),
 * TW_ERR_DUPLICATE_KEY (an object that names a key twice, at any depth: the
 * event's index and the key's path in `problems`), and TW_ERR_BAD_REQUEST
 * (empty body or batch, or an item that is not an object).
 */
export function parseEventsBody(
  body: Buffer,
  contentType: string | undefined,
  limits: BodyLimits,
): unknown[] {
  if (body.length > limits.max_body_bytes) {
    throw new TrailwardenError(
      'TW_ERR_PAYLOAD_TOO_LARGE',
      `the request body is ${body.length} bytes; the limit is ${limits.max_body_bytes} bytes (limits.max_body_bytes). Split the batch into smaller requests`,
    );
  }
  const mediaType = parseMediaType(contentType);
  const text = decodeUtf8(body);
  if (text.trim() === '') {
    throw new TrailwardenError('TW_ERR_BAD_REQUEST', 'the request body is empty; send at least one event');
  }
  const events =
    mediaType === 'application/json' ? parseJsonBody(text, limits) : parseNdjsonBody(text, limits);
  if (events.length === 0) {
    throw new TrailwardenError('TW_ERR_BAD_REQUEST', 'the batch is empty; send at least one event');
  }
  return events;
}

/** The media type of a Content-Type header, refusing any but ours and any charset but UTF-8. */
export function parseMediaType(contentType: string | undefined): EventMediaType {
  if (contentType === undefined || contentType.trim() === '') {
    throw new TrailwardenError('TW_ERR_UNSUPPORTED_MEDIA_TYPE', `Content-Type is missing; send ${ACCEPTED}`);
  }
  const [type = '', ...params] = contentType.split(';').map((p) => p.trim());
  const mediaType = EVENT_MEDIA_TYPES.find((t) => t === type.toLowerCase());
  if (mediaType === undefined) {
    throw new TrailwardenError(
      'TW_ERR_UNSUPPORTED_MEDIA_TYPE',
      `Content-Type ${JSON.stringify(type)} is not accepted; send ${ACCEPTED}`,
    );
  }
  for (const param of params) {
    const eq = param.indexOf('=');
    if (eq < 0 || param.slice(0, eq).trim().toLowerCase() !== 'charset') continue;
    const charset = param
      .slice(eq + 1)
      .trim()
      .replace(/^"(.*)"$/, '$1')
      .toLowerCase();
    if (charset !== 'utf-8' && charset !== 'utf8') {
      throw new TrailwardenError(
        'TW_ERR_UNSUPPORTED_MEDIA_TYPE',
        `charset ${JSON.stringify(charset)} is not accepted; events must be UTF-8 (charset=utf-8 or no charset)`,
      );
    }
  }
  return mediaType;
}

function decodeUtf8(body: Buffer): string {
  try {
    // The default (ignoreBOM: false) drops a leading BOM, so both formats tolerate one.
    return new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch (cause) {
    throw new TrailwardenError(
      'TW_ERR_INVALID_UTF8',
      `the request body is not valid UTF-8 (first bad byte at offset ${invalidUtf8Offset(body)}); encode events as UTF-8`,
      { cause },
    );
  }
}

/**
 * Offset of the first byte that makes `body` invalid UTF-8. A prefix decoded
 * with `stream: true` only fails on bytes that are already wrong, so validity
 * of prefixes is monotonic and a binary search finds the boundary.
 */
function invalidUtf8Offset(body: Buffer): number {
  const validPrefix = (n: number): boolean => {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(body.subarray(0, n), { stream: true });
      return true;
    } catch {
      return false;
    }
  };
  if (validPrefix(body.length)) return body.length; // only an incomplete sequence at the end
  let lo = 0; // valid
  let hi = body.length; // invalid
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (validPrefix(mid)) lo = mid;
    else hi = mid;
  }
  // `lo` may end inside the sequence that goes wrong; report where that sequence starts.
  for (let back = lo; back > lo - 4 && back >= 0; back--) {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(body.subarray(0, back));
      return back;
    } catch {
      // still inside an incomplete sequence
    }
  }
  return lo;
}

function parseJsonBody(text: string, limits: BodyLimits): unknown[] {
  const value = parseJson(text, 'the body', (path) =>
    // The root is one event (index 0) or an array of them (the path starts with the index).
    typeof path[0] === 'number' ? { index: path[0], path: path.slice(1) } : { index: 0, path },
  );
  if (isEventObject(value)) return [value];
  if (!Array.isArray(value)) {
    throw new TrailwardenError(
      'TW_ERR_BAD_REQUEST',
      `the body is ${describe(value)}; send one event object or an array of event objects`,
    );
  }
  checkBatchSize(value.length, limits);
  value.forEach((item, i) => {
    if (!isEventObject(item)) {
      throw new TrailwardenError(
        'TW_ERR_BAD_REQUEST',
        `item ${i} of the array is ${describe(item)}; each event must be a JSON object`,
      );
    }
  });
  return value;
}

function parseNdjsonBody(text: string, limits: BodyLimits): unknown[] {
  const events: unknown[] = [];
  const lines = text.split('\n');
  for (const [i, rawLine] of lines.entries()) {
    const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    if (line.trim() === '') continue;
    const index = events.length;
    const value = parseJson(line, `line ${i + 1}`, (path) => ({ index, path }));
    if (!isEventObject(value)) {
      throw new TrailwardenError(
        'TW_ERR_BAD_REQUEST',
        `line ${i + 1} is ${describe(value)}; each NDJSON line must be one event object`,
      );
    }
    events.push(value);
    // Stop early: no point parsing the rest of a batch that will be refused.
    checkBatchSize(events.length, limits);
  }
  return events;
}

function checkBatchSize(count: number, limits: BodyLimits): void {
  if (count > limits.max_batch_events) {
    throw new TrailwardenError(
      'TW_ERR_PAYLOAD_TOO_LARGE',
      `the batch has more than ${limits.max_batch_events} events (limits.max_batch_events); split it into smaller requests`,
    );
  }
}

function isEventObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
}

/**
 * One JSON document, as JSON.parse reads it, refusing what JSON.parse lets
 * through silently: a key named twice in one object (it keeps the last,
 * while other readers — a WAF, a SIEM — may take the first and see another
 * request). `where` names the document in messages (`the body`, `line 7`).
 * Throws TW_ERR_MALFORMED_JSON (with line and column) or TW_ERR_DUPLICATE_KEY
 * (with the key's path in `problems`).
 */
export function parseJsonDocument(text: string, where: string): unknown {
  return parseJson(text, where, (path) => ({ path }));
}

/** Where a duplicate key is in the batch: the event's index, when there is one, and the path inside it. */
type Locate = (path: Array<string | number>) => { index?: number; path: Array<string | number> };

function parseJson(text: string, where: string, locate: Locate): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    const found = jsonErrorAt(text);
    const detail = found
      ? ` at line ${found.line}, column ${found.column}: ${found.reason}`
      : `: ${(cause as Error).message}`;
    throw new TrailwardenError('TW_ERR_MALFORMED_JSON', `${where} is not valid JSON${detail}`, { cause });
  }
  const duplicate = findDuplicateKey(text);
  if (duplicate !== undefined) throw duplicateKeyError(duplicate, where, locate(duplicate.path));
  return value;
}

function duplicateKeyError(duplicate: DuplicateKey, where: string, at: ReturnType<Locate>): TrailwardenError {
  const key = show(duplicate.key);
  const problem: FieldProblem = { path: formatJsonPath(at.path), message: `duplicate key ${key}` };
  if (at.index !== undefined) problem.index = at.index;
  return new TrailwardenError(
    'TW_ERR_DUPLICATE_KEY',
    `${where} has the key ${key} twice in one object, at ${formatJsonPath(duplicate.path)}; ` +
      'readers disagree on which value counts, so each key may appear only once per object: remove one of them',
    { problems: [problem] },
  );
}

/**
 * Where and why JSON.parse failed. V8's messages give a position only for
 * some errors, so this re-scans the text with a small RFC 8259 checker (an
 * explicit stack, so deep nesting cannot overflow). Undefined if it finds no
 * error, which would mean the two disagree.
 */
export function jsonErrorAt(text: string): { line: number; column: number; reason: string } | undefined {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const fail = (reason: string) => {
    const before = text.slice(0, i);
    const line = before.split('\n').length;
    const column = i - before.lastIndexOf('\n');
    return { line, column, reason };
  };
  const unexpected = (expected: string) =>
    fail(
      i >= text.length
        ? `unexpected end of input, expected ${expected}`
        : `unexpected ${JSON.stringify(text[i])}, expected ${expected}`,
    );
  // Each stack entry is the container we are inside: '[' or '{'.
  const stack: string[] = [];
  ws();
  for (;;) {
    // Expect a value.
    const c = text[i];
    if (c === '{' || c === '[') {
      i++;
      ws();
      if (text[i] === (c === '{' ? '}' : ']')) {
        i++;
      } else {
        stack.push(c);
        if (c === '{') {
          const err = key();
          if (err) return err;
        }
        continue;
      }
    } else if (c === '"') {
      const err = str();
      if (err) return err;
    } else if (c !== undefined && /[-0-9]/.test(c)) {
      const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
      if (!m) return unexpected('a number');
      i += m[0].length;
    } else {
      const lit = ['true', 'false', 'null'].find((l) => text.startsWith(l, i));
      if (!lit) return unexpected('a value');
      i += lit.length;
    }
    // After a value: close containers or move to the next element.
    for (;;) {
      ws();
      const top = stack[stack.length - 1];
      if (top === undefined)
        return i < text.length ? fail('unexpected text after the JSON value') : undefined;
      const close = top === '{' ? '}' : ']';
      if (text[i] === close) {
        i++;
        stack.pop();
        continue;
      }
      if (text[i] !== ',') return unexpected(`',' or '${close}'`);
      i++;
      ws();
      if (top === '{') {
        const err = key();
        if (err) return err;
      }
      break;
    }
  }

  function key() {
    if (text[i] !== '"') return unexpected('a property name in double quotes');
    const err = str();
    if (err) return err;
    ws();
    if (text[i] !== ':') return unexpected("':'");
    i++;
    ws();
    return undefined;
  }

  function str() {
    i++; // opening quote
    while (i < text.length) {
      const ch = text.charCodeAt(i);
      if (ch === 0x22) {
        i++;
        return undefined;
      }
      if (ch < 0x20) return fail('control character in a string; escape it (e.g. \\n)');
      if (ch === 0x5c) {
        const esc = text[i + 1];
        if (esc === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) return fail('bad \\u escape in a string');
          i += 6;
        } else if (esc !== undefined && '"\\/bfnrt'.includes(esc)) i += 2;
        else return fail('bad escape in a string');
      } else i++;
    }
    return fail('unterminated string');
  }
}
