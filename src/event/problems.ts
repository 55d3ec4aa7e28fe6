/** One thing wrong with an event. `path` is `''` for the event as a whole; `message` does not repeat it. */
export interface EventProblem {
  path: string;
  message: string;
}

/** More problems than this are summarised, so one broken event cannot produce a huge response. */
export const MAX_PROBLEMS_PER_EVENT = 20;

/** Collects an event's problems, keeping the first `MAX_PROBLEMS_PER_EVENT` and a note that more were cut. */
export class ProblemList {
  readonly items: EventProblem[] = [];

  /** True once the note about further problems was added: checking more is wasted work. */
  get full(): boolean {
    return this.items.length > MAX_PROBLEMS_PER_EVENT;
  }

  /** Records a problem; returns `undefined` so a checker can `return report(…)` in place of a value. */
  report(path: string, message: string): undefined {
    if (this.items.length < MAX_PROBLEMS_PER_EVENT) this.items.push({ path, message });
    else if (this.items.length === MAX_PROBLEMS_PER_EVENT) {
      this.items.push({
        path: '',
        message: `more problems not shown (first ${MAX_PROBLEMS_PER_EVENT} listed)`,
      });
    }
    return undefined;
  }
}

/** A short, safe rendering of a value for a message (strings quoted and cut at 60 characters). */
export function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'number') return `the number ${v}`;
  return String(v);
}

/** The problem path of `key` inside `parent`: `a.b`, or `a["odd key"]` when the key is not a plain name. */
export function childPath(parent: string, key: string): string {
  const seg = /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? key : JSON.stringify(key);
  return parent === '' ? seg : /^[A-Za-z_]/.test(seg) ? `${parent}.${seg}` : `${parent}[${seg}]`;
}
