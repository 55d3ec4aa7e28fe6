import { createReadStream, createWriteStream } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

/** When the active file is flushed to disk. */
export type FsyncPolicy = 'every_batch' | 'interval' | 'never';

/** How a {@link RollingFileWriter} names, rotates and prunes its files. */
export interface RollingFileOptions {
  /** Absolute path of the active file. */
  path: string;
  /** Rotate when the UTC day of the last write is not today's. */
  daily: boolean;
  /** Rotate before a write that would take the active file past this size (`null`: no size limit). */
  maxBytes: number | null;
  /** Name of rotated files, relative to the active file's directory; see {@link parseFilePattern}. */
  filePattern: string;
  /** Gzip rotated files in the background. */
  compress: boolean;
  /** Number of most recent days of rotated files to keep (`null`: all). */
  maxHistory: number | null;
  /** Delete the oldest rotated files until they fit in this many bytes (`null`: no cap). */
  totalSizeCapBytes: number | null;
  fsync: FsyncPolicy;
  fsyncIntervalMs: number;
  /** Mode of created files (subject to the umask). */
  mode: number;
  /** Milliseconds since the epoch. */
  now: () => number;
  log: { info(msg: string, extra?: object): void; warn(msg: string, extra?: object): void };
}

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

/** How far a file's mtime may stray from `Date.now()` (coarse kernel timestamps, a slow write). */
const MTIME_SLACK_MS = 2000;

/**
 * Whether the mtime a write just set may fall on another UTC day than `now`:
 * the clock is not the system clock (tests), or a day boundary is near.
 */
function mtimeMayMissDay(now: number): boolean {
  return (
    Math.abs(Date.now() - now) > MTIME_SLACK_MS ||
    utcDay(now - MTIME_SLACK_MS) !== utcDay(now + MTIME_SLACK_MS)
  );
}

const codeOf = (err: unknown): string | undefined => (err as NodeJS.ErrnoException | null)?.code;

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Appends whole chunks to one active file and rotates it by UTC day and/or
 * size into dated, indexed names; gzips and prunes rotated files in the
 * background. Knows nothing of sinks: errors are thrown with their errno code.
 *
 * A chunk is written whole or not at all: a write that fails part-way is cut
 * back with ftruncate, so the file never ends in a torn line.
 */
