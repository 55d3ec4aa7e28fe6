import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { generateToken } from '../src/auth/api-keys.js';
import { keepAliveAgent, send, type Target } from './http-load.js';
import { sleep } from './stats.js';

const BIN = new URL('../bin/trailwarden.js', import.meta.url).pathname;

/** A port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, 'close');
  return port;
}

/** VmRSS or VmHWM of a process, in MiB (0 once it is gone). */
export function procMemoryMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** `trailwarden serve` as a child process, with its resident memory sampled throughout. */
export class ServerProcess {
  /** Highest VmRSS sampled, MiB. */
  maxRssMiB = 0;
  private sampler: NodeJS.Timeout | undefined;

  private constructor(
    private readonly child: ChildProcess,
    readonly target: Target,
  ) {}

  /**
   * Starts the built server (`npm run build` first) on `dataDir`, with the
   * given settings merged over `listen`/`data_dir`, and waits for /readyz.
   */
  static async start(dataDir: string, settings: Record<string, unknown>): Promise<ServerProcess> {
    const port = await freePort();
    const token = generateToken();
    const configFile = join(dataDir, 'bench-config.yaml');
    writeFileSync(configFile, stringify({ listen: `127.0.0.1:${port}`, data_dir: dataDir, ...settings }));
    // BENCH_SERVER_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", profiles the server.
    const nodeArgs = (process.env['BENCH_SERVER_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');
    const child = spawn(process.execPath, [...nodeArgs, BIN, 'serve', '--config', configFile], {
      env: { ...process.env, TRAILWARDEN_ADMIN_KEY: token },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const server = new ServerProcess(child, { host: '127.0.0.1', port, auth: `Bearer ${token}` });
    const agent = keepAliveAgent(1);
    for (let tries = 0; ; tries++) {
      if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode}`);
      try {
        const r = await send(server.target, agent, 'GET', '/readyz');
        if (r.status === 200) break;
      } catch {
        // not listening yet
      }
      if (tries > 600) throw new Error('the server did not become ready in 60 s');
      await sleep(100);
    }
    agent.destroy();
    server.sampler = setInterval(() => server.sample(), 100);
    server.sample();
    return server;
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** Current VmRSS in MiB. */
  rssMiB(): number {
    return procMemoryMiB(this.pid, 'VmRSS');
  }

  private sample(): void {
    this.maxRssMiB = Math.max(this.maxRssMiB, this.rssMiB());
  }

  /** SIGTERM, wait for a clean exit; returns the kernel's peak RSS (VmHWM) in MiB. */
  async stop(): Promise<number> {
    if (this.sampler) clearInterval(this.sampler);
    this.sample();
    const peak = procMemoryMiB(this.pid, 'VmHWM');
    const exited = once(this.child, 'exit');
    this.child.kill('SIGTERM');
    await exited;
    return Math.max(peak, this.maxRssMiB);
  }
}
