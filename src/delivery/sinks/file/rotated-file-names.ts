import { readdir } from 'node:fs/promises';
import { basename, dirname, extname, resolve } from 'node:path';

/** Rotated-file pattern used when none is configured: `audit.log` → `audit.2026-03-15.1.log`. */
export const DEFAULT_FILE_PATTERN = '{base}.{date}.{index}{ext}';

/** A rotated file found on disk. */
export interface RotatedFile {
  name: string;
  /** UTC day of the file's last line, `yyyy-MM-dd`. */
  date: string;
  /** 1-based, counting up within one date. */
  index: number;
  state: 'plain' | 'gz' | 'gz.tmp';
}

/** How rotated files are named and recognised. */
export interface RotatedNaming {
  /** Absolute directory holding rotated files. */
  dir: string;
  /** File name (without `.gz`) of the rotated file for this date and index. */
  name(date: string, index: number): string;
  /** Recognises a rotated file (plain, `.gz` or an unfinished `.gz.tmp`) by its name. */
  parse(fileName: string): RotatedFile | null;
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Checks a pattern's tokens; returns the problem or `null`. Shared with option validation. */
export function filePatternProblem(pattern: string): string | null {
  const last = pattern.split('/').pop() ?? '';
  for (const token of ['{date}', '{index}']) {
    if (last.split(token).length !== 2) return `must contain ${token} exactly once, in the file name`;
  }
  const unknown = /\{(?!base\}|ext\}|date\}|index\})[^}]*\}/.exec(pattern);
  if (unknown) return `unknown token ${unknown[0]}; known: {base}, {ext}, {date}, {index}`;
  if (/\{(?:base|ext)\}/.test(pattern.slice(0, pattern.length - last.length))) {
    return '{base} and {ext} belong in the file name, not the directory';
  }
  return null;
}

/**
 * Turns a pattern such as `archive/{base}.{date}.{index}{ext}` into names for
 * the active file `path`. `{base}` and `{ext}` come from the active file's
 * name (`audit` and `.log`), `{date}` is `yyyy-MM-dd`, `{index}` counts from 1.
 */
export function parseFilePattern(pattern: string, path: string): RotatedNaming {
  const problem = filePatternProblem(pattern);
  if (problem) throw new Error(`file_pattern ${JSON.stringify(pattern)}: ${problem}`);
  const ext = extname(path);
  const full = resolve(
    dirname(path),
    pattern.replaceAll('{base}', basename(path, ext)).replaceAll('{ext}', ext),
  );
  const template = basename(full);
  const groups: Array<'date' | 'index'> = [];
  const source = template
    .split(/(\{date\}|\{index\})/)
    .map((part) => {
      if (part === '{date}') groups.push('date');
      else if (part === '{index}') groups.push('index');
      else return escapeRegExp(part);
      return part === '{date}' ? '(\\d{4}-\\d{2}-\\d{2})' : '([1-9]\\d*)';
    })
    .join('');
  const re = new RegExp(`^${source}(\\.gz|\\.gz\\.tmp)?$`);
  return {
    dir: dirname(full),
    name: (date, index) => template.replace('{date}', date).replace('{index}', String(index)),
    parse(fileName) {
      const m = re.exec(fileName);
      if (!m) return null;
      const date = m[groups.indexOf('date') + 1] ?? '';
      const index = Number(m[groups.indexOf('index') + 1]);
      const state = m[3] === '.gz' ? 'gz' : m[3] === '.gz.tmp' ? 'gz.tmp' : 'plain';
      return { name: fileName, date, index, state };
    },
  };
}

/** `yyyy-MM-dd` of a UTC instant: rotation periods are UTC days. */
export const utcDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/** The errno code of a failed fs call, if any. */
export const codeOf = (err: unknown): string | undefined => (err as NodeJS.ErrnoException | null)?.code;

/** The rotated files in `naming.dir` (none when it does not exist yet), oldest first. */
export async function listRotated(naming: RotatedNaming): Promise<RotatedFile[]> {
  const names = await readdir(naming.dir).catch((err: unknown) => {
    if (codeOf(err) === 'ENOENT') return [];
    throw err;
  });
  const files: RotatedFile[] = [];
  for (const name of names) {
    const f = naming.parse(name);
    if (f) files.push(f);
  }
  return files.sort((a, b) => (a.date === b.date ? a.index - b.index : a.date < b.date ? -1 : 1));
}