export class RollingFileWriter {
  readonly naming: RotatedNaming;
  private fd: FileHandle | null = null;
  private ino = 0;
  private dev = 0;
  private size = 0;
  private lastWriteMs = 0;
  private dirty = false;
  private closed = false;
  private queue: Promise<unknown> = Promise.resolve();
  private housekeeping: Promise<void> | null = null;
  private housekeepingAgain = false;
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: RollingFileOptions) {
    this.naming = parseFilePattern(opts.filePattern, opts.path);
    if (opts.fsync === 'interval') {
      this.timer = setInterval(() => {
        this.serial(() => this.syncIfDirty()).catch((err: unknown) =>
          opts.log.warn('periodic fsync failed', { path: opts.path, error: String(err) }),
        );
      }, opts.fsyncIntervalMs);
      this.timer.unref();
    }
  }

  /**
   * Opens the active file, rotating it first when it was last written on an
   * earlier day (the server was down over midnight), and tidies what a crash
   * may have left among rotated files.
   */
  async start(): Promise<void> {
    this.scheduleHousekeeping();
    await this.serial(async () => {
      await this.ensureOpen();
      await this.rotateIfDue(this.opts.now(), 0);
    });
  }

  /** Appends `data` in one write (rotating first when due); resolves once written (and fsynced per policy). */
  append(data: Buffer): Promise<void> {
    return this.serial(() => this.appendNow(data));
  }

  /** Resolves when no background compression or pruning is running. */
  async idle(): Promise<void> {
    while (this.housekeeping) await this.housekeeping;
  }

  /** Fsyncs and closes the active file, then waits for background work. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.serial(async () => {
      this.closed = true;
      const fd = this.fd;
      this.fd = null;
      if (fd) {
        try {
          await fd.sync();
        } finally {
          await fd.close();
        }
      }
    });
    await this.idle();
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async appendNow(data: Buffer): Promise<void> {
    if (this.closed) throw new Error('the file writer is closed');
    const now = this.opts.now();
    await this.ensureOpen();
    await this.rotateIfDue(now, data.length);
    const fd = this.fd ?? (await this.ensureOpen());
    const before = this.size;
    try {
      let written = 0;
      while (written < data.length) {
        const { bytesWritten } = await fd.write(data, written, data.length - written);
        if (bytesWritten === 0) throw Object.assign(new Error('the write made no progress'), { code: 'EIO' });
        written += bytesWritten;
      }
      // A restart tells from the mtime which day the file was last written
      // in. The write itself sets it from the system clock; set it
      // explicitly only when that could name another day than `now` does.
      if (mtimeMayMissDay(now)) await fd.utimes(now / 1000, now / 1000);
      if (this.opts.fsync === 'every_batch') await fd.sync();
    } catch (err) {
      await fd.truncate(before).catch((truncErr: unknown) =>
        this.opts.log.warn('could not cut a failed write back; the file may end in a partial line', {
          path: this.opts.path,
          error: String(truncErr),
        }),
      );
      throw err;
    }
    this.size = before + data.length;
    this.lastWriteMs = now;
    this.dirty = this.opts.fsync !== 'every_batch';
  }

  /**
   * Returns the open active file, (re)opening it when it is not open or the
   * path no longer names the open file (deleted, directory removed, moved by
   * logrotate): one stat per batch compared with the inode opened.
   */
  private async ensureOpen(): Promise<FileHandle> {
    const path = this.opts.path;
    if (this.fd) {
      const st = await stat(path).catch((err: unknown) => {
        if (codeOf(err) === 'ENOENT') return null;
        throw err;
      });
      if (st && st.ino === this.ino && st.dev === this.dev) {
        this.size = st.size;
        return this.fd;
      }
      this.opts.log.warn('the active file was removed or replaced; opening it again', { path });
      const old = this.fd;
      this.fd = null;
      await old.close().catch(() => undefined);
    }
    await mkdir(dirname(path), { recursive: true });
    const fd = await open(path, 'a', this.opts.mode);
    try {
      const st = await fd.stat();
      this.ino = st.ino;
      this.dev = st.dev;
      this.size = st.size;
      this.lastWriteMs = st.size > 0 ? st.mtimeMs : this.opts.now();
    } catch (err) {
      await fd.close();
      throw err;
    }
    this.fd = fd;
    return fd;
  }

  private async rotateIfDue(now: number, incoming: number): Promise<void> {
    if (this.size === 0) return;
    const newDay = this.opts.daily && utcDay(now) !== utcDay(this.lastWriteMs);
    const tooBig = this.opts.maxBytes !== null && this.size + incoming > this.opts.maxBytes;
    if (newDay || tooBig) await this.rotate();
  }

  private async rotate(): Promise<void> {
    const fd = this.fd;
    if (!fd) return;
    if (this.opts.fsync !== 'never') await fd.sync();
    const date = utcDay(this.lastWriteMs);
    await mkdir(this.naming.dir, { recursive: true });
    const existing = await this.listRotated();
    const index = 1 + Math.max(0, ...existing.filter((f) => f.date === date).map((f) => f.index));
    const target = join(this.naming.dir, this.naming.name(date, index));
    await rename(this.opts.path, target);
    this.fd = null;
    this.dirty = false;
    await fd.close();
    this.opts.log.info('rotated the file', { path: this.opts.path, to: target });
    this.scheduleHousekeeping();
    await this.ensureOpen();
  }

  private async syncIfDirty(): Promise<void> {
    if (this.fd && this.dirty) {
      this.dirty = false;
      await this.fd.sync();
    }
  }

  private async listRotated(): Promise<RotatedFile[]> {
    const names = await readdir(this.naming.dir).catch((err: unknown) => {
      if (codeOf(err) === 'ENOENT') return [];
      throw err;
    });
    const files: RotatedFile[] = [];
    for (const name of names) {
      const f = this.naming.parse(name);
      if (f) files.push(f);
    }
    return files.sort((a, b) => (a.date === b.date ? a.index - b.index : a.date < b.date ? -1 : 1));
  }

  private scheduleHousekeeping(): void {
    if (this.housekeeping) {
      this.housekeepingAgain = true;
      return;
    }
    this.housekeeping = (async () => {
      do {
        this.housekeepingAgain = false;
        try {
          await this.housekeep();
        } catch (err) {
          this.opts.log.warn('housekeeping of rotated files failed', {
            dir: this.naming.dir,
            error: String(err),
          });
        }
      } while (this.housekeepingAgain);
      this.housekeeping = null;
    })();
  }

  /** Finishes what a crash interrupted, compresses, then applies max history and the size cap. */
  private async housekeep(): Promise<void> {
    const dir = this.naming.dir;
    const files = await this.listRotated();
    const plainNames = new Set(files.filter((f) => f.state === 'plain').map((f) => f.name));
    const gzNames = new Set(files.filter((f) => f.state === 'gz').map((f) => f.name));
    for (const f of files) {
      const plain = f.name.replace(/\.gz(\.tmp)?$/, '');
      if (f.state === 'gz.tmp' && plainNames.has(plain)) {
        await this.attempt('delete an unfinished compressed file', f.name, () => unlink(join(dir, f.name)));
      }
      if (f.state === 'plain' && gzNames.has(`${f.name}.gz`)) {
        await this.attempt('delete a file already compressed', f.name, () => unlink(join(dir, f.name)));
        plainNames.delete(f.name);
      }
    }
    if (this.opts.compress) {
      for (const name of plainNames) await this.attempt('compress', name, () => this.compress(name));
    }
    await this.prune();
  }

  /** Runs one step on one file; a failure is a warning and the other files are still handled. */
  private async attempt(what: string, file: string, step: () => Promise<void>): Promise<boolean> {
    try {
      await step();
      return true;
    } catch (err) {
      this.opts.log.warn(`housekeeping could not ${what}`, {
        dir: this.naming.dir,
        file,
        error: String(err),
      });
      return false;
    }
  }

  /**
   * Gzips a rotated file without ever leaving a half-written `.gz` as the only
   * copy: write `.gz.tmp`, fsync, rename to `.gz`, fsync the directory, and
   * only then unlink the plain file.
   */
  private async compress(name: string): Promise<void> {
    const dir = this.naming.dir;
    const plain = join(dir, name);
    const tmp = `${plain}.gz.tmp`;
    // `flush`: the stream fsyncs before closing, so the rename below publishes a complete file.
    await pipeline(
      createReadStream(plain),
      createGzip(),
      createWriteStream(tmp, { mode: this.opts.mode, flush: true }),
    );
    await rename(tmp, `${plain}.gz`);
    await fsyncDir(dir);
    await unlink(plain);
  }

  private async prune(): Promise<void> {
    const { maxHistory, totalSizeCapBytes } = this.opts;
    if (maxHistory === null && totalSizeCapBytes === null) return;
    let files = (await this.listRotated()).filter((f) => f.state !== 'gz.tmp');
    const remove = (f: RotatedFile) =>
      this.attempt('delete an old rotated file', f.name, async () => {
        await unlink(join(this.naming.dir, f.name));
        this.opts.log.info('deleted an old rotated file', { dir: this.naming.dir, file: f.name });
      });
    if (maxHistory !== null) {
      const keep = new Set([...new Set(files.map((f) => f.date))].slice(-maxHistory));
      for (const f of files.filter((f) => !keep.has(f.date))) await remove(f);
      files = files.filter((f) => keep.has(f.date));
    }
    if (totalSizeCapBytes !== null) {
      const sized = await Promise.all(
        files.map(async (f) => ({ f, size: (await stat(join(this.naming.dir, f.name))).size })),
      );
      let total = sized.reduce((sum, s) => sum + s.size, 0);
      for (const { f, size } of sized) {
        if (total <= totalSizeCapBytes) break;
        if (await remove(f)) total -= size;
      }
    }
  }
}
