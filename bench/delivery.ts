/**
 * Delivery benchmark: batched webhook throughput, ingest → receiver latency,
 * the file sink against a bare Node stream, and memory and catch-up of a dead
 * webhook sink far behind — each against a real `trailwarden serve` child
 * process and beside a baseline measured in the same run.
 *
 * Standalone: `npm run build && node --import tsx bench/delivery.ts`
 * (BENCH_SCALE, BENCH_DIR, BENCH_KEEP and BENCH_SERVER_NODE_ARGS as for
 * `npm run bench`). `bench/run.ts` can call {@link runDeliveryBench}.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  createWriteStream,
  fsync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { rawEvent } from './dataset.js';
import { fillStore } from './fill.js';
import { keepAliveAgent, send, type Target } from './http-load.js';
import { type BenchRow, runStandalone } from './report.js';
import { ServerProcess } from './server-process.js';
import { drainRate, sinkStatus } from './sink-drain.js';
import { fmt, ms, percentile, sleep } from './stats.js';

/** One line of the result table. */
export type DeliveryRow = BenchRow;

const ratio = (a: number, b: number) => (Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : 'n/a');

/**
 * A minimal webhook peer: parses each JSON array body, counts its events,
 * answers 204. `onEvents` sees each body's events and when they arrived.
 */
class CountingReceiver {
  events = 0;
  requests = 0;
  firstAt = 0;
  lastAt = 0;
  /** The first bodies received, verbatim, for the bare-client baseline. */
  readonly samples: Array<{ body: Buffer; events: number }> = [];
  onEvents: ((events: Array<{ event_id?: string }>, at: number) => void) | undefined;
  private constructor(private readonly server: http.Server) {}

  static async start(port = 0): Promise<CountingReceiver> {
    const server = http.createServer();
    const r = new CountingReceiver(server);
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const at = performance.now();
        const body = Buffer.concat(chunks);
        const events = JSON.parse(body.toString('utf8')) as Array<{ event_id?: string }>;
        if (r.requests === 0) r.firstAt = at;
        r.requests += 1;
        r.events += events.length;
        r.lastAt = at;
        if (r.samples.length < 32) r.samples.push({ body, events: events.length });
        r.onEvents?.(events, at);
        res.writeHead(204).end();
      });
    });
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    return r;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  reset(): void {
    this.events = 0;
    this.requests = 0;
    this.firstAt = 0;
    this.lastAt = 0;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close');
  }
}

/**
 * Baseline: a bare undici client in its own process (so it does not share
 * the receiver's thread, as the server does not) posting pre-serialised
 * bodies back to back on `concurrency` keep-alive connections. Events/s.
 */
