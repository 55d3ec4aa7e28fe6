import { hostname } from 'node:os';
import { z } from 'zod';
import { TrailwardenError } from '../../errors.js';
import { VERSION } from '../../version.js';
import { cef } from './cef.js';
import { ecs } from './ecs.js';
import type { Encoder, FormatContext, OutputFormat } from './format.js';
import { json, jsonl } from './json.js';
import { leef } from './leef.js';
import { ocsf } from './ocsf.js';
import { splunkHec } from './splunk-hec.js';
import { text } from './text.js';

/** Every output format, by name. Adding a format: its file, one line here, its section in docs/formats.md, its tests. */
export const FORMATS: Readonly<Record<string, OutputFormat>> = Object.freeze({
  json,
  jsonl,
  cef,
  leef,
  text,
  ocsf,
  ecs,
  splunk_hec: splunkHec,
});

export const FORMAT_NAMES = Object.keys(FORMATS);

export function formatByName(name: string): OutputFormat {
  const f = FORMATS[name];
  if (!f)
    throw new TrailwardenError(
      'TW_ERR_INVALID_SINK',
      `unknown format ${JSON.stringify(name)}; known: ${FORMAT_NAMES.join(', ')}`,
    );
  return f;
}

/** Validates `format_options` for a format; returns the problems as `[path, message]`. */
export function formatOptionsProblems(
  name: string,
  options: unknown,
): Array<[Array<string | number>, string]> {
  const f = FORMATS[name];
  if (!f) return [];
  const parsed = z.strictObject(f.options ?? {}).safeParse(options ?? {});
  return parsed.success ? [] : parsed.error.issues.map((i) => [i.path as Array<string | number>, i.message]);
}

/** The context formats see: product identity and this host's name. */
export function formatContext(): FormatContext {
  return { vendor: 'Trailwarden', product: 'Trailwarden', version: VERSION, hostname: hostname() };
}

/** Builds a format's encoder with its options (defaults filled in by its schema). */
export function createEncoder(name: string, options: unknown, ctx: FormatContext = formatContext()): Encoder {
  const f = formatByName(name);
  const parsed = z.strictObject(f.options ?? {}).parse(options ?? {});
  return f.create(parsed, ctx);
}
