/**
 * A throwaway PostgreSQL cluster for tests: initdb in a temp folder, started
 * with pg_ctl on a free port of 127.0.0.1 (fsync on, as in production), one
 * fresh database per test, stopped with `pg_ctl -m fast` and removed. A test
 * may also take the server down and bring it back on the same port and data
 * folder, to play an outage under load.
 * Running as root, the cluster runs as the `postgres` user (PostgreSQL
 * refuses root), so the folder is chowned to it.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

/** Where initdb and pg_ctl are: `TW_PG_BIN`, else the newest Debian install, else undefined. */
export function postgresBinDir(): string | undefined {
  const fromEnv = process.env['TW_PG_BIN'];
  if (fromEnv) return existsSync(join(fromEnv, 'initdb')) ? fromEnv : undefined;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

export interface PostgresCluster {
  /** Connection string of database `db` (default `postgres`). */
  url(db?: string): string;
  /** Creates an empty database and returns its connection string. */
  createDatabase(): Promise<string>;
  /**
   * Takes the server down, keeping its data: `fast` disconnects clients and
   * checkpoints; `immediate` is a crash (recovery runs at the next start).
   */
  halt(mode: 'fast' | 'immediate'): Promise<void>;
  /** Starts a halted server again on the same port; resolves once it accepts connections. */
  resume(): Promise<void>;
  /** `halt(mode)` then `resume()`. */
  restart(mode: 'fast' | 'immediate'): Promise<void>;
  /** Stops the server (if running) and removes its folder. */
  stop(): Promise<void>;
}

const execFileAsync = promisify(execFile);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** Options of {@link startPostgres}. */
export interface PostgresClusterOptions {
  /** Extra server settings (`-c name=value`), e.g. `shared_buffers`; never fsync-weakening ones. */
  settings?: Record<string, string>;
  /** Folder that holds the cluster's temp folder (default the OS temp folder). */
  parentDir?: string;
}

export async function startPostgres(opts: PostgresClusterOptions = {}): Promise<PostgresCluster> {
  const bin = postgresBinDir();
  if (bin === undefined) throw new Error('PostgreSQL binaries not found (set TW_PG_BIN)');
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(opts.parentDir ?? tmpdir(), 'tw-pg-'));
  const extra = Object.entries(opts.settings ?? {})
    .map(([name, value]) => ` -c ${name}=${value}`)
    .join('');
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(dir, uid, gid);
  }
  const run = (tool: string, args: string[]) =>
    asRoot
      ? execFileSync('runuser', ['-u', 'postgres', '--', join(bin, tool), ...args], { stdio: 'pipe' })
      : execFileSync(join(bin, tool), args, { stdio: 'pipe' });
  // Asynchronous, so a test's load keeps running while the server goes down or comes back.
  const runAsync = (tool: string, args: string[]) =>
    asRoot
      ? execFileAsync('runuser', ['-u', 'postgres', '--', join(bin, tool), ...args])
      : execFileAsync(join(bin, tool), args);
  const data = join(dir, 'data');
  run('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale']);
  const startArgs = (port: number) => [
    '-D',
    data,
    '-l',
    join(dir, 'log'),
    '-w',
    '-o',
    `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c fsync=on -c max_connections=200${extra}`,
    'start',
  ];
  let port = 0;
  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    try {
      run('pg_ctl', startArgs(port));
      break;
    } catch (err) {
      // Another process may have taken the port between the probe and the start.
      if (attempt >= 2) throw err;
    }
  }
  let running = true;
  const halt = async (mode: 'fast' | 'immediate') => {
    await runAsync('pg_ctl', ['-D', data, '-m', mode, '-w', 'stop']);
    running = false;
  };
  const resume = async () => {
    try {
      await runAsync('pg_ctl', startArgs(port));
    } catch (err) {
      throw new Error(`PostgreSQL did not start again on port ${port} (taken meanwhile?)`, { cause: err });
    }
    running = true;
  };
  const url = (db = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${db}`;
  let next = 0;
  return {
    url,
    async createDatabase() {
      next += 1;
      const name = `tw_${process.pid}_${next}`;
      const client = new pg.Client({ connectionString: url() });
      await client.connect();
      try {
        // TW_PG_ICU_LOCALE=en-US: databases with that linguistic default, as managed services make them.
        const icu = process.env['TW_PG_ICU_LOCALE'];
        await client.query(
          icu === undefined
            ? `CREATE DATABASE ${name}`
            : `CREATE DATABASE ${name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE ${pg.escapeLiteral(icu)} LOCALE 'C.UTF-8'`,
        );
      } finally {
        await client.end();
      }
      return url(name);
    },
    halt,
    resume,
    async restart(mode) {
      await halt(mode);
      await resume();
    },
    async stop() {
      try {
        if (running) run('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
      } finally {
        running = false;
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
