/**
 * Retention benchmark (issue 17): pruning a 1,000,000-event backlog while
 * batched ingest runs, beside the same ingest load without pruning, in the
 * same run; events pruned per second; the database's size before and after
 * the prune and its space reclaim.
 *
 * The backlog is appended by a child process whose clock runs 400 days
 * behind (past-clock.mjs), so the events are received a year ago with real
 * leaf hashes. One server then takes the same load three times: with no
 * retention period, beside a prune run (a 365-day period for every tenant,
 * the run started through the API), and after the run: the baseline is the
 * mean of the first and the last, so the machine's drift during the run
 * weighs on both sides.
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
import { TENANTS, tenantName } from './dataset.js';
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

  // One server throughout, so the loads with and without pruning differ by the run alone: no
  // period at first (its start-up run plans nothing), a load, then a period for every tenant and
  // a run started through the API with the same load beside it, then the same load once more.
  const sizeBefore = dbBytes(dataDir);
  const before = fileState(dataDir);
  const server = await ServerProcess.start(dataDir, {
    log_level: 'warn',
    retention: {
      prune_interval_ms: 604_800_000,
      // BENCH_BUSY_SHARE tries another share of the writer than the default (5 %).
      ...(process.env['BENCH_BUSY_SHARE']
        ? { busy_share_percent: Number(process.env['BENCH_BUSY_SHARE']) }
        : {}),
    },
  });
  const agent = keepAliveAgent(2);
  const load = async () =>
    describe(await ingestLoad(server.target, { ...BATCH, durationMs: loadMs, warmupMs: 1_000 }));
  say(
    `L1. batched ingest (${BATCH.concurrency} clients × ${BATCH.perRequest}), no period yet, ${loadMs / 1000} s`,
  );
  const bareBefore = await load();
  say(`    ${fmt(bareBefore.eventsPerSecond)} events/s, p99 ${ms(bareBefore.p99)}`);

  say(`L2. a period of 365 days for each of the ${TENANTS} tenants, a run started, the same load beside it`);
  for (let t = 0; t < TENANTS; t++) {
    const put = await send(
      server.target,
      agent,
      'PUT',
      `/v1/retention/tenants/${tenantName(t)}`,
      Buffer.from('{"days":365}'),
    );
    if (put.status !== 200 && put.status !== 204)
      throw new Error(`PUT period answered ${put.status} ${put.body}`);
  }
  const started = await send(server.target, agent, 'POST', '/v1/retention/runs', Buffer.from('{}'));
  if (started.status !== 202)
    throw new Error(`POST /v1/retention/runs answered ${started.status} ${started.body}`);
  const runId = (JSON.parse(started.body) as { id: string }).id;
  const runNow = async () =>
    JSON.parse((await send(server.target, agent, 'GET', `/v1/retention/runs/${runId}`)).body) as {
      state: string;
      pruned: number;
    };
  const loadStart = await runNow();
  const during = await load();
  const loadEnd = await runNow();
  if (loadEnd.state === 'done') throw new Error('the prune run ended before the load: raise BENCH_SCALE');
  const underLoadRate = ((loadEnd.pruned - loadStart.pruned) * 1000) / (loadMs + 1_000);
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
  const sizeAfter = dbBytes(dataDir);
  const afterState = fileState(dataDir);

  say('L3. the same load again, the run done');
  const bareAfter = await load();
  say(`    ${fmt(bareAfter.eventsPerSecond)} events/s, p99 ${ms(bareAfter.p99)}`);
  agent.destroy();
  peakRssMiB = Math.max(peakRssMiB, await server.stop());
  const bare = {
    eventsPerSecond: (bareBefore.eventsPerSecond + bareAfter.eventsPerSecond) / 2,
    p99: (bareBefore.p99 + bareAfter.p99) / 2,
  };
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
    baseline: `${fmt(bare.eventsPerSecond)} (same load, same server, no run: mean of ${fmt(bareBefore.eventsPerSecond)} before and ${fmt(bareAfter.eventsPerSecond)} after)`,
    ratio: ratio(during.eventsPerSecond, bare.eventsPerSecond),
    met: during.eventsPerSecond >= 0.8 * bare.eventsPerSecond,
  });
  rows.push({
    figure: '  same, p99 per request',
    goal: '≤ 2× without pruning',
    measured: ms(during.p99),
    baseline: `${ms(bare.p99)} (mean of ${ms(bareBefore.p99)} before and ${ms(bareAfter.p99)} after)`,
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
    baseline: `${fmt(sizeBefore / MIB)} MiB before (${fmt(before.kept)} events; L1 and L2's loads added the difference)`,
    ratio: ratio(sizeAfter, sizeBefore),
    met: undefined,
  });
  return { rows, peakRssMiB };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await runStandalone('Trailwarden retention benchmark', 'tw-bench-retention-', runRetentionBench);
}
