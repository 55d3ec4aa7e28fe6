import { type FileHandle, mkdir, open, rename, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { RotatedFileHousekeeper } from './rolled-file-housekeeping.js';
import { codeOf, listRotated, parseFilePattern, type RotatedNaming, utcDay } from './rolled-file-names.js';

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
  private readonly housekeeper: RotatedFileHousekeeper;
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: RollingFileOptions) {
    this.naming = parseFilePattern(opts.filePattern, opts.path);
    this.housekeeper = new RotatedFileHousekeeper(this.naming, opts);
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
    this.housekeeper.schedule();
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
  idle(): Promise<void> {
    return this.housekeeper.idle();
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
    const existing = await listRotated(this.naming);
    const index = 1 + Math.max(0, ...existing.filter((f) => f.date === date).map((f) => f.index));
    const target = join(this.naming.dir, this.naming.name(date, index));
    await rename(this.opts.path, target);
    this.fd = null;
    this.dirty = false;
    await fd.close();
    this.opts.log.info('rotated the file', { path: this.opts.path, to: target });
    this.housekeeper.schedule();
    await this.ensureOpen();
  }

  private async syncIfDirty(): Promise<void> {
    if (this.fd && this.dirty) {
      this.dirty = false;
      await this.fd.sync();
    }
  }
}
