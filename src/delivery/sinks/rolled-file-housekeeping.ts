import { createReadStream, createWriteStream } from 'node:fs';
import { open, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { listRotated, type RotatedFile, type RotatedNaming } from './rolled-file-names.js';

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The part of `RollingFileOptions` housekeeping reads; the fields mean the same there. */
export interface HousekeepingOptions {
  compress: boolean;
  maxHistory: number | null;
  totalSizeCapBytes: number | null;
  mode: number;
  log: { info(msg: string, extra?: object): void; warn(msg: string, extra?: object): void };
}

/**
 * Background work on rotated files: finishes what a crash interrupted,
 * gzips, and applies max history and the total size cap. Runs one pass at a
 * time; a request during a pass runs one more pass after it.
 */
export class RotatedFileHousekeeper {
  private running: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly naming: RotatedNaming,
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
          this.opts.log.warn('housekeeping of rotated files failed', {
            dir: this.naming.dir,
            error: String(err),
          });
        }
      } while (this.again);
      this.running = null;
    })();
  }

  /** Finishes what a crash interrupted, compresses, then applies max history and the size cap. */
  private async housekeep(): Promise<void> {
    const dir = this.naming.dir;
    const files = await listRotated(this.naming);
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
    let files = (await listRotated(this.naming)).filter((f) => f.state !== 'gz.tmp');
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
