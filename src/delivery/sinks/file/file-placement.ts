import { lstatSync, realpathSync, type Stats } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { SinkPlacement } from '../../sink.js';
import { codeOf, DEFAULT_FILE_PATTERN, parseFilePattern } from './rotated-file-names.js';
import { MANIFEST_SUFFIX, readManifestSync, sameFile } from './rotation-manifest.js';

/** One thing wrong with where a file sink would write; `path` names the option. */
export interface PlacementProblem {
  path: string;
  message: string;
}

/** Where a file sink writes, once its options passed {@link placeFile}. */
export interface PlacedFile {
  /** Absolute path of the active file. */
  path: string;
  /** What the writer checks again each time it creates or opens a file in a folder. */
  confinement: Confinement;
}

/**
 * The bounds of a file sink's folders: never inside the data folder (the
 * log, its WAL and the signing key live there), and for API sinks never
 * outside `file_sink_root` — also not through a symbolic link.
 */
export interface Confinement {
  /** `file_sink_root` for API sinks; `null` for config-file sinks, which may write anywhere else. */
  root: string | null;
  dataDir: string;
}

/** Whether `child` is `parent` or lies below it (both absolute). */
export function isWithin(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

const hasDotDot = (p: string): boolean => p.split(/[\\/]+/).includes('..');

/**
 * `p` with the symbolic links of its existing part resolved and the part not
 * created yet appended: where a file created there would really be.
 */
export function realPathOf(p: string): string {
  const rest: string[] = [];
  let current = resolve(p);
  for (;;) {
    try {
      return join(realpathSync.native(current), ...rest);
    } catch (err) {
      const code = codeOf(err);
      const parent = dirname(current);
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || parent === current) throw err;
      rest.unshift(basename(current));
      current = parent;
    }
  }
}

/** Why the folder `dir` is out of bounds, or `null` when a file sink may create files in it. */
export function confinementProblem(dir: string, c: Confinement): string | null {
  let real: string;
  try {
    real = realPathOf(dir);
  } catch (err) {
    return `cannot check where ${dir} leads: ${(err as Error).message}`;
  }
  const via = real === resolve(dir) ? '' : ` through a symbolic link (it leads to ${real})`;
  if (isWithin(real, realPathOf(c.dataDir))) {
    return `${dir} is inside data_dir (${c.dataDir})${via}, where the log, its WAL and the signing key live; choose a folder outside it`;
  }
  if (c.root !== null) {
    let root: string;
    try {
      root = realpathSync.native(c.root);
    } catch (err) {
      return `file_sink_root (${c.root}) cannot be used: ${(err as Error).message}; the operator must create it`;
    }
    if (!isWithin(real, root)) return `${dir} leads outside file_sink_root (${c.root})${via}`;
  }
  return null;
}

/**
 * Where a file sink with these options writes, by the rules of
 * docs/sinks/file.md that do not depend on what is on disk: an API sink only
 * under `file_sink_root` (none set: no API file sink at all), by a relative
 * path without `..`; a config-file sink anywhere, a relative path taken from
 * `file_sink_root`. The writer checks the folders' real paths (see
 * {@link confinementProblem}) each time it opens a file.
 */
