import { constants, createReadStream, createWriteStream } from 'node:fs';
import { type FileHandle, open, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { codeOf } from './rotated-file-names.js';
import {
  CREATE_NEW,
  type FileId,
  fsyncDir,
  linkNoReplace,
  lstatOrNull,
  type RotatedEntry,
  type RotationManifest,
  sameFile,
  sealedIdOf,
} from './rotation-manifest.js';

/** The part of `RotatingFileOptions` housekeeping reads; the fields mean the same there. */
export interface HousekeepingOptions {
  compress: boolean;
  maxHistory: number | null;
  totalSizeCapBytes: number | null;
  mode: number;
  log: { info(msg: string, extra?: object): void; warn(msg: string, extra?: object): void };
  confine(dir: string): string | null;
}

/**
 * Background work on rotated files: finishes what a crash interrupted,
 * gzips, and applies max history and the total size cap. Runs one pass at a
 * time; a request during a pass runs one more pass after it.
 *
 * Acts only on the rotated files the manifest lists (the ones the writer
 * made), each checked to be still the same file (see `FileId`) before
 * it is read or deleted; a file that merely matches the naming pattern is
 * never touched, and a name already taken is never replaced.
 */
export class RotatedFileHousekeeper {
  private running: Promise<void> | null = null;
  private again = false;

  constructor(
    /** The active file's folder: manifest entries are relative to it. */
    private readonly dir: string,
    private readonly manifest: RotationManifest,
    private readonly opts: HousekeepingOptions,
  ) {}

  /** Resolves when no background compression or pruning is running. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Starts a pass, or asks the running one to go round once more. */
  schedule(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          await this.housekeep();
        } catch (err) {
          this.opts.log.warn('housekeeping of rotated files failed', { dir: this.dir, error: String(err) });
        }
      } while (this.again);
      this.running = null;
    })();
  }

  /** Finishes what a crash interrupted, compresses, then applies max history and the size cap. */
  private async housekeep(): Promise<void> {
    for (const e of this.entries()) await this.attempt('tidy', e.file, () => this.tidy(e));
    if (this.opts.compress) {
      for (const e of this.entries()) {
        if (e.plain !== null && e.gz === null) await this.attempt('compress', e.file, () => this.compress(e));
      }
    }
    await this.prune();
  }

  /** Runs one step on one file; a failure is a warning and the other files are still handled. */
  private async attempt(what: string, file: string, step: () => Promise<void>): Promise<boolean> {
    try {
      await step();
      return true;
    } catch (err) {
      this.opts.log.warn(`housekeeping could not ${what}`, { dir: this.dir, file, error: String(err) });
      return false;
    }
  }

  /**
   * The manifest's rotated files whose folder is within the sink's bounds:
   * even a manifest edited by hand cannot lead housekeeping into the data
   * folder (or out of file_sink_root).
   */
  private entries(): RotatedEntry[] {
    return this.manifest.rotated.filter((e) => {
      const problem = this.opts.confine(dirname(join(this.dir, e.file)));
      if (problem !== null) {
        this.opts.log.warn('a rotated file in the manifest is out of bounds; leaving it alone', {
          file: e.file,
          problem,
        });
      }
      return problem === null;
    });
  }

  private pathsOf(e: RotatedEntry) {
    const plain = join(this.dir, e.file);
    return { plain, gz: `${plain}.gz`, tmp: `${plain}.gz.tmp` };
  }

  /**
   * Brings one entry in line with the disk: drops the `.gz.tmp` of an
   * interrupted compression (or adopts its complete link as the `.gz`),
   * deletes a plain file whose `.gz` is complete, and forgets files that are
   * gone or were replaced by something else (which is then left alone).
   */
  private async tidy(e: RotatedEntry): Promise<void> {
    const paths = this.pathsOf(e);
    let gz = e.gz;
    const tmp = await lstatOrNull(paths.tmp);
    if (e.compressing && tmp !== null) {
      // Set just before the .gz.tmp was created, so it is ours; a link of it under .gz is its published copy.
      if (gz === null && tmp.isFile() && sameFile(await lstatOrNull(paths.gz), sealedIdOf(tmp))) {
        gz = sealedIdOf(tmp);
      }
      await unlink(paths.tmp);
    } else if (gz !== null && tmp !== null && sameFile(tmp, gz)) {
      await unlink(paths.tmp);
    }
    gz = await this.stillOurs(paths.gz, gz);
    let plain = await this.stillOurs(paths.plain, e.plain);
    if (plain !== null && gz !== null) {
      await unlink(paths.plain);
      plain = null;
    }
    if (plain === e.plain && gz === e.gz && !e.compressing) return;
    await this.manifest.updateEntry(e.file, (x) =>
      plain === null && gz === null ? null : { ...x, plain, gz, compressing: false },
    );
  }

  /** `id` when `path` still names that file; otherwise `null` (and a warning when another file took the name). */
  private async stillOurs(path: string, id: FileId | null): Promise<FileId | null> {
    if (id === null) return null;
    const st = await lstatOrNull(path);
    if (sameFile(st, id)) return id;
    if (st !== null) {
      this.opts.log.warn('a rotated file was replaced by one this sink did not create; leaving it alone', {
        path,
      });
    }
    return null;
  }

  /**
   * Gzips a rotated file without ever leaving a half-written `.gz` as the only
   * copy, and without replacing a file it did not create: write `.gz.tmp`
   * (created exclusively), fsync, link it as `.gz` (fails if that name is
   * taken), record it, fsync the directory, and only then unlink the plain file.
   */
  private async compress(e: RotatedEntry): Promise<void> {
    const paths = this.pathsOf(e);
    const src = await open(paths.plain, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      if (!sameFile(await src.stat(), e.plain)) {
        throw new Error(`${paths.plain} is no longer the file this sink rotated; leaving it alone`);
      }
      const stopCompressing = () => this.manifest.updateEntry(e.file, (x) => ({ ...x, compressing: false }));
      await this.manifest.updateEntry(e.file, (x) => ({ ...x, compressing: true }));
      let out: FileHandle;
      try {
        out = await open(paths.tmp, CREATE_NEW, this.opts.mode);
      } catch (err) {
        await stopCompressing();
        if (codeOf(err) === 'EEXIST') {
          throw new Error(`${paths.tmp} exists and is not this sink's; ${e.file} stays uncompressed`);
        }
        throw err;
      }
      let gz: FileId;
      try {
        try {
          // Streams on the descriptors (not FileHandle streams, whose handles would not close while they exist).
          await pipeline(
            createReadStream(paths.plain, { fd: src.fd, autoClose: false, start: 0 }),
            createGzip(),
            createWriteStream(paths.tmp, { fd: out.fd, autoClose: false }),
          );
          await out.sync();
          gz = sealedIdOf(await out.stat());
        } finally {
          await out.close();
        }
      } catch (err) {
        await unlink(paths.tmp).catch(() => undefined);
        await stopCompressing();
        throw err;
      }
      let how: 'linked' | 'renamed';
      try {
        how = await linkNoReplace(paths.tmp, paths.gz);
      } catch (err) {
        await unlink(paths.tmp).catch(() => undefined);
        await stopCompressing();
        if (codeOf(err) === 'EEXIST') {
          throw new Error(`${paths.gz} exists and is not this sink's; ${e.file} stays uncompressed`);
        }
        throw err;
      }
      await this.manifest.updateEntry(e.file, (x) => ({ ...x, gz, compressing: false }));
      if (how === 'linked') await unlink(paths.tmp);
      await fsyncDir(dirname(paths.plain));
      if (sameFile(await lstatOrNull(paths.plain), e.plain)) await unlink(paths.plain);
      await this.manifest.updateEntry(e.file, (x) => ({ ...x, plain: null }));
    } finally {
      await src.close();
    }
  }

  private async prune(): Promise<void> {
    const { maxHistory, totalSizeCapBytes } = this.opts;
    if (maxHistory === null && totalSizeCapBytes === null) return;
    let entries = this.entries().filter((e) => !e.compressing);
    const remove = (e: RotatedEntry) =>
      this.attempt('delete an old rotated file', e.file, async () => {
        const paths = this.pathsOf(e);
        for (const [path, id] of [
          [paths.plain, e.plain],
          [paths.gz, e.gz],
        ] as const) {
          if (sameFile(await lstatOrNull(path), id)) await unlink(path);
        }
        await this.manifest.updateEntry(e.file, () => null);
        this.opts.log.info('deleted an old rotated file', { dir: this.dir, file: e.file });
      });
    if (maxHistory !== null) {
      const keep = new Set([...new Set(entries.map((e) => e.date))].slice(-maxHistory));
      for (const e of entries.filter((e) => !keep.has(e.date))) await remove(e);
      entries = entries.filter((e) => keep.has(e.date));
    }
    if (totalSizeCapBytes !== null) {
      const sized = await Promise.all(entries.map(async (e) => ({ e, size: await this.sizeOf(e) })));
      let total = sized.reduce((sum, s) => sum + s.size, 0);
      for (const { e, size } of sized) {
        if (total <= totalSizeCapBytes) break;
        if (await remove(e)) total -= size;
      }
    }
  }

  /** Bytes of an entry's files that are still ours. */
  private async sizeOf(e: RotatedEntry): Promise<number> {
    const paths = this.pathsOf(e);
    let size = 0;
    for (const [path, id] of [
      [paths.plain, e.plain],
      [paths.gz, e.gz],
    ] as const) {
      const st = await lstatOrNull(path);
      if (st !== null && sameFile(st, id)) size += st.size;
    }
    return size;
  }
}
