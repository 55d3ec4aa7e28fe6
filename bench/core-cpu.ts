/**
 * Server CPU time per ingested event under the core bench's two ingest loads
 * (8 clients × 100 events, 32 clients × 1 event), read from /proc around
 * each load. Throughput on a shared machine swings with its neighbours; CPU
 * per event much less, so this is what to compare between two builds: run it
 * in each checkout alternately (`node --import tsx bench/core-cpu.ts`).
 * Linux only (/proc). BENCH_CPU_SECONDS sets each load's length (default 6).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ingestLoad } from './ingest.js';
import { ServerProcess } from './server-process.js';

/** CPU seconds (user + system) of a process, from /proc/<pid>/stat (USER_HZ 100). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const seconds = Number(process.env['BENCH_CPU_SECONDS'] ?? '6');
const work = mkdtempSync(join(tmpdir(), 'tw-core-cpu-'));
mkdirSync(join(work, 'data'));
const server = await ServerProcess.start(join(work, 'data'), { audit_reads: true, log_level: 'info' });
try {
  // Warm-up: the JIT and the SQLite page cache, not measured.
  await ingestLoad(server.target, { perRequest: 100, concurrency: 8, durationMs: 2000, warmupMs: 500 });
  for (const [perRequest, concurrency] of [
    [100, 8],
    [1, 32],
  ] as const) {
    const before = cpuSeconds(server.pid);
    const r = await ingestLoad(server.target, {
      perRequest,
      concurrency,
      durationMs: seconds * 1000,
      warmupMs: 500,
    });
    const used = cpuSeconds(server.pid) - before;
    const events = r.ok * perRequest;
    process.stdout.write(
      `${concurrency} clients × ${perRequest}: ${Math.round((events * 1000) / r.elapsedMs)} events/s, ` +
        `server CPU ${((used * 1e6) / events).toFixed(1)} µs per event${r.failed > 0 ? `, ${r.failed} failed` : ''}\n`,
    );
  }
} finally {
  await server.stop();
  rmSync(work, { recursive: true, force: true });
}
