import { readFile } from 'node:fs/promises';
import { type Document, isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { TrailwardenError } from '../errors.js';
import { type Config, fileConfigSchema } from './schema.js';
import { substituteEnv } from './substitute-env.js';

/** Where settings come from besides the file: the process environment and CLI flags. */
export interface LoadConfigOptions {
  /** Path of the YAML file; without it every setting has its default (or an env/CLI value). */
  file?: string;
  env: NodeJS.ProcessEnv;
  /** CLI flags; they win over the environment, which wins over the file. */
  overrides?: { data_dir?: string; listen?: string };
}

/** Environment variables that replace a top-level setting of the file. */
export const ENV_OVERRIDES = {
  TRAILWARDEN_LISTEN: 'listen',
  TRAILWARDEN_DATA_DIR: 'data_dir',
  TRAILWARDEN_STORE: 'store',
  TRAILWARDEN_LOG_LEVEL: 'log_level',
} as const;

/** The signing key comes only from the environment, so it never sits in a config file. */
export const SIGNING_KEY_ENV = 'TRAILWARDEN_SIGNING_KEY';

type PathSegment = string | number;

/**
 * Reads, substitutes, validates and completes the configuration. Throws a
 * `TW_ERR_CONFIG` error listing every problem found, each named by its path.
 */
export async function loadConfig(opts: LoadConfigOptions): Promise<Config> {
  let text = '';
  if (opts.file !== undefined) {
    try {
      text = await readFile(opts.file, 'utf8');
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new TrailwardenError('TW_ERR_CONFIG', `Cannot read config file ${opts.file}: ${reason}`, {
        cause: err,
      });
    }
  }
  return parseConfig(text, { ...opts, fileName: opts.file });
}

/** `loadConfig` on text already read; `fileName` only labels messages. */
export function parseConfig(
  text: string,
  opts: Omit<LoadConfigOptions, 'file'> & { fileName?: string | undefined },
): Config {
  const where = opts.fileName ?? 'the configuration';
  const fail = (problems: string[]): never => {
    throw new TrailwardenError(
      'TW_ERR_CONFIG',
      `Invalid configuration in ${where}:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
      { problems: problems.map((message) => ({ message })) },
    );
  };

  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true });
  if (doc.errors.length > 0) {
    fail(
      doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        // prettyErrors appends " at line L, column C:" and a source excerpt; keep the sentence.
        const sentence = e.message.split(/ at line \d+, column \d+/)[0] ?? e.message;
        return `${pos ? `line ${pos.line}, column ${pos.col}: ` : ''}YAML syntax error: ${sentence}`;
      }),
    );
  }
  if (doc.contents !== null && !isMap(doc.contents)) {
    fail(['(top level): expected a mapping of settings, e.g. "listen: 127.0.0.1:8080"']);
  }

  const substitutionProblems: string[] = [];
  substituteTree(doc.contents, [], opts.env, substitutionProblems);
  if (substitutionProblems.length > 0) fail(substitutionProblems);

  const raw = (doc.toJS({ maxAliasCount: 100 }) ?? {}) as Record<string, unknown>;
  const sourceOf = new Map<string, string>();
  for (const [name, key] of Object.entries(ENV_OVERRIDES)) {
    const value = opts.env[name];
    if (value !== undefined && value !== '') {
      raw[key] = value;
      sourceOf.set(key, name);
    }
  }
  for (const [key, value] of Object.entries(opts.overrides ?? {})) {
    if (value !== undefined) {
      raw[key] = value;
      sourceOf.set(key, `--${key.replace(/_/g, '-')}`);
    }
  }

  const parsed = fileConfigSchema.safeParse(raw);
  if (!parsed.success) {
    fail(parsed.error.issues.flatMap((issue) => describeIssue(issue, doc, lineCounter, sourceOf)));
  }
  const file = parsed.data!;

  const keyPem = opts.env[SIGNING_KEY_ENV] || null;
  if (keyPem !== null && file.checkpoints.key_file !== null) {
    fail([`checkpoints.key_file: set either this or ${SIGNING_KEY_ENV}, not both`]);
  }
  if (keyPem !== null && !keyPem.includes('-----BEGIN')) {
    fail([`${SIGNING_KEY_ENV}: expected a PEM private key ("-----BEGIN PRIVATE KEY-----" …)`]);
  }
  return { ...file, checkpoints: { ...file.checkpoints, key_pem: keyPem } };
}

/** Formats a path as `sinks[0].url`; keys that are not identifiers are quoted (`labels["a b"]`). */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z_][A-Za-z0-9_-]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out || '(top level)';
}

/**
 * Substitutes in every string scalar of the parsed document, in place. Working
 * on parsed scalars (not on the text) means a value such as `a: {}` stays a
 * string and cannot add keys. In an unquoted scalar a result that is a plain
 * number, boolean or null is read as one, so `port: ${PORT}` gives a number.
 */
function substituteTree(
  node: unknown,
  path: PathSegment[],
  env: NodeJS.ProcessEnv,
  problems: string[],
): void {
  if (isMap(node)) {
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      substituteTree(pair.value, [...path, key], env, problems);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => {
      substituteTree(item, [...path, i], env, problems);
    });
  } else if (isScalar(node) && typeof node.value === 'string' && node.value.includes('${')) {
    const result = substituteEnv(node.value, env);
    for (const p of result.problems) problems.push(`${formatPath(path)}: ${p}`);
    node.value = node.type === 'PLAIN' ? plainScalar(result.value) : result.value;
  }
}

/** YAML 1.2 core-schema reading of a substituted unquoted value, limited to scalars. */
function plainScalar(text: string): unknown {
  if (/^(?:~|null|Null|NULL|)$/.test(text)) return null;
  if (/^(?:true|True|TRUE)$/.test(text)) return true;
  if (/^(?:false|False|FALSE)$/.test(text)) return false;
  if (/^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$/.test(text)) return Number(text);
  return text;
}

function describeIssue(
  issue: z.core.$ZodIssue,
  doc: Document,
  lineCounter: LineCounter,
  sourceOf: Map<string, string>,
): string[] {
  const path = issue.path.filter((s): s is PathSegment => typeof s !== 'symbol');
  const at = (p: PathSegment[]): string => {
    const top = p[0];
    const source = typeof top === 'string' ? sourceOf.get(top) : undefined;
    if (source !== undefined) return ` (from ${source})`;
    const line = lineOf(doc, lineCounter, p);
    return line === undefined ? '' : ` (line ${line})`;
  };
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => {
      const p = [...path, key];
      const hint =
        key === 'key_pem' && formatPath(path) === 'checkpoints'
          ? `the signing key is read only from the ${SIGNING_KEY_ENV} environment variable`
          : suggest(key, knownKeys(path));
      return `${formatPath(p)}: unknown setting${hint ? `; ${hint}` : ''}${at(p)}`;
    });
  }
  return [`${formatPath(path)}: ${issue.message}${at(path)}`];
}

/** Line of the node at `path`, or of its nearest ancestor present in the file. */
function lineOf(doc: Document, lineCounter: LineCounter, path: PathSegment[]): number | undefined {
  for (let n = path.length; n >= 1; n--) {
    const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
    if (node?.range) return lineCounter.linePos(node.range[0]).line;
  }
  return undefined;
}

let defaults: unknown;
function knownKeys(path: PathSegment[]): string[] {
  defaults ??= fileConfigSchema.parse({});
  let node: unknown = defaults;
  for (const seg of path) node = (node as Record<PropertyKey, unknown> | undefined)?.[seg];
  return node !== null && typeof node === 'object' ? Object.keys(node) : [];
}

function suggest(key: string, known: string[]): string {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const k of known) {
    const d = editDistance(key, k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best === undefined ? '' : `did you mean "${best}"?`;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
    }
    prev = cur;
  }
  return prev[b.length]!;
}
