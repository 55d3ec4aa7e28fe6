import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { machineFacts } from './machine.js';
import { fmt } from './stats.js';

/** One line of a benchmark's result table: a figure beside its goal and same-run baseline. */
export interface BenchRow {
  figure: string;
  goal: string;
  measured: string;
  baseline: string;
  ratio: string;
  /** `undefined` for information-only rows. */
  met: boolean | undefined;
}

export type Say = (line: string) => void;

/** Prints the result table, one aligned row per figure. */
export function printTable(say: Say, table: BenchRow[]): void {
  const head: BenchRow = {
    figure: 'figure',
    goal: 'goal',
    measured: 'measured',
    baseline: 'baseline',
    ratio: 'ratio',
    met: undefined,
  };
  const cols = ['figure', 'goal', 'measured', 'baseline', 'ratio'] as const;
  const width = (c: (typeof cols)[number]) => Math.max(...[head, ...table].map((r) => r[c].length));
  const line = (r: BenchRow, mark: string) =>
    `${cols.map((c) => r[c].padEnd(width(c))).join(' | ')} | ${mark}`;
  say(line(head, 'goal met'));
  say(`${cols.map((c) => '-'.repeat(width(c))).join('-|-')}-|---------`);
  for (const r of table) say(line(r, r.met === undefined ? '' : r.met ? 'yes' : 'NO'));
}

/** The closing line: every goal met, or which were missed. */
export function summary(rows: BenchRow[]): string {
  const missed = rows.filter((r) => r.met === false).map((r) => r.figure.trim());
  return missed.length === 0 ? 'Every goal met.' : `Goals missed: ${missed.join('; ')}`;
}

/**
 * The standalone entry of a benchmark file: machine facts, the run in a fresh
 * work folder (BENCH_DIR, kept with BENCH_KEEP=1), the table and the summary.
 */
export async function runStandalone(
  title: string,
  prefix: string,
  run: (opts: { work: string; scale: number; say: Say }) => Promise<{ rows: BenchRow[]; peakRssMiB: number }>,
): Promise<void> {
  const say: Say = (line) => process.stdout.write(`${line}\n`);
  const scale = Number(process.env['BENCH_SCALE'] ?? '1');
  if (!(scale > 0)) throw new Error('BENCH_SCALE must be a positive number, e.g. 0.1 for a quick check');
  const work = mkdtempSync(join(process.env['BENCH_DIR'] ?? tmpdir(), prefix));
  try {
    const machine = machineFacts(work, 2000);
    say(`# ${title}`);
    say(`machine: ${machine.nproc} CPUs (${machine.cpuModel}), node ${machine.node}`);
    say(`disk:    ${fmt(machine.fsyncPerSecond)} fsync'd 200-byte appends/s in ${work}`);
    say(`scale:   ${scale}`);
    say('');
    const { rows, peakRssMiB } = await run({ work, scale, say });
    say('');
    printTable(say, rows);
    say(`server peak RSS across runs (VmHWM): ${fmt(peakRssMiB)} MiB`);
    say(summary(rows));
  } finally {
    if (process.env['BENCH_KEEP'] === '1') say(`kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}
