/**
 * An archive sink's `key_template`: where each object goes in the bucket.
 * The key derives from the object's range of the log (`{first_seq}`), so a
 * retry writes the same key, and from its tenant and date partition, so no
 * key can hold two tenants or two partitions.
 */

/** The default: Hive-style partitions that Athena, BigQuery and DuckDB read as columns. */
export const DEFAULT_KEY_TEMPLATE =
  'trailwarden/tenant={tenant}/dt={yyyy}-{mm}-{dd}/hour={hh}/{first_seq}-{last_seq}';

/** The longest template accepted (providers allow keys of 1024 bytes: S3, GCS; Azure 1024 characters). */
export const KEY_TEMPLATE_MAX = 512;

/** Every placeholder a template may name. */
export const PLACEHOLDERS = ['tenant', 'yyyy', 'mm', 'dd', 'hh', 'first_seq', 'last_seq', 'format'] as const;
type Placeholder = (typeof PLACEHOLDERS)[number];

/** The date units, coarsest first: a unit may be named only with every coarser one. */
const DATE_UNITS = ['yyyy', 'mm', 'dd', 'hh'] as const;

/** The finest date unit a template names: objects never span two of them. */
export type PartitionUnit = 'none' | (typeof DATE_UNITS)[number];

/**
 * Characters a template's own text may hold: S3's "safe" characters
 * (letters, digits, `! - _ . * ' ( )`, `/` between folders) and `=` for
 * Hive-style names. Every provider accepts them in a key unescaped, and no
 * file system a copy is downloaded to gives them a meaning.
 */
const LITERAL = /^[A-Za-z0-9/!_.*'()=-]$/;

/** Seqs are zero-padded to this many digits, so keys sort as the log does. */
export const SEQ_DIGITS = 16;

/** One piece of a parsed template: literal text or a placeholder. */
type Part = { text: string } | { placeholder: Placeholder };

/** A checked template, ready to expand. */
export interface KeyTemplate {
  readonly source: string;
  readonly parts: readonly Part[];
  /** Which placeholders it names. */
  readonly names: ReadonlySet<Placeholder>;
  /** The finest date unit it names (`none`: objects are not split by date). */
  readonly partition: PartitionUnit;
  /**
   * The text before the first placeholder, cut after its last `/`: where the
   * `_checkpoints/` folder goes (`trailwarden/` for the default; empty when
   * the template starts with a placeholder).
   */
  readonly prefix: string;
}

/** What fills one object's key. */
export interface KeyValues {
  tenant: string;
  /** The object's partition instant (UTC). */
  date: Date;
  firstSeq: number;
  lastSeq: number;
  format: string;
}

/** A template or the problems with it, each a sentence naming what to change. */
export type ParsedTemplate = { ok: true; template: KeyTemplate } | { ok: false; problems: string[] };

/** Reads a template and checks everything it can alone (see {@link keyTemplateProblems} for the tenant rule). */
export function parseKeyTemplate(source: string): ParsedTemplate {
  const problems: string[] = [];
  if (source.length === 0) return { ok: false, problems: ['give a key template'] };
  if (source.length > KEY_TEMPLATE_MAX)
    problems.push(`the key template is ${source.length} characters; at most ${KEY_TEMPLATE_MAX}`);
  const parts: Part[] = [];
  const unknown: string[] = [];
  const refused = new Set<string>();
  let text = '';
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === '{') {
      const end = source.indexOf('}', i);
      if (end === -1) {
        problems.push(`a { at character ${i + 1} is never closed; placeholders are written {name}`);
        break;
      }
      const name = source.slice(i + 1, end);
      if (isPlaceholder(name)) {
        if (text) parts.push({ text });
        text = '';
        parts.push({ placeholder: name });
      } else unknown.push(`{${name}}`);
      i = end;
    } else if (LITERAL.test(c)) {
      text += c;
    } else refused.add(c);
  }
  if (text) parts.push({ text });
  for (const u of unknown)
    problems.push(`unknown placeholder ${u}; known: ${PLACEHOLDERS.map((p) => `{${p}}`).join(' ')}`);
  if (refused.size > 0)
    problems.push(
      `the key template may not contain ${[...refused].map(describeChar).join(', ')}; use letters, digits and / - _ . = ! * ' ( )`,
    );
  const names = new Set(parts.flatMap((p) => ('placeholder' in p ? [p.placeholder] : [])));
  if (!names.has('first_seq'))
    problems.push(
      'the key template must name {first_seq}: a key derived from the range makes a retry write the same object',
    );
  for (const [i, unit] of DATE_UNITS.entries()) {
    const coarser = DATE_UNITS[i - 1];
    if (coarser !== undefined && names.has(unit) && !names.has(coarser))
      problems.push(
        `{${unit}} without {${coarser}} would put different dates in one key: name {${coarser}} too`,
      );
  }
  problems.push(...shapeProblems(parts));
  if (problems.length > 0) return { ok: false, problems };
  const finest = [...DATE_UNITS].reverse().find((u) => names.has(u));
  return {
    ok: true,
    template: { source, parts, names, partition: finest ?? 'none', prefix: prefixOf(parts) },
  };
}

