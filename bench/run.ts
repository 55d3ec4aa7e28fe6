/**
 * `npm run bench`: throughput, latency, visibility, read and verify figures of
 * the core log against a real `trailwarden serve` child process over loopback
 * HTTP, each printed beside a baseline measured in the same run.
 *
 * BENCH_SCALE (default 1) shrinks or grows the run: 0.05 is a quick check.
 * BENCH_DIR picks the parent folder of the data folder (default the OS temp
 * folder; keep it on the disk you want to measure). BENCH_KEEP=1 keeps it.
 * BENCH_SERVER_NODE_ARGS passes Node flags to the server (e.g. `--cpu-prof`).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { sqliteFile } from '../src/store/open-store.js';
import { bareScanSeconds, bareSqliteInserts } from './baselines.js';
import { cpuFloor } from './cpu-floor.js';
import { fillStore } from './fill.js';
import { ingestLoad } from './ingest.js';
import { machineFacts } from './machine.js';
import { queryPaths, sequentialGets } from './reads.js';
import { type BenchRow, printTable, summary } from './report.js';
import { ServerProcess } from './server-process.js';
import { fmt, ms, percentile } from './stats.js';
import { measureVisibility } from './visibility.js';

const REFERENCE =
  'an established open-source audit-log service measured on this kind of machine accepted about 1,100 events/s in bulk';

/** Bytes in a MiB (what /proc reports, in KiB, is converted to). */
const MIB = 1_048_576;
const scale = Number(process.env['BENCH_SCALE'] ?? '1');
if (!(scale > 0)) throw new Error('BENCH_SCALE must be a positive number, e.g. 0.05 for a quick check');
const scaled = (n: number, min: number) => Math.max(min, Math.round(n * scale));

const plan = {
  baselineMs: scaled(2000, 500),
  floorEvents: scaled(200_000, 20_000),
  fillEvents: scaled(1_000_000, 10_000),
  reads: scaled(400, 50),
  readWarmup: 20,
  loadMs: scaled(15_000, 2000),
  warmupMs: 1000,
  probes: scaled(200, 20),
  batchSize: 100,
  batchClients: 8,
  singleClients: 32,
  steadyClients: 4,
};

type Row = BenchRow;
const rows: Row[] = [];
const say = (line: string) => process.stdout.write(`${line}\n`);
const ratio = (a: number, b: number) => (Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : 'n/a');

const parent = process.env['BENCH_DIR'] ?? tmpdir();
const work = mkdtempSync(join(parent, 'tw-bench-'));
const dataDir = join(work, 'data');

const machine = machineFacts(work, plan.baselineMs);
say('# Trailwarden benchmark');
say(`machine: ${machine.nproc} CPUs (${machine.cpuModel}), node ${machine.node}`);
say(`disk:    ${fmt(machine.fsyncPerSecond)} fsync'd 200-byte appends/s in ${work}`);
say(`scale:   ${scale} (${fmt(plan.fillEvents)} stored events, ${plan.loadMs / 1000} s per load)`);
say(
  'server:  `node bin/trailwarden.js serve` as a child process, audit_reads: true (the default), log_level: info',
);
say('');

const servers: ServerProcess[] = [];
let peakRss = 0;
async function stopServer(s: ServerProcess): Promise<void> {
  peakRss = Math.max(peakRss, await s.stop());
  servers.splice(servers.indexOf(s), 1);
}
async function startServer(settings: Record<string, unknown>): Promise<ServerProcess> {
  const s = await ServerProcess.start(dataDir, settings);
  servers.push(s);
  return s;
}

