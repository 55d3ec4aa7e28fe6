/**
 * PostgreSQL benchmark (issue 5's goals): batched ingest through one and
 * three `trailwarden serve` nodes sharing one local PostgreSQL, time until an
 * event acknowledged by one node is visible on another, and filtered first
 * pages at 10,000,000 stored events — each beside a baseline measured in the
 * same run: the disk's fsync rate, bare multi-row INSERTs and bare COPYs
 * (pg-copy-streams, text format) of the same rows into a copy of the same
 * table, each on 8 connections and on 1, `GET /healthz`, and the SQLite
 * store through one node the same way.
 *
 * The cluster is a throwaway one (test/helpers/postgres.ts: initdb + pg_ctl
 * on a free port, fsync and synchronous_commit on), with shared_buffers and
 * max_wal_size raised (neither weakens durability). Only public interfaces
 * are used: the HTTP API of the built server, and `PostgresStore.append` for
 * the bulk fill.
 *
 * Standalone: `npm run bench:postgres` (BENCH_SCALE, BENCH_DIR, BENCH_KEEP and
 * BENCH_SERVER_NODE_ARGS as for `npm run bench`). BENCH_PG_EVENTS sets the
 * stored events for the query figures (default 10,000,000 × BENCH_SCALE).
 * Each ingest load also reports the CPU per event of the servers,
 * PostgreSQL and the load generator (bench/cpu-use.ts, from /proc) and what
 * all cores could give at that cost.
 * The COPY baseline needs the devDependency pg-copy-streams (`npm install`
 * installs it); it reads its rows back and throws if any column differs.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { PostgresStore } from '../src/store/postgres/postgres-store.js';
import { startPostgres } from '../test/helpers/postgres.js';
import { bareSqliteInserts } from './baselines.js';
import { crossNodeVisibility, pacedIngest, spreadIngestLoad } from './cluster-load.js';
import { type CpuPerEvent, type CpuReading, cpuPerEvent, readCpu } from './cpu-use.js';
import { fsyncRate } from './machine.js';
import {
  analyzeEvents,
  drainPending,
  dropDatabase,
  eventsBytes,
  logHead,
  serverSettings,
} from './postgres-admin.js';
import { type BareOptions, barePostgresCopy, barePostgresInserts } from './postgres-baselines.js';
import { FILL_BATCH, fillPostgres } from './postgres-fill.js';
import { bareSqlReads } from './postgres-reads.js';
import { queryPaths, sequentialGets } from './reads.js';
import { type BenchRow, runStandalone, type Say } from './report.js';
import { ServerProcess } from './server-process.js';
import { fmt, ms, percentile } from './stats.js';

/**
 * CPU per event from `before` until now over the events sequenced since
 * `headBefore` (every event a load stored, warm-up included); undefined
 * without /proc.
 */
async function cpuSince(
  before: CpuReading | undefined,
  pids: number[],
  url: string,
  headBefore: number,
): Promise<CpuPerEvent | undefined> {
  const now = readCpu(pids);
  const events = (await logHead(url)) - headBefore;
  return before && now && events > 0 ? cpuPerEvent(before, now, events) : undefined;
}

function describeCpu(c: CpuPerEvent): string {
  return (
    `servers ${c.servers.map((x) => x.toFixed(1)).join(' + ')} µs, PostgreSQL ${c.postgres.toFixed(1)} µs, ` +
    `load generator ${c.bench.toFixed(1)} µs; machine ${(c.busyShare * 100).toFixed(0)} % busy; ` +
    `all cores at that cost: ${fmt(c.ceiling)} events/s`
  );
}

const ratio = (a: number, b: number) => (Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : 'n/a');
const load = () =>
  `load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`;

/** Server settings of the throwaway cluster: more memory and WAL room; durability untouched. */
export const PG_SETTINGS = { shared_buffers: '512MB', max_wal_size: '4GB' };

