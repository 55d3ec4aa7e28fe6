import { type ChildProcess, type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

/** The built CLI (`npm run build` first; `npm test` does). */
export const BIN = fileURLToPath(new URL('../../bin/trailwarden.js', import.meta.url));

const TOKEN_LINE = /^\s+(tw_[a-z0-9]{16}_[A-Za-z0-9_-]{43})$/m;
const LISTENING = /^Trailwarden listening on (http:\/\/\S+) /m;
/** The last line serve prints about admin keys, whichever case applies. */
const READY = /^(Use it as "Authorization|Admin key: the one in|Admin keys already exist)/m;

/**
 * The environment for a child CLI: the parent's, minus every TRAILWARDEN_*
 * variable (so a developer's shell cannot leak into a test), plus `env`.
 * Request logs are turned down to keep stdout small unless `env` says otherwise.
 */
function childEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('TRAILWARDEN_')),
  );
  return { ...base, TRAILWARDEN_LOG_LEVEL: 'warn', ...env };
}

/** A fresh, empty data folder; remove it with `removeDir`. */
export function tempDir(prefix = 'tw-e2e-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Writes `settings` as a YAML config file inside `dir` and returns its path. */
export function writeConfig(dir: string, settings: Record<string, unknown>): string {
  const file = join(dir, 'trailwarden.yaml');
  writeFileSync(file, stringify(settings));
  return file;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `trailwarden <args>` to completion (killed after `timeoutMs`). */
export function runCli(
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; input?: string } = {},
): Promise<CliResult> {
  return runNode([BIN, ...args], opts);
}

/**
 * Runs `node <argv>` to completion (killed after `timeoutMs`, so a hang shows
 * as SIGKILL). `withChild` may act on the child while it runs (its stdin is
 * then left open); otherwise stdin gets `input` and ends.
 */
export function runNode(
  argv: string[],
  opts: {
    env?: Record<string, string>;
    timeoutMs?: number;
    input?: string;
    withChild?: (child: ChildProcessWithoutNullStreams) => void;
  } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, {
      env: childEnv(opts.env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    if (opts.withChild) opts.withChild(child);
    else child.stdin.end(opts.input ?? '');
  });
}

/** A `trailwarden serve` child process. */
export interface Server {
  child: ChildProcess;
  /** Base URL parsed from the "Trailwarden listening on …" line. */
  url: string;
  /** The admin token printed on first start; undefined when none was printed. */
  adminToken: string | undefined;
  /** Everything printed so far. */
  stdout(): string;
  stderr(): string;
  /** Sends `signal` (SIGTERM by default) and resolves with how the process ended. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `trailwarden serve --data-dir <dataDir> --listen 127.0.0.1:0` and
 * resolves once it printed its address and its admin-key lines. Rejects (and
 * kills the child) if it exits or stays silent for `timeoutMs`.
 */
export function startServer(opts: {
  dataDir: string;
  config?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}): Promise<Server> {
  const args = ['serve', '--data-dir', opts.dataDir, '--listen', '127.0.0.1:0'];
  if (opts.config !== undefined) args.push('--config', opts.config);
  const child = spawn(process.execPath, [BIN, ...args], {
    env: childEnv(opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };
  return new Promise((resolve, reject) => {
    const fail = (why: string) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`trailwarden serve ${why}\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    };
    const timer = setTimeout(() => fail('did not start in time'), opts.timeoutMs ?? 15_000);
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      const url = LISTENING.exec(stdout)?.[1];
      if (url === undefined || !READY.test(stdout)) return;
      clearTimeout(timer);
      resolve({
        child,
        url,
        adminToken: TOKEN_LINE.exec(stdout)?.[1],
        stdout: () => stdout,
        stderr: () => stderr,
        stop,
      });
    });
    void exited.then(({ code, signal }) => {
      if (!LISTENING.test(stdout) || !READY.test(stdout)) fail(`exited early (code ${code}, ${signal})`);
    });
  });
}

/** Calls the API of a running server with a bearer key. */
export async function api(
  server: { url: string },
  key: string | undefined,
  method: string,
  path: string,
  body?: unknown,
): Promise<Response> {
  const headers: Record<string, string> = {};
  if (key !== undefined) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  return fetch(new URL(path, server.url), {
    method,
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

/** Polls `check` every `everyMs` until it returns true; throws after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  opts: { timeoutMs?: number; everyMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 50));
  }
}

/**
 * A valid event as a producer sends it. Kept here rather than imported from
 * `helpers/app.ts` so e2e tests load nothing from `src/` they do not need.
 */
export function producerEvent(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    timestamp: new Date().toISOString(),
    actor: { type: 'user', id: 'usr_alice', name: 'alice', email: 'alice@example.com' },
    action: 'user.login',
    resource: { type: 'user', id: 'usr_alice', name: 'alice' },
    outcome: 'success',
    source_ip: '203.0.113.42',
    ...over,
  };
}