async function bareWebhookClient(
  work: string,
  url: string,
  samples: ReadonlyArray<{ body: Buffer; events: number }>,
  concurrency: number,
  durationMs: number,
): Promise<number> {
  const file = join(work, 'bare-bodies.json');
  writeFileSync(
    file,
    JSON.stringify(samples.map((s) => ({ body: s.body.toString('utf8'), events: s.events }))),
  );
  const script = `
    import { readFileSync } from 'node:fs';
    import { Agent, request } from 'undici';
    const [file, url, conc, dur] = process.argv.slice(1);
    const bodies = JSON.parse(readFileSync(file, 'utf8'));
    const agent = new Agent({ connections: Number(conc) });
    const headers = { 'content-type': 'application/json', 'webhook-id': 'msg_bare' };
    let events = 0, next = 0;
    const t0 = performance.now();
    const end = t0 + Number(dur);
    await Promise.all(Array.from({ length: Number(conc) }, async () => {
      while (performance.now() < end) {
        const b = bodies[next++ % bodies.length];
        const res = await request(url, { dispatcher: agent, method: 'POST', headers, body: b.body });
        await res.body.dump();
        if (res.statusCode !== 204) throw new Error('status ' + res.statusCode);
        events += b.events;
      }
    }));
    process.stdout.write(JSON.stringify({ events, ms: performance.now() - t0 }));
    await agent.close();
  `;
  const child = spawn(
    process.execPath,
    ['--input-type=module', '-e', script, file, url, String(concurrency), String(durationMs)],
    { cwd: new URL('..', import.meta.url).pathname, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const [code] = (await once(child, 'exit')) as [number];
  if (code !== 0) throw new Error(`bare client exited with ${code}`);
  const r = JSON.parse(out) as { events: number; ms: number };
  return (r.events * 1000) / r.ms;
}

/** Writes `lines` through fs.createWriteStream, optionally fsync'ing every `fsyncEvery` lines. Lines/s. */
async function bareStream(
  file: string,
  lines: readonly string[],
  fsyncEvery: number | null,
): Promise<number> {
  const stream = createWriteStream(file, { flags: 'a' });
  await once(stream, 'open');
  const fd = (stream as unknown as { fd: number }).fd;
  const t0 = performance.now();
  for (let i = 0; i < lines.length; i++) {
    const more = stream.write(`${lines[i]}\n`);
    const boundary = fsyncEvery !== null && (i + 1) % fsyncEvery === 0;
    if (boundary) {
      await new Promise<void>((resolve, reject) =>
        stream.write('', (err) => (err ? reject(err) : resolve())),
      );
      await new Promise<void>((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
    } else if (!more) {
      await once(stream, 'drain');
    }
  }
  stream.end();
  await once(stream, 'finish');
  const elapsed = performance.now() - t0;
  rmSync(file, { force: true });
  return (lines.length * 1000) / elapsed;
}

/** The log lines a file sink wrote: every file in `dir`, concatenated. */
function linesIn(dir: string): string[] {
  const out: string[] = [];
  for (const f of readdirSync(dir).sort()) {
    const p = join(dir, f);
    if (!statSync(p).isFile() || f.endsWith('.gz')) continue;
    for (const line of readFileSync(p, 'utf8').split('\n')) if (line !== '') out.push(line);
  }
  return out;
}

/** A port that refuses connections right now (nobody listens). */
async function closedPort(): Promise<number> {
  const r = await CountingReceiver.start();
  const port = r.port;
  await r.close();
  return port;
}

export interface DeliveryBenchOptions {
  /** A scratch folder (data folders are made inside it). */
  work: string;
  scale: number;
  say: (line: string) => void;
}

/** Runs the four delivery figures; returns the table rows and the servers' peak RSS. */
export async function runDeliveryBench(
  opts: DeliveryBenchOptions,
): Promise<{ rows: DeliveryRow[]; peakRssMiB: number }> {
  const { work, scale, say } = opts;
  const scaled = (n: number, min: number) => Math.max(min, Math.round(n * scale));
  const plan = {
    webhookEvents: scaled(200_000, 10_000),
    deadEvents: scaled(1_000_000, 20_000),
    latencyMs: scaled(15_000, 5_000),
    latencyWarmupMs: 1_000,
    /** 20 requests/s × 100 events = 2,000 events/s. */
    latencyRequestsPerSecond: 20,
    latencyBatch: 100,
    deadSampleMs: scaled(20_000, 5_000),
    catchUpCapMs: 180_000,
    bareMs: scaled(5_000, 2_000),
    batchMaxEvents: 500,
  };
  const rows: DeliveryRow[] = [];
  const servers = new Set<ServerProcess>();
  let peakRssMiB = 0;
  const start = async (dataDir: string, settings: Record<string, unknown>) => {
    const s = await ServerProcess.start(dataDir, { log_level: 'info', ...settings });
    servers.add(s);
    return s;
  };
  const stop = async (s: ServerProcess) => {
    peakRssMiB = Math.max(peakRssMiB, await s.stop());
    servers.delete(s);
  };
  const receivers: CountingReceiver[] = [];
  const receiver = async (port?: number) => {
    const r = await CountingReceiver.start(port);
    receivers.push(r);
    return r;
  };

  try {
    // Set-up: a log of plan.webhookEvents events.
    const dirA = join(work, 'data-webhook');
    say(`D0. filling ${dirA} with ${fmt(plan.webhookEvents)} events (Store.append)`);
    const fillA = await fillStore(dirA, plan.webhookEvents, () => {});
    say(`    ${fmt(fillA.eventsPerSecond)} events/s`);

    // D1. Batched webhook throughput from the beginning of the log.
    say(
      `D1. webhook sink, start_from beginning, batch.max_events ${plan.batchMaxEvents}, to a counting receiver`,
    );
    const peer = await receiver();
    const hook = {
      name: 'hook',
      type: 'webhook',
      url: peer.url,
      start_from: 'beginning',
      allow_private_networks: true,
      batch: { max_events: plan.batchMaxEvents },
    };
    let server = await start(dirA, { sinks: [hook] });
    const drained = await drainRate(server, 'hook', { capMs: 600_000 });
    const receiverRate = (peer.events * 1000) / (peer.lastAt - peer.firstAt);
    say(
      `    ${fmt(drained.events)} events in ${(drained.ms / 1000).toFixed(1)} s: ${fmt(drained.eventsPerSecond)} events/s by cursor; ` +
        `receiver saw ${fmt(peer.events)} events in ${fmt(peer.requests)} requests, ${fmt(receiverRate)} events/s first→last`,
    );
    await stop(server);
    const bare1 = await bareWebhookClient(work, peer.url, peer.samples, 1, plan.bareMs);
    const bare4 = await bareWebhookClient(work, peer.url, peer.samples, 4, plan.bareMs);
    say(`    bare undici client, same bodies: ${fmt(bare1)} events/s on 1 connection, ${fmt(bare4)} on 4`);
    rows.push({
      figure: `webhook batched delivery, ${plan.batchMaxEvents}/batch, events/s`,
      goal: '≥ 20,000/s',
      measured: fmt(receiverRate),
      baseline: `${fmt(bare1)} (bare undici, 1 conn; ${fmt(bare4)} on 4)`,
      ratio: ratio(receiverRate, bare1),
      met: receiverRate >= 20_000,
    });

    // D2. Ingest ack → receiver, steady 2,000 events/s, max_wait_ms 200 (default) and 0.
    for (const maxWait of [200, 0]) {
      say(
        `D2. ack → received at ${plan.latencyRequestsPerSecond} req/s × ${plan.latencyBatch} events, batch.max_wait_ms ${maxWait}`,
      );
      peer.reset();
      server = await start(dirA, {
        sinks: [{ ...hook, batch: { max_events: plan.batchMaxEvents, max_wait_ms: maxWait } }],
      });
      await drainRate(server, 'hook', { capMs: 60_000 }); // self-audit events from the start-up
      const r = await steadyLatency(server.target, peer, plan, `${maxWait}`);
      await stop(server);
      peer.onEvents = undefined;
      say(
        `    sent ${fmt(r.sent)} events at ${fmt(r.rate)} events/s; ack p50/p99 ${ms(percentile(r.ack, 50))} / ${ms(percentile(r.ack, 99))}; ` +
          `ack → received p50/p99 ${ms(percentile(r.e2e, 50))} / ${ms(percentile(r.e2e, 99))}${r.missing > 0 ? ` (${r.missing} never arrived)` : ''}`,
      );
      const p99 = percentile(r.e2e, 99);
      const ackP99 = percentile(r.ack, 99);
      rows.push({
        figure: `ack → received, 2,000/s (20 × 100), max_wait_ms ${maxWait}, p99`,
        goal: '≤ 250 ms',
        measured: `${ms(p99)} (p50 ${ms(percentile(r.e2e, 50))})`,
        baseline: `${ms(ackP99)} (ingest POST p99)`,
        ratio: ratio(p99, ackP99),
        met: p99 <= 250 && r.missing === 0,
      });
    }
    await peer.close();
    receivers.splice(receivers.indexOf(peer), 1);

    // D3. File sink vs a bare write stream, same lines.
    const fileRates: Record<string, number> = {};
    let lines: string[] = [];
    for (const fsyncPolicy of ['every_batch', 'never'] as const) {
      say(
        `D3. file sink, fsync ${fsyncPolicy}, start_from beginning (batch defaults: 1,000 events, max_wait_ms 0)`,
      );
      const outDir = join(work, `file-${fsyncPolicy}`);
      mkdirSync(outDir, { recursive: true });
      server = await start(dirA, {
        sinks: [
          {
            name: `file-${fsyncPolicy.replace('_', '-')}`,
            type: 'file',
            path: join(outDir, 'audit.log'),
            start_from: 'beginning',
            fsync: fsyncPolicy,
            compress: false,
          },
        ],
      });
      const d = await drainRate(server, `file-${fsyncPolicy.replace('_', '-')}`, { capMs: 600_000 });
      await stop(server);
      fileRates[fsyncPolicy] = d.eventsPerSecond;
      say(`    ${fmt(d.events)} lines in ${(d.ms / 1000).toFixed(1)} s: ${fmt(d.eventsPerSecond)} lines/s`);
      if (lines.length === 0) lines = linesIn(outDir);
    }
    // Best of two each, alternating, so JIT warm-up does not favour the second.
    let bareNoSync = 0;
    let bareSync = 0;
    for (let k = 0; k < 2; k++) {
      bareNoSync = Math.max(bareNoSync, await bareStream(join(work, 'bare-stream.log'), lines, null));
      bareSync = Math.max(bareSync, await bareStream(join(work, 'bare-stream-sync.log'), lines, 1000));
    }
    say(
      `    bare fs.createWriteStream, same ${fmt(lines.length)} lines: ${fmt(bareNoSync)} lines/s without fsync, ${fmt(bareSync)} with fsync per 1,000 lines`,
    );
    rows.push({
      figure: 'file sink, fsync every_batch (1,000/batch), lines/s',
      goal: '≥ 0.5× bare',
      measured: fmt(fileRates['every_batch']!),
      baseline: `${fmt(bareSync)} (bare stream, fsync / 1,000 lines)`,
      ratio: ratio(fileRates['every_batch']!, bareSync),
      met: fileRates['every_batch']! * 2 >= bareSync,
    });
    rows.push({
      figure: 'file sink, fsync never, lines/s',
      goal: '≥ 0.5× bare',
      measured: fmt(fileRates['never']!),
      baseline: `${fmt(bareNoSync)} (bare stream, no fsync)`,
      ratio: ratio(fileRates['never']!, bareNoSync),
      met: fileRates['never']! * 2 >= bareNoSync,
    });

    // D4. A dead webhook sink far behind: memory, then catch-up once the peer is back.
    const dirB = join(work, 'data-dead');
    say(`D4. filling ${dirB} with ${fmt(plan.deadEvents)} events (Store.append)`);
    let lastReport = performance.now();
    const fillB = await fillStore(dirB, plan.deadEvents, (done) => {
      if (performance.now() - lastReport > 10_000) {
        lastReport = performance.now();
        say(`    ${fmt(done)} …`);
      }
    });
    say(`    ${fmt(fillB.eventsPerSecond)} events/s`);
    server = await start(dirB, {});
    const idleRss = server.rssMiB();
    const deadPort = await closedPort();
    const agent = keepAliveAgent(1);
    const created = await send(
      server.target,
      agent,
      'POST',
      '/v1/sinks',
      Buffer.from(
        JSON.stringify({
          name: 'dead',
          type: 'webhook',
          url: `http://127.0.0.1:${deadPort}/hook`,
          start_from: 'beginning',
          allow_private_networks: true,
          batch: { max_events: plan.batchMaxEvents },
          retry: { backoff: { initial_ms: 100, max_ms: 1_000 } },
        }),
      ),
    );
    if (created.status !== 201) throw new Error(`POST /v1/sinks answered ${created.status}: ${created.body}`);
    say(`    dead sink created (port ${deadPort} refuses); sampling RSS for ${plan.deadSampleMs / 1000} s`);
    const deadRss: number[] = [];
    const deadEnd = performance.now() + plan.deadSampleMs;
    while (performance.now() < deadEnd) {
      await sleep(250);
      deadRss.push(server.rssMiB());
    }
    const st = await sinkStatus(server.target, agent, 'dead');
    say(
      `    idle ${fmt(idleRss)} MiB; dead sink ${fmt(st.lag_events)} behind, ${st.state}, ${fmt(st.counters?.retries ?? 0)} retries; ` +
        `RSS max ${fmt(Math.max(...deadRss))} MiB, last ${fmt(deadRss.at(-1) ?? 0)} MiB`,
    );
    server.maxRssMiB = 0;
    const back = await receiver(deadPort);
    const backAt = performance.now();
    const catchUp = await drainRate(server, 'dead', { capMs: plan.catchUpCapMs });
    const catchUpPeak = server.maxRssMiB;
    // The receiver's first→last rate leaves out the wait for the next retry (backoff up to 1 s).
    const catchUpRate = (back.events * 1000) / (back.lastAt - back.firstAt);
    const firstAfterMs = back.firstAt - backAt;
    say(
      `    peer back: ${fmt(catchUp.events)} events in ${(catchUp.ms / 1000).toFixed(1)} s, ${fmt(catchUp.eventsPerSecond)} events/s` +
        `${catchUp.capped ? ` (stopped after ${plan.catchUpCapMs / 1000} s, ${fmt(catchUp.last.lag_events)} still behind)` : ''}; ` +
        `first delivery ${ms(firstAfterMs)} after the peer listened; receiver first→last ${fmt(catchUpRate)} events/s; peak RSS ${fmt(catchUpPeak)} MiB`,
    );
    agent.destroy();
    await stop(server);
    await back.close();
    receivers.splice(receivers.indexOf(back), 1);
    const deadMax = Math.max(...deadRss);
    rows.push({
      figure: `RSS, dead webhook sink ${fmt(plan.deadEvents)} behind, max over ${plan.deadSampleMs / 1000} s`,
      goal: '≤ 300 MB',
      measured: `${fmt(deadMax)} MiB`,
      baseline: `${fmt(idleRss)} MiB (idle after start)`,
      ratio: ratio(deadMax, idleRss),
      met: deadMax <= 300,
    });
    rows.push({
      figure: 'catch-up after the peer returns, events/s',
      goal: '≥ 20,000/s',
      measured: fmt(catchUpRate),
      baseline: `${fmt(bare1)} (bare undici, 1 conn, D1)`,
      ratio: ratio(catchUpRate, bare1),
      met: catchUpRate >= 20_000,
    });
    rows.push({
      figure: '  same, peak RSS during catch-up',
      goal: '≤ 300 MB',
      measured: `${fmt(catchUpPeak)} MiB`,
      baseline: `${fmt(idleRss)} MiB (idle after start)`,
      ratio: ratio(catchUpPeak, idleRss),
      met: catchUpPeak <= 300,
    });
  } finally {
    for (const s of [...servers]) await stop(s);
    for (const r of receivers) await r.close();
  }
  return { rows, peakRssMiB };
}

/**
 * An open-loop ingest load of `latencyRequestsPerSecond` POSTs of
 * `latencyBatch` events with known `event_id`s; each event's time from its
 * POST's 201 to its arrival at the receiver.
 */
async function steadyLatency(
  target: Target,
  peer: CountingReceiver,
  plan: {
    latencyMs: number;
    latencyWarmupMs: number;
    latencyRequestsPerSecond: number;
    latencyBatch: number;
  },
  runId: string,
): Promise<{ e2e: number[]; ack: number[]; sent: number; rate: number; missing: number }> {
  const ackAt = new Map<string, number>();
  const seenAt = new Map<string, number>();
  peer.onEvents = (events, at) => {
    for (const e of events) if (e.event_id?.startsWith('evt_lat_')) seenAt.set(e.event_id, at);
  };
  const agent = keepAliveAgent(16);
  const ack: number[] = [];
  const inflight: Array<Promise<void>> = [];
  const interval = 1000 / plan.latencyRequestsPerSecond;
  const t0 = performance.now();
  const measureFrom = t0 + plan.latencyWarmupMs;
  const end = measureFrom + plan.latencyMs;
  let sent = 0;
  for (let k = 0; ; k++) {
    const due = t0 + k * interval;
    if (due >= end) break;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const ids = Array.from({ length: plan.latencyBatch }, (_, j) => `evt_lat_${runId}_${k}_${j}`);
    const body = Buffer.from(
      JSON.stringify(ids.map((id, j) => rawEvent(k * plan.latencyBatch + j, { event_id: id }))),
    );
    const measured = due >= measureFrom;
    inflight.push(
      (async () => {
        const s = performance.now();
        const r = await send(target, agent, 'POST', '/v1/events', body);
        const at = performance.now();
        if (r.status !== 201)
          throw new Error(`POST /v1/events answered ${r.status}: ${r.body.slice(0, 200)}`);
        if (!measured) return;
        ack.push(at - s);
        for (const id of ids) ackAt.set(id, at);
      })(),
    );
    if (measured) sent += plan.latencyBatch;
  }
  await Promise.all(inflight);
  const elapsed = performance.now() - measureFrom;
  // Let the last batch arrive (max_wait_ms plus a margin).
  const deadline = performance.now() + 5_000;
  while (performance.now() < deadline && [...ackAt.keys()].some((id) => !seenAt.has(id))) await sleep(50);
  agent.destroy();
  const e2e: number[] = [];
  let missing = 0;
  for (const [id, at] of ackAt) {
    const seen = seenAt.get(id);
    if (seen === undefined) missing += 1;
    else e2e.push(Math.max(0, seen - at));
  }
  return { e2e, ack, sent, rate: (sent * 1000) / elapsed, missing };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await runStandalone('Trailwarden delivery benchmark', 'tw-bench-delivery-', runDeliveryBench);
}
