import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/**
 * CPU time used by each part of a PostgreSQL run on this machine — the
 * servers, PostgreSQL's processes, the bench itself (its load generator) —
 * and by the whole machine, read from /proc (Linux; elsewhere `undefined`).
 * Divided by the events a load stored, it says where each event's CPU goes
 * and what two fully busy cores could give at that cost: the ceiling the
 * goal is judged against on a machine whose speed varies from day to day.
 */
export interface CpuReading {
  /** CPU seconds of each server process (user + system), in the order given. */
  servers: number[];
  /** CPU seconds of every process named `postgres` (the bench's throwaway cluster). */
  postgres: number;
  /** CPU seconds of this process. */
  bench: number;
  /** Machine-wide busy and total jiffies (/proc/stat). */
  busy: number;
  total: number;
}

/** Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux). */
const TICKS = 100;

function processSeconds(pid: number | string): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

function postgresSeconds(): number {
  let sum = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('postgres')) sum += processSeconds(pid);
    } catch {
      // The process ended meanwhile.
    }
  }
  return sum;
}

/** A reading now, or undefined where /proc is not there to read. */
export function readCpu(serverPids: readonly number[]): CpuReading | undefined {
  try {
    const machine = readFileSync('/proc/stat', 'utf8')
      .split('\n')[0]!
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    // user nice system idle iowait irq softirq steal …: idle and iowait are not busy.
    const total = machine.reduce((a, b) => a + b, 0);
    const usage = process.cpuUsage();
    return {
      servers: serverPids.map(processSeconds),
      postgres: postgresSeconds(),
      bench: (usage.user + usage.system) / 1e6,
      busy: total - machine[3]! - machine[4]!,
      total,
    };
  } catch {
    return undefined;
  }
}

/** CPU µs per event of each part between two readings, the machine's busy share, and the ceiling that cost allows. */
export interface CpuPerEvent {
  servers: number[];
  postgres: number;
  bench: number;
  /** Share of the machine's CPU time that was busy, 0–1. */
  busyShare: number;
  /** Events/s every core of the machine could give at this CPU per event. */
  ceiling: number;
}

export function cpuPerEvent(a: CpuReading, b: CpuReading, events: number): CpuPerEvent {
  const us = (seconds: number) => (seconds * 1e6) / events;
  const servers = b.servers.map((s, i) => us(s - a.servers[i]!));
  const postgres = us(b.postgres - a.postgres);
  const bench = us(b.bench - a.bench);
  const all = servers.reduce((x, y) => x + y, 0) + postgres + bench;
  return {
    servers,
    postgres,
    bench,
    busyShare: (b.busy - a.busy) / (b.total - a.total),
    ceiling: (availableParallelism() * 1e6) / all,
  };
}