/** Runs the PostgreSQL benchmark in `work`; returns the table rows and the servers' peak RSS. */
export async function runPostgresBench(opts: {
  work: string;
  scale: number;
  say: Say;
}): Promise<{ rows: BenchRow[]; peakRssMiB: number }> {
  const { work, scale, say } = opts;
  const scaled = (n: number, min: number) => Math.max(min, Math.round(n * scale));
  const fromEnv = process.env['BENCH_PG_EVENTS'];
  const plan = {
    baselineMs: scaled(5000, 1000),
    fillEvents: fromEnv === undefined ? scaled(10_000_000, 10_000) : Number(fromEnv),
    reads: 200,
    readWarmup: 20,
    loadMs: scaled(15_000, 2000),
    warmupMs: 1000,
    probes: scaled(200, 30),
    batchSize: 100,
    batchClients: 8,
    bareConnections: 8,
    steadyRequestsPerSecond: 20,
  };
  if (!(plan.fillEvents >= 1000)) throw new Error('BENCH_PG_EVENTS must be a number ≥ 1000');
  const rows: BenchRow[] = [];
  const servers: ServerProcess[] = [];
  let peakRssMiB = 0;
  const names = new Map<ServerProcess, string>();
  const stopServer = async (s: ServerProcess) => {
    const peak = await s.stop();
    peakRssMiB = Math.max(peakRssMiB, peak);
    say(`   server ${names.get(s)} stopped; its peak RSS (VmHWM) ${peak.toFixed(0)} MiB`);
    servers.splice(servers.indexOf(s), 1);
  };
  const startServer = async (dir: string, settings: Record<string, unknown>) => {
    mkdirSync(dir, { recursive: true });
    const s = await ServerProcess.start(dir, { log_level: 'info', audit_reads: true, ...settings });
    servers.push(s);
    names.set(s, basename(dir));
    return s;
  };
  // One checkpoint signing key for every node, as a cluster must share it.
  const keyFile = join(work, 'checkpoint-key.pem');
  const { privateKey } = generateKeyPairSync('ed25519');
  writeFileSync(keyFile, privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), { mode: 0o600 });
  const node = (url: string, n: number) => ({
    store: url,
    cluster: { node_id: `bench-node-${n}` },
    checkpoints: { key_file: keyFile },
  });

  // The cluster lives beside the work folder (PostgreSQL runs as its own user when we are root).
  const cluster = await startPostgres({
    settings: PG_SETTINGS,
    parentDir: process.env['BENCH_DIR'] ?? tmpdir(),
  });
  try {
    say(`postgres: ${await serverSettings(cluster.url())}`);
    say(`plan:     ${fmt(plan.fillEvents)} stored events for the queries, ${plan.loadMs / 1000} s per load`);
    say('');

    // 1. Baselines.
    say(`1. baselines (${load()})`);
    const fsyncs = fsyncRate(work, 2000);
    const ingestUrl = await cluster.createDatabase();
    await (await PostgresStore.open(ingestUrl, { poolSize: 1 })).close(); // creates the schema
    const bare = await barePostgresInserts(ingestUrl, bareOptions(plan, plan.bareConnections));
    // One connection: the ceiling of a design that sequences every append on one connection.
    const bare1 = await barePostgresInserts(ingestUrl, bareOptions(plan, 1));
    const copy = await barePostgresCopy(ingestUrl, bareOptions(plan, plan.bareConnections));
    const copy1 = await barePostgresCopy(ingestUrl, bareOptions(plan, 1));
    const bareSqlite = bareSqliteInserts(work, plan.batchSize, plan.baselineMs);
    say(`   fsync'd 200-byte appends: ${fmt(fsyncs)}/s`);
    say(
      `   bare PostgreSQL INSERT … unnest, ${plan.batchSize} rows/statement, ${plan.bareConnections} connections: ${fmt(bare.rowsPerSecond)} rows/s (table ${bare.tableFrom}, ${bare.indexes} indexes)`,
    );
    say(`   the same on 1 connection: ${fmt(bare1.rowsPerSecond)} rows/s`);
    say(
      `   bare PostgreSQL COPY … FROM STDIN (text), ${plan.batchSize} rows/COPY, ${plan.bareConnections} connections: ${fmt(copy.rowsPerSecond)} rows/s (${ratio(copy.rowsPerSecond, bare.rowsPerSecond)} INSERT; rows read back and checked)`,
    );
    say(
      `   the same on 1 connection: ${fmt(copy1.rowsPerSecond)} rows/s (${ratio(copy1.rowsPerSecond, bare1.rowsPerSecond)} INSERT)`,
    );
    say(`   bare better-sqlite3, ${plan.batchSize} rows/tx: ${fmt(bareSqlite.rowsPerSecond)} rows/s`);
    rows.push({
      figure: "disk: fsync'd 200-byte appends/s (info)",
      goal: '',
      measured: fmt(fsyncs),
      baseline: '',
      ratio: '',
      met: undefined,
    });
    rows.push({
      figure: `bare PG INSERT, ${plan.batchSize} rows/stmt × ${plan.bareConnections} conns (info)`,
      goal: '',
      measured: `${fmt(bare.rowsPerSecond)} rows/s`,
      baseline: `${fmt(fsyncs)} (fsync'd appends/s)`,
      ratio: ratio(bare.rowsPerSecond, fsyncs),
      met: undefined,
    });
    rows.push({
      figure: '  same, 1 connection (info)',
      goal: '',
      measured: `${fmt(bare1.rowsPerSecond)} rows/s`,
      baseline: `${fmt(bare.rowsPerSecond)} (${plan.bareConnections} connections)`,
      ratio: ratio(bare1.rowsPerSecond, bare.rowsPerSecond),
      met: undefined,
    });
    rows.push({
      figure: `bare PG COPY, ${plan.batchSize} rows/COPY × ${plan.bareConnections} conns (info)`,
      goal: '',
      measured: `${fmt(copy.rowsPerSecond)} rows/s`,
      baseline: `${fmt(bare.rowsPerSecond)} (bare PG INSERT, ${plan.bareConnections} conns)`,
      ratio: ratio(copy.rowsPerSecond, bare.rowsPerSecond),
      met: undefined,
    });
    rows.push({
      figure: '  same, 1 connection (info)',
      goal: '',
      measured: `${fmt(copy1.rowsPerSecond)} rows/s`,
      baseline: `${fmt(bare1.rowsPerSecond)} (bare PG INSERT, 1 conn)`,
      ratio: ratio(copy1.rowsPerSecond, bare1.rowsPerSecond),
      met: undefined,
    });

    // 2. Batched ingest: one node, then three on the same database, then SQLite.
    const n1 = await startServer(join(work, 'node-1'), node(ingestUrl, 1));
    say(
      `2. batched ingest, one node: ${plan.batchClients} clients × ${plan.batchSize} events/request (${load()})`,
    );
    const ingestOpts = {
      perRequest: plan.batchSize,
      concurrency: plan.batchClients,
      durationMs: plan.loadMs,
      warmupMs: plan.warmupMs,
    };
    const cpu1 = readCpu([n1.pid]);
    const head1 = await logHead(ingestUrl);
    const one = await spreadIngestLoad([n1.target], ingestOpts);
    const oneCpu = await cpuSince(cpu1, [n1.pid], ingestUrl, head1);
    if (one.failed > 0) say(`   ${one.failed} failed, first: ${one.firstFailure}`);
    say(
      `   ${fmt(one.eventsPerSecond)} events/s, p99 ${ms(percentile(one.perNode[0]!.latencies, 99))} per request (${load()})`,
    );
    const n2 = await startServer(join(work, 'node-2'), node(ingestUrl, 2));
    const n3 = await startServer(join(work, 'node-3'), node(ingestUrl, 3));
    const nodes = [n1, n2, n3];
    say(`   three nodes, the same ${plan.batchClients} clients spread over them (${load()})`);
    const cpu3 = readCpu(nodes.map((s) => s.pid));
    const head3 = await logHead(ingestUrl);
    const three = await spreadIngestLoad(
      nodes.map((s) => s.target),
      ingestOpts,
    );
    if (three.failed > 0) say(`   ${three.failed} failed, first: ${three.firstFailure}`);
    const perNode = three.perNode.map((r) => fmt((r.ok * plan.batchSize * 1000) / r.elapsedMs)).join(' + ');
    const p99s = three.perNode.map((r) => ms(percentile(r.latencies, 99))).join(', ');
    say(
      `   ${fmt(three.eventsPerSecond)} events/s in total (${perNode}); p99 per request ${p99s} (${load()})`,
    );
    // Followers acknowledge before the sequencer has the events: what it had
    // not sequenced when the load stopped counts against the figure, so the
    // goal is judged on what was acknowledged and sequenced in the time taken.
    const drained = await drainPending(ingestUrl);
    const windowSeconds = Math.max(...three.perNode.map((r) => r.elapsedMs)) / 1000;
    const threeSustained = (three.eventsPerSecond * windowSeconds) / (windowSeconds + drained.seconds);
    say(
      `   pending when the load stopped: ${fmt(drained.backlog)} events, sequenced ${drained.seconds.toFixed(1)} s later; ` +
        `acknowledged and sequenced: ${fmt(threeSustained)} events/s`,
    );
    const threeCpu = await cpuSince(
      cpu3,
      nodes.map((s) => s.pid),
      ingestUrl,
      head3,
    );
    for (const [label, c] of [
      ['one node', oneCpu],
      ['three nodes', threeCpu],
    ] as const) {
      if (c) say(`   CPU per event, ${label}: ${describeCpu(c)}`);
    }

    // 3. Time to visible across nodes, under a steady moderate load on all three.
    const steadyRate = plan.steadyRequestsPerSecond * plan.batchSize;
    say(
      `3. ack → visible on another node: ${plan.probes} probes under a steady ${fmt(steadyRate)} events/s (${plan.steadyRequestsPerSecond} × ${plan.batchSize}/s over 3 nodes)`,
    );
    const stop = { stopped: false };
    const steady = pacedIngest(
      nodes.map((s) => s.target),
      { requestsPerSecond: plan.steadyRequestsPerSecond, perRequest: plan.batchSize, stop },
    );
    let vis: Awaited<ReturnType<typeof crossNodeVisibility>>;
    try {
      vis = await crossNodeVisibility(
        nodes.map((s) => s.target),
        plan.probes,
        String(process.pid),
      );
    } finally {
      stop.stopped = true;
    }
    const steadyResult = await steady;
    const ackP99 = percentile(vis.ack, 99);
    say(
      `   steady load ${fmt(steadyResult.eventsPerSecond)} events/s (${steadyResult.failed} failed); probe ack p99 ${ms(ackP99)}; ` +
        `visible p50/p99: GET /v1/events/{id} ${ms(percentile(vis.get, 50))} / ${ms(percentile(vis.get, 99))}, ` +
        `stream ${ms(percentile(vis.stream, 50))} / ${ms(percentile(vis.stream, 99))}` +
        `${vis.streamMissed > 0 ? ` (${vis.streamMissed} never arrived)` : ''} (${load()})`,
    );
    for (const s of [...nodes]) await stopServer(s);

    const sqlite = await startServer(join(work, 'sqlite'), {});
    say(`   SQLite store, one node, the same load (${load()})`);
    const lite = await spreadIngestLoad([sqlite.target], ingestOpts);
    await stopServer(sqlite);
    if (lite.failed > 0) say(`   ${lite.failed} failed, first: ${lite.firstFailure}`);
    say(`   ${fmt(lite.eventsPerSecond)} events/s (${load()})`);

    rows.push({
      figure: `batched ingest, PG, 1 node (${plan.batchClients} × ${plan.batchSize}), events/s`,
      goal: '≥ 20,000/s',
      measured: fmt(one.eventsPerSecond),
      baseline: `${fmt(bare.rowsPerSecond)} (bare PG INSERT)`,
      ratio: ratio(one.eventsPerSecond, bare.rowsPerSecond),
      met: one.failed === 0 && one.eventsPerSecond >= 20_000,
    });
    rows.push({
      figure: `batched ingest, PG, 3 nodes (${plan.batchClients} × ${plan.batchSize} spread), total`,
      goal: '≥ 20,000/s and ≥ 1 node',
      measured: fmt(threeSustained),
      baseline: `${fmt(bare.rowsPerSecond)} (bare PG INSERT)`,
      ratio: ratio(threeSustained, bare.rowsPerSecond),
      met: three.failed === 0 && threeSustained >= Math.max(20_000, one.eventsPerSecond),
    });
    rows.push({
      figure: '  same, acknowledged only (sequenced later) (info)',
      goal: '',
      measured: fmt(three.eventsPerSecond),
      baseline: `${fmt(threeSustained)} (acknowledged and sequenced)`,
      ratio: ratio(three.eventsPerSecond, threeSustained),
      met: undefined,
    });
    for (const [label, c, measured] of [
      ['1 node', oneCpu, one.eventsPerSecond],
      ['3 nodes', threeCpu, threeSustained],
    ] as const) {
      if (!c) continue;
      rows.push({
        figure: `  CPU per event, ${label}: server${c.servers.length > 1 ? 's' : ''} / PostgreSQL / load generator (info)`,
        goal: '',
        measured: `${c.servers.map((x) => x.toFixed(0)).join(' + ')} / ${c.postgres.toFixed(0)} / ${c.bench.toFixed(0)} µs`,
        baseline: `machine ${(c.busyShare * 100).toFixed(0)} % busy`,
        ratio: '',
        met: undefined,
      });
      rows.push({
        figure: `  ceiling, ${label}: all cores ÷ that CPU per event (info)`,
        goal: '',
        measured: `${fmt(c.ceiling)}/s`,
        baseline: `${fmt(measured)} (measured, above)`,
        ratio: ratio(measured, c.ceiling),
        met: undefined,
      });
    }
    rows.push({
      figure: '  same, SQLite store, 1 node (info)',
      goal: '',
      measured: fmt(lite.eventsPerSecond),
      baseline: `${fmt(bareSqlite.rowsPerSecond)} (bare SQLite, ${plan.batchSize} rows/tx)`,
      ratio: ratio(lite.eventsPerSecond, bareSqlite.rowsPerSecond),
      met: undefined,
    });
    for (const [name, samples, missed] of [
      ['GET /v1/events/{id} poll', vis.get, 0],
      ['GET /v1/stream', vis.stream, vis.streamMissed],
    ] as const) {
      const p99 = percentile(samples, 99);
      rows.push({
        figure: `ack → visible on another node, ${name}, p99`,
        goal: '≤ 250 ms',
        measured: `${ms(p99)} (p50 ${ms(percentile(samples, 50))})`,
        baseline: `${ms(ackP99)} (probe POST p99)`,
        ratio: ratio(p99, ackP99),
        met: p99 <= 250 && missed === 0,
      });
    }

    // 4. Filtered first pages at full size, in a fresh database (the ingest one is dropped first).
    await dropDatabase(cluster.url(), ingestUrl);
    const queryUrl = await cluster.createDatabase();
    say(
      `4. filling a fresh database with ${fmt(plan.fillEvents)} events through PostgresStore.append (${load()})`,
    );
    let lastReport = performance.now();
    const fillStart = performance.now();
    const { data, eventsPerSecond: fillRate } = await fillPostgres(queryUrl, plan.fillEvents, (done) => {
      if (performance.now() - lastReport > 60_000) {
        lastReport = performance.now();
        const rate = (done * 1000) / (lastReport - fillStart);
        say(`   ${fmt(done)} … (${fmt(rate)} events/s so far, ${load()})`);
      }
    });
    const analyzeSeconds = await analyzeEvents(queryUrl);
    const bytes = await eventsBytes(queryUrl);
    say(
      `   filled at ${fmt(fillRate)} events/s (batches of ${fmt(FILL_BATCH)}); events with its indexes ${fmt(bytes / 2 ** 20)} MiB; ANALYZE ${analyzeSeconds.toFixed(1)} s (${load()})`,
    );
    // One untimed pass of the very queries both measurements replay, so neither reads cold pages: the
    // first run of this step timed the server on a cold cache and bare SQL warm after it (216 vs 26.6 ms at 10M).
    const warm = queryPaths(data);
    await bareSqlReads(queryUrl, plan.reads, plan.readWarmup, warm.tenantActionWindow);
    await bareSqlReads(queryUrl, plan.reads, plan.readWarmup, warm.actor);
    const paths = queryPaths(data);
    const reader = await startServer(join(work, 'reader'), node(queryUrl, 4));
    const health = await sequentialGets(reader.target, plan.reads, plan.readWarmup, () => '/healthz');
    const q1 = await sequentialGets(reader.target, plan.reads, plan.readWarmup, paths.tenantActionWindow);
    const q2 = await sequentialGets(reader.target, plan.reads, plan.readWarmup, paths.actor);
    await stopServer(reader);
    const hp95 = percentile(health, 95);
    say(
      `   p95 /healthz ${ms(hp95)}, tenant+action+window ${ms(percentile(q1, 95))}, actor ${ms(percentile(q2, 95))} (${load()})`,
    );
    // The same queries (a fresh generator replays them) as bare SQL on one connection.
    const samePaths = queryPaths(data);
    const b1 = await bareSqlReads(queryUrl, plan.reads, plan.readWarmup, samePaths.tenantActionWindow);
    const b2 = await bareSqlReads(queryUrl, plan.reads, plan.readWarmup, samePaths.actor);
    say(
      `   bare SQL p95: tenant+action+window ${ms(percentile(b1.latencies, 95))}, actor ${ms(percentile(b2.latencies, 95))} (${load()})`,
    );
    for (const [name, b] of [
      ['tenant+action+window', b1],
      ['actor', b2],
    ] as const) {
      say(`   plan of the first bare ${name} query:`);
      for (const line of b.plan) say(`     ${line}`);
    }
    for (const [figure, samples, bareSamples] of [
      [`query tenant+action.*+1 day, p95 @ ${fmt(plan.fillEvents)}`, q1, b1.latencies],
      [`query actor_id, p95 @ ${fmt(plan.fillEvents)}`, q2, b2.latencies],
    ] as const) {
      const p95 = percentile(samples, 95);
      const bareP95 = percentile(bareSamples, 95);
      rows.push({
        figure,
        goal: '≤ 50 ms',
        measured: ms(p95),
        baseline: `${ms(hp95)} (GET /healthz p95)`,
        ratio: ratio(p95, hp95),
        met: p95 <= 50,
      });
      rows.push({
        figure: '  same, bare SQL on one connection, p95 (info)',
        goal: '',
        measured: ms(bareP95),
        baseline: `${ms(p95)} (through HTTP, above)`,
        ratio: ratio(bareP95, p95),
        met: undefined,
      });
    }
    rows.push({
      figure: 'fill through PostgresStore.append (info)',
      goal: '',
      measured: `${fmt(fillRate)} events/s`,
      baseline: `${fmt(bare1.rowsPerSecond)} (bare PG INSERT, 1 conn)`,
      ratio: ratio(fillRate, bare1.rowsPerSecond),
      met: undefined,
    });
    say(`done (${load()})`);
  } finally {
    for (const s of [...servers]) await stopServer(s).catch(() => undefined);
    await cluster.stop();
  }
  return { rows, peakRssMiB };
}

/** The bare baselines' options in the plan's shape: a batch per statement, for the baseline time. */
function bareOptions(plan: { batchSize: number; baselineMs: number }, connections: number): BareOptions {
  return { perStatement: plan.batchSize, connections, durationMs: plan.baselineMs };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await runStandalone('Trailwarden PostgreSQL benchmark', 'tw-bench-pg-', runPostgresBench);
}
