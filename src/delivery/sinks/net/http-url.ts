import { z } from 'zod';

/**
 * A URL option of a network sink (a collector's base URL, an object store's
 * endpoint): a string that parses as an http(s) URL, then whatever else the
 * kind asks of it. `rules` returns the first problem with the parsed URL, or
 * `null`; `expected` is the message for a value that is not a string or
 * does not parse (`unparsable` when that one differs).
 */
export function httpUrl(opts: {
  expected: string;
  unparsable?: string;
  rules: (url: URL) => string | null;
  /** The longest value accepted, checked before parsing. */
  max?: { chars: number; message: string };
}) {
  const text = z.string({ error: opts.expected });
  const bounded = opts.max ? text.max(opts.max.chars, { error: opts.max.message }) : text;
  return bounded.superRefine((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: opts.unparsable ?? opts.expected });
      return;
    }
    const problem =
      url.protocol !== 'http:' && url.protocol !== 'https:'
        ? `expected an http(s) URL, got a ${url.protocol} URL`
        : opts.rules(url);
    if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
  });
}