export function placeFile(
  options: { path: string; file_pattern: string | null },
  placement: SinkPlacement,
): { placed: PlacedFile; problems: [] } | { placed: null; problems: PlacementProblem[] } {
  const problems: PlacementProblem[] = [];
  const fail = (path: string, message: string) => problems.push({ path, message });
  const api = placement.owner.source === 'api';
  const root = placement.fileRoot === null ? null : resolve(placement.fileRoot);
  let path: string;
  if (api) {
    if (root === null) {
      fail(
        'path',
        'file sinks cannot be created through the API on this server: the operator has not set file_sink_root ' +
          '(the folder API-created file sinks may write under); define the sink in the config file instead, ' +
          'or ask the operator to set file_sink_root',
      );
      return { placed: null, problems };
    }
    if (hasDotDot(options.path))
      fail('path', 'must not contain a ".." segment: give a path inside file_sink_root');
    else if (isAbsolute(options.path) && !isWithin(resolve(options.path), root)) {
      fail('path', `an absolute path must lie inside file_sink_root (${root}); give a path relative to it`);
    }
    const pattern = options.file_pattern;
    if (pattern !== null && hasDotDot(pattern)) fail('file_pattern', 'must not contain a ".." segment');
    else if (pattern !== null && isAbsolute(pattern)) {
      fail('file_pattern', "must be relative to the active file's folder");
    }
    path = resolve(root, options.path);
  } else if (isAbsolute(options.path)) {
    path = resolve(options.path);
  } else if (root !== null) {
    path = resolve(root, options.path);
  } else {
    fail(
      'path',
      `a relative path (${options.path}) is taken from file_sink_root, which is not set: ` +
        'give an absolute path outside data_dir, or set file_sink_root',
    );
    return { placed: null, problems };
  }
  if (basename(path).endsWith(MANIFEST_SUFFIX)) {
    fail('path', `names a file sink's manifest (*${MANIFEST_SUFFIX}); choose another name`);
  }
  const dataDir = resolve(placement.dataDir);
  const rotatedDir = parseFilePattern(options.file_pattern ?? DEFAULT_FILE_PATTERN, path).dir;
  for (const [option, dir] of [
    ['path', dirname(path)],
    ['file_pattern', rotatedDir],
  ] as const) {
    if (isWithin(dir, dataDir)) {
      fail(option, `${dir} is inside data_dir (${dataDir}), where the log, its WAL and the signing key live`);
    } else if (api && root !== null && !isWithin(dir, root)) {
      fail(option, `${dir} is outside file_sink_root (${root})`);
    }
  }
  if (problems.length > 0) return { placed: null, problems };
  return { placed: { path, confinement: { root: api ? root : null, dataDir } }, problems: [] };
}

/**
 * Everything wrong with where a file sink would write, checked before it is
 * stored or started: the rules of {@link placeFile}; folders whose real path
 * (symbolic links resolved) leads into the data folder or out of
 * `file_sink_root`; and an existing path that is a symbolic link, a folder, a
 * file another tenant's sink made, or (API sinks) any file this sink did not
 * create.
 */
export function placementProblemsOf(
  options: { path: string; file_pattern: string | null },
  placement: SinkPlacement,
): PlacementProblem[] {
  const { placed, problems: refused } = placeFile(options, placement);
  if (placed === null) return refused;
  const { path, confinement } = placed;
  const problems: PlacementProblem[] = [];
  const fail = (option: string, message: string) => problems.push({ path: option, message });
  const activeDir = dirname(path);
  const rotatedDir = parseFilePattern(options.file_pattern ?? DEFAULT_FILE_PATTERN, path).dir;
  for (const [option, dir] of [
    ['path', activeDir],
    ['file_pattern', rotatedDir],
  ] as const) {
    if (option === 'file_pattern' && dir === activeDir) continue;
    const problem = confinementProblem(dir, confinement);
    if (problem !== null) fail(option, problem);
  }
  if (problems.length > 0) return problems;

  let st: Stats | undefined;
  try {
    st = lstatSync(path, { throwIfNoEntry: false });
  } catch (err) {
    // ENOTDIR: a file where a folder of the path should be; the writer answers retry until an operator fixes it.
    if (codeOf(err) !== 'ENOTDIR') fail('path', `cannot check ${path}: ${(err as Error).message}`);
  }
  const api = placement.owner.source === 'api';
  if (st?.isSymbolicLink()) {
    fail('path', `${path} is a symbolic link; the sink writes only to a regular file it creates itself`);
  } else if (st?.isDirectory()) {
    fail('path', `${path} is a folder; name a file`);
  } else if (st !== undefined) {
    let manifest: ReturnType<typeof readManifestSync> = null;
    try {
      manifest = readManifestSync(path);
    } catch (err) {
      fail('path', (err as Error).message);
    }
    if (manifest !== null && manifest.tenant_id !== placement.owner.tenantId) {
      fail('path', `${path} belongs to another tenant's sink; choose another path`);
    } else if (api && !(manifest !== null && (sameFile(st, manifest.active) || manifest.creating_active))) {
      fail(
        'path',
        `${path} exists and was not created by this sink; a sink created through the API never writes to, ` +
          'renames or deletes a file it did not create: choose another path',
      );
    }
  }
  return problems;
}
