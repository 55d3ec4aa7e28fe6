import { closeSync, fsyncSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

/** What the figures were measured on. */
export interface MachineFacts {
  nproc: number;
  cpuModel: string;
  node: string;
  /** Records/s of write + fsync of ~200-byte records to a file in the bench folder. */
  fsyncPerSecond: number;
}

function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('model name'));
    return line?.split(':')[1]?.trim() ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * Baseline (a): appends ~200-byte records with `writeSync` + `fsyncSync` per
 * record for `durationMs`. This is the ceiling for one-commit-per-event
 * durability on this disk.
 */
export function fsyncRate(dir: string, durationMs: number): number {
  const file = join(dir, 'fsync-probe.log');
  const record = Buffer.from(`${'x'.repeat(199)}\n`);
  const fd = openSync(file, 'a');
  try {
    let n = 0;
    const start = performance.now();
    let elapsed = 0;
    while (elapsed < durationMs) {
      writeSync(fd, record);
      fsyncSync(fd);
      n += 1;
      elapsed = performance.now() - start;
    }
    return (n * 1000) / elapsed;
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
}

export function machineFacts(dir: string, fsyncMs: number): MachineFacts {
  return {
    nproc: availableParallelism(),
    cpuModel: cpuModel(),
    node: process.version,
    fsyncPerSecond: fsyncRate(dir, fsyncMs),
  };
}
