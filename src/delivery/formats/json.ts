import { oneLineJson } from '../../event/line-safe-json.js';
import type { OutputFormat } from './format.js';

/**
 * The canonical event as JSON, on one line. JSON.stringify escapes control
 * characters inside strings and `oneLineJson` the Unicode line separators,
 * so a value can never break the line, whatever splits it.
 */
export const json: OutputFormat = {
  name: 'json',
  description: 'The canonical event as one JSON object per line (a webhook batch is a JSON array).',
  contentType: 'application/json',
  create: () => oneLineJson,
};

/** The same encoding as `json`; a webhook batch is then sent as NDJSON rather than an array. */
export const jsonl: OutputFormat = {
  ...json,
  name: 'jsonl',
  description: 'JSON Lines: like json, and webhook batches are newline-delimited instead of an array.',
  contentType: 'application/x-ndjson',
};
