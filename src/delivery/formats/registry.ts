import type { OutputFormat } from './format.js';
import { json, jsonl } from './json.js';

/** Every output format, by name. Adding a format: its file, one line here, its section in docs/formats.md, its tests. */
export const FORMATS: Readonly<Record<string, OutputFormat>> = Object.freeze({
  json,
  jsonl,
});

export const FORMAT_NAMES = Object.keys(FORMATS);

export function formatByName(name: string): OutputFormat {
  const f = FORMATS[name];
  if (!f) throw new Error(`unknown format ${JSON.stringify(name)}; known: ${FORMAT_NAMES.join(', ')}`);
  return f;
}
