import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, lstatSync, mkdirSync, openSync, type Stats, statSync } from 'node:fs';
import { link, open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { TrailwardenError } from '../errors.js';

/**
 * Files Trailwarden keeps in its data folder that must be private to its
 * user: the database and SQLite's files beside it (which hold sink
 * settings, secrets among them), the lock and the checkpoint witness. The
 * signing key is not listed: it is created 0600, and one found more open is
 * refused, not quietly fixed (someone changed it).
 */
export const PRIVATE_DATA_FILES = [
  'trailwarden.db',
  'trailwarden.db-wal',
  'trailwarden.db-shm',
  'trailwarden.db-journal',
  'serve.lock',
  'serve.lock-journal',
  'checkpoint-witness.json',
] as const;

/** One permission change made by `tightenDataDir`. */
export interface Tightened {
  path: string;
  /** The mode found, e.g. `0644`. */
  was: string;
  /** The mode set. */
  now: string;
}

/**
 * Creates `dataDir` (mode 0700) when missing; otherwise takes group and
 * other access away from the folder and from each of its known files (a
 * folder or files an earlier version created 0755/0644). A file that is a
 * symbolic link is left alone. Returns what it changed.
 */
export function tightenDataDir(dataDir: string): Tightened[] {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const changed: Tightened[] = [];
  if (process.platform === 'win32') return changed;
  const tighten = (path: string, mode: number, kind: 'folder' | 'file') => {
    let info: Stats;
    try {
      // The folder may be a link to where the data lives; a file that is a link is not ours to change.
      info = kind === 'folder' ? statSync(path) : lstatSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    if (!(kind === 'folder' ? info.isDirectory() : info.isFile()) || (info.mode & 0o077) === 0) return;
    try {
      chmodSync(path, mode);
    } catch (err) {
      throw new TrailwardenError(
        'TW_ERR_CONFIG',
        `${path} has mode ${octal(info.mode)}: group or other users can access it, and it cannot be restricted ` +
          `(${(err as Error).message}). Run \`chmod ${octal(mode).slice(1)} ${path}\` as its owner and start again.`,
      );
    }
    changed.push({ path, was: octal(info.mode), now: octal(mode) });
  };
  tighten(dataDir, 0o700, 'folder');
  for (const name of PRIVATE_DATA_FILES) tighten(join(dataDir, name), 0o600, 'file');
  return changed;
}

/**
 * Creates `file` empty with mode 0600 unless it exists, so that SQLite, which
 * would create it 0644, opens it as it is (and gives its -wal, -shm and
 * journal the same mode). Never opens an existing file: closing a
 * descriptor of a file drops every fcntl lock this process holds on it,
 * SQLite's among them.
 */
export function createPrivateFile(file: string): void {
  try {
    closeSync(openSync(file, 'wx', 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

function octal(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, '0')}`;
}

/**
 * Writes `content` to `file` only if it does not exist, never exposing a
 * partial or world-readable file: the bytes go to a temp file created
 * exclusively with mode 0600, then a hard link publishes it atomically.
 * Returns false when `file` already existed.
 */
export async function createExclusive(file: string, content: string): Promise<boolean> {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(tmp, file);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EXDEV') throw err;
    // Filesystems without hard links: exclusive create of the final name.
    return await writeExclusive(file, content);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

async function writeExclusive(file: string, content: string): Promise<boolean> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return true;
}
