/**
 * Values that try to break out of a record, a field or a line in every output
 * format: separators of CEF, LEEF, key=value and syslog structured data,
 * newlines of all kinds, quotes and backslashes, non-ASCII, very long values.
 * Every format's tests encode events full of these and parse the result back.
 */
export const HOSTILE_STRINGS: readonly string[] = [
  'plain',
  'new\nline',
  'carriage\rreturn',
  'crlf\r\nline',
  'tab\there',
  'pipe|pipe',
  'equals=equals',
  'back\\slash',
  'trailing backslash\\',
  'quote"quote',
  "single'quote",
  'bracket]bracket',
  '[sd-id key="v"]',
  'caret^caret',
  'nul\u0000char',
  'bell\u0007char',
  'del\u007fchar',
  'unicode line\u2028separator',
  'paragraph\u2029separator',
  'next line\u0085char',
  'every splitter \n\r\u2028\u2029\u0085\v\f\x1c\x1d\x1e end',
  'naïve café Ωμέγα 中文 😀',
  'CEF:0|forged|header|1|2|3|4|',
  'LEEF:2.0|x|y|1|z|',
  '<13>1 2026-01-01T00:00:00Z host app - - - forged syslog',
  ' leading and trailing spaces ',
  '%s %n %x {0}',
  'x'.repeat(9000),
];

/** A canonical event (as the API serves it) with hostile values in every free field. */
export function hostileEvent(value: string, seq = 1): Record<string, unknown> {
  return {
    seq,
    event_id: `evt_hostile_${seq}`,
    timestamp: '2026-03-15T08:42:17.003Z',
    received_at: '2026-03-15T08:42:17.120Z',
    tenant_id: 'acme',
    actor: { type: 'user', id: `usr_${seq}`, name: value, email: 'alice@example.com' },
    action: 'user.password.reset',
    resource: { type: 'user', id: 'usr_9x8y', name: value },
    outcome: 'failure',
    reason: value,
    source_ip: '203.0.113.42',
    user_agent: value,
    session_id: 'sess_1',
    request_id: 'req_1',
    changes: [{ field: 'note', old: value, new: value }],
    metadata: { note: value, [`key ${value.slice(0, 20)}`]: 1 },
    leaf_hash: 'uYVd8Y3s2bF1o1D8l8Zq3pQ1m3mJ0Yq8m8jv9r3rM8A=',
  };
}

/**
 * Every character some line splitter ends a line at: LF, CR, VT, FF, the
 * information separators FS, GS and RS, NEL (U+0085) and the Unicode line
 * and paragraph separators — Python's str.splitlines takes all of them.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are the point
export const ANY_LINE_BREAK = /\r\n|[\n\r\u2028\u2029\u0085\v\f\x1c\x1d\x1e]/;

/** Text split into records as the most eager line splitter would; a final line end adds no record. */
export function splitRecords(text: string): string[] {
  const records = text.split(ANY_LINE_BREAK);
  if (records.at(-1) === '') records.pop();
  return records;
}
