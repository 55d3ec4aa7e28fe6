/**
 * Syslog benchmark: the syslog sink over TCP (octet-counting, RFC 5424) with
 * the `json` and the `cef` format, from a pre-filled log to a counting TCP
 * receiver — beside two baselines measured in the same run on the very bytes
 * the sink sent: a bare Node client writing them straight to the receiver
 * (the receiver's ceiling), and rsyslog relaying them (imtcp in → omfwd TCP
 * out, octet-counted), the peer tool.
 *
 * Standalone: `npm run build && node --import tsx bench/syslog.ts`
 * (BENCH_SCALE, BENCH_DIR, BENCH_KEEP and BENCH_SERVER_NODE_ARGS as for
 * `npm run bench`). `bench/run.ts` can call {@link runSyslogBench}.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import { type AddressInfo, createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { fillStore } from './fill.js';
import { keepAliveAgent, send } from './http-load.js';
import { type BenchRow, runStandalone } from './report.js';
import { ServerProcess } from './server-process.js';
import { fmt, sleep } from './stats.js';

/** One line of the result table (same shape as bench/delivery.ts). */
export type SyslogRow = BenchRow;

const ratio = (a: number, b: number) => (Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : 'n/a');
const SPACE = 0x20;
const ZERO = 0x30;

/**
 * A minimal syslog collector: splits each TCP stream into octet-counted
 * frames (RFC 6587 §3.4.1, `LEN SP MSG`) and counts them — nothing else per
 * message. With `keep`, the received chunks are kept as they came (a
 * reference per chunk, no copy) so the same bytes can be replayed.
 */
class CountingTcpReceiver {
  frames = 0;
  bytes = 0;
  firstAt = 0;
  lastAt = 0;
  /** Frames whose length prefix was not digits + space: must stay 0. */
  malformed = 0;
  readonly kept: Buffer[] = [];
  keep = false;
  private waiters: Array<{ n: number; resolve: () => void }> = [];
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly server: Server) {}

  static async start(): Promise<CountingTcpReceiver> {
    const server = createServer();
    const r = new CountingTcpReceiver(server);
    server.on('connection', (socket) => r.accept(socket));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return r;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    // Per connection: the length being read, or the bytes of MSG still to skip.
    let len = 0;
    let digits = 0;
    let remaining = 0;
    socket.on('data', (chunk: Buffer) => {
      if (this.keep) this.kept.push(chunk);
      this.bytes += chunk.length;
      let i = 0;
      let done = 0;
      const n = chunk.length;
      while (i < n) {
        if (remaining > 0) {
          const take = Math.min(remaining, n - i);
          remaining -= take;
          i += take;
          if (remaining === 0) done += 1;
          continue;
        }
        const c = chunk[i++]!;
        if (c === SPACE && digits > 0) {
          remaining = len;
          len = 0;
          digits = 0;
          if (remaining === 0) done += 1;
        } else if (c >= ZERO && c <= ZERO + 9) {
          len = len * 10 + (c - ZERO);
          digits += 1;
        } else {
          this.malformed += 1;
          len = 0;
          digits = 0;
        }
      }
      if (done > 0) {
        const at = performance.now();
        if (this.frames === 0) this.firstAt = at;
        this.frames += done;
        this.lastAt = at;
        if (this.waiters.length > 0) this.wake();
      }
    });
  }

  private wake(): void {
    this.waiters = this.waiters.filter((w) => {
      if (this.frames < w.n) return true;
      w.resolve();
      return false;
    });
  }

  /** Resolves once `n` frames arrived in all; false after `timeoutMs`. */
  async waitFor(n: number, timeoutMs: number): Promise<boolean> {
    if (this.frames >= n) return true;
    let timer: NodeJS.Timeout | undefined;
    const arrived = new Promise<boolean>((resolve) => this.waiters.push({ n, resolve: () => resolve(true) }));
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const got = await Promise.race([arrived, late]);
    clearTimeout(timer);
    return got;
  }

  /** Frames/s from the first to the last frame. */
  rate(): number {
    return (this.frames * 1000) / (this.lastAt - this.firstAt);
  }

  reset(): void {
    this.frames = 0;
    this.bytes = 0;
    this.firstAt = 0;
    this.lastAt = 0;
    this.malformed = 0;
    this.kept.length = 0;
    this.keep = false;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.server.close();
    await once(this.server, 'close');
  }
}

