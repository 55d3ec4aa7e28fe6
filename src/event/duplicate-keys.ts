import { childPath } from './problems.js';

/** A member name that occurs twice in one JSON object, and where. */
export interface DuplicateKey {
  /** The name as JSON.parse decodes it (`"\u0061ction"` is `action`). */
  key: string;
  /** From the document's root to the second occurrence: member names and array indexes, `key` last. */
  path: Array<string | number>;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

const OBJECT = 0;
const ARRAY = 1;

/**
 * Objects with up to this many members (an event has at most 14 top-level
 * fields) are checked by comparing each new name with the ones before: no
 * allocation, and most names differ in length or last char. A larger object
 * moves its names into a Set, so an object of many thousand members costs
 * linear time (the Set hashes names as the engine does for the object
 * JSON.parse builds of them, so it adds no weakness to crafted names). 16
 * measured faster than 32 or 64 on events with 256 metadata keys
 * (bench/duplicate-keys.ts).
 */
const LINEAR_MAX_KEYS = 16;

/**
 * The first member name that occurs twice in one object of `text`, or
 * undefined when every object's names are unique.
 *
 * JSON.parse keeps the last of two equal names and cannot say it saw two, so
 * this scans the text itself: an explicit state machine over char codes (no
 * recursion, so nesting depth costs nothing but the stack arrays), comparing
 * names as raw slices of `text` and decoding only names that contain a
 * backslash, so `"action"` and `"\u0061ction"` are the same name, as they
 * are to JSON.parse.
 *
 * `text` must be JSON that JSON.parse accepted: the scanner relies on it and
 * does not validate. Given other text its answer means nothing (it may also
 * throw a SyntaxError on a bad escape in a name), but it always ends.
 */
export function findDuplicateKey(text: string): DuplicateKey | undefined {
  const n = text.length;
  // One frame per open container: its kind, where its names start in the
  // name stack, and its current member (name slot for an object, element
  // index for an array).
  const kind: number[] = [];
  const base: number[] = [];
  const member: number[] = [];
  // Names of every open object, innermost last: raw slice bounds, and the
  // decoded name when the raw one has an escape.
  const keyStart: number[] = [];
  const keyEnd: number[] = [];
  const keyDecoded: Array<string | undefined> = [];
  let sets: Array<Set<string> | undefined> | undefined;
  let depth = -1;
  let keys = 0;
  let expectKey = false;
  // The first backslash at or after the string being read (n when none),
  // searched for again only once passed: a string is then one indexOf for
  // its closing quote unless a backslash lies before that quote, and the
  // backslash searches never cover a char twice.
  let backslash = -1;

  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const start = i + 1;
      if (backslash < start) backslash = nextBackslash(text, start);
      let end = text.indexOf('"', start);
      if (end < 0) return undefined;
      const escaped = backslash < end;
      if (escaped) {
        end = closingQuote(text, backslash);
        if (end < 0) return undefined;
      }
      if (!expectKey) {
        i = end + 1;
        continue;
      }
      const j = end;
      const decoded = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : undefined;
      const first = base[depth]!;
      const set = sets?.[depth];
      if (set !== undefined) {
        const name = decoded ?? text.slice(start, j);
        if (set.has(name)) return duplicate(name);
        set.add(name);
      } else {
        for (let k = first; k < keys; k++) {
          if (sameKey(text, keyStart[k]!, keyEnd[k]!, keyDecoded[k], start, j, decoded)) {
            return duplicate(decoded ?? text.slice(start, j));
          }
        }
        if (keys - first >= LINEAR_MAX_KEYS) {
          sets ??= [];
          const names = new Set<string>();
          for (let k = first; k < keys; k++) names.add(keyName(k));
          names.add(decoded ?? text.slice(start, j));
          sets[depth] = names;
        }
      }
      keyStart[keys] = start;
      keyEnd[keys] = j;
      keyDecoded[keys] = decoded;
      member[depth] = keys;
      keys++;
      expectKey = false;
      i = j + 1;
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      depth++;
      kind[depth] = c === OPEN_OBJECT ? OBJECT : ARRAY;
      base[depth] = keys;
      member[depth] = 0;
      if (sets !== undefined) sets[depth] = undefined;
      expectKey = c === OPEN_OBJECT;
      i++;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      if (depth < 0) return undefined;
      keys = base[depth]!;
      depth--;
      // After `{}` no name follows.
      expectKey = false;
      i++;
    } else if (c === COMMA) {
      if (depth < 0) return undefined;
      if (kind[depth] === ARRAY) member[depth]!++;
      else expectKey = true;
      i++;
    } else {
      // Whitespace, ':', numbers, true, false, null.
      i++;
    }
  }
  return undefined;

  function keyName(slot: number): string {
    return keyDecoded[slot] ?? text.slice(keyStart[slot]!, keyEnd[slot]!);
  }

  function duplicate(key: string): DuplicateKey {
    const path: Array<string | number> = [];
    for (let d = 0; d < depth; d++) path.push(kind[d] === ARRAY ? member[d]! : keyName(member[d]!));
    path.push(key);
    return { key, path };
  }
}

function nextBackslash(text: string, from: number): number {
  const at = text.indexOf('\\', from);
  return at < 0 ? text.length : at;
}

/** The closing quote of a string that has a backslash at `from`; -1 when the text ends first. */
function closingQuote(text: string, from: number): number {
  for (let j = from; j < text.length; ) {
    const ch = text.charCodeAt(j);
    if (ch === QUOTE) return j;
    j += ch === BACKSLASH ? 2 : 1;
  }
  return -1;
}

/**
 * Whether two names are equal once decoded. `a*`/`b*` are raw slice bounds
 * in `text`; `aDecoded`/`bDecoded` the decoded name when the raw one has an
 * escape (a name without one decodes to itself).
 */
function sameKey(
  text: string,
  aStart: number,
  aEnd: number,
  aDecoded: string | undefined,
  bStart: number,
  bEnd: number,
  bDecoded: string | undefined,
): boolean {
  if (aDecoded !== undefined && bDecoded !== undefined) return aDecoded === bDecoded;
  if (aDecoded !== undefined) return sliceEquals(text, bStart, bEnd, aDecoded);
  if (bDecoded !== undefined) return sliceEquals(text, aStart, aEnd, bDecoded);
  const length = aEnd - aStart;
  // Names of one length often share a prefix (`attribute_1`, `attribute_2`): the last char tells them apart first.
  if (bEnd - bStart !== length || text.charCodeAt(aEnd - 1) !== text.charCodeAt(bEnd - 1)) return false;
  for (let k = 0; k < length; k++) {
    if (text.charCodeAt(aStart + k) !== text.charCodeAt(bStart + k)) return false;
  }
  return true;
}

function sliceEquals(text: string, start: number, end: number, s: string): boolean {
  if (end - start !== s.length) return false;
  return text.startsWith(s, start);
}

/** Longest member name shown whole in a path; longer ones are cut, so one name cannot make a huge message. */
const MAX_SHOWN_KEY = 60;

/**
 * A path as problems name fields: `[3].actor.id`, `metadata["odd key"]`,
 * `changes[0].field`.
 */
export function formatJsonPath(path: ReadonlyArray<string | number>): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out = `${out}[${seg}]`;
    else out = childPath(out, seg.length > MAX_SHOWN_KEY ? `${seg.slice(0, MAX_SHOWN_KEY - 3)}...` : seg);
  }
  return out;
}
