import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** s3rver's fixed credentials (it checks signatures made with them). */
export const S3RVER_KEYS = { access_key_id: 'S3RVER', secret_access_key: 'S3RVER' } as const;

/** A running s3rver (a child process, so a test can kill it mid-upload), storing under its own temp folder. */
export interface S3rverPeer {
  /** `http://127.0.0.1:PORT`. */
  endpoint: string;
  port: number;
  /** Where it stores buckets and objects. */
  dir: string;
  /** Its request log, one line per request (e.g. `PUT /audit/key?partNumber=1&uploadId=… 200`). */
  log: string[];
  /** Kills the process (SIGKILL) and waits for it to exit; the folder stays until close(). */
  kill(): Promise<void>;
  /** Stops it and removes its folder. */
  close(): Promise<void>;
}

const s3rverBin = join(
  dirname(createRequire(import.meta.url).resolve('s3rver/package.json')),
  'bin',
  's3rver.js',
);

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * Starts s3rver on 127.0.0.1, port 0, with the given buckets created
 * (PEERS.md, "Object storage"); `dir` reuses a folder (a restart).
 */
export async function startS3rver(opts: { buckets: string[]; dir?: string }): Promise<S3rverPeer> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'tw-s3rver-'));
  const args = [s3rverBin, '-d', dir, '-a', '127.0.0.1', '-p', '0'];
  for (const bucket of opts.buckets) args.push('--configure-bucket', bucket);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const port = await new Promise<number>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      const m = /S3rver listening on [^:\s]+:(\d+)/.exec(output);
      if (m?.[1]) resolve(Number(m[1]));
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
    });
    child.once('exit', (code) => reject(new Error(`s3rver exited (${code}) before listening: ${output}`)));
    setTimeout(() => reject(new Error(`s3rver did not listen within 15 s: ${output}`)), 15_000).unref();
  });
  // Its request log goes to stdout: keep reading so the pipe never fills.
  const log: string[] = [];
  let partial = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    log.push(...lines.filter((l) => l.trim() !== ''));
  });
  child.stderr?.resume();
  const kill = async () => {
    child.kill('SIGKILL');
    await exited(child);
  };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    dir,
    log,
    kill,
    async close() {
      await kill();
      if (opts.dir === undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}
