/**
 * Retention benchmark (issue 17): pruning a 1,000,000-event backlog while
 * batched ingest runs, beside the same ingest load without pruning, in the
 * same run; events pruned per second; the database's size before and after
 * the prune and its space reclaim.
 *
 * The backlog is appended by a child process whose clock runs 400 days
 * behind (past-clock.mjs), so the events are received a year ago with real
 * leaf hashes; the server then runs with `retention.default_days: 365`.
 *
 * Standalone: `npm run build && node --import tsx bench/retention.ts`
 * (BENCH_SCALE, BENCH_DIR, BENCH_KEEP as for `npm run bench`).
 */
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { keepAliveAgent, type LoadResult, send } from './http-load.js';
import { ingestLoad } from './ingest.js';
import { type BenchRow, runStandalone } from './report.js';
import { ServerProcess } from './server-process.js';
import { fmt, ms, percentile, sleep } from './stats.js';

const DAY = 86_400_000;
const MIB = 1_048_576;
const ratio = (a: number, b: number) => (Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : 'n/a');
const BATCH = { perRequest: 100, concurrency: 8 };

/** Bytes the SQLite file and its WAL take on disk. */
function dbBytes(dataDir: string): number {
  let total = 0;
  for (const f of ['trailwarden.db', 'trailwarden.db-wal']) {
    try {
      total += statSync(join(dataDir, f)).size;
    } catch {
      // no WAL file right now
    }
  }
  return total;
}

/** Free pages left in the SQLite file (what incremental vacuum has yet to give back), kept events, pruned leaves. */
function fileState(dataDir: string): { freePages: number; kept: number; pruned: number } {
  const db = new Database(join(dataDir, 'trailwarden.db'), { readonly: true });
  try {
    const count = (table: string) => db.prepare(`SELECT COUNT(*) FROM ${table}`).pluck().get() as number;
    const pruned = db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'pruned_leaves'").get()
      ? count('pruned_leaves')
      : 0;
    return {
      freePages: db.pragma('freelist_count', { simple: true }) as number,
      kept: count('events'),
      pruned,
    };
  } finally {
    db.close();
  }
}

function describe(load: LoadResult): { eventsPerSecond: number; p99: number } {
  return {
    eventsPerSecond: (load.ok * BATCH.perRequest * 1000) / load.elapsedMs,
    p99: percentile(load.latencies, 99),
  };
}

