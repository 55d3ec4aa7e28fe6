import type { EventLimits } from './limits.js';
import { type ProblemList, show } from './problems.js';

/** `name`: ids and names (no control characters, not empty); `text`: free text (may keep tab, LF, CR). */
export type StringKind = 'name' | 'text';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function codePoint(s: string, re: RegExp): string {
  return hex(re.exec(s)?.[0]?.codePointAt(0) ?? 0);
}

function hex(cp: number): string {
  return `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** The first C0 control character or DEL in `s` (free text may keep tab, LF, CR), or -1. */
function firstControl(s: string, kind: StringKind): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 || c === 0x7f) && !(kind === 'text' && (c === 9 || c === 10 || c === 13))) return c;
  }
  return -1;
}

/**
 * Checks a string's content against the character rules and the length
 * limit of its kind; returns it, or `undefined` after reporting.
 */
export function checkString(
  v: unknown,
  path: string,
  kind: StringKind,
  limits: EventLimits,
  problems: ProblemList,
): string | undefined {
  if (typeof v !== 'string') return problems.report(path, `must be a string, got ${show(v)}`);
  if (kind === 'name' && v.length === 0) return problems.report(path, 'must not be empty');
  if (LONE_SURROGATE.test(v)) {
    return problems.report(
      path,
      `contains a lone UTF-16 surrogate (${codePoint(v, LONE_SURROGATE)}) that has no UTF-8 form`,
    );
  }
  const control = firstControl(v, kind);
  if (control >= 0) {
    const allowed =
      kind === 'name' ? 'ids and names may have none' : 'only tab, newline and carriage return are allowed';
    return problems.report(path, `contains the control character ${hex(control)}; ${allowed}`);
  }
  const max = kind === 'name' ? limits.max_string_length : limits.max_text_length;
  if (v.length > max) {
    const chars = [...v].length; // code points; only counted when the cheap UTF-16 length is over
    const limit = kind === 'name' ? 'max_string_length' : 'max_text_length';
    if (chars > max)
      return problems.report(path, `is ${chars} characters long; the limit is ${max} (${limit})`);
  }
  return v;
}
