// Past 400 lines on purpose: one idea, the writer of the active file (append whole, rotate, reopen,
// never touch a file it did not make); its background work and crash recovery are files of their own.
import { constants, type Stats } from 'node:fs';
import { type FileHandle, mkdir, open, unlink } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { RotatedFileHousekeeper } from './rotated-file-housekeeper.js';
import { codeOf, listRotated, parseFilePattern, type RotatedNaming, utcDay } from './rotated-file-names.js';
import {
  CREATE_NEW,
  type FileId,
  type FileOwner,
  idOf,
  linkNoReplace,
  lstatOrNull,
  OPEN_EXISTING,
  RefusedFileError,
  RotationManifest,
  sameFile,
  sealedIdOf,
} from './rotation-manifest.js';
import { adoptEarlierRotated, finishInterruptedRotation } from './rotation-recovery.js';

/** When the active file is flushed to disk. */
export type FsyncPolicy = 'every_batch' | 'interval' | 'never';

/** How a {@link RotatingFileWriter} names, rotates and prunes its files. */
export interface RotatingFileOptions {
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
  /** Whose files these are: recorded in the manifest; another sink's writer refuses them. */
  owner: FileOwner;
  /**
   * Files here that this writer did not create. `adopt` (config-file sinks):
   * while no manifest exists yet (a version without manifests wrote them),
   * the active file and the rotated files matching the pattern are taken
   * over, once; later, an empty file at the path (logrotate's `create`).
   * `refuse` (API sinks): such a file stops the writer with a
   * {@link RefusedFileError} and is never opened, renamed or deleted.
   */
  foreignFiles: 'adopt' | 'refuse';
  /**
   * Why a folder may not hold the sink's files (its placement rules), or
   * `null`; asked again before a file is created or opened in it.
   */
  confine(dir: string): string | null;
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
 * background. Knows nothing of sinks: errors are thrown with their errno
 * code, or as a {@link RefusedFileError}.
 *
 * A chunk is written whole or not at all: a write that fails part-way is cut
 * back with ftruncate, so the file never ends in a torn line.
 *
 * It touches only files it created, listed in a manifest beside the active
 * file ({@link RotationManifest}): the active file is created exclusively
 * and opened without following a symbolic link; a rotation gives it its new
 * name by a hard link that never replaces a file; housekeeping acts only on
 * the rotated files listed, after checking each is still the same file.
 */
export class RotatingFileWriter {
  readonly naming: RotatedNaming;
  /** Loaded with the first open; from then on the writer's own record, saved at each change. */
  private manifest: RotationManifest | null = null;
  private housekeeper: RotatedFileHousekeeper | null = null;
  private fd: FileHandle | null = null;
  private ino = 0;
  private dev = 0;
  private size = 0;
  private lastWriteMs = 0;
  private dirty = false;
  private closed = false;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: RotatingFileOptions) {
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
   * may have left among rotated files (in the background).
   */
  async start(): Promise<void> {
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
    await this.housekeeper?.idle();
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
   * logrotate): one lstat per batch compared with the inode opened.
   */
  private async ensureOpen(): Promise<FileHandle> {
    const path = this.opts.path;
    if (this.fd) {
      const st = await lstatOrNull(path);
      if (st !== null && st.ino === this.ino && st.dev === this.dev) {
        this.size = st.size;
        return this.fd;
      }
      this.opts.log.warn('the active file was removed or replaced; opening it again', { path });
      const old = this.fd;
      this.fd = null;
      await old.close().catch(() => undefined);
    }
    const manifest = await this.loadManifest();
    this.confine(dirname(path));
    await mkdir(dirname(path), { recursive: true });
    const fd = await this.openActive(manifest);
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

  /** Throws when the folder is out of the sink's bounds (checked again at every open: a link may have been swapped in). */
  private confine(dir: string): void {
    const problem = this.opts.confine(dir);
    if (problem !== null) throw new RefusedFileError(problem);
  }

  /**
   * Opens the file at the path when it is this writer's, or creates it
   * exclusively (never following a symbolic link) and records it.
   */
  private async openActive(manifest: RotationManifest): Promise<FileHandle> {
    const path = this.opts.path;
    const st = await lstatOrNull(path);
    if (st === null) {
      // Recorded first: a crash right after the creation leaves a file the next start knows as ours.
      await manifest.update((m) => {
        m.creating_active = true;
      });
      const fd = await open(path, CREATE_NEW | constants.O_APPEND, this.opts.mode);
      try {
        const id = idOf(await fd.stat());
        await manifest.update((m) => {
          m.active = id;
          m.creating_active = false;
        });
      } catch (err) {
        await fd.close();
        throw err;
      }
      return fd;
    }
    const ours = sameFile(st, manifest.active) || (manifest.creatingActive && st.isFile());
    if (!ours) this.judgeForeign(st, manifest);
    const fd = await open(path, OPEN_EXISTING);
    try {
      const opened = await fd.stat();
      if (opened.ino !== st.ino || opened.dev !== st.dev) {
        throw Object.assign(new Error(`${path} was replaced while it was being opened`), { code: 'EAGAIN' });
      }
      if (!sameFile(opened, manifest.active) || manifest.creatingActive) {
        await manifest.update((m) => {
          m.active = idOf(opened);
          m.creating_active = false;
        });
      }
    } catch (err) {
      await fd.close();
      throw err;
    }
    return fd;
  }

  /** A file this writer did not create is at the path: adopt it (see `foreignFiles`) or refuse it. */
  private judgeForeign(st: Stats, manifest: RotationManifest): void {
    const path = this.opts.path;
    if (st.isSymbolicLink()) {
      throw new RefusedFileError(
        `${path} is a symbolic link; the sink writes only to a regular file it created itself`,
      );
    }
    if (this.opts.foreignFiles === 'refuse') {
      throw new RefusedFileError(
        `${path} exists and was not created by this sink, which never writes to, renames or deletes such a file; ` +
          'move it away or choose another path, then resume the sink',
      );
    }
    // A folder or a device: opening it fails with its own error (EISDIR).
    if (!st.isFile()) return;
    if (manifest.fresh || st.size === 0) {
      this.opts.log.info('taking over a file this sink did not create', {
        path,
        reason: manifest.fresh ? 'no manifest yet (written by an earlier version)' : 'empty file',
      });
      return;
    }
    throw new RefusedFileError(
      `${path} was not created by this sink (its manifest ${manifest.path} records another file); ` +
        'move it away and resume the sink (or delete the manifest and restart, to let this config-file sink take the files over)',
    );
  }

  /** Loads the manifest once; adopts an earlier version's files; finishes a rotation a crash interrupted. */
  private async loadManifest(): Promise<RotationManifest> {
    if (this.manifest !== null) return this.manifest;
    this.confine(dirname(this.opts.path));
    const manifest = await RotationManifest.load(this.opts.path, this.opts.owner, this.opts.mode);
    if (manifest.fresh && this.opts.foreignFiles === 'adopt') {
      const files = await adoptEarlierRotated(manifest, this.naming, this.opts.path);
      if (files > 0) {
        this.opts.log.info('took over the rotated files of an earlier version', {
          path: this.opts.path,
          files,
        });
      }
    }
    await finishInterruptedRotation(manifest, this.opts.path);
    this.manifest = manifest;
    this.housekeeper = new RotatedFileHousekeeper(dirname(this.opts.path), manifest, this.opts);
    // What a crash left is tidied as soon as the files are known to be ours, whether or not the open succeeds.
    this.housekeeper.schedule();
    return manifest;
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
    const manifest = await this.loadManifest();
    if (this.opts.fsync !== 'never') await fd.sync();
    this.confine(this.naming.dir);
    await mkdir(this.naming.dir, { recursive: true });
    // Written and fsynced: the file no longer changes, so size and mtime join its identity.
    const sealed = sealedIdOf(await fd.stat());
    const active = idOf(sealed);
    const { target, how } = await this.linkRotated(manifest, sealed, utcDay(this.lastWriteMs));
    // The manifest lists the rotated name, so a crash between the two steps is finished at the next start.
    if (how === 'linked') {
      const current = await lstatOrNull(this.opts.path);
      if (current !== null && sameFile(current, active)) await unlink(this.opts.path);
    }
    await manifest.update((m) => {
      m.active = null;
    });
    this.fd = null;
    this.dirty = false;
    await fd.close();
    this.opts.log.info('rotated the file', { path: this.opts.path, to: target });
    this.housekeeper?.schedule();
    await this.ensureOpen();
  }

  /**
   * Gives the active file the next free rotated name of `date`, recorded in
   * the manifest first; never replaces a file that took the name meanwhile.
   */
  private async linkRotated(
    manifest: RotationManifest,
    rotated: FileId,
    date: string,
  ): Promise<{ target: string; how: 'linked' | 'renamed' }> {
    for (let attempt = 1; ; attempt++) {
      const existing = await listRotated(this.naming);
      const index = 1 + Math.max(0, ...existing.filter((f) => f.date === date).map((f) => f.index));
      const target = join(this.naming.dir, this.naming.name(date, index));
      const file = relative(dirname(this.opts.path), target);
      await manifest.update((m) => {
        m.rotated.push({ file, date, index, plain: rotated, gz: null, compressing: false });
      });
      try {
        return { target, how: await linkNoReplace(this.opts.path, target) };
      } catch (err) {
        await manifest.updateEntry(file, () => null);
        if (codeOf(err) !== 'EEXIST' || attempt >= 5) throw err;
      }
    }
  }

  private async syncIfDirty(): Promise<void> {
    if (this.fd && this.dirty) {
      this.dirty = false;
      await this.fd.sync();
    }
  }
}