/** user + system CPU seconds of a process (all its threads) so far; 0 once it is gone. */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat (utime, stime), counted after the command name; USER_HZ is 100 on Linux.
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/**
 * A bare client in its own process (so it does not share the receiver's
 * thread, as the server does not): connects to `port` and writes `file` —
 * octet-counted frames, back to back — in 1 MiB writes as fast as the socket
 * takes them. Returns the client's own wall time in ms.
 */
async function bareClient(
  file: string,
  port: number,
): Promise<{ child: ChildProcess; done: Promise<number> }> {
  const script = `
    import { readFileSync } from 'node:fs';
    import { connect } from 'node:net';
    const [file, port] = process.argv.slice(1);
    const data = readFileSync(file);
    const s = connect({ host: '127.0.0.1', port: Number(port) });
    await new Promise((r, j) => { s.once('connect', r); s.once('error', j); });
    s.setNoDelay(true);
    const t0 = performance.now();
    const SLICE = 1 << 20;
    for (let i = 0; i < data.length; i += SLICE) {
      if (!s.write(data.subarray(i, i + SLICE))) await new Promise((r) => s.once('drain', r));
    }
    await new Promise((r) => s.end(r));
    process.stdout.write(String(performance.now() - t0));
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, file, String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const done = once(child, 'exit').then(([code]) => {
    if (code !== 0) throw new Error(`bare client exited with ${code}`);
    return Number(out);
  });
  return { child, done };
}

/** rsyslogd in the foreground relaying imtcp → omfwd (TCP, octet-counted) to `targetPort`. */
async function startRelay(dir: string, targetPort: number): Promise<{ child: ChildProcess; port: number }> {
  mkdirSync(dir, { recursive: true });
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = (probe.address() as AddressInfo).port;
  probe.close();
  await once(probe, 'close');
  const conf = join(dir, 'rsyslog.conf');
  // Defaults otherwise: main queue (in memory, 100,000 messages), direct action queue.
  writeFileSync(
    conf,
    `global(workDirectory="${dir}" parser.escapeControlCharactersOnReceive="off" maxMessageSize="64k")
module(load="imtcp")
input(type="imtcp" port="${port}" address="127.0.0.1" name="in")
action(type="omfwd" target="127.0.0.1" port="${targetPort}" protocol="tcp"
       TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
`,
  );
  const child = spawn('rsyslogd', ['-n', '-iNONE', '-f', conf], { stdio: ['ignore', 'ignore', 'inherit'] });
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`rsyslogd exited with ${child.exitCode}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = netConnect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (up) return { child, port };
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error('rsyslogd did not listen within 10 s');
    }
    await sleep(50);
  }
}

async function lagOf(server: ServerProcess, agent: http.Agent, name: string): Promise<number> {
  const r = await send(server.target, agent, 'GET', `/v1/sinks/${name}/status`);
  if (r.status !== 200) throw new Error(`status of ${name} answered ${r.status}: ${r.body.slice(0, 300)}`);
  return (JSON.parse(r.body) as { lag_events: number }).lag_events;
}

export interface SyslogBenchOptions {
  /** A scratch folder (the data folder and rsyslog's folder are made inside it). */
  work: string;
  /** Multiplies the event count (200,000 at 1). */
  scale: number;
  say: (line: string) => void;
}