/**
 * Every problem of `source` for a sink whose filter lets `tenants` through
 * (`null`: every tenant): the template's own, and `{tenant}` missing while
 * more than one tenant's events can reach the sink.
 */
export function keyTemplateProblems(source: string, tenants: readonly string[] | null): string[] {
  const parsed = parseKeyTemplate(source);
  const problems = parsed.ok ? [] : [...parsed.problems];
  const named = parsed.ok ? parsed.template.names.has('tenant') : source.includes('{tenant}');
  if (!named && tenants?.length !== 1)
    problems.push(
      'the key template must name {tenant} unless filter.tenants is exactly one tenant: an object holds one tenant, and its key must say which',
    );
  return problems;
}

/** The key of one object (without the extension the writer adds). */
export function expandKey(t: KeyTemplate, v: KeyValues): string {
  const iso = v.date.toISOString();
  const values: Record<Placeholder, string> = {
    tenant: tenantInKey(v.tenant),
    yyyy: iso.slice(0, 4),
    mm: iso.slice(5, 7),
    dd: iso.slice(8, 10),
    hh: iso.slice(11, 13),
    first_seq: padSeq(v.firstSeq),
    last_seq: padSeq(v.lastSeq),
    format: v.format,
  };
  const key = t.parts.map((p) => ('text' in p ? p.text : values[p.placeholder])).join('');
  // Checked again on the result: a value must never turn a template into a traversal.
  if (key.split('/').some((s) => s === '' || s === '.' || s === '..'))
    throw new Error(`the key ${JSON.stringify(key)} has an empty, . or .. segment`);
  return key;
}

/**
 * The part of `date` that names its partition, e.g. `2026-03-15T08` for
 * `hh`: objects are split where it changes.
 */
export function partitionOf(unit: PartitionUnit, date: Date): string {
  const iso = date.toISOString();
  const len = { none: 0, yyyy: 4, mm: 7, dd: 10, hh: 13 }[unit];
  return iso.slice(0, len);
}

/** A seq as keys hold it: zero-padded to {@link SEQ_DIGITS} digits. */
export function padSeq(seq: number): string {
  return String(seq).padStart(SEQ_DIGITS, '0');
}

/**
 * A tenant id in a key. Ids are made of `A-Z a-z 0-9 . _ -` (validate.ts),
 * all safe in keys, save an id of dots only (`.`, `..`), which would be a
 * path segment of its own meaning: its dots are written `%2E`, which no
 * tenant id can contain, so no two tenants share a folder.
 */
export function tenantInKey(tenant: string): string {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(tenant)) throw new Error(`${JSON.stringify(tenant)} is no tenant id`);
  return /^\.+$/.test(tenant) ? tenant.replaceAll('.', '%2E') : tenant;
}

function isPlaceholder(name: string): name is Placeholder {
  return (PLACEHOLDERS as readonly string[]).includes(name);
}

/** Problems of the template's folders: a leading `/`, empty, `.` or `..` segments, a trailing `/`. */
function shapeProblems(parts: readonly Part[]): string[] {
  // Placeholders stand for a letter here: their values are never empty and never a dot alone.
  const outline = parts.map((p) => ('text' in p ? p.text : 'x')).join('');
  const problems: string[] = [];
  if (outline.startsWith('/')) problems.push('the key template may not start with /: keys are relative');
  if (outline.endsWith('/'))
    problems.push('the key template may not end with /: it names an object, not a folder');
  const segments = outline.split('/');
  if (segments.some((s) => s === '.' || s === '..'))
    problems.push('the key template may not hold a . or .. folder (path traversal)');
  if (segments.slice(1, -1).some((s) => s === ''))
    problems.push('the key template may not hold // (an empty folder name)');
  return problems;
}

function prefixOf(parts: readonly Part[]): string {
  const first = parts[0];
  const lead = first !== undefined && 'text' in first ? first.text : '';
  return lead.slice(0, lead.lastIndexOf('/') + 1);
}

function describeChar(c: string): string {
  const code = c.codePointAt(0) ?? 0;
  if (code < 0x20 || code === 0x7f) return `control character U+${code.toString(16).padStart(4, '0')}`;
  if (c === '\\') return 'a backslash';
  if (c === ' ') return 'a space';
  return JSON.stringify(c);
}
