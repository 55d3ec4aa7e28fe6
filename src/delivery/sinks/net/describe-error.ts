/** How much of a peer's answer is quoted in an outcome's reason. */
export const SNIPPET_CHARS = 200;

/** Quotes untrusted text in a reason: first characters only, control characters escaped. */
export function snippet(text: string, max = SNIPPET_CHARS): string {
  const chars = Array.from(text);
  const cut = chars.slice(0, max).join('');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: escaping control characters is the point
  const escaped = cut.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => {
    const named: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
    return named[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
  return chars.length > max ? `${escaped}…` : escaped;
}

/** A connection-level failure in words; never includes the URL's path or query (they may hold tokens). */
export function describeError(err: unknown, host: string): string {
  const e = err as Error & { code?: string; errors?: Error[] };
  const message = e.errors?.length ? e.errors.map((x) => x.message).join('; ') : (e.message ?? String(err));
  const code = e.code && !message.includes(e.code) ? `${e.code}: ` : '';
  return `cannot deliver to ${host}: ${code}${message}`;
}