/** Per format: Trailwarden's rate, the bare client's and rsyslog's on the same bytes. */
interface FormatResult {
  format: string;
  frames: number;
  bytes: number;
  sinkRate: number;
  sinkWallRate: number;
  serverCpu: number;
  bareRate: number;
  relayRate: number;
  relayWallRate: number;
  relayCpu: number;
}

/** Runs the syslog figures; returns the table rows and the servers' peak RSS (MiB). */
export async function runSyslogBench(
  o: SyslogBenchOptions,
): Promise<{ rows: SyslogRow[]; peakRssMiB: number }> {
  const { work, scale, say } = o;
  const events = Math.max(1_000, Math.round(200_000 * scale));
  const goals: Record<string, number> = { json: 100_000, cef: 50_000 };
  const receiver = await CountingTcpReceiver.start();
  let peakRssMiB = 0;
  const results: FormatResult[] = [];
  const children: ChildProcess[] = [];
  let server: ServerProcess | undefined;
  try {
    const dir = join(work, 'data-syslog');
    say(`S0. filling ${dir} with ${fmt(events)} events (Store.append)`);
    const fill = await fillStore(dir, events, () => {});
    say(`    ${fmt(fill.eventsPerSecond)} events/s`);
    // The server's own start-up CPU (no sink), to subtract from the sink runs' CPU.
    server = await ServerProcess.start(dir, { log_level: 'info' });
    await sleep(500);
    const startupCpu = cpuSeconds(server.pid);
    peakRssMiB = Math.max(peakRssMiB, await server.stop());
    server = undefined;
    say(`    server start-up without a sink: ${startupCpu.toFixed(2)} s CPU`);

    for (const format of ['json', 'cef'] as const) {
      // S1. The sink from the beginning of the log to the counting receiver.
      const name = `syslog-${format}`;
      say(`S1. ${name}: syslog sink, tcp, octet-counting, format ${format}, start_from beginning`);
      receiver.reset();
      receiver.keep = true;
      const spawnedAt = performance.now();
      server = await ServerProcess.start(dir, {
        log_level: 'info',
        sinks: [
          {
            name,
            type: 'syslog',
            host: '127.0.0.1',
            port: receiver.port,
            protocol: 'tcp',
            framing: 'octet-counting',
            format,
            start_from: 'beginning',
          },
        ],
      });
      if (!(await receiver.waitFor(events, 600_000)))
        throw new Error(`${name}: only ${receiver.frames} frames in 600 s`);
      const agent = keepAliveAgent(1);
      // The log also holds the servers' own audit events (start-up, earlier runs): wait for those too.
      while ((await lagOf(server, agent, name)) > 0) await sleep(50);
      agent.destroy();
      // The sink starts before /readyz answers, so count from the spawn and take the start-up off.
      const serverCpu = cpuSeconds(server.pid) - startupCpu;
      peakRssMiB = Math.max(peakRssMiB, await server.stop());
      server = undefined;
      const frames = receiver.frames;
      const sinkRate = receiver.rate();
      const sinkWallRate = (frames * 1000) / (receiver.lastAt - spawnedAt);
      const stream = join(work, `${format}.frames`);
      writeFileSync(stream, Buffer.concat(receiver.kept));
      const bytes = receiver.bytes;
      say(
        `    ${fmt(frames)} frames (${fmt(bytes / frames)} bytes each) in ${((receiver.lastAt - receiver.firstAt) / 1000).toFixed(2)} s: ` +
          `${fmt(sinkRate)} events/s first→last frame, ${fmt(sinkWallRate)} from spawning the server; ` +
          `server CPU ${serverCpu.toFixed(1)} s${receiver.malformed > 0 ? `; ${receiver.malformed} MALFORMED` : ''}`,
      );

      // S2. Baseline 1: a bare client writing the same bytes to the receiver.
      receiver.reset();
      const bare = await bareClient(stream, receiver.port);
      children.push(bare.child);
      const bareMs = await bare.done;
      if (!(await receiver.waitFor(frames, 60_000)))
        throw new Error(`bare client: ${receiver.frames} of ${frames}`);
      const bareRate = receiver.rate();
      say(
        `S2. bare Node client, same ${fmt(frames)} frames: ${fmt(bareRate)} events/s at the receiver (client wrote for ${(bareMs / 1000).toFixed(2)} s)`,
      );

      // S3. Baseline 2: rsyslog relaying the same frames.
      receiver.reset();
      const relay = await startRelay(join(work, `rsyslog-${format}`), receiver.port);
      children.push(relay.child);
      const relayCpu0 = cpuSeconds(relay.child.pid ?? 0);
      const sentAt = performance.now();
      const client = await bareClient(stream, relay.port);
      children.push(client.child);
      const clientMs = await client.done;
      const arrived = await receiver.waitFor(frames, 120_000);
      const relayCpu = cpuSeconds(relay.child.pid ?? 0) - relayCpu0;
      const relayRate = receiver.rate();
      const relayWallRate = (receiver.frames * 1000) / (receiver.lastAt - sentAt);
      const exited = once(relay.child, 'exit');
      relay.child.kill('SIGTERM');
      await exited;
      say(
        `S3. rsyslog relay (imtcp → omfwd tcp octet-counted, RSYSLOG_SyslogProtocol23Format): ${fmt(receiver.frames)} of ${fmt(frames)} frames, ` +
          `${fmt(relayRate)} events/s first→last, ${fmt(relayWallRate)} from the client's start (client wrote for ${(clientMs / 1000).toFixed(2)} s); ` +
          `rsyslogd CPU ${relayCpu.toFixed(1)} s${arrived ? '' : ' — INCOMPLETE after 120 s'}`,
      );
      rmSync(stream, { force: true });
      results.push({
        format,
        frames,
        bytes,
        sinkRate,
        sinkWallRate,
        serverCpu,
        bareRate,
        relayRate,
        relayWallRate,
        relayCpu,
      });
    }
  } finally {
    if (server) peakRssMiB = Math.max(peakRssMiB, await server.stop());
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await receiver.close();
  }

  const rows: SyslogRow[] = [];
  for (const r of results) {
    const goal = goals[r.format]!;
    rows.push({
      figure: `syslog tcp, format ${r.format}, events/s (first→last frame)`,
      goal: `≥ ${fmt(goal)}/s`,
      measured: fmt(r.sinkRate),
      baseline: `${fmt(r.bareRate)} (bare client → receiver)`,
      ratio: ratio(r.sinkRate, r.bareRate),
      met: r.sinkRate >= goal,
    });
    rows.push({
      figure: `  same vs rsyslog relaying the same ${fmt(r.frames)} frames`,
      goal: '—',
      measured: fmt(r.sinkRate),
      baseline: `${fmt(r.relayRate)} (rsyslog imtcp → omfwd)`,
      ratio: ratio(r.sinkRate, r.relayRate),
      met: undefined,
    });
    rows.push({
      figure: `  same, from spawning the server / from the client's start`,
      goal: '—',
      measured: fmt(r.sinkWallRate),
      baseline: `${fmt(r.relayWallRate)} (rsyslog, from the client's start)`,
      ratio: ratio(r.sinkWallRate, r.relayWallRate),
      met: undefined,
    });
    rows.push({
      figure: `  CPU µs per event: server (less start-up) / rsyslogd`,
      goal: '—',
      measured: fmt((r.serverCpu * 1e6) / r.frames, 1),
      baseline: fmt((r.relayCpu * 1e6) / r.frames, 1),
      ratio: ratio(r.serverCpu, r.relayCpu),
      met: undefined,
    });
  }
  return { rows, peakRssMiB };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await runStandalone('Trailwarden syslog benchmark', 'tw-bench-syslog-', runSyslogBench);
}