export async function runRetentionBench(opts: {
  work: string;
  scale: number;
  say: (line: string) => void;
}): Promise<{ rows: BenchRow[]; peakRssMiB: number }> {
  const { work, scale, say } = opts;
  const events = Math.max(20_000, Math.round(1_000_000 * scale));
  const loadMs = Math.max(5_000, Math.round(15_000 * scale));
  const dataDir = join(work, 'data');
  const rows: BenchRow[] = [];
  let peakRssMiB = 0;

  say(
    `R0. filling ${dataDir} with ${fmt(events)} events received 400 days ago (Store.append, clock set back)`,
  );
  const fillRate = execFileSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '--import',
      fileURLToPath(new URL('./past-clock.mjs', import.meta.url)),
      fileURLToPath(new URL('./fill-in-past.ts', import.meta.url)),
      dataDir,
      String(events),
    ],
    { env: { ...process.env, BENCH_CLOCK_OFFSET_MS: String(400 * DAY) }, encoding: 'utf8' },
  ).trim();
  say(`    ${fmt(Number(fillRate))} events/s`);

  say(
    `R1. batched ingest (${BATCH.concurrency} clients × ${BATCH.perRequest}), no retention, ${loadMs / 1000} s`,
  );
  let server = await ServerProcess.start(dataDir, { log_level: 'warn' });
  const bare = describe(await ingestLoad(server.target, { ...BATCH, durationMs: loadMs, warmupMs: 1_000 }));
  say(`    ${fmt(bare.eventsPerSecond)} events/s, p99 ${ms(bare.p99)}`);
  peakRssMiB = Math.max(peakRssMiB, await server.stop());
  const sizeBefore = dbBytes(dataDir);
  const before = fileState(dataDir);

  say('R2. the same load while a prune run removes the year-old backlog (retention.default_days: 365)');
  server = await ServerProcess.start(dataDir, {
    log_level: 'warn',
    retention: {
      default_days: 365,
      prune_interval_ms: 604_800_000,
      // BENCH_BUSY_SHARE tries another share of the writer than the default (5 %).
      ...(process.env['BENCH_BUSY_SHARE']
        ? { busy_share_percent: Number(process.env['BENCH_BUSY_SHARE']) }
        : {}),
    },
  });
  const agent = keepAliveAgent(2);
  // The server starts a run on its own at start; POST starts one only if it has not.
  const started = await send(server.target, agent, 'POST', '/v1/retention/runs', Buffer.from('{}'));
  let runId: string;
  if (started.status === 202) runId = (JSON.parse(started.body) as { id: string }).id;
  else if (started.status === 409) {
    const shown = await send(server.target, agent, 'GET', '/v1/retention');
    runId = (JSON.parse(shown.body) as { runs: Array<{ id: string }> }).runs[0]!.id;
  } else throw new Error(`POST /v1/retention/runs answered ${started.status} ${started.body}`);
  const runNow = async () =>
    JSON.parse((await send(server.target, agent, 'GET', `/v1/retention/runs/${runId}`)).body) as {
      state: string;
      pruned: number;
      started_at: string;
      finished_at: string | null;
    };
  // The same load as R1, for as long, while the run prunes; then the run finishes alone.
  const loadStart = await runNow();
  const during = describe(await ingestLoad(server.target, { ...BATCH, durationMs: loadMs, warmupMs: 1_000 }));
  const loadEnd = await runNow();
  if (loadEnd.state === 'done') throw new Error('the prune run ended before the load: raise BENCH_SCALE');
  const prunedUnderLoad = loadEnd.pruned - loadStart.pruned;
  const underLoadRate = (prunedUnderLoad * 1000) / (loadMs + 1_000);
  const aloneFrom = performance.now();
  let run = loadEnd;
  while (run.state !== 'done') {
    await sleep(200);
    run = await runNow();
  }
  const aloneRate = ((run.pruned - loadEnd.pruned) * 1000) / (performance.now() - aloneFrom);
  const pruned = run.pruned;
  say(
    `    ingest ${fmt(during.eventsPerSecond)} events/s, p99 ${ms(during.p99)}, while the run pruned ` +
      `${fmt(underLoadRate)} events/s; then alone ${fmt(aloneRate)} events/s (${fmt(pruned)} in all)`,
  );
  if (pruned < events) throw new Error(`the run pruned ${pruned} events, the backlog holds ${events}`);
  // Space comes back in small steps after the run; wait until none is left to give back.
  for (let tries = 0; fileState(dataDir).freePages > 0 && tries < 600; tries++) await sleep(500);
  agent.destroy();
  peakRssMiB = Math.max(peakRssMiB, await server.stop());
  const sizeAfter = dbBytes(dataDir);
  const afterState = fileState(dataDir);
  const perKept = (bytes: number, kept: number) => `${fmt(bytes / Math.max(1, kept))} bytes per kept event`;
  say(
    `    database ${fmt(sizeBefore / MIB)} MiB before (${fmt(before.kept)} events; ${perKept(sizeBefore, before.kept)}), ` +
      `${fmt(sizeAfter / MIB)} MiB after prune + incremental vacuum (${fmt(afterState.kept)} kept, ${fmt(afterState.pruned)} pruned leaves; ` +
      `${perKept(sizeAfter, afterState.kept)}; ${fmt(afterState.freePages)} free pages left)`,
  );

  rows.push({
    figure: `batched ingest while pruning ${fmt(events)} events, events/s`,
    goal: '≥ 0.8× without pruning',
    measured: fmt(during.eventsPerSecond),
    baseline: `${fmt(bare.eventsPerSecond)} (same load, no pruning)`,
    ratio: ratio(during.eventsPerSecond, bare.eventsPerSecond),
    met: during.eventsPerSecond >= 0.8 * bare.eventsPerSecond,
  });
  rows.push({
    figure: '  same, p99 per request',
    goal: '≤ 2× without pruning',
    measured: ms(during.p99),
    baseline: `${ms(bare.p99)} (same load, no pruning)`,
    ratio: ratio(during.p99, bare.p99),
    met: during.p99 <= 2 * bare.p99,
  });
  rows.push({
    figure: '  events pruned per second, during ingest / alone (info)',
    goal: '—',
    measured: `${fmt(underLoadRate)} / ${fmt(aloneRate)}`,
    baseline: `${fmt(Number(fillRate))} (the backlog's fill, Store.append)`,
    ratio: ratio(aloneRate, Number(fillRate)),
    met: undefined,
  });
  rows.push({
    figure: '  database size after prune + vacuum (info)',
    goal: '—',
    measured: `${fmt(sizeAfter / MIB)} MiB (${fmt(afterState.kept)} kept events, ${fmt(afterState.pruned)} pruned leaves)`,
    baseline: `${fmt(sizeBefore / MIB)} MiB before (${fmt(before.kept)} events; ingest during the run added the difference)`,
    ratio: ratio(sizeAfter, sizeBefore),
    met: undefined,
  });
  return { rows, peakRssMiB };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await runStandalone('Trailwarden retention benchmark', 'tw-bench-retention-', runRetentionBench);
}