try {
  // 1. Baselines.
  say('1. baselines');
  const bare100 = bareSqliteInserts(work, 100, plan.baselineMs);
  const bare1 = bareSqliteInserts(work, 1, plan.baselineMs);
  say(`   bare better-sqlite3, 100 rows/tx: ${fmt(bare100.rowsPerSecond)} rows/s`);
  say(`   bare better-sqlite3, 1 row/tx:    ${fmt(bare1.rowsPerSecond)} rows/s`);
  // 5 (set-up). Fill the store through the Store API.
  say(`5. filling the store with ${fmt(plan.fillEvents)} events through Store.append`);
  let lastReport = performance.now();
  const { data, eventsPerSecond: fillRate } = await fillStore(dataDir, plan.fillEvents, (done) => {
    if (performance.now() - lastReport > 5000) {
      lastReport = performance.now();
      say(`   ${fmt(done)} …`);
    }
  });
  say(`   filled at ${fmt(fillRate)} events/s (Store.append, batches of 5,000)`);

  // 5. Reads at full size, with audit_reads on (the default) and off.
  const paths = queryPaths(data);
  let server = await startServer({ audit_reads: true });
  const idleRss = server.rssMiB();
  const health = await sequentialGets(server.target, plan.reads, plan.readWarmup, () => '/healthz');
  const q1 = await sequentialGets(server.target, plan.reads, plan.readWarmup, paths.tenantActionWindow);
  const q2 = await sequentialGets(server.target, plan.reads, plan.readWarmup, paths.actor);
  const proofs = await sequentialGets(server.target, plan.reads, plan.readWarmup, paths.proof);
  await stopServer(server);
  say(
    `   p95 /healthz ${ms(percentile(health, 95))}, tenant+action+window ${ms(percentile(q1, 95))}, actor ${ms(percentile(q2, 95))}, proof ${ms(percentile(proofs, 95))}`,
  );
  server = await startServer({ audit_reads: false });
  const q1n = await sequentialGets(server.target, plan.reads, plan.readWarmup, paths.tenantActionWindow);
  const q2n = await sequentialGets(server.target, plan.reads, plan.readWarmup, paths.actor);
  await stopServer(server);
  say(
    `   audit_reads false: tenant+action+window ${ms(percentile(q1n, 95))}, actor ${ms(percentile(q2n, 95))}`,
  );

  const hp95 = percentile(health, 95);
  const addLatency = (figure: string, samples: number[], goalMs: number) => {
    const p95 = percentile(samples, 95);
    rows.push({
      figure,
      goal: `≤ ${goalMs} ms`,
      measured: ms(p95),
      baseline: `${ms(hp95)} (GET /healthz p95)`,
      ratio: ratio(p95, hp95),
      met: p95 <= goalMs,
    });
  };
  addLatency(`query tenant+action.*+1 day, p95 @ ${fmt(plan.fillEvents)}`, q1, 20);
  addLatency(`query actor_id, p95 @ ${fmt(plan.fillEvents)}`, q2, 20);
  addLatency('  same, tenant+action+window, audit_reads=false', q1n, 20);
  addLatency('  same, actor_id, audit_reads=false', q2n, 20);
  addLatency(`inclusion proof, p95 @ ${fmt(plan.fillEvents)}`, proofs, 5);

  // 5. verify of the whole log, with the server stopped (its last checkpoint signed).
  say('5. verify (node bin/trailwarden.js verify --data-dir …)');
  const t0 = performance.now();
  const verify = spawnSync(process.execPath, ['bin/trailwarden.js', 'verify', '--data-dir', dataDir], {
    encoding: 'utf8',
  });
  const verifySeconds = (performance.now() - t0) / 1000;
  if (verify.status !== 0) throw new Error(`verify failed: ${verify.stdout}${verify.stderr}`);
  say(`   ${verify.stdout.trim().split('\n')[0]}`);
  const scan = bareScanSeconds(dataDir);
  say(
    `   verify ${verifySeconds.toFixed(1)} s; bare scan+parse+hash of ${fmt(scan.rows)} rows ${scan.seconds.toFixed(1)} s`,
  );
  rows.push({
    figure: `verify whole log (${fmt(scan.rows)} events; goal judged scaled to 1M)`,
    goal: '≤ 30 s @ 1M',
    // Below 1M events the goal is judged on the time scaled linearly to 1M.
    measured: `${verifySeconds.toFixed(1)} s`,
    baseline: `${scan.seconds.toFixed(1)} s (bare scan + parse + SHA-256)`,
    ratio: ratio(verifySeconds, scan.seconds),
    met: (verifySeconds * 1_000_000) / scan.rows <= 30,
  });

  // 2–4. Ingest into the filled store.
  server = await startServer({ audit_reads: true });
  say(`2. batched ingest: ${plan.batchClients} clients × ${plan.batchSize} events/request`);
  const batched = await ingestLoad(server.target, {
    perRequest: plan.batchSize,
    concurrency: plan.batchClients,
    durationMs: plan.loadMs,
    warmupMs: plan.warmupMs,
  });
  if (batched.failed > 0) say(`   ${batched.failed} failed, first: ${batched.firstFailure}`);
  const eventsPerSecond = (batched.ok * plan.batchSize * 1000) / batched.elapsedMs;
  say(`   ${fmt(eventsPerSecond)} events/s, p99 ${ms(percentile(batched.latencies, 99))} per request`);
  say(`   for reference: ${REFERENCE}`);
  rows.push({
    figure: `batched ingest (${plan.batchClients} clients × ${plan.batchSize}), events/s`,
    goal: '≥ 50,000/s',
    measured: fmt(eventsPerSecond),
    baseline: `${fmt(bare100.rowsPerSecond)} (bare SQLite, 100 rows/tx)`,
    ratio: ratio(eventsPerSecond, bare100.rowsPerSecond),
    met: eventsPerSecond >= 50_000,
  });
  say(`3. single-event requests: ${plan.singleClients} clients`);
  const single = await ingestLoad(server.target, {
    perRequest: 1,
    concurrency: plan.singleClients,
    durationMs: plan.loadMs,
    warmupMs: plan.warmupMs,
  });
  if (single.failed > 0) say(`   ${single.failed} failed, first: ${single.firstFailure}`);
  const rps = (single.ok * 1000) / single.elapsedMs;
  const p50 = percentile(single.latencies, 50);
  const p99 = percentile(single.latencies, 99);
  say(`   ${fmt(rps)} requests/s, p50 ${ms(p50)}, p99 ${ms(p99)}`);
  rows.push({
    figure: `single-event requests (${plan.singleClients} clients), req/s`,
    goal: '≥ 5,000/s',
    measured: fmt(rps),
    baseline: `${fmt(bare1.rowsPerSecond)} (bare SQLite, 1 row/tx)`,
    ratio: ratio(rps, bare1.rowsPerSecond),
    met: rps >= 5000,
  });
  rows.push({
    figure: '  same, p50 / p99 latency',
    goal: 'p99 ≤ 20 ms',
    measured: `${ms(p50)} / ${ms(p99)}`,
    baseline: `${ms(1000 / machine.fsyncPerSecond)} (one fsync)`,
    ratio: ratio(p99, 1000 / machine.fsyncPerSecond),
    met: p99 <= 20,
  });

  say(
    `4. ack → visible, ${plan.probes} probes during a steady load of ${plan.steadyClients} clients × ${plan.batchSize}`,
  );
  const stop = { stopped: false };
  const steady = ingestLoad(server.target, {
    perRequest: plan.batchSize,
    concurrency: plan.steadyClients,
    durationMs: 3_600_000,
    warmupMs: 0,
    stop,
  });
  const vis = await measureVisibility(server.target, plan.probes, String(process.pid));
  stop.stopped = true;
  const steadyResult = await steady;
  const steadyRate = (steadyResult.ok * plan.batchSize * 1000) / steadyResult.elapsedMs;
  const ackP99 = percentile(vis.ack, 99);
  say(
    `   steady load ${fmt(steadyRate)} events/s; probe ack p99 ${ms(ackP99)}; visible p99: query ${ms(percentile(vis.query, 99))}, stream ${ms(percentile(vis.stream, 99))}${vis.streamMissed > 0 ? ` (${vis.streamMissed} never arrived)` : ''}`,
  );
  for (const [name, samples] of [
    ['query (GET /v1/events poll)', vis.query],
    ['stream (GET /v1/stream)', vis.stream],
  ] as const) {
    const p = percentile(samples, 99);
    rows.push({
      figure: `ack → visible, ${name}, p99`,
      goal: '≤ 100 ms',
      measured: ms(p),
      baseline: `${ms(ackP99)} (probe POST p99)`,
      ratio: ratio(p, ackP99),
      met: p <= 100 && (name.startsWith('query') || vis.streamMissed === 0),
    });
  }
  await stopServer(server);

  say(`6. CPU floor: ${fmt(plan.floorEvents)} of the load's events, parsed to stored rows in one thread`);
  // Into the filled store's events table, the server stopped: indexes of the size the load met.
  const floor = cpuFloor(sqliteFile(dataDir), plan.floorEvents);
  /** Events/s that all cores, busy with nothing but the floor's work, could give. */
  const coresCeiling = (machine.nproc * 1e6) / floor.withSqlite;
  /** Events/s of SQLite's one writer doing nothing but the inserts (it cannot be shared out). */
  const writerCeiling = 1e6 / (floor.withSqlite - floor.withoutStorage);
  say(
    `   per event ${floor.withoutStorage.toFixed(1)} µs parse+validate+hash+row, ${floor.withSqlite.toFixed(1)} µs with the SQLite insert → at most ${fmt(coresCeiling)} events/s on ${machine.nproc} cores, ${fmt(writerCeiling)} through one SQLite writer`,
  );

  const batchedRow = rows.findIndex((r) => r.figure.startsWith('batched ingest'));
  rows.splice(
    batchedRow + 1,
    0,
    {
      figure: '  CPU floor per event: parse, validate, hash, SQLite row (info)',
      goal: '',
      measured: `${floor.withSqlite.toFixed(1)} µs (${floor.withoutStorage.toFixed(1)} without SQLite)`,
      baseline: `${((machine.nproc * 1e6) / 50_000).toFixed(1)} µs (${machine.nproc} cores ÷ 50,000/s)`,
      ratio: ratio(floor.withSqlite, (machine.nproc * 1e6) / 50_000),
      met: undefined,
    },
    {
      figure: '  ceiling: cores ÷ floor / one writer ÷ its inserts, events/s (info)',
      goal: '',
      measured: `${fmt(coresCeiling)} / ${fmt(writerCeiling)}`,
      baseline: `${fmt(eventsPerSecond)} (batched ingest, above)`,
      ratio: ratio(Math.min(coresCeiling, writerCeiling), eventsPerSecond),
      met: undefined,
    },
  );

  // The goal is in MB (10^6 bytes); VmHWM is read in KiB, so 300 MB is 286.1 MiB.
  const peakMB = (peakRss * MIB) / 1e6;
  rows.push({
    figure: 'server resident memory, max (VmHWM)',
    goal: '≤ 300 MB',
    measured: `${fmt(peakMB)} MB (${fmt(peakRss)} MiB)`,
    baseline: `${fmt((idleRss * MIB) / 1e6)} MB (idle after start)`,
    ratio: ratio(peakRss, idleRss),
    met: peakMB <= 300,
  });
  rows.push({
    figure: 'fill through Store.append (info)',
    goal: '',
    measured: `${fmt(fillRate)} events/s`,
    baseline: `${fmt(bare100.rowsPerSecond)} (bare SQLite, 100 rows/tx)`,
    ratio: ratio(fillRate, bare100.rowsPerSecond),
    met: undefined,
  });

  say('');
  printTable(say, rows);
  say('');
  say(`Reference: ${REFERENCE}; measured here: ${fmt(eventsPerSecond)} events/s.`);
  say(summary(rows));
} finally {
  for (const s of [...servers]) await stopServer(s);
  if (process.env['BENCH_KEEP'] === '1') say(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
